"""The training loop of every model: a list of targets, Adam, a schedule, checkpoints, exact resume.

:func:`fit` trains a property model (QM9's targets, standardised) or a potential (energies and
forces) alike: the model's predictions (:class:`~mpnn.train.targets.Predictions`) meet the run's
targets (:mod:`mpnn.train.targets`), whose weighted losses are summed; the learning rate follows
:mod:`mpnn.train.schedule` (``linear``, by step or by time budget) or drops on a plateau of the
validation score; the targets' weights follow :func:`mpnn.train.schedule.loss_weight` over the
same progress. After every epoch the validation metrics decide ``best.pt`` and early stopping
(``monitor``: ``valid_ratio`` for property runs, Gilmer's mean MAE / chemical accuracy;
``valid_loss``, weighted with the final weights, for potentials). ``last.pt`` holds the weights,
the optimizer, the RNG state, the counters and the history (and the weight average with
``ema_decay``, :mod:`.average`; the fp16 loss scale with ``amp``, :mod:`.precision`), so an
interrupted run continues exactly: the epoch order is a function of ``(seed, epoch)`` alone.
Under ``torchrun`` the model runs under DDP (:mod:`mpnn.train.distributed`); only rank 0 writes
(``metrics.csv`` and, with ``tensorboard``, the same rows as TensorBoard scalars, :mod:`.history`).

A loader is anything with ``len(loader)`` (global batches per epoch) and
``loader.steps(epoch, ctx) -> Iterator[(Batch, Totals)]``: this process's part of each global
batch and the sizes of that global batch (:class:`mpnn.train.loader.BatchLoader`,
:class:`mpnn.train.potential_data.StructureLoader`).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from mpnn.batch import Batch
from mpnn.files import remove_stale_temporaries, write_text
from mpnn.train.average import load_average, weight_average
from mpnn.train.checkpoint import BEST, LAST, SavedCounters, load_into, load_last, restore_last, save_tensors
from mpnn.train.distributed import Context
from mpnn.train.history import METRICS, TensorBoardLog, history_columns, history_csv, summary_writer_class
from mpnn.train.precision import Precision
from mpnn.train.schedule import check_finite_loss, loss_weight, lr_factor, progress
from mpnn.train.settings import TrainSettings
from mpnn.train.targets import Predictions, Target, Totals

#: Seconds between two writes of last.pt and metrics.csv (also after a new best.pt, and at the end).
SAVE_EVERY = 15.0


class Loader(Protocol):
    def __len__(self) -> int: ...

    def steps(self, epoch: int, ctx: Context) -> Iterator[tuple[Batch, Totals]]: ...


@dataclass
class FitResult:
    """What :func:`fit` leaves: the history (rows of ``metrics.csv``), the 1-based epoch of
    ``best.pt`` and its validation score, and why training stopped ("epochs", "time budget",
    "early stopping", "learning rate at its minimum" or "interrupted")."""

    history: list[dict[str, float]]
    best_epoch: int
    best_score: float
    stop_reason: str


class TrainState(SavedCounters):
    """The counters of a run, saved in ``last.pt`` with model and optimizer."""

    def __init__(self, lr: float, columns: Sequence[str] = ()) -> None:
        self._history_columns = tuple(columns)
        self.epoch, self.step, self.elapsed, self.lr = 0, 0, 0.0, float(lr)
        self.best, self.best_epoch, self.bad_epochs, self.plateau_epochs = math.inf, 0, 0, 0
        self.history: list[dict[str, float]] = []

    def load(self, saved: dict[str, Any], where: str | Path = LAST) -> None:
        """As :meth:`SavedCounters.load`; the counters of earlier versions (``best_ratio`` or
        ``best_loss``, no ``lr`` or ``plateau_epochs``) are read as today's."""
        if isinstance(saved, dict) and "best" not in saved:
            saved = dict(saved)
            old = saved.pop("best_ratio", saved.pop("best_loss", None))
            saved["best"] = old
            saved.setdefault("lr", self.lr)
            saved.setdefault("plateau_epochs", 0)
        super().load(saved, where)


def exported_state(model: nn.Module, dtype: torch.dtype | None) -> dict[str, Tensor]:
    """The model's state dict, floating tensors in ``dtype`` (None: as they are)."""
    state = model.state_dict()
    if dtype is None:
        return state
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}


