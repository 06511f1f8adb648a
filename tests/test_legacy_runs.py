"""Run folders written before the one training loop still resume (tests/fixtures/legacy_runs).

Their ``last.pt`` counters have the old names (``best_ratio`` of the property loop, ``best_loss``
and ``plateau_epochs`` of the potential loop) and their settings the old fields; resuming with more
epochs must continue them: the old epochs stay in the history as they were and new ones follow.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import torch

from mpnn import cli
from mpnn.train.checkpoint import LAST

LEGACY = Path(__file__).parent / "fixtures" / "legacy_runs"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def legacy(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "legacy"
    shutil.copytree(LEGACY, folder)
    monkeypatch.chdir(folder)
    # a potential run records its data file's absolute path: where the copy now lies
    config = json.loads((folder / "potential_run" / "config.json").read_text())
    config["run"]["train"] = str(folder / "train.xyz")
    (folder / "potential_run" / "config.json").write_text(json.dumps(config))
    return folder


def rows(folder: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(folder / "metrics.csv")))


@pytest.mark.parametrize(
    ("folder", "command", "old_key"),
    [
        ("property_run", ["train", "--epochs", "2"], "best_ratio"),
        ("potential_run", ["train-potential", "train.xyz", "--epochs", "3"], "best_loss"),
    ],
)
def test_an_old_run_folder_resumes(legacy, folder, command, old_key) -> None:
    run = legacy / folder
    before = rows(run)
    old = torch.load(run / LAST, weights_only=True)["state"]
    assert old_key in old and "best" not in old  # really the old layout
    assert cli.main([*command, "--out", folder, "--quiet"]) == 0
    after = rows(run)
    epochs = int(command[-1])
    assert len(before) == old["epoch"] < epochs == len(after)
    assert after[: len(before)] == before  # the old epochs, as they were
    state = torch.load(run / LAST, weights_only=True)["state"]
    assert state["epoch"] == epochs and state["step"] > old["step"]
    assert state["best"] <= old[old_key]
