r"""Training an HDNNP on energies and forces from precomputed symmetry functions.

Loss of a batch of B structures with :math:`n_m` atoms (eV units, per-atom energies):

.. math::
    L = w_E \frac1B \sum_m \Big(\frac{\hat E_m - E_m}{n_m}\Big)^2
      + w_F \frac{1}{3N} \sum_{i,\alpha} (\hat F_{i\alpha} - F_{i\alpha})^2

minimised by Adam; the learning rate follows ``plateau`` (times ``lr_factor`` after
``lr_patience`` epochs without a better validation loss, down to ``min_lr``) or ``linear``
(:func:`mpnn.train.schedule.lr_factor`).  After every epoch the validation loss decides
``best.pt`` and early stopping; ``last.pt`` (weights, optimizer, RNG, counters, history) lets an
interrupted run continue exactly (:func:`fit_potential` resumes from it).  Epoch order is drawn
from ``(seed, epoch)``.  Errors are reported in meV/atom (energy) and meV/Angstrom (force components).
"""

from __future__ import annotations

import csv
import io
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from mpnn.errors import DataError
from mpnn.files import remove_stale_temporaries, write_text
from mpnn.models.hdnnp import PotentialModel
from mpnn.train.checkpoint import BEST, LAST, SavedCounters, load_into, load_last, restore_last, save_tensors
from mpnn.train.potential_data import Descriptors, energies_and_forces
from mpnn.train.schedule import check_finite_loss, lr_factor, progress
from mpnn.train.validate import BOOL, Rule, check_fields, choice, integer, learning_rate, number, seed_rule

METRICS = "metrics.csv"
SCHEDULES = ("plateau", "linear")
#: Seconds between two writes of last.pt and metrics.csv (also after a new best.pt, and at the end).
SAVE_EVERY = 15.0


@dataclass
class PotentialSettings:
    """How a potential is trained; stored in ``config.json`` under ``"training"``.

    Attributes:
        epochs: number of epochs, or None with a ``time_budget`` (seconds).
        batch_size: structures per step.
        lr: initial learning rate of Adam.
        schedule: ``plateau`` or ``linear``.
        lr_factor, lr_patience, min_lr: the plateau schedule.
        decay_start, decay_factor: the linear schedule (constant, then down to lr * decay_factor).
        energy_weight, force_weight: w_E and w_F of the loss.
        patience: stop after this many epochs without a better validation loss; None: never.
        clip: maximum gradient norm; None: no clipping.
        seed: seed of the weights, the split and the epoch order.
        float32: train in float32 (the saved model is float64).
    """

    epochs: int | None = None
    time_budget: float | None = None
    batch_size: int = 16
    lr: float = 1e-3
    schedule: str = "linear"
    lr_factor: float = 0.5
    lr_patience: int = 25
    min_lr: float = 1e-6
    decay_start: float = 0.1
    decay_factor: float = 0.01
    energy_weight: float = 1.0
    force_weight: float = 10.0
    patience: int | None = 200
    clip: float | None = None
    seed: int = 0
    float32: bool = False

    #: The type and range of each field (:mod:`mpnn.train.validate`).
    RULES: ClassVar[dict[str, Rule]] = {
        "epochs": integer(1, optional=True),
        "time_budget": number(0, low_open=True, optional=True),
        "batch_size": integer(1),
        "lr": learning_rate(),
        "schedule": choice(SCHEDULES),
        "lr_factor": number(0, 1, low_open=True, high_open=True),
        "lr_patience": integer(1),
        "min_lr": learning_rate(),
        "decay_start": number(0, 1, high_open=True),
        "decay_factor": number(0, 1, low_open=True),
        "energy_weight": number(0),
        "force_weight": number(0),
        "patience": integer(0, optional=True),
        "clip": number(0, optional=True),
        "seed": seed_rule(),
        "float32": BOOL,
    }

    def __post_init__(self) -> None:
        check_fields(self, self.RULES, "training.")
        if self.epochs is None and self.time_budget is None:
            raise DataError("training: give epochs or time_budget")
        if self.energy_weight + self.force_weight == 0:
            raise DataError("training: energy and force weights must not both be 0")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32 if self.float32 else torch.float64


