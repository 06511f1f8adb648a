"""A training process killed outright (SIGKILL: no handler runs) leaves every checkpoint loadable,
and running the same command again resumes it to the very run an uninterrupted process trains.

Reference: the same ``mpnn train`` command run without interruption, in this process; the killed
run is a separate process (``python -m mpnn.cli``), killed once its ``metrics.csv`` shows a few
epochs. The comparison is exact: every column of ``metrics.csv`` but the elapsed time, and every
tensor of ``best.pt``.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mpnn import cli
from mpnn.train.checkpoint import load_last, load_split_file, load_state_file

ARGS = "train --target U0 --subset 100 --valid 10 --test 10 --epochs 30 --dim 16 --steps 1 --quiet".split()
KILL_AFTER = 3  # epochs in metrics.csv


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if k != "elapsed_s"} for row in csv.DictReader(handle)]


def kill_during_training(out: Path, environment: dict[str, str]) -> int:
    """Start ``mpnn train`` into ``out`` and SIGKILL it after :data:`KILL_AFTER` epochs; returns
    the number of epochs it had written then."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mpnn.cli", *ARGS, "--out", str(out)],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and process.poll() is None:
            metrics = out / "metrics.csv"
            if metrics.is_file() and len(metrics.read_text().splitlines()) > KILL_AFTER:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    return len(rows(out / "metrics.csv"))


def test_a_killed_run_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    killed = tmp_path / "killed"
    done = kill_during_training(killed, environment)
    assert KILL_AFTER <= done < 30
    # every file the killed process left is whole
    load_last(killed / "last.pt")
    load_state_file(killed / "best.pt")
    load_split_file(killed / "split.pt", ("train", "valid", "test"), None)
    assert cli.main([*ARGS, "--out", str(killed)]) == 0
    assert not [p.name for p in killed.iterdir() if p.name.endswith(".tmp")]
    whole = tmp_path / "whole"
    assert cli.main([*ARGS, "--out", str(whole)]) == 0
    assert rows(killed / "metrics.csv") == rows(whole / "metrics.csv")
    resumed, reference = load_state_file(killed / "best.pt"), load_state_file(whole / "best.pt")
    assert resumed.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.equal(resumed[key], value), key
    assert (killed / "test_metrics.csv").read_text() == (whole / "test_metrics.csv").read_text()


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
