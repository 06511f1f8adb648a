"""The training loop (Gilmer et al. 2017, Sec. 8): standardised targets, MSE, Adam, linear decay.

:func:`fit` trains one :class:`~mpnn.models.PropertyModel` in a run directory and resumes it
from ``last.pt`` when that exists: the epoch order is a function of ``(seed, epoch)``, and
``last.pt`` holds the weights, the optimizer state, the step and epoch counters, the elapsed
time and the RNG state, so an interrupted run continues exactly where it stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from mpnn.errors import DataError
from mpnn.files import remove_stale_temporaries, write_text
from mpnn.models import PropertyModel
from mpnn.train.checkpoint import BEST, LAST, SavedCounters, load_into, load_last, restore_last, save_tensors
from mpnn.train.loader import BatchLoader, target_values
from mpnn.train.metrics import TargetError, history_csv, mean_ratio, target_errors
from mpnn.train.schedule import check_finite_loss, lr_factor, progress
from mpnn.train.validate import Rule, check_fields, integer, learning_rate, number, seed_rule

METRICS = "metrics.csv"
#: The columns of every row of the history, but the targets' ``valid_mae_<target>`` before the last.
HISTORY_COLUMNS = ("epoch", "elapsed_s", "lr", "train_loss", "valid_ratio")


@dataclass
class TrainSettings:
    """How a model is trained; stored in ``config.json`` under ``"training"``.

    Attributes:
        epochs: number of epochs, or None with a ``time_budget``.
        time_budget: seconds of training (training + validation); the schedule follows it.
        batch_size: structures per batch.
        lr: initial learning rate of Adam.
        decay_start: fraction of training after which the learning rate decays linearly ...
        decay_factor: ... down to ``lr * decay_factor`` at the end.
        clip: maximum gradient norm (Gilmer's code: 4.0); None or 0 disables clipping.
        patience: stop after this many epochs without a better validation ratio; None: never.
        seed: seed of the weights and of the epoch order (and, in :mod:`.run`, of the subset and
            the split).
        weight_seed: seed of the weights and of the epoch order instead of ``seed`` (None: ``seed``),
            so that runs on one split differ in their initialisation only; stored only when set.
    """

    epochs: int | None = None
    time_budget: float | None = None
    batch_size: int = 32
    lr: float = 1e-3
    decay_start: float = 0.5
    decay_factor: float = 0.05
    clip: float | None = 4.0
    patience: int | None = 30
    seed: int = 0
    weight_seed: int | None = None

    #: The type and range of each field (:mod:`mpnn.train.validate`); config files use the same.
    RULES: ClassVar[dict[str, Rule]] = {
        "epochs": integer(1, optional=True),
        "time_budget": number(0, low_open=True, optional=True),
        "batch_size": integer(1),
        "lr": learning_rate(),
        "decay_start": number(0, 1, high_open=True),
        "decay_factor": number(0, 1, low_open=True),
        "clip": number(0, optional=True),
        "patience": integer(0, optional=True),
        "seed": seed_rule(),
        "weight_seed": seed_rule(optional=True),
    }

    def __post_init__(self) -> None:
        check_fields(self, self.RULES, "training.")
        if self.epochs is None and self.time_budget is None:
            raise DataError("training: give epochs or time_budget")

    @property
    def init_seed(self) -> int:
        """The seed of the weights and of the epoch order: ``weight_seed``, else ``seed``."""
        return self.seed if self.weight_seed is None else self.weight_seed

    def to_json(self) -> dict[str, Any]:
        """The settings as a dict; ``weight_seed`` only when set (older runs stay identical)."""
        data = asdict(self)
        if data["weight_seed"] is None:
            del data["weight_seed"]
        return data


@dataclass
class FitResult:
    """What :func:`fit` leaves behind.

    Attributes:
        history: one dict per epoch (the rows of ``metrics.csv``).
        best_epoch: 1-based epoch of ``best.pt``.
        best_ratio: its validation mean error ratio.
        stop_reason: "epochs", "time budget" or "early stopping".
    """

    history: list[dict[str, float]]
    best_epoch: int
    best_ratio: float
    stop_reason: str


def fit_standardization(model: PropertyModel, y_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Set the model's target mean and std (K,) from the training targets ``y_train`` (M, K)."""
    y_train = np.asarray(y_train, dtype=np.float64)
    mean, std = y_train.mean(axis=0), y_train.std(axis=0)
    model.set_standardization(torch.as_tensor(mean), torch.as_tensor(std))
    return mean, std


@torch.no_grad()
def predict(model: PropertyModel, loader: BatchLoader) -> np.ndarray:
    """(M, K) float64 predictions in target units for the loader's indices, in their order.

    The de-standardisation is done in float64 (``net * std + mean``).
    """
    was_training = model.training
    model.eval()
    mean, std = model.mean.double(), model.std.double()
    parts = [model.standardized(batch).double() * std + mean for batch in loader.batches(0)]
    model.train(was_training)
    return torch.cat(parts).numpy()


def evaluate(model: PropertyModel, loader: BatchLoader, names: Sequence[str]) -> list[TargetError]:
    """Per-target errors of ``model`` on the loader's molecules (targets from ``dataset.y``)."""
    true = target_values(loader.dataset, loader.indices, loader.columns)
    return target_errors(names, predict(model, loader), true)


def _train_step(
    model: PropertyModel, optimizer: torch.optim.Optimizer, batch: Any, clip: float | None
) -> float:
    """One Adam step on the MSE of the standardised targets; returns the loss."""
    target = (batch.y - model.mean) / model.std
    loss = torch.nn.functional.mse_loss(model.standardized(batch), target)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return float(loss.detach())


class _State(SavedCounters):
    """The counters of a run, saved in ``last.pt`` together with model and optimizer."""

    def __init__(self, names: Sequence[str] = ()) -> None:
        #: what history_csv reads from each row (the targets' columns with ``names``)
        self._history_columns = tuple(HISTORY_COLUMNS[:-1]) + tuple(f"valid_mae_{n}" for n in names)
        self._history_columns += HISTORY_COLUMNS[-1:]
        self.epoch, self.step, self.elapsed = 0, 0, 0.0
        self.best_ratio, self.best_epoch, self.bad_epochs = math.inf, 0, 0
        self.history: list[dict[str, float]] = []


def _stop_reason(state: _State, settings: TrainSettings) -> str | None:
    """Why training is over before the next epoch, or None to go on."""
    if settings.patience and state.bad_epochs >= settings.patience:
        return "early stopping"
    if settings.time_budget is not None and state.elapsed >= settings.time_budget:
        return "time budget"
    if settings.epochs is not None and state.epoch >= settings.epochs:
        return "epochs"
    return None


def _save_last(model: PropertyModel, optimizer: torch.optim.Optimizer, state: _State, out: Path) -> None:
    save_tensors(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "state": state.to_dict(),
        },
        out / LAST,
    )