class Trainer:
    """One run of :func:`fit`: model, targets, loaders, settings and its folder."""

    def __init__(
        self,
        model: nn.Module,
        targets: Sequence[Target],
        settings: TrainSettings,
        out: Path,
        *,
        monitor: str,
        ctx: Context,
        export_dtype: torch.dtype | None,
    ) -> None:
        self.model, self.targets, self.settings, self.out = model, list(targets), settings, out
        self.monitor, self.ctx, self.export_dtype = monitor, ctx, export_dtype
        self.columns = history_columns(self.targets, monitor)
        self.parameters = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.parameters, lr=settings.lr)
        self.state = TrainState(settings.lr, self.columns)
        self.precision = Precision(settings.amp, self.parameters, warn=ctx.main)
        self.ema = weight_average(model, settings.ema_decay)
        if settings.tensorboard:
            summary_writer_class()  # a missing package stops the run before it writes anything
        self.log: TensorBoardLog | None = None
        # the parameters of element networks whose element a batch lacks get no gradient
        self.forward = ctx.wrap(Predictions(model), unused_parameters=not hasattr(model, "standardized"))
        self.forces = any(t.key == "forces" and max(t.weight, t.monitored_weight) > 0 for t in self.targets)
        self.scheduled = any(t.final_weight is not None for t in self.targets)
        self.weights = [t.weight for t in self.targets]  # the loss weights of the step

    @property
    def evaluated(self) -> nn.Module:
        """The weights validation and ``best.pt`` use: the average with ``ema_decay``."""
        return self.ema.module if self.ema is not None else self.model

    # -- checkpoints --------------------------------------------------------------------------
    def resume(self) -> bool:
        """Load ``out/last.pt`` if there is one (weights, optimizer, RNG, counters, average)."""
        path = self.out / LAST
        if not path.is_file():
            return False
        saved = load_last(path)
        load_into(self.model, saved["model"], path)
        restore_last(saved, self.optimizer, self.state, path)
        self.precision.load_state_dict(saved.get("scaler"), str(path))
        if self.ema is not None:
            load_average(self.ema, saved.get("ema"), self.model, path)
        return True

    def save_last(self) -> None:
        if not self.ctx.main:
            return
        saved = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "state": self.state.to_dict(),
        }
        if self.ema is not None:
            saved["ema"] = self.ema.state_dict()
        if self.precision.state_dict() is not None:
            saved["scaler"] = self.precision.state_dict()
        save_tensors(saved, self.out / LAST)
        write_text(history_csv(self.state.history, self.columns), self.out / METRICS)

    # -- one epoch ----------------------------------------------------------------------------
    def record(self, row: dict[str, float]) -> None:
        """Append a history row (and log it to TensorBoard)."""
        self.state.history.append({c: row[c] for c in self.columns})
        if self.log is not None:
            self.log.add(self.state.history[-1])

    def loss(self, predicted: dict[str, Tensor], batch: Batch, totals: Totals) -> Tensor:
        """The weighted loss of a step, with the weights of the step (:attr:`weights`)."""
        terms = [
            w * t.loss(predicted[t.key], batch, totals)
            for t, w in zip(self.targets, self.weights, strict=True)
            if w > 0 and t.key in predicted
        ]
        return torch.stack(terms).sum()

    def schedule(self, start: float, trained: bool) -> bool:
        """Set the learning rate and the loss weights of the next step from the training progress
        (``start``: when this epoch began, ``time.perf_counter()``; ``trained``: whether it has
        taken a step). False: the time budget is spent, end the epoch."""
        settings, state = self.settings, self.state
        if settings.schedule == "linear" or self.scheduled:
            elapsed = state.elapsed + time.perf_counter() - start
            if settings.time_budget is not None:
                elapsed = self.ctx.agree(elapsed)
                if settings.schedule == "linear" and elapsed >= settings.time_budget and trained:
                    return False
            p = progress(state.step, self.steps, settings.epochs, elapsed, settings.time_budget)
            if settings.schedule == "linear":
                state.lr = settings.lr * lr_factor(p, settings.decay_start, settings.decay_factor)
            self.weights = [
                loss_weight(p, t.weight, t.final_weight, settings.weight_start, settings.weight_end)
                for t in self.targets
            ]
        for group in self.optimizer.param_groups:
            group["lr"] = state.lr
        return True

    def train_epoch(self, train: Loader, show_progress: bool) -> dict[str, float]:
        """Adam steps over one epoch (or until the time budget is spent); the training columns."""
        settings, state, ctx = self.settings, self.state, self.ctx
        self.model.train()
        start = time.perf_counter()
        sums: dict[int, Tensor] = {}
        loss_sum = torch.zeros(2, dtype=torch.float64)  # sum of loss x global batch, structures
        self.steps = len(train)
        bar = tqdm(
            train.steps(state.epoch, ctx),
            total=self.steps,
            desc=f"epoch {state.epoch + 1}" + (f"/{settings.epochs}" if settings.epochs else ""),
            disable=not (show_progress and ctx.main),
            leave=False,
            dynamic_ncols=True,
        )
        for batch, totals in bar:
            if not self.schedule(start, trained=bool(loss_sum[1] > 0)):
                break
            batch = batch.to(ctx.device)
            with self.precision.autocast():
                predicted = self.forward(batch, forces=self.forces, create_graph=self.forces)
            predicted = self.precision.full(predicted)
            loss = self.loss(predicted, batch, totals) * totals.share
            value = float(loss.detach())
            check_finite_loss(value, state.epoch + 1)
            self.optimizer.zero_grad(set_to_none=True)
            # DDP averages the gradients over the processes; only the weights' gradients are
            # needed (not those of the positions, which a force loss would also reach)
            self.precision.backward(loss * ctx.world, inputs=self.parameters)
            self.precision.step(self.optimizer, self.parameters, settings.clip)
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            state.step += 1
            if totals.share:
                loss_sum += torch.tensor([value * totals.structures, batch.num_graphs], dtype=torch.float64)
                for k, t in enumerate(self.targets):
                    if t.key in predicted:
                        part = t.sums(predicted[t.key], batch)
                        sums[k] = part if k not in sums else sums[k] + part
            bar.set_postfix(loss=f"{value:.4g}", lr=f"{state.lr:.2e}", refresh=False)
        bar.close()
        state.elapsed += time.perf_counter() - start
        loss_sum = ctx.sum(loss_sum)
        row = {"train_loss": float(loss_sum[0] / loss_sum[1]) if loss_sum[1] else math.nan}
        for k, t in enumerate(self.targets):
            row.update(t.metrics(self._reduce(sums.get(k)), "train"))
        return row

    def _reduce(self, sums: Tensor | None) -> Tensor | None:
        """Sums over the processes; None where no process measured them."""
        if not self.ctx.distributed:
            return sums
        measured = self.ctx.sum(torch.tensor([0.0 if sums is None else 1.0]))
        if float(measured) == 0:
            return None
        return self.ctx.sum(sums) if sums is not None else None  # every process measured or none did

    def validate(self, valid: Loader) -> dict[str, float]:
        """The validation columns (and ``valid_loss``) of the evaluated weights."""
        start = time.perf_counter()
        model = self.evaluated
        was_training = model.training
        model.eval()
        predictions = Predictions(model)
        sums: dict[int, Tensor] = {}
        for batch, totals in valid.steps(0, self.ctx):
            if not totals.share:
                continue
            batch = batch.to(self.ctx.device)
            with torch.no_grad() if not self.forces else torch.enable_grad():
                predicted = predictions(batch, forces=self.forces)
            for k, t in enumerate(self.targets):
                if t.key in predicted:
                    part = t.sums(predicted[t.key], batch)
                    sums[k] = part if k not in sums else sums[k] + part
        model.train(was_training)
        row: dict[str, float] = {}
        loss = 0.0
        for k, t in enumerate(self.targets):
            reduced = self._reduce(sums.get(k))
            row.update(t.metrics(reduced, "valid"))
            if reduced is not None and t.monitored_weight > 0:  # the same weights every epoch
                loss += t.monitored_weight * t.loss_value(reduced)
        row["valid_loss"] = loss
        self.state.elapsed += time.perf_counter() - start
        return row

    def stop_reason(self) -> str | None:
        """Why training is over before the next epoch, or None to go on."""
        settings, state = self.settings, self.state
        if settings.patience and state.bad_epochs >= settings.patience:
            return "early stopping"
        if settings.schedule == "plateau" and state.lr < settings.min_lr * (1 + 1e-9):
            if state.plateau_epochs >= settings.lr_patience:
                return "learning rate at its minimum"
        if settings.time_budget is not None and self.ctx.agree(state.elapsed) >= settings.time_budget:
            return "time budget"
        if settings.epochs is not None and state.epoch >= settings.epochs:
            return "epochs"
        return None

    def plateau(self, score: float) -> None:
        """Cut the learning rate after ``lr_patience`` epochs without a better score."""
        settings, state = self.settings, self.state
        if score < state.best * (1 - 1e-4):
            state.plateau_epochs = 0
            return
        state.plateau_epochs += 1
        if state.plateau_epochs >= settings.lr_patience and state.lr > settings.min_lr * (1 + 1e-9):
            state.lr = max(state.lr * settings.lr_factor, settings.min_lr)
            state.plateau_epochs = 0


