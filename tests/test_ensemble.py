"""Ensembles: the k runs of best validation error, mean prediction, spread; checks of compatibility."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from test_train import synthetic_set

from mpnn.errors import DataError
from mpnn.experiments import ensemble as ensemble_module
from mpnn.experiments.ensemble import build_ensemble, candidate_runs, select_members
from mpnn.train import run as run_module
from mpnn.train.checkpoint import load_model, load_tensors
from mpnn.train.config import spec_from_config
from mpnn.train.loader import BatchLoader
from mpnn.train.metrics import read_errors_csv
from mpnn.train.properties import predict

TINY = {"model": "enn_s2s", "dim": 16, "edge_hidden": [8], "steps": 1, "set2set_steps": 1}
DATA = synthetic_set(40)
QUIET = {"show_progress": False, "echo": lambda _: None}


def train(out, *, targets=("mu", "U0"), lr=1e-3, seed=0, epochs=1):
    config = {"targets": list(targets), "joint": True, "model": TINY}
    config["training"] = {"epochs": epochs, "batch_size": 8, "lr": lr, "seed": seed}
    run_module.train_run(spec_from_config(config), out, **QUIET)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Runs on 40 synthetic molecules: a, b (another learning rate), a copy of a, one on U0 only,
    one with another seed (another split)."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_module, "load_molecules", lambda *a, **k: DATA)
        patch.setattr(run_module.plots, "parity", lambda *a, **k: None)
        patch.setattr(run_module.plots, "learning_curve", lambda *a, **k: None)
        train(root / "search" / "a", epochs=2)
        train(root / "search" / "b", lr=2e-2, epochs=2)
        train(root / "u0", targets=("U0",))
        train(root / "seed1", seed=1)
    shutil.copytree(root / "search" / "a", root / "copy")
    return root


@pytest.fixture(autouse=True)
def synthetic(monkeypatch):
    monkeypatch.setattr(ensemble_module, "load_molecules", lambda *a, **k: DATA)


def own_predictions(run):
    """A member's test predictions, computed here with the model and loader directly."""
    model, _ = load_model(run)
    test = load_tensors(run / "split.pt")["test"].numpy()
    columns = [0, 7]  # mu, U0 in mpnn.data.qm9.TARGETS
    values = predict(model, BatchLoader(DATA, test, columns, 7, model.graph))
    true = DATA.y.numpy()[test][:, columns]
    return values, true


def read_rows(path):
    with open(path, newline="") as handle:
        return {row["target"]: row for row in csv.DictReader(handle)}


def test_an_ensemble_of_identical_members_is_that_member(runs, tmp_path) -> None:
    errors = build_ensemble([runs / "search" / "a", runs / "copy"], 2, tmp_path, echo=lambda _: None)
    member = {e.target: e for e in read_errors_csv(runs / "search" / "a" / "test_metrics.csv")}
    assert [e.target for e in errors] == ["mu", "U0"]
    for e in errors:
        assert e.mae == pytest.approx(member[e.target].mae, rel=1e-12)
        assert e.member_mae == pytest.approx(member[e.target].mae, rel=1e-12)
        assert e.spread == 0.0 and np.isnan(e.correlation)
    rows = read_rows(tmp_path / "test_metrics.csv")
    assert rows["U0"]["spread_error_corr"] == "" and float(rows["U0"]["spread"]) == 0.0


def test_an_ensemble_of_two_members_averages_their_own_predictions(runs, tmp_path) -> None:
    (pa, true), (pb, _) = own_predictions(runs / "search" / "a"), own_predictions(runs / "search" / "b")
    assert not np.allclose(pa, pb)
    for run, p in (("a", pa), ("b", pb)):  # the hand-made predictions are the members' own
        own = [e.mae for e in read_errors_csv(runs / "search" / run / "test_metrics.csv")]
        assert np.abs(p - true).mean(axis=0) == pytest.approx(own, rel=1e-12)
    build_ensemble([runs / "search"], 2, tmp_path, echo=lambda _: None)  # a search folder: a and b
    rows = read_rows(tmp_path / "test_metrics.csv")
    for k, (name, accuracy) in enumerate((("mu", 0.1), ("U0", 0.043))):
        mean = (pa[:, k] + pb[:, k]) / 2
        spread = np.abs(pa[:, k] - pb[:, k]) / 2  # std of two values
        error = np.abs(mean - true[:, k])
        row = rows[name]
        assert float(row["mae"]) == pytest.approx(error.mean(), rel=1e-12)
        assert float(row["ratio"]) == pytest.approx(error.mean() / accuracy, rel=1e-12)
        assert float(row["spread"]) == pytest.approx(spread.mean(), rel=1e-12)
        member = (np.abs(pa[:, k] - true[:, k]).mean() + np.abs(pb[:, k] - true[:, k]).mean()) / 2
        assert float(row["member_mae"]) == pytest.approx(member, rel=1e-12)
        corr = np.mean((spread - spread.mean()) * (error - error.mean())) / (spread.std() * error.std())
        assert float(row["spread_error_corr"]) == pytest.approx(corr, rel=1e-9)
    record = json.loads((tmp_path / "ensemble.json").read_text())
    assert record["k"] == 2 and record["targets"] == ["mu", "U0"] and record["test_molecules"] == 4
    assert sorted(m["run"] for m in record["members"]) == [str(runs / "search" / r) for r in "ab"]


def test_members_are_the_runs_of_best_validation_ratio(runs) -> None:
    def best_valid(run):  # the lowest epoch mean of MAE / chemical accuracy in metrics.csv
        with open(run / "metrics.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        return min((float(r["valid_mae_mu"]) / 0.1 + float(r["valid_mae_U0"]) / 0.043) / 2 for r in rows)

    ratios = {r: best_valid(runs / "search" / r) for r in "ab"}
    assert ratios["a"] != pytest.approx(ratios["b"], rel=1e-3)
    [member] = select_members(candidate_runs([runs / "search"]), 1, echo=lambda _: None)
    assert member.run.name == min(ratios, key=ratios.get)
    assert member.valid_ratio == pytest.approx(ratios[member.run.name], rel=1e-5)


@pytest.mark.parametrize(
    ("other", "message"),
    [("u0", "not the same targets as"), ("seed1", "not the same train split as")],
)
def test_runs_on_other_targets_or_splits_are_refused(runs, tmp_path, other, message) -> None:
    with pytest.raises(DataError, match=message):
        build_ensemble([runs / "search" / "a", runs / other], 2, tmp_path / "e", echo=lambda _: None)
    assert not (tmp_path / "e").exists()


def test_too_few_runs_and_missing_folders_are_errors(runs, tmp_path) -> None:
    with pytest.raises(DataError, match="--k 3: only 2 finished runs"):
        build_ensemble([runs / "search"], 3, tmp_path, echo=lambda _: None)
    with pytest.raises(DataError, match="no such folder"):
        build_ensemble([tmp_path / "nothing"], 1, tmp_path, echo=lambda _: None)
    with pytest.raises(DataError, match="no runs in this folder"):
        build_ensemble([tmp_path], 1, tmp_path, echo=lambda _: None)
