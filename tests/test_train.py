"""Training: schedule, loader, standardisation, checkpoints, resume, early stopping, metrics."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from mpnn.data.dataset import MoleculeSet, from_arrays
from mpnn.data.qm9 import CHEMICAL_ACCURACY, TARGETS
from mpnn.errors import DataError
from mpnn.models import build_model
from mpnn.train import run as run_module
from mpnn.train.checkpoint import BEST, LAST, load_model, load_tensors
from mpnn.train.data import DataSpec, holdout_sizes, make_split
from mpnn.train.loader import BatchLoader
from mpnn.train.metrics import (
    format_table,
    read_errors_csv,
    target_errors,
    write_errors_csv,
)
from mpnn.train.properties import fit_standardization
from mpnn.train.run import RunSpec, apply_overrides, parse_targets, resume_spec, train_run
from mpnn.train.schedule import lr_factor, progress
from mpnn.train.settings import TrainSettings
from mpnn.train.targets import Properties
from mpnn.train.trainer import fit

ELEMENTS = np.array([1, 6, 7, 8, 9])


def synthetic_set(num: int = 40, seed: int = 0) -> MoleculeSet:
    """``num`` random molecules (3-7 atoms, >= 1 Angstrom apart, chain bonds, 13 features) whose
    13 targets depend on composition and size, so a model can learn them."""
    rng = np.random.default_rng(seed)
    parts = []
    for i in range(num):
        n = int(rng.integers(3, 8))
        z = rng.choice(ELEMENTS, n)
        pos = np.cumsum(rng.normal(size=(n, 3)), axis=0)
        pos = pos / np.linalg.norm(np.diff(pos, axis=0), axis=1).min() * 1.2  # spread apart
        x = np.zeros((n, 13), dtype=np.float32)
        x[np.arange(n), np.searchsorted(ELEMENTS, z)] = 1.0
        x[:, 5] = z
        bonds = np.stack([np.arange(n - 1), np.arange(1, n)], axis=1)
        scale = np.array(CHEMICAL_ACCURACY) * 20
        y = scale * (z.sum() / 10 + np.arange(13) % 3) + rng.normal(scale=0.1, size=13) * scale
        parts.append((i + 1, z, pos, x, bonds, np.zeros(n - 1, dtype=np.int64), y))
    return from_arrays(parts, list(TARGETS), name_format="mol_{}")


SMALL_MODEL = {"model": "enn_s2s", "dim": 16, "steps": 2, "edge_hidden": [8], "set2set_steps": 2}


def small_model(num_targets: int = 1, seed: int = 0):
    torch.manual_seed(seed)
    return build_model({**SMALL_MODEL, "num_targets": num_targets})


# -- schedule -------------------------------------------------------------------------------------
def test_lr_factor_is_constant_then_linear_to_the_final_factor() -> None:
    assert lr_factor(0.0) == 1.0
    assert lr_factor(0.5) == 1.0
    assert lr_factor(0.75) == pytest.approx(1 - 0.95 / 2)
    assert lr_factor(1.0) == pytest.approx(0.05)
    assert lr_factor(7.0) == pytest.approx(0.05)  # clamped past the end
    assert lr_factor(0.9, decay_start=0.8, decay_factor=0.01) == pytest.approx(1 - 0.99 / 2)
    with pytest.raises(ValueError):
        lr_factor(0.5, decay_start=1.0)


def test_progress_counts_steps_or_elapsed_time() -> None:
    assert progress(30, 10, 6, elapsed=999.0, time_budget=None) == pytest.approx(0.5)
    assert progress(30, 10, None, elapsed=45.0, time_budget=180.0) == pytest.approx(0.25)


# -- loader ---------------------------------------------------------------------------------------
def test_loader_shuffles_per_epoch_reproducibly_and_selects_target_columns() -> None:
    data = synthetic_set(20)
    loader = BatchLoader(data, np.arange(10, 20), [7, 4], batch_size=4, shuffle=True, seed=3)
    first = loader.order(0)
    assert sorted(first) == list(range(10, 20))
    assert not np.array_equal(first, loader.order(1))
    assert np.array_equal(first, BatchLoader(data, np.arange(10, 20), [7, 4], 4, shuffle=True,
                                             seed=3).order(0))  # fmt: skip
    batches = list(loader.batches(0))
    assert [b.num_graphs for b in batches] == [4, 4, 2]
    assert batches[0].pos.dtype == torch.float32 and batches[0].x.dtype == torch.float32
    expected = data.y[torch.as_tensor(first[:4])][:, [7, 4]].float()
    assert torch.equal(batches[0].y, expected)


# -- standardisation ------------------------------------------------------------------------------
def test_standardization_uses_the_training_split_only() -> None:
    data = synthetic_set(30)
    data.y[20:] += 1000.0  # valid/test molecules far off: must not move mean or std
    model = small_model(num_targets=2)
    mean, _ = fit_standardization(model, data.y[:20, [0, 7]].numpy())
    assert np.allclose(model.mean.numpy(), data.y[:20, [0, 7]].mean(0).numpy())
    assert np.allclose(model.std.numpy(), data.y[:20, [0, 7]].numpy().std(0), rtol=1e-5)
    assert mean[0] < 500


def test_train_model_standardises_on_its_own_training_indices(tmp_path, monkeypatch) -> None:
    data = synthetic_set(30)
    monkeypatch.setattr(run_module, "load_molecules", lambda *a, **k: data)
    spec = RunSpec(["U0"], model=dict(SMALL_MODEL), training=TrainSettings(epochs=1))
    train_run(spec, tmp_path, show_progress=False, echo=lambda _: None)
    split = load_tensors(tmp_path / "split.pt")
    model, config = load_model(tmp_path)
    train_y = data.y[split["train"], TARGETS.index("U0")]
    all_y = data.y[:, TARGETS.index("U0")]
    assert float(model.mean[0]) == pytest.approx(float(train_y.mean()), rel=1e-6)
    assert config["standardization"]["mean"][0] == pytest.approx(float(train_y.mean()))
    assert float(train_y.mean()) != pytest.approx(float(all_y.mean()), rel=1e-6)


# -- fit: checkpoints, resume, early stopping -----------------------------------------------------
def _loaders(data: MoleculeSet, columns: list[int], seed: int = 0):
    train = BatchLoader(data, np.arange(0, 24), columns, 8, shuffle=True, seed=seed)
    valid = BatchLoader(data, np.arange(24, 32), columns, 8)
    return train, valid


def _fit(out: Path, epochs: int, stop_after: int | None = None, **settings):
    data = synthetic_set(32)
    model = small_model(num_targets=2)
    fit_standardization(model, data.y[:24, [7, 4]].numpy())
    train, valid = _loaders(data, [7, 4])
    targets = [Properties(["U0", "gap"], model.mean, model.std)]
    result = fit(model, targets, train, valid, TrainSettings(epochs=epochs, **settings), out,
                 monitor="valid_ratio", show_progress=False, stop_after=stop_after)  # fmt: skip
    return model, result


def test_resumed_run_equals_an_uninterrupted_one(tmp_path) -> None:
    straight, result = _fit(tmp_path / "a", epochs=4)
    _fit(tmp_path / "b", epochs=4, stop_after=2)
    assert load_tensors(tmp_path / "b" / LAST)["state"]["epoch"] == 2
    resumed, resumed_result = _fit(tmp_path / "b", epochs=4)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert [r["train_loss"] for r in result.history] == [r["train_loss"] for r in resumed_result.history]
    last = load_tensors(tmp_path / "b" / LAST)
    assert last["state"]["epoch"] == 4 and last["state"]["step"] == 4 * 3


def test_checkpoints_load_with_weights_only_and_reproduce_predictions(tmp_path) -> None:
    model, result = _fit(tmp_path, epochs=2)
    best = torch.load(tmp_path / BEST, weights_only=True)
    last = torch.load(tmp_path / LAST, weights_only=True)
    assert set(last) == {"model", "optimizer", "torch_rng", "state"}
    rebuilt = small_model(num_targets=2, seed=99)
    rebuilt.load_state_dict(last["model"])
    batch = next(_loaders(synthetic_set(32), [7, 4])[1].batches(0))
    assert torch.equal(rebuilt(batch), model(batch))
    rebuilt.load_state_dict(best)
    assert torch.equal(rebuilt.mean, model.mean)
    assert result.best_epoch in (1, 2)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / BEST).stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_early_stopping_stops_after_patience_epochs_without_improvement(tmp_path) -> None:
    # a learning rate of 1e-12 changes nothing: epoch 1 is the best and never beaten
    _, result = _fit(tmp_path, epochs=50, lr=1e-12, patience=2)
    assert result.stop_reason == "early stopping"
    assert len(result.history) == 3 and result.best_epoch == 1


def test_time_budget_ends_training_and_the_schedule_follows_elapsed_time(tmp_path) -> None:
    _, result = _fit(tmp_path, epochs=None, time_budget=0.5, decay_start=0.0)
    assert result.stop_reason == "time budget"
    assert result.history[-1]["elapsed_s"] >= 0.5
    assert result.history[-1]["lr"] < 1e-3  # decayed with elapsed time


# -- metrics --------------------------------------------------------------------------------------
def test_target_errors_table_and_csv(tmp_path) -> None:
    true = np.array([[1.0, 0.0], [2.0, 0.0]])
    predicted = np.array([[1.1, 0.043], [2.1, -0.043]])
    errors = target_errors(["mu", "U0"], predicted, true)
    assert errors[0].mae == pytest.approx(0.1) and errors[0].ratio == pytest.approx(1.0)
    assert errors[1].unit == "eV" and errors[1].ratio == pytest.approx(1.0)
    table = format_table(errors).splitlines()
    assert table[0].split() == ["target", "unit", "MAE", "chem.", "acc.", "ratio"]
    assert table[2].split() == ["mu", "D", "0.1", "0.1", "1.00"]
    assert table[-1].split() == ["mean", "1.00"]
    assert len({len(line) for line in table if not line.startswith("-")}) == 1  # aligned
    write_errors_csv(errors, tmp_path / "t.csv")
    assert read_errors_csv(tmp_path / "t.csv") == errors
    rows = list(csv.reader(open(tmp_path / "t.csv")))
    assert rows[0] == ["target", "unit", "mae", "chemical_accuracy", "ratio"]
    assert rows[-1][0] == "mean"


def test_train_run_writes_metrics_csv_plots_and_test_table(tmp_path, monkeypatch) -> None:
    data = synthetic_set(40)
    monkeypatch.setattr(run_module, "load_molecules", lambda *a, **k: data)
    spec = RunSpec(["mu", "U0"], joint=False, model=dict(SMALL_MODEL),
                   training=TrainSettings(epochs=2))  # fmt: skip
    errors = train_run(spec, tmp_path, show_progress=False, echo=lambda _: None)
    assert [e.target for e in errors] == ["mu", "U0"]
    for target in ("mu", "U0"):
        folder = tmp_path / target
        rows = list(csv.DictReader(open(folder / "metrics.csv")))
        assert [int(r["epoch"]) for r in rows] == [1, 2]
        assert set(rows[0]) == {"epoch", "elapsed_s", "lr", "train_loss", f"valid_mae_{target}",
                                "valid_ratio"}  # fmt: skip
        ratio = float(rows[0][f"valid_mae_{target}"]) / CHEMICAL_ACCURACY[TARGETS.index(target)]
        assert float(rows[0]["valid_ratio"]) == pytest.approx(ratio, rel=1e-4)
        assert (folder / "learning_curve.png").stat().st_size > 1000
        assert (folder / "parity.png").read_bytes()[:4] == b"\x89PNG"
    combined = read_errors_csv(tmp_path / "test_metrics.csv")
    assert [e.target for e in combined] == ["mu", "U0"]
    assert all(math.isfinite(e.mae) and e.mae > 0 for e in combined)


# -- run specification ----------------------------------------------------------------------------
def test_parse_targets() -> None:
    assert parse_targets("all") == list(TARGETS)
    assert parse_targets("gap,u0") == ["gap", "U0"]  # TARGETS order, case-insensitive
    with pytest.raises(DataError, match="unknown target nope"):
        parse_targets("U0,nope")


def test_resume_allows_a_new_length_but_not_a_new_model(tmp_path) -> None:
    spec = RunSpec(["U0"], training=TrainSettings(epochs=3))
    (tmp_path / "run.json").write_text(__import__("json").dumps(spec.to_json()))
    longer = resume_spec(tmp_path, {"training.epochs": 6})
    assert longer is not None and longer.training.epochs == 6
    with pytest.raises(DataError, match="model.dim"):
        resume_spec(tmp_path, {"model.dim": 128})
    assert resume_spec(tmp_path / "elsewhere", {}) is None
    fresh = apply_overrides(RunSpec(["U0"]).to_json(), {"training.lr": 5e-4})
    assert fresh["training"]["lr"] == 5e-4


def test_holdout_sizes_follow_the_paper_capped_at_ten_percent() -> None:
    assert holdout_sizes(DataSpec(), 4000) == (400, 400)
    assert holdout_sizes(DataSpec(source="qm9.tar.xz"), 130831) == (10000, 10000)
    assert holdout_sizes(DataSpec(source="qm9.tar.xz"), 5000) == (500, 500)
    split = make_split(DataSpec(subset=50), 1000, seed=1)
    assert sum(len(v) for v in split.values()) == 50
    assert len(np.intersect1d(split["train"], split["test"])) == 0
    assert split["valid"].max() < 1000