@dataclass(frozen=True)
class Errors:
    """Errors of one set: energy per atom (meV/atom) and force components (meV/Angstrom)."""

    split: str
    structures: int
    atoms: int
    energy_mae: float
    energy_rmse: float
    force_mae: float
    force_rmse: float


def errors(
    split: str, energy: Tensor, true_energy: Tensor, atoms: Tensor, forces: Tensor | None, true_forces: Tensor
) -> Errors:
    """:class:`Errors` from predicted and true energies (M,) eV, atom counts (M,), forces (N, 3) eV/A."""
    de = ((energy.double() - true_energy.double()) / atoms.double()).abs() * 1e3
    df = (
        (forces.double() - true_forces.double()).abs() * 1e3
        if forces is not None
        else torch.full((1,), math.nan)
    )
    return Errors(
        split,
        int(energy.numel()),
        int(atoms.sum()),
        float(de.mean()),
        float(de.square().mean().sqrt()),
        float(df.mean()),
        float(df.square().mean().sqrt()),
    )


COLUMNS = ("split", "structures", "atoms", "energy_mae", "energy_rmse", "force_mae", "force_rmse")


def errors_csv(rows: Sequence[Errors]) -> str:
    """``test_metrics.csv``: one row per set; energies meV/atom, forces meV/Angstrom."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        writer.writerow([r.split, r.structures, r.atoms] + [f"{getattr(r, c):.6g}" for c in COLUMNS[3:]])
    return out.getvalue()


def errors_table(rows: Sequence[Errors], title: str | None = None) -> str:
    """An aligned text table of :class:`Errors`."""
    header = ("set", "structures", "E MAE", "E RMSE", "F MAE", "F RMSE")
    body = [(r.split, str(r.structures), *(f"{getattr(r, c):.3f}" for c in COLUMNS[3:])) for r in rows]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *body]
    ]
    units = "energies meV/atom, forces meV/Angstrom"
    return "\n".join(([title] if title else []) + [lines[0], "-" * len(lines[0]), *lines[1:], units]) + "\n"


@torch.no_grad()
def predict(
    model: PotentialModel, desc: Descriptors, *, forces: bool = True, batch_size: int = 256
) -> tuple[Tensor, Tensor | None]:
    """Energies (M,) without the offsets and forces (N, 3) (or None) of scaled descriptors."""
    energy, force = [], []
    for start in range(0, len(desc), batch_size):
        part = desc.select(torch.arange(start, min(start + batch_size, len(desc))))
        e, f = energies_and_forces(model.update, part, forces=forces)
        energy.append(e.detach())
        if f is not None:
            force.append(f.detach())
    return torch.cat(energy), torch.cat(force) if forces else None


def loss_terms(e: Tensor, f: Tensor | None, desc: Descriptors, settings: PotentialSettings) -> Tensor:
    """The weighted loss of predicted energies (M,) and forces (N, 3) against ``desc``'s references."""
    atoms = desc.atoms_per_structure().to(e.dtype)
    loss = settings.energy_weight * ((e - desc.energy) / atoms).square().mean()
    if f is not None and settings.force_weight > 0:
        loss = loss + settings.force_weight * (f - desc.forces).square().mean()
    return loss


class _State(SavedCounters):
    """The counters of a run, saved in ``last.pt`` with model and optimizer."""

    def __init__(self, lr: float) -> None:
        self._history_columns = HISTORY_COLUMNS  # what history_csv reads from each row
        self.epoch, self.step, self.elapsed, self.lr = 0, 0, 0.0, lr
        self.best_loss, self.best_epoch, self.bad_epochs, self.plateau_epochs = math.inf, 0, 0, 0
        self.history: list[dict[str, float]] = []


def float64_state(model: PotentialModel) -> dict[str, Tensor]:
    """The model's state dict with floating tensors in float64 (what ``best.pt`` holds)."""
    return {k: v.double() if v.is_floating_point() else v for k, v in model.state_dict().items()}