def _resume(model: PropertyModel, optimizer: torch.optim.Optimizer, state: _State, out: Path) -> bool:
    """Load ``out/last.pt`` if present; returns whether it was."""
    if not (out / LAST).is_file():
        return False
    saved = load_last(out / LAST)
    load_into(model, saved["model"], out / LAST)
    restore_last(saved, optimizer, state, out / LAST)
    return True


def fit(
    model: PropertyModel,
    train: BatchLoader,
    valid: BatchLoader,
    names: Sequence[str],
    settings: TrainSettings,
    out: str | Path,
    *,
    show_progress: bool = True,
    stop_after: int | None = None,
) -> FitResult:
    """Train ``model`` (standardisation already set) and keep its checkpoints in ``out``.

    Each epoch ends with the validation errors (target units); ``best.pt`` keeps the weights of
    the lowest validation mean error ratio, ``last.pt`` everything needed to resume, and
    ``metrics.csv`` the history. If ``out/last.pt`` exists, training continues from it.

    Args:
        model: the model; its weights are those of the last epoch on return.
        train: shuffled loader of the training split (``train.columns`` = the targets).
        valid: loader of the validation split.
        names: the target names of the model's K outputs.
        settings: epochs or time budget, optimiser and schedule settings.
        out: the run directory.
        show_progress: draw a tqdm bar per epoch.
        stop_after: return after this many epochs of this call (as if interrupted).
    """
    out = Path(out)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    state = _State(names)
    remove_stale_temporaries(out)  # left by a killed run
    _resume(model, optimizer, state, out)
    done_here = 0
    while (reason := _stop_reason(state, settings)) is None:
        if stop_after is not None and done_here >= stop_after:
            return FitResult(state.history, state.best_epoch, state.best_ratio, "interrupted")
        _run_epoch(model, optimizer, train, valid, names, settings, state, show_progress)
        if state.history[-1]["valid_ratio"] < state.best_ratio:
            state.best_ratio, state.best_epoch, state.bad_epochs = (
                state.history[-1]["valid_ratio"],
                state.epoch,
                0,
            )
            save_tensors(model.state_dict(), out / BEST)
        else:
            state.bad_epochs += 1
        _save_last(model, optimizer, state, out)
        write_text(history_csv(state.history, names), out / METRICS)
        done_here += 1
    return FitResult(state.history, state.best_epoch, state.best_ratio, reason)