def fit(
    model: nn.Module,
    targets: Sequence[Target],
    train: Loader,
    valid: Loader,
    settings: TrainSettings,
    out: str | Path,
    *,
    monitor: str,
    ctx: Context | None = None,
    export_dtype: torch.dtype | None = None,
    show_progress: bool = True,
    describe: Callable[[dict[str, float]], str] | None = None,
    stop_after: int | None = None,
) -> FitResult:
    """Train ``model`` on ``targets`` in the run folder ``out``; resume from ``out/last.pt``.

    Args:
        model: the model in its training dtype; it trains on ``ctx.device`` and is on the CPU on
            return, with the weights of the last epoch.
        targets: the loss terms and metrics (:mod:`mpnn.train.targets`).
        train, valid: loaders (module docstring); ``train`` shuffles per epoch.
        settings: optimisation, schedule, stopping, weight average.
        out: the run folder (exists).
        monitor: the history column that decides ``best.pt``, early stopping and the plateau.
        ctx: the processes (:func:`mpnn.train.distributed.context`); default one process.
        export_dtype: the floating dtype of the weights in ``best.pt`` (None: the model's).
        show_progress: a bar per epoch and a line at most every few seconds.
        describe: the words of that line for a history row (default: the monitored score).
        stop_after: return after this many epochs of this call (as if interrupted).
    """
    out = Path(out)
    ctx = ctx or Context()
    model.to(ctx.device)  # back to the CPU on return, where evaluation and files expect it
    run = Trainer(model, targets, settings, out, monitor=monitor, ctx=ctx, export_dtype=export_dtype)
    state = run.state
    if ctx.main:
        remove_stale_temporaries(out)  # left by a killed run
    run.resume()
    if settings.tensorboard and ctx.main:
        run.log = TensorBoardLog(out, run.columns, state.history)
    describe = describe or (lambda row: f"{monitor} {row[monitor]:.4g}")
    done, saved_at, said_at = 0, time.perf_counter(), -math.inf
    reason = None
    while (reason := run.stop_reason()) is None:
        if stop_after is not None and done >= stop_after:
            reason = "interrupted"
            break
        row: dict[str, float] = {"epoch": state.epoch + 1}
        row.update(run.train_epoch(train, show_progress))
        row.update(run.validate(valid))
        check_finite_loss(row[monitor], state.epoch + 1, "validation")
        state.epoch += 1
        row.update(elapsed_s=state.elapsed, lr=state.lr)
        run.record(row)
        score = row[monitor]
        if settings.schedule == "plateau":
            run.plateau(score)
        improved = score < state.best
        if improved:
            state.best, state.best_epoch, state.bad_epochs = score, state.epoch, 0
            if ctx.main:
                save_tensors(exported_state(run.evaluated, export_dtype), out / BEST)
        else:
            state.bad_epochs += 1
        done += 1
        now = time.perf_counter()
        if improved or now - saved_at > SAVE_EVERY:  # last.pt is never older than best.pt
            run.save_last()
            saved_at = now
        if show_progress and ctx.main and now - said_at > 5.0:
            tqdm.write(f"epoch {state.epoch}  {state.elapsed:7.1f} s  lr {state.lr:.2e}  {describe(row)}")
            said_at = now
    run.save_last()
    if run.log is not None:
        run.log.close()
    model.to("cpu")
    ctx.barrier()
    return FitResult(state.history, state.best_epoch, state.best, reason)


def load_for_resume(
    model: nn.Module, settings: TrainSettings, targets: Sequence[Target], out: Path, monitor: str
) -> None:
    """What :func:`fit` loads first, without training: ``out/last.pt`` into ``model``, a fresh
    optimizer and the counters; a :class:`~mpnn.errors.DataError` names what does not fit. Its
    warnings (``amp`` on a CPU) are left to :func:`fit`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        Trainer(model, targets, settings, out, monitor=monitor, ctx=Context(), export_dtype=None).resume()