def _stop_reason(state: _State, settings: PotentialSettings) -> str | None:
    if settings.patience and state.bad_epochs >= settings.patience:
        return "early stopping"
    if settings.schedule == "plateau" and state.lr < settings.min_lr * (1 + 1e-9):
        if state.plateau_epochs >= settings.lr_patience:
            return "learning rate at its minimum"
    if settings.time_budget is not None and state.elapsed >= settings.time_budget:
        return "time budget"
    if settings.epochs is not None and state.epoch >= settings.epochs:
        return "epochs"
    return None


def fit_potential(
    model: PotentialModel,
    train: Descriptors,
    valid: Descriptors,
    settings: PotentialSettings,
    out: str | Path,
    *,
    show_progress: bool = True,
    stop_after: int | None = None,
) -> tuple[list[dict[str, float]], int, str]:
    """Train ``model``'s networks on scaled descriptors (energies less offsets); resume from ``out/last.pt``.

    Returns the history (the rows of ``metrics.csv``), the best epoch and why training stopped.
    ``stop_after`` returns after that many epochs of this call (as if interrupted).  On return the
    model holds the weights of the last epoch, in float64.
    """
    out = Path(out)
    dtype = settings.dtype
    model.update.networks.to(dtype)
    train, valid = train.to(dtype), valid.to(dtype)
    optimizer = torch.optim.Adam(model.update.networks.parameters(), lr=settings.lr)
    state = _State(settings.lr)
    remove_stale_temporaries(out)  # left by a killed run
    if (out / LAST).is_file():
        saved = load_last(out / LAST)
        load_into(model, saved["model"], out / LAST)
        model.update.networks.to(dtype)
        restore_last(saved, optimizer, state, out / LAST)
    bar = tqdm(
        total=settings.epochs,
        initial=state.epoch,
        disable=not show_progress,
        dynamic_ncols=True,
        desc="epochs",
        unit="ep",
    )
    done, saved_at = 0, time.perf_counter()
    try:
        while (reason := _stop_reason(state, settings)) is None:
            if stop_after is not None and done >= stop_after:
                reason = "interrupted"
                break
            _epoch(model, optimizer, train, valid, settings, state)
            row = state.history[-1]
            improved = row["valid_loss"] < state.best_loss
            if improved:
                state.best_loss, state.best_epoch, state.bad_epochs = row["valid_loss"], state.epoch, 0
                save_tensors(float64_state(model), out / BEST)
            else:
                state.bad_epochs += 1
            done += 1
            if improved or time.perf_counter() - saved_at > SAVE_EVERY:  # last.pt never older than best.pt
                _save(model, optimizer, state, out)
                saved_at = time.perf_counter()
            bar.update(1)
            bar.set_postfix_str(
                f"lr {row['lr']:.1e} valid E {row['valid_energy_mae']:.2f} meV/atom "
                f"F {row['valid_force_mae']:.1f} meV/A",
                refresh=False,
            )
    finally:
        bar.close()
    _save(model, optimizer, state, out)
    model.update.networks.double()
    return state.history, state.best_epoch, reason


def _save(model: PotentialModel, optimizer: torch.optim.Optimizer, state: _State, out: Path) -> None:
    save_tensors(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "state": state.to_dict(),
        },
        out / LAST,
    )
    write_text(history_csv(state.history), out / METRICS)


