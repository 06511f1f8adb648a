"""``mpnn predict``/``mpnn evaluate`` on an ensemble folder, and ``--weight-seed`` apart from ``--seed``."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import synthetic_set

from mpnn import cli
from mpnn.experiments import ensemble as ensemble_module
from mpnn.train import run as run_module
from mpnn.train.checkpoint import load_tensors

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "qm9"
XYZ = sorted(str(p) for p in FIXTURES.glob("dsgdb9nsd_*.xyz"))
SMILES = {"dsgdb9nsd_000001": "C", "dsgdb9nsd_000002": "N", "dsgdb9nsd_000023": "C(#C)C#C"}
ENN = ["--model", "enn_s2s", "--model-option", "dim=16", "--model-option", "edge_hidden=[8]"]
ENN += ["--model-option", "steps=1", "--model-option", "set2set_steps=1"]
GGNN = ["--model", "ggnn", "--model-option", "dim=16", "--model-option", "steps=2"]
GGNN += ["--model-option", "readout_hidden=8"]
DATA = synthetic_set(40)


def train(out: Path, *options: str) -> Path:
    args = ["train", "--target", "U0,gap", "--joint", "--epochs", "1", "--batch-size", "8", "--quiet"]
    assert cli.main([*args, *options, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """On 40 synthetic molecules, seed 0: enn-s2s without a weight seed (plain), with weight seed 0
    and 1; two topology-only GG-NNs (weight seeds 1, 2) and their ensemble."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_module, "load_molecules", lambda *a, **k: DATA)
        patch.setattr(ensemble_module, "load_molecules", lambda *a, **k: DATA)
        patch.setattr(run_module.plots, "parity", lambda *a, **k: None)
        patch.setattr(run_module.plots, "learning_curve", lambda *a, **k: None)
        train(root / "plain", *ENN)
        train(root / "w0", *ENN, "--weight-seed", "0")
        train(root / "w1", *ENN, "--weight-seed", "1")
        for s in (1, 2):
            train(root / f"g{s}", *GGNN, "--weight-seed", str(s))
        members = [str(root / "g1"), str(root / "g2")]
        assert cli.main(["ensemble", *members, "--k", "2", "--out", str(root / "ens")]) == 0
    return root


@pytest.fixture(autouse=True)
def synthetic(monkeypatch):
    monkeypatch.setattr(run_module, "load_molecules", lambda *a, **k: DATA)
    monkeypatch.setattr(ensemble_module, "load_molecules", lambda *a, **k: DATA)
    monkeypatch.setattr(run_module.plots, "parity", lambda *a, **k: None)
    monkeypatch.setattr(run_module.plots, "learning_curve", lambda *a, **k: None)


def predict(model: Path, inputs: list, out: Path) -> list[list[str]]:
    """``mpnn predict MODEL INPUTS -o OUT`` and the CSV's rows."""
    assert cli.main(["predict", str(model), *[str(p) for p in inputs], "-o", str(out)]) == 0
    with open(out, newline="") as handle:
        return list(csv.reader(handle))


