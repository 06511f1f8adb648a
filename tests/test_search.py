"""Random hyperparameter search: seeded draws, the paper's space, reproducible and resumable searches."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
from test_train import synthetic_set

from mpnn.errors import DataError
from mpnn.experiments import search as search_module
from mpnn.experiments.search import (
    SearchSpace,
    load_space,
    run_search,
    run_state,
    sample,
    trial_spec,
    validation_errors,
)
from mpnn.train import run as run_module
from mpnn.train.config import spec_from_config

TINY = {"model": "enn_s2s", "dim": 16, "edge_hidden": [8], "steps": 1, "set2set_steps": 1}
BASE = {"targets": ["mu", "U0"], "joint": True, "model": TINY, "training": {"epochs": 1, "batch_size": 8}}


@pytest.fixture
def synthetic(monkeypatch):
    """Runs load 40 synthetic molecules instead of QM9, and draw no figures (most of a tiny run's time)."""
    data = synthetic_set(40)
    monkeypatch.setattr(run_module, "load_molecules", lambda *a, **k: data)
    monkeypatch.setattr(run_module.plots, "parity", lambda *a, **k: None)
    monkeypatch.setattr(run_module.plots, "learning_curve", lambda *a, **k: None)
    return data


def write_space(tmp_path, space: dict, base: dict | None = None):
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"base": BASE if base is None else base, "space": space}))
    return path


SPACE = {
    "training.lr": {"log_uniform": [1e-4, 1e-1]},
    "training.decay_start": {"uniform": [0.2, 0.4]},
    "model.steps": {"int": [1, 2]},
    "model.aggregation": {"choice": ["sum", "mean"]},
}


# -- draws -----------------------------------------------------------------------------------------
def test_draws_depend_only_on_seed_and_trial_and_follow_their_distributions(tmp_path) -> None:
    space = load_space(str(write_space(tmp_path, SPACE)))
    draws = [sample(space, 7, i) for i in range(2000)]
    assert [sample(space, 7, i) for i in (5, 0, 1999)] == [draws[5], draws[0], draws[1999]]
    assert sample(space, 8, 5) != draws[5]
    lr = np.array([d["training.lr"] for d in draws])
    assert lr.min() >= 1e-4 and lr.max() <= 1e-1
    # log-uniform: half of the draws below the geometric mean 10^-2.5 (a uniform draw: ~0.3%)
    assert abs(np.mean(lr < 10**-2.5) - 0.5) < 0.05
    start = np.array([d["training.decay_start"] for d in draws])
    assert start.min() >= 0.2 and start.max() <= 0.4 and abs(start.mean() - 0.3) < 0.01
    assert {d["model.steps"] for d in draws} == {1, 2}  # both ends of [1, 2]
    assert all(type(d["model.steps"]) is int and type(d["training.lr"]) is float for d in draws)
    assert {d["model.aggregation"] for d in draws} == {"sum", "mean"}


def test_the_paper_space_has_the_papers_ranges() -> None:
    space = load_space("paper")  # Gilmer et al. 2017, Sec. 8 (see REFERENCES.md)
    assert space.space == {
        "training.lr": ("uniform", [1e-5, 5e-4]),
        "training.decay_start": ("uniform", [0.1, 0.9]),
        "training.decay_factor": ("uniform", [0.01, 1.0]),
        "model.steps": ("int", [3, 8]),
        "model.set2set_steps": ("int", [1, 12]),
    }
    specs = [trial_spec(space, {"training": {"epochs": 3}}, 0, i) for i in range(50)]
    assert all(s.model["model"] == "enn_s2s" and s.training.batch_size == 20 for s in specs)
    assert all(1e-5 <= s.training.lr <= 5e-4 and 3 <= s.model["steps"] <= 8 for s in specs)
    assert len({s.training.lr for s in specs}) == 50
    assert {s.training.seed for s in specs} == {0}  # one split for all trials


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"lr": {"uniform": [0, 1]}}, "'lr' is not a setting like 'training.lr'"),
        ({"training.lr": {"normal": [0, 1]}}, "space.training.lr: expected {'uniform'"),
        ({"training.lr": {"uniform": [1, 0]}}, "space.training.lr: uniform needs finite [low,"),
        # inf and NaN bounds (JSON's Infinity, NaN) reached numpy: an OverflowError traceback
        ({"training.lr": {"uniform": [1e-4, math.inf]}}, "uniform needs finite [low, high]"),
        ({"training.lr": {"log_uniform": [math.nan, 1]}}, "log_uniform needs finite [low, high]"),
        ({"training.lr": {"uniform": [-1e308, 1e308]}}, "uniform needs finite [low, high]"),  # high-low: inf
        ({"model.steps": {"int": [1, 1e30]}}, "int bounds beyond 2**63"),
        ({"training.lr": {"log_uniform": [0, 1]}}, "log_uniform needs low > 0"),
        ({"model.steps": {"int": [1.5, 3]}}, "space.model.steps: int needs integer bounds"),
        ({"model.graph": {"choice": []}}, "space.model.graph: choice needs a non-empty list"),
        ({}, "space must map settings"),
    ],
)
def test_bad_spaces_are_one_line_errors_naming_the_setting(tmp_path, space, message) -> None:
    with pytest.raises(DataError) as info:
        load_space(str(write_space(tmp_path, space)))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(tmp_path / "space.json") in str(info.value)


