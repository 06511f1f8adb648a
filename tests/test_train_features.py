"""The training features of the one loop: the moving average of the weights (EMA), schedules of
the loss weights, TensorBoard logging and mixed precision.

References come from outside the code under test: the parameters after every optimiser step,
recorded by a global optimizer hook and averaged here by the closed form of the EMA; the weight
of each loss term read off the gradient that reaches it (d loss / d term = its weight); the
piecewise-linear formula of the weights written out here; predictions of the averaged weights
scored here against the data; ``metrics.csv`` and ``last.pt`` read back against TensorBoard's own
event reader. Exact comparisons run in float64; mixed precision is only checked to run and give
finite losses (there is no GPU here: bf16/fp16 autocast on the CPU).
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from test_train import small_model, synthetic_set
from test_train_potential import SMALL_OPTIONS, clusters, prepared
from torch.optim.optimizer import register_optimizer_step_post_hook

from mpnn.cli import main_train_potential
from mpnn.data.qm9 import CHEMICAL_ACCURACY, TARGETS
from mpnn.errors import DataError, MpnnError
from mpnn.train.checkpoint import BEST, LAST, load_into
from mpnn.train.loader import BatchLoader
from mpnn.train.potential_data import StructureLoader
from mpnn.train.potential_run import fit_structures
from mpnn.train.properties import fit_standardization, predict
from mpnn.train.run import RunSpec, resume_spec
from mpnn.train.schedule import loss_weight
from mpnn.train.settings import TrainSettings, potential_settings
from mpnn.train.targets import Energy, Forces, Properties
from mpnn.train.trainer import fit

pytestmark = pytest.mark.usefixtures("one_thread")

COLUMNS = [7, 4]  # U0, gap
NAMES = ["U0", "gap"]


def property_fit(out: Path, epochs: int, stop_after: int | None = None, dtype=torch.float64, **settings):
    """enn-s2s on 2 targets of 32 synthetic molecules: 24 train (3 steps of 8 per epoch), 8 valid."""
    data = synthetic_set(32)
    model = small_model(num_targets=2).to(dtype)
    fit_standardization(model, data.y[:24, COLUMNS].numpy())
    train = BatchLoader(data, np.arange(24), COLUMNS, 8, shuffle=True, seed=0, dtype=dtype)
    valid = BatchLoader(data, np.arange(24, 32), COLUMNS, 8, dtype=dtype)
    settings = TrainSettings(epochs=epochs, lr=3e-3, patience=None, **settings)
    result = fit(model, [Properties(NAMES, model.mean, model.std)], train, valid, settings, out,
                 monitor="valid_ratio", show_progress=False, stop_after=stop_after)  # fmt: skip
    return model, result, data


@contextmanager
def recorded_steps() -> Iterator[list[list[torch.Tensor]]]:
    """The parameters after every optimiser step that had gradients (copies, in the optimizer's
    order, which is the model's). Steps on all-zero gradients (the check of a loaded optimizer
    state on resume, whose effect is undone) are not training steps and are left out."""
    steps: list[list[torch.Tensor]] = []

    def hook(optimizer, args, kwargs) -> None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if any(p.grad is not None and bool(p.grad.any()) for p in params):
            steps.append([p.detach().clone() for p in params])

    handle = register_optimizer_step_post_hook(hook)
    try:
        yield steps
    finally:
        handle.remove()


def closed_form(steps: list[list[torch.Tensor]], decay: float) -> list[torch.Tensor]:
    """The EMA after k steps: d^(k-1) theta_1 + (1 - d) sum_{j=2..k} d^(k-j) theta_j."""
    k = len(steps)
    weights = [decay ** (k - 1)] + [(1 - decay) * decay ** (k - j) for j in range(2, k + 1)]
    assert math.fsum(weights) == pytest.approx(1.0, abs=1e-15)
    return [sum(w * step[i] for w, step in zip(weights, steps, strict=True)) for i in range(len(steps[0]))]


@pytest.fixture
def emt_files(tmp_path: Path) -> dict[str, Path]:
    """30 EMT-labelled Cu/Al clusters (24 to train on, 6 to validate), as in test_train_potential."""
    path = tmp_path / "train.xyz"
    ase.io.write(path, clusters(30, 0), format="extxyz")
    return {"train": path}


def parameter_names(model: torch.nn.Module) -> list[str]:
    return [name for name, _ in model.named_parameters()]


# -- exponential moving average --------------------------------------------------------------------
def test_the_average_is_the_decay_weighted_mean_of_the_steps_and_is_what_is_validated_and_saved(
    tmp_path,
) -> None:
    decay = 0.8
    with recorded_steps() as steps:
        model, result, data = property_fit(tmp_path, epochs=2, ema_decay=decay)
    assert len(steps) == 6  # 2 epochs x 3 steps
    names = parameter_names(model)
    saved = torch.load(tmp_path / LAST, weights_only=True)["ema"]
    assert int(saved["n_averaged"]) == 6
    expected = closed_form(steps, decay)
    for name, value in zip(names, expected, strict=True):
        assert saved[f"module.{name}"].dtype == torch.float64
        torch.testing.assert_close(saved[f"module.{name}"], value, rtol=0, atol=1e-13, msg=name)
    assert max(float((v - s).abs().max()) for v, s in zip(expected, steps[-1], strict=True)) > 1e-4

    # best.pt holds the average after the best epoch's last step
    best = torch.load(tmp_path / BEST, weights_only=True)
    at_best = closed_form(steps[: 3 * result.best_epoch], decay)
    for name, value in zip(names, at_best, strict=True):
        torch.testing.assert_close(best[name], value, rtol=0, atol=1e-13, msg=name)
    assert torch.equal(best["mean"], model.mean) and torch.equal(best["std"], model.std)

    # the validation score of the last epoch is the averaged weights' mean MAE / chemical accuracy
    averaged = small_model(num_targets=2, seed=5).double()
    averaged.load_state_dict({**model.state_dict(), **dict(zip(names, expected, strict=True))})
    valid = BatchLoader(data, np.arange(24, 32), COLUMNS, 8, dtype=torch.float64)
    mae = np.abs(predict(averaged, valid) - data.y[24:32][:, COLUMNS].numpy()).mean(0)
    accuracy = np.array([CHEMICAL_ACCURACY[TARGETS.index(n)] for n in NAMES])
    assert result.history[-1]["valid_ratio"] == pytest.approx(float((mae / accuracy).mean()), rel=1e-9)


def test_a_resumed_average_equals_a_straight_one_bit_for_bit(tmp_path) -> None:
    _, straight, _ = property_fit(tmp_path / "a", epochs=4, ema_decay=0.8)
    property_fit(tmp_path / "b", epochs=4, stop_after=2, ema_decay=0.8)
    _, resumed, _ = property_fit(tmp_path / "b", epochs=4, ema_decay=0.8)
    a, b = (torch.load(tmp_path / run / LAST, weights_only=True) for run in "ab")
    assert set(a["ema"]) == set(b["ema"]) and int(a["ema"]["n_averaged"]) == 12
    for key in ("ema", "model"):
        for name, value in a[key].items():
            assert torch.equal(value, b[key][name]), (key, name)
    best_a, best_b = (torch.load(tmp_path / run / BEST, weights_only=True) for run in "ab")
    assert all(torch.equal(value, best_b[name]) for name, value in best_a.items())
    assert [r["valid_ratio"] for r in straight.history] == [r["valid_ratio"] for r in resumed.history]


def test_an_average_switched_on_at_resume_starts_from_the_next_step(tmp_path) -> None:
    """A run resumed through the library with ema_decay starts the average as a new run does: the
    weights after its first step, then the decay (the command line refuses the change)."""
    property_fit(tmp_path, epochs=2)
    assert "ema" not in torch.load(tmp_path / LAST, weights_only=True)
    with recorded_steps() as steps:
        model, _, _ = property_fit(tmp_path, epochs=4, ema_decay=0.8)
    assert len(steps) == 6
    saved = torch.load(tmp_path / LAST, weights_only=True)["ema"]
    assert int(saved["n_averaged"]) == 6
    for name, value in zip(parameter_names(model), closed_form(steps, 0.8), strict=True):
        torch.testing.assert_close(saved[f"module.{name}"], value, rtol=0, atol=1e-13, msg=name)


def test_the_command_line_refuses_to_change_the_average_of_a_run(tmp_path) -> None:
    spec = RunSpec(["U0"], training=TrainSettings(epochs=3))
    (tmp_path / "run.json").write_text(json.dumps(spec.to_json()))
    with pytest.raises(DataError, match=r"training.ema_decay = None, not 0.99") as info:
        resume_spec(tmp_path, {"training.ema_decay": 0.99})
    assert "\n" not in str(info.value)
    assert resume_spec(tmp_path, {"training.tensorboard": True}).training.tensorboard is True
    # a setting stored by omission (its default) may be given again
    assert resume_spec(tmp_path, {"training.weight_start": 0.0, "training.amp": None}) is not None


def test_the_average_of_a_potential_keeps_its_integer_tables(emt_files, tmp_path) -> None:
    """Averaging every buffer (AveragedModel's use_buffers=True) turned the symmetry functions'
    integer index tables into other integers at decays such as 0.9 (0.9 x 5 + 0.1 x 5 < 5)."""
    model, train, valid = prepared(emt_files)
    structure = {k: v.clone() for k, v in model.state_dict().items() if not v.is_floating_point()}
    settings = potential_settings(epochs=2, batch_size=4, lr=3e-3, force_weight=1.0, ema_decay=0.9)
    fit_structures(model, train, valid, settings, tmp_path, show_progress=False)
    best = torch.load(tmp_path / BEST, weights_only=True)
    for name, value in structure.items():
        assert torch.equal(best[name], value), name
    load_into(prepared(emt_files)[0], best, tmp_path / BEST)  # the structure check passes


# -- loss-weight schedules ---------------------------------------------------------------------------
def test_loss_weight_is_constant_linear_or_a_step() -> None:
    assert loss_weight(0.3, 2.0, None, 0.5, 0.5) == 2.0
    assert [loss_weight(p, 1.0, 5.0, 0.25, 0.75) for p in (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)] == [
        1.0, 1.0, 3.0, 5.0, 5.0, 5.0,
    ]  # fmt: skip
    assert [loss_weight(p, 1.0, 1000.0, 0.75, 0.75) for p in (0.7499, 0.75, 0.9)] == [1.0, 1000.0, 1000.0]
    assert loss_weight(0.5, 10.0, 0.0) == pytest.approx(5.0)


def recording(kind: type, log: list[float]) -> type:
    """``kind`` (Energy, Forces) whose loss term records the gradient that reaches it: the term's
    weight in the loss of a step (one process, a whole batch)."""

    class Recording(kind):
        def loss(self, predicted, batch, totals):
            term = super().loss(predicted, batch, totals)
            term.register_hook(lambda grad: log.append(float(grad)))
            return term

    return Recording


def expected_weight(p: float, w0: float, w1: float | None, start: float, end: float) -> float:
    if w1 is None or p < start:
        return w0
    return w1 if p >= end else w0 + (w1 - w0) * (p - start) / (end - start)


@pytest.mark.parametrize(
    "schedule",
    [
        # linear between 25 % and 75 % of training; the force weight starts at 0 (not trained on)
        {"energy": (1.0, 5.0), "forces": (0.0, 2.0), "start": 0.25, "end": 0.75},
        # MACE's second stage: the energy weight 1 -> 1000 at 50 %, the force weight constant
        {"energy": (1.0, 1000.0), "forces": (2.0, None), "start": 0.5, "end": 0.5},
    ],
    ids=["linear", "step"],
)
def test_each_step_uses_the_scheduled_weights_and_valid_loss_the_final_ones(
    emt_files, tmp_path, schedule
) -> None:
    model, train, valid = prepared(emt_files)
    (e0, e1), (f0, f1) = schedule["energy"], schedule["forces"]
    settings = potential_settings(
        epochs=2, batch_size=4, lr=1e-3, energy_weight=e0, energy_weight_final=e1, force_weight=f0,
        force_weight_final=f1, weight_start=schedule["start"], weight_end=schedule["end"], patience=None,
    )  # fmt: skip
    logs: dict[str, list[float]] = {"energy": [], "forces": []}
    targets = [recording(Energy, logs["energy"])(e0, e1), recording(Forces, logs["forces"])(f0, f1)]
    loader = StructureLoader(train, 4, shuffle=True, seed=0)
    result = fit(model, targets, loader, StructureLoader(valid, 256), settings, tmp_path,
                 monitor="valid_loss", show_progress=False)  # fmt: skip
    steps = 2 * len(loader)
    assert steps == 12  # 24 training structures, batches of 4, 2 epochs
    for key, (w0, w1) in (("energy", (e0, e1)), ("forces", (f0, f1))):
        wanted = [
            expected_weight(k / steps, w0, w1, schedule["start"], schedule["end"]) for k in range(steps)
        ]
        assert logs[key] == pytest.approx([w for w in wanted if w > 0], rel=1e-12, abs=0), key
    final_e, final_f = e1, f0 if f1 is None else f1
    for row in result.history:
        mse_e, mse_f = (row["valid_energy_rmse"] / 1e3) ** 2, (row["valid_force_rmse"] / 1e3) ** 2
        assert row["valid_loss"] == pytest.approx(final_e * mse_e + final_f * mse_f, rel=1e-9)


# -- TensorBoard ---------------------------------------------------------------------------------------
def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_scalars_equal_metrics_csv_after_a_resume(tmp_path) -> None:
    pytest.importorskip("tensorboard")
    property_fit(tmp_path, epochs=2, stop_after=1, tensorboard=True)
    _, result, _ = property_fit(tmp_path, epochs=2, tensorboard=True)  # logs epoch 1 again, then 2
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    scalars = tensorboard_scalars(tmp_path / "tensorboard")
    assert set(scalars) == set(rows[0]) - {"epoch"} == {"elapsed_s", "lr", "train_loss", "valid_mae_U0",
                                                         "valid_mae_gap", "valid_ratio"}  # fmt: skip
    history = torch.load(tmp_path / LAST, weights_only=True)["state"]["history"]
    for tag, points in scalars.items():
        assert [step for step, _ in points] == [1, 2], tag
        for (_, value), row, saved in zip(points, rows, history, strict=True):
            assert value == pytest.approx(float(row[tag]), rel=1e-5), tag  # csv: 6 digits
            assert value == float(np.float32(saved[tag])), tag  # event emt_files: float32


def test_tensorboard_without_its_package_is_one_line_naming_pip(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    with pytest.raises(MpnnError, match="pip install tensorboard") as info:
        property_fit(tmp_path / "run", epochs=1, tensorboard=True)
    assert "\n" not in str(info.value) and not (tmp_path / "run").exists()
    out = tmp_path / "potential"
    assert main_train_potential([str(tmp_path / "none.xyz"), "--tensorboard", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install tensorboard" in err and not out.exists()


# -- mixed precision -----------------------------------------------------------------------------------
def test_bf16_autocast_runs_the_linear_layers_in_bfloat16_with_finite_losses(tmp_path, monkeypatch) -> None:
    seen: set[torch.dtype] = set()
    linear = torch.nn.Linear.forward

    def forward(self, x):  # the output dtype of every linear layer
        out = linear(self, x)
        seen.add(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Linear, "forward", forward)
    with pytest.warns(RuntimeWarning, match="meant for CUDA"):
        _, result, _ = property_fit(tmp_path, epochs=2, dtype=torch.float32, amp="bf16")
    assert torch.bfloat16 in seen  # autocast was on (validation runs in float32)
    assert all(math.isfinite(r["train_loss"]) and math.isfinite(r["valid_ratio"]) for r in result.history)
    assert torch.load(tmp_path / LAST, weights_only=True)["model"]["mean"].dtype == torch.float32


def test_fp16_scales_the_loss_and_keeps_the_scale_in_last_pt(tmp_path) -> None:
    with pytest.warns(RuntimeWarning):
        _, result, _ = property_fit(tmp_path, epochs=1, dtype=torch.float32, amp="fp16")
        assert math.isfinite(result.history[0]["train_loss"])
        scale = torch.load(tmp_path / LAST, weights_only=True)["scaler"]["scale"]
        assert scale > 1  # GradScaler's initial 2**16, halved on overflow, doubled after 2000 steps
        _, resumed, _ = property_fit(tmp_path, epochs=2, dtype=torch.float32, amp="fp16")
    assert len(resumed.history) == 2 and math.isfinite(resumed.history[1]["train_loss"])


def test_a_potential_trains_on_forces_under_bf16(emt_files, tmp_path) -> None:
    model, train, valid = prepared(emt_files)
    settings = potential_settings(epochs=1, batch_size=4, force_weight=1.0, float32=True, amp="bf16")
    with pytest.warns(RuntimeWarning, match="meant for CUDA"):
        history, _, _ = fit_structures(model, train, valid, settings, tmp_path, show_progress=False)
    row = history[0]
    assert all(math.isfinite(row[k]) for k in ("train_loss", "valid_loss", "valid_force_mae"))


def test_mixed_precision_refuses_float64_weights(emt_files, tmp_path) -> None:
    with pytest.raises(DataError, match="training.amp: mixed precision needs float32 weights, not float64"):
        property_fit(tmp_path, epochs=1, amp="bf16")


# -- the command line ------------------------------------------------------------------------------------
def test_train_potential_options_reach_the_run_and_a_resume_keeps_them(emt_files, tmp_path, capsys) -> None:
    pytest.importorskip("tensorboard")
    out = tmp_path / "run"
    base = [str(emt_files["train"]), "--out", str(out), *SMALL_OPTIONS, "--quiet"]
    extras = ["--ema", "0.9", "--energy-weight-final", "100", "--weight-start", "0.5", "--weight-end", "0.5"]
    assert main_train_potential([*base, "--epochs", "2", *extras, "--tensorboard"]) == 0
    training = json.loads((out / "config.json").read_text())["run"]["training"]
    assert training["ema_decay"] == 0.9 and training["energy_weight_final"] == 100
    assert (training["weight_start"], training["weight_end"], training["tensorboard"]) == (0.5, 0.5, True)
    assert "force_weight_final" not in training and "amp" not in training  # unset: not written
    assert "ema" in torch.load(out / LAST, weights_only=True)
    assert [step for step, _ in tensorboard_scalars(out / "tensorboard")["valid_loss"]] == [1, 2]
    capsys.readouterr()
    assert main_train_potential([*base, "--epochs", "3", "--ema", "0.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "training.ema_decay = 0.9, not 0.5" in err
    assert main_train_potential([*base, "--epochs", "3"]) == 0  # the stored settings go on
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert [step for step, _ in tensorboard_scalars(out / "tensorboard")["valid_loss"]] == [1, 2, 3]


def test_train_options_reach_the_run(tmp_path, monkeypatch, capsys) -> None:
    pytest.importorskip("tensorboard")
    from mpnn import cli
    from mpnn.train import run as run_module

    data = synthetic_set(40)
    monkeypatch.setattr(run_module, "load_molecules", lambda *a, **k: data)
    args = ["train", "--target", "U0", "--epochs", "2", "--dim", "16", "--steps", "1", "--quiet"]
    extras = ["--ema", "0.9", "--tensorboard", "--amp", "bf16", "--out", str(tmp_path)]
    assert cli.main([*args, *extras]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("mpnn: warning:")]
    assert len(warnings) == 1 and "training.amp bf16 on a CPU" in warnings[0]
    training = json.loads((tmp_path / "config.json").read_text())["training"]
    assert (training["ema_decay"], training["tensorboard"], training["amp"]) == (0.9, True, "bf16")
    assert int(torch.load(tmp_path / LAST, weights_only=True)["ema"]["n_averaged"]) > 0
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    ratios = [value for _, value in tensorboard_scalars(tmp_path / "tensorboard")["valid_ratio"]]
    assert ratios == pytest.approx([float(r["valid_ratio"]) for r in rows], rel=1e-5)