def predict_error(model: Path, inputs: list, out: Path, capsys) -> str:
    """The one line ``mpnn predict`` prints when it refuses (exit status 2), without its prefix."""
    capsys.readouterr()
    assert cli.main(["predict", str(model), *[str(p) for p in inputs], "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mpnn: error: ") and err.count("\n") == 1, err
    return err[len("mpnn: error: ") :].rstrip("\n")


def columns(rows: list[list[str]]) -> dict[str, np.ndarray]:
    return {name: np.array([float(r[k]) for r in rows[1:]]) for k, name in enumerate(rows[0]) if k}


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_tensors(run / "best.pt")


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


# -- predict --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["xyz", "smi"])
def test_ensemble_predictions_are_the_mean_and_std_of_the_members(runs, tmp_path, capsys, kind) -> None:
    if kind == "smi":
        smi = tmp_path / "mols.smi"
        smi.write_text("".join(f"{s} {name}\n" for name, s in SMILES.items()))
        inputs = [smi]
    else:
        inputs = XYZ
    members = [columns(predict(runs / g, inputs, tmp_path / f"{g}.csv")) for g in ("g1", "g2")]
    rows = predict(runs / "ens", inputs, tmp_path / "ens.csv")
    assert rows[0] == ["name", "gap [eV]", "gap std [eV]", "U0 [eV]", "U0 std [eV]"]
    assert len(rows) == 1 + len(inputs if kind == "xyz" else SMILES)
    assert "of an ensemble of 2" in capsys.readouterr().out
    got = columns(rows)
    for target in ("U0", "gap"):
        a, b = members[0][f"{target} [eV]"], members[1][f"{target} [eV]"]
        mean = (a + b) / 2
        std = np.sqrt(((a - mean) ** 2 + (b - mean) ** 2) / 2)  # population std of two members
        scale = np.abs(mean).max()
        np.testing.assert_allclose(got[f"{target} [eV]"], mean, rtol=1e-6, atol=1e-7 * scale)
        np.testing.assert_allclose(got[f"{target} std [eV]"], std, rtol=1e-5, atol=1e-7 * scale)
        assert std.min() > 1e-4 * scale  # the two initialisations disagree


def write_ensemble(folder: Path, members: list[Path]) -> Path:
    folder.mkdir()
    record = {"k": len(members), "members": [{"run": str(m), "valid_ratio": 1.0} for m in members]}
    (folder / "ensemble.json").write_text(json.dumps(record))
    return folder


def test_members_on_other_targets_are_refused_in_one_line(runs, tmp_path, capsys) -> None:
    other = tmp_path / "other"
    shutil.copytree(runs / "g2", other)
    stored = json.loads((other / "run.json").read_text())
    (other / "run.json").write_text(json.dumps({**stored, "targets": ["U0"]}))
    ens = write_ensemble(tmp_path / "ens", [runs / "g1", other])
    assert predict_error(ens, XYZ[:1], tmp_path / "p.csv", capsys) == (
        f"{other}: not the same targets as {runs / 'g1'}; an ensemble needs runs on the same "
        "targets, data and split"
    )
    assert not (tmp_path / "p.csv").exists()


def test_smiles_are_refused_for_an_ensemble_with_a_model_that_reads_positions(runs, tmp_path, capsys) -> None:
    ens = write_ensemble(tmp_path / "ens", [runs / "g1", runs / "plain"])
    smi = tmp_path / "m.smi"
    smi.write_text("CCO ethanol\n")
    assert predict_error(ens, [smi], tmp_path / "p.csv", capsys) == (
        f"model {runs / 'plain'} reads 3D positions; SMILES input {smi} has none; give xyz files"
    )
    assert not (tmp_path / "p.csv").exists()


# -- evaluate -------------------------------------------------------------------------------------
def test_evaluate_prints_the_ensembles_test_metrics(runs, capsys) -> None:
    capsys.readouterr()
    assert cli.main(["evaluate", str(runs / "ens")]) == 0
    out = capsys.readouterr().out
    assert "ensemble of 2" in out.splitlines()[0]
    with open(runs / "ens" / "test_metrics.csv", newline="") as handle:
        stored = {row["target"]: row for row in csv.DictReader(handle)}
    printed = {line.split()[0]: line.split() for line in out.splitlines()[3:5]}
    assert set(printed) == {"U0", "gap"}
    for target, cells in printed.items():
        assert cells[2] == f"{float(stored[target]['mae']):.4g}"
        assert cells[4] == f"{float(stored[target]['member_mae']):.4g}"
        assert float(stored[target]["spread"]) > 0


# -- weight seed ----------------------------------------------------------------------------------
def test_a_weight_seed_changes_the_weights_and_keeps_the_split(runs) -> None:
    splits = [load_tensors(runs / r / "split.pt") for r in ("plain", "w1")]
    for part in ("train", "valid", "test"):
        assert torch.equal(splits[0][part], splits[1][part])
    assert not same_weights(runs / "plain", runs / "w1")
    assert json.loads((runs / "w1" / "run.json").read_text())["training"]["weight_seed"] == 1
    assert json.loads((runs / "w1" / "config.json").read_text())["split"]["seed"] == 0


def test_no_weight_seed_is_the_seed_and_leaves_the_run_files_as_before(runs) -> None:
    assert same_weights(runs / "plain", runs / "w0")
    plain = (runs / "plain" / "metrics.csv").read_text().splitlines()
    w0 = (runs / "w0" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[2:] for r in plain] == [r.split(",")[2:] for r in w0]  # past epoch, elapsed_s
    for name in ("run.json", "config.json"):
        assert "weight_seed" not in json.loads((runs / "plain" / name).read_text())["training"]


def test_a_weight_seed_run_resumes_and_a_config_file_sets_it(runs, tmp_path, capsys) -> None:
    run = tmp_path / "w1"
    shutil.copytree(runs / "w1", run)
    capsys.readouterr()
    assert cli.main(["train", "--out", str(run), "--epochs", "2", "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("resuming run")
    assert len((run / "metrics.csv").read_text().splitlines()) == 3
    assert cli.main(["train", "--out", str(run), "--weight-seed", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "training.weight_seed = 1, not 2" in err
    config = tmp_path / "w1.json"
    config.write_text(json.dumps({"training": {"weight_seed": 1}}))
    train(tmp_path / "from_config", *ENN, "--config", str(config))
    assert same_weights(tmp_path / "from_config", runs / "w1")