def test_unknown_space_names_list_the_builtin_ones() -> None:
    with pytest.raises(DataError, match="no such file, nor a built-in search space \\(paper\\)"):
        load_space("papr")


def test_a_bad_draw_fails_before_any_trial_is_trained(tmp_path, synthetic) -> None:
    space = load_space(str(write_space(tmp_path, {"training.decay_start": {"uniform": [0.5, 1.5]}})))
    with pytest.raises(DataError, match="training.decay_start: expected a number in \\[0, 1\\)"):
        run_search(space, tmp_path / "out", trials=20, seed=0, echo=lambda _: None, show_progress=False)
    assert not list((tmp_path / "out").glob("trial-*"))


# -- searches --------------------------------------------------------------------------------------
def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def search(space: SearchSpace, out, seed: int, trials: int = 2):
    lines: list[str] = []
    results = run_search(space, out, trials=trials, seed=seed, show_progress=False, echo=lines.append)
    return results, lines


def test_searches_are_reproducible_and_resume_without_retraining(tmp_path, synthetic, monkeypatch) -> None:
    space = load_space(str(write_space(tmp_path, SPACE)))
    first, _ = search(space, tmp_path / "a", seed=0)
    rows = read_csv(tmp_path / "a" / "search.csv")
    # ranked by validation ratio; the ratio is the best epoch's mean over targets of MAE / chem. acc.
    assert [float(r["valid_ratio"]) for r in rows] == sorted(float(r["valid_ratio"]) for r in rows)
    for row in rows:
        folder = tmp_path / "a" / f"trial-{int(row['trial']):03d}"
        history = read_csv(folder / "metrics.csv")
        best = min(history, key=lambda h: float(h["valid_ratio"]))
        by_hand = (float(best["valid_mae_mu"]) / 0.1 + float(best["valid_mae_U0"]) / 0.043) / 2
        assert float(row["valid_ratio"]) == pytest.approx(by_hand, rel=1e-5)
        tests = read_csv(folder / "test_metrics.csv")
        assert float(row["test_ratio"]) == pytest.approx(float(tests[-1]["ratio"]), rel=1e-12)
        stored = json.loads((folder / "run.json").read_text())
        assert stored["training"]["lr"] == float(row["training.lr"])
        assert stored["model"]["steps"] == int(row["model.steps"]) and stored["model"]["dim"] == 16

    # the same seed, interrupted while finishing trial 1, then resumed
    real_evaluate = run_module.evaluate_model

    def interrupted(model, names, dataset, indices, run_dir, **kw):
        if run_dir is not None and run_dir.name == "trial-001":
            raise KeyboardInterrupt
        return real_evaluate(model, names, dataset, indices, run_dir, **kw)

    monkeypatch.setattr(run_module, "evaluate_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        search(space, tmp_path / "b", seed=0)
    monkeypatch.setattr(run_module, "evaluate_model", real_evaluate)
    trained_in, real_train_run = [], search_module.train_run

    def counted(spec, out, **kw):
        trained_in.append(out.name)
        return real_train_run(spec, out, **kw)

    monkeypatch.setattr(search_module, "train_run", counted)
    before = (tmp_path / "b" / "trial-000" / "last.pt").stat().st_mtime_ns
    resumed, lines = search(space, tmp_path / "b", seed=0)
    assert trained_in == ["trial-001"]  # trial 0 finished: not run again
    assert (tmp_path / "b" / "trial-000" / "last.pt").stat().st_mtime_ns == before
    assert len(read_csv(tmp_path / "b" / "trial-001" / "metrics.csv")) == 1  # its epoch was not redone
    assert "trial 1/2 (finished before)" in lines[1]
    assert (tmp_path / "b" / "search.csv").read_text() == (tmp_path / "a" / "search.csv").read_text()
    assert resumed == first

    # more trials keep the earlier ones (another seed draws others: see the test of the draws)
    trained_in.clear()
    search(space, tmp_path / "b", seed=0, trials=3)
    assert trained_in == ["trial-002"]
    with pytest.raises(DataError, match="search.json: this folder holds a search with another space or seed"):
        search(space, tmp_path / "a", seed=1)


def test_run_state_tells_new_finished_and_unfinished_runs_and_refuses_others(tmp_path, synthetic) -> None:
    spec = spec_from_config({**BASE, "targets": ["U0"]})
    out = tmp_path / "run"
    assert run_state(spec, out) == "new"
    run_module.train_run(spec, out, show_progress=False, echo=lambda _: None)
    assert run_state(spec, out) == "finished"
    longer = spec_from_config({**BASE, "targets": ["U0"], "training": {"epochs": 2, "batch_size": 8}})
    assert run_state(longer, out) == "unfinished"  # the training length may grow
    other = spec_from_config({**BASE, "targets": ["U0"], "training": {**BASE["training"], "lr": 0.5}})
    with pytest.raises(DataError, match="training.lr = 0.001, not 0.5; choose another --out"):
        run_state(other, out)
    [error] = validation_errors(out)
    rows = read_csv(out / "metrics.csv")
    assert error.target == "U0" and error.mae == float(rows[0]["valid_mae_U0"])
    assert math.isclose(error.ratio, float(rows[0]["valid_ratio"]), rel_tol=1e-5)
