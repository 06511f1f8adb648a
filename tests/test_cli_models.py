"""``mpnn train --model NAME`` trains every model of the catalogue and every named variant
(each with small sizes, one epoch, synthetic molecules) and stores the model it was asked for."""

from __future__ import annotations

import json

import pytest
from test_train import synthetic_set

from mpnn import cli
from mpnn.models import MODELS, POTENTIALS
from mpnn.models.presets import PRESETS
from mpnn.train import run as run_module

PROPERTY_MODELS = sorted(name for name in MODELS if name not in POTENTIALS)


@pytest.fixture(autouse=True)
def synthetic(monkeypatch):
    data = synthetic_set(24)
    monkeypatch.setattr(run_module, "load_molecules", lambda *a, **k: data)
    monkeypatch.setattr(run_module.plots, "parity", lambda *a, **k: None)
    monkeypatch.setattr(run_module.plots, "learning_curve", lambda *a, **k: None)


def small_options(name: str) -> list[str]:
    """Options shrinking the model where its configuration has the field."""
    config = MODELS[PRESETS[name]["model"] if name in PRESETS else name][0]
    fields = config.__dataclass_fields__
    wanted = {"dim": 16, "steps": 2, "set2set_steps": 1, "message_hidden": [8], "edge_hidden": [8]}
    if name in PRESETS and PRESETS[name].get("towers", 1) > 1:
        wanted["dim"] = 8 * PRESETS[name]["towers"]  # divisible into the towers
    options = []
    for key, value in wanted.items():
        if key in fields:
            options += ["--model-option", f"{key}={json.dumps(value)}"]
    return options


@pytest.mark.parametrize("name", PROPERTY_MODELS + sorted(PRESETS))
def test_train_accepts_the_model_by_name(name: str, tmp_path, capsys) -> None:
    out = tmp_path / name
    args = ["train", "--model", name, "--target", "U0,gap", "--joint", "--epochs", "1", "--quiet"]
    assert cli.main([*args, *small_options(name), "--out", str(out)]) == 0, capsys.readouterr().err
    stored = json.loads((out / "config.json").read_text())["model"]
    expected = PRESETS[name]["model"] if name in PRESETS else name
    assert stored["model"] == expected
    assert (out / "best.pt").is_file() and (out / "test_metrics.csv").is_file()