def _run_epoch(
    model: PropertyModel,
    optimizer: torch.optim.Optimizer,
    train: BatchLoader,
    valid: BatchLoader,
    names: Sequence[str],
    settings: TrainSettings,
    state: _State,
    show_progress: bool,
) -> None:
    """Train one epoch (or until the time budget is spent), validate, append to the history."""
    model.train()
    start = time.perf_counter()
    total = f"/{settings.epochs}" if settings.epochs else ""
    bar = tqdm(
        train.batches(state.epoch),
        total=len(train),
        desc=f"epoch {state.epoch + 1}{total}",
        disable=not show_progress,
        leave=False,
        dynamic_ncols=True,
    )
    loss_sum, count, lr = 0.0, 0, settings.lr
    for batch in bar:
        elapsed = state.elapsed + time.perf_counter() - start
        p = progress(state.step, len(train), settings.epochs, elapsed, settings.time_budget)
        if settings.time_budget is not None and p >= 1.0 and count:
            break
        lr = settings.lr * lr_factor(p, settings.decay_start, settings.decay_factor)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = _train_step(model, optimizer, batch, settings.clip)
        check_finite_loss(loss, state.epoch + 1)
        loss_sum += loss * batch.num_graphs
        count += batch.num_graphs
        state.step += 1
        bar.set_postfix(loss=f"{loss_sum / count:.4f}", lr=f"{lr:.2e}", refresh=False)
    errors = evaluate(model, valid, names)
    check_finite_loss(mean_ratio(errors), state.epoch + 1, "validation")
    state.epoch += 1
    state.elapsed += time.perf_counter() - start
    row: dict[str, float] = {
        "epoch": state.epoch,
        "elapsed_s": state.elapsed,
        "lr": lr,
        "train_loss": loss_sum / max(count, 1),
    }
    row.update({f"valid_mae_{e.target}": e.mae for e in errors})
    row["valid_ratio"] = mean_ratio(errors)
    state.history.append(row)
    bar.close()
    if show_progress:
        tqdm.write(
            f"epoch {state.epoch}{total}  {state.elapsed:7.1f} s  lr {lr:.2e}  "
            f"train loss {row['train_loss']:.4f}  valid MAE/chem. acc. {row['valid_ratio']:.3f}"
        )