def _epoch(
    model: PotentialModel,
    optimizer: torch.optim.Optimizer,
    train: Descriptors,
    valid: Descriptors,
    settings: PotentialSettings,
    state: _State,
) -> None:
    """One epoch of Adam steps, then the validation errors; appends a row to the history."""
    start = time.perf_counter()
    order = np.random.default_rng([settings.seed, state.epoch]).permutation(len(train))
    steps = -(-len(train) // settings.batch_size)
    sums = {"loss": 0.0, "e_abs": 0.0, "e_sq": 0.0, "f_abs": 0.0, "f_sq": 0.0}
    structures = components = 0
    need_forces = settings.force_weight > 0
    for k in range(steps):
        if settings.schedule == "linear":
            elapsed = state.elapsed + time.perf_counter() - start
            p = progress(state.step, steps, settings.epochs, elapsed, settings.time_budget)
            state.lr = settings.lr * lr_factor(p, settings.decay_start, settings.decay_factor)
        for group in optimizer.param_groups:
            group["lr"] = state.lr
        batch = train.select(torch.from_numpy(order[k * settings.batch_size : (k + 1) * settings.batch_size]))
        e, f = energies_and_forces(model.update, batch, forces=need_forces, create_graph=True)
        loss = loss_terms(e, f, batch, settings)
        value = float(loss.detach())
        check_finite_loss(value, state.epoch + 1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if settings.clip:
            torch.nn.utils.clip_grad_norm_(model.update.networks.parameters(), settings.clip)
        optimizer.step()
        state.step += 1
        with torch.no_grad():
            de = (e - batch.energy) / batch.atoms_per_structure().to(e.dtype)
            sums["loss"] += value * len(batch)
            sums["e_abs"] += float(de.abs().sum())
            sums["e_sq"] += float(de.square().sum())
            if f is not None:
                df = f - batch.forces
                sums["f_abs"] += float(df.abs().sum())
                sums["f_sq"] += float(df.square().sum())
                components += df.numel()
        structures += len(batch)
    e_valid, f_valid = predict(model, valid, forces=need_forces)
    valid_loss = float(loss_terms(e_valid, f_valid, valid, settings))
    check_finite_loss(valid_loss, state.epoch + 1, "validation")
    v = errors("valid", e_valid, valid.energy, valid.atoms_per_structure(), f_valid, valid.forces)
    state.epoch += 1
    state.elapsed += time.perf_counter() - start
    components = max(components, 1)
    state.history.append(
        {
            "epoch": state.epoch,
            "elapsed_s": state.elapsed,
            "lr": state.lr,
            "train_loss": sums["loss"] / structures,
            "valid_loss": valid_loss,
            "train_energy_mae": 1e3 * sums["e_abs"] / structures,
            "train_energy_rmse": 1e3 * math.sqrt(sums["e_sq"] / structures),
            "train_force_mae": 1e3 * sums["f_abs"] / components,
            "train_force_rmse": 1e3 * math.sqrt(sums["f_sq"] / components),
            "valid_energy_mae": v.energy_mae,
            "valid_energy_rmse": v.energy_rmse,
            "valid_force_mae": v.force_mae,
            "valid_force_rmse": v.force_rmse,
        }
    )
    if settings.schedule == "plateau":
        _plateau(state, settings, valid_loss)


def _plateau(state: _State, settings: PotentialSettings, valid_loss: float) -> None:
    """Cut the learning rate after ``lr_patience`` epochs without a better validation loss."""
    if valid_loss < state.best_loss * (1 - 1e-4):
        state.plateau_epochs = 0
        return
    state.plateau_epochs += 1
    if state.plateau_epochs >= settings.lr_patience and state.lr > settings.min_lr * (1 + 1e-9):
        state.lr = max(state.lr * settings.lr_factor, settings.min_lr)
        state.plateau_epochs = 0


HISTORY_COLUMNS = (
    "epoch",
    "elapsed_s",
    "lr",
    "train_loss",
    "valid_loss",
    "train_energy_mae",
    "train_energy_rmse",
    "train_force_mae",
    "train_force_rmse",
    "valid_energy_mae",
    "valid_energy_rmse",
    "valid_force_mae",
    "valid_force_rmse",
)


def history_csv(history: Sequence[dict[str, float]]) -> str:
    """``metrics.csv``: one row per epoch; energies meV/atom, forces meV/Angstrom, loss in eV^2 units."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HISTORY_COLUMNS)
    for row in history:
        writer.writerow([row[c] if c == "epoch" else f"{row[c]:.6g}" for c in HISTORY_COLUMNS])
    return out.getvalue()
