"""Per-step cost of PyTorch Lightning's loop against ours (:func:`mpnn.train.trainer.fit`), same work.

Two workloads, float32, one CPU thread (``torch.set_num_threads(1)``):

* ``qm9``: enn-s2s with the default settings of ``mpnn train`` (13 targets jointly, d 64, T 3,
  batch 32, Adam 1e-3, linear decay, gradient-norm clip 4) on molecules of the bundled QM9 subset
  (``--full``: the QM9 release beside the repository);
* ``ethanol``: the HDNNP of ``benchmarks/ethanol_train.py`` (its ``SETTINGS``: batch 16, energies
  and forces, no clipping) on rMD17 ethanol structures, symmetry functions cached
  (:func:`mpnn.train.potential_data.build_structures`, :class:`~mpnn.train.potential_data.StructureLoader`),
  targets of :func:`mpnn.train.potential_run.targets_of`.

Three loops run the same optimisation steps on the same batches from the same initial weights:

* ``ours``: :func:`~mpnn.train.trainer.fit` with ``show_progress=False`` (it also validates on
  ``--valid`` structures and writes ``best.pt``/``last.pt`` after every epoch);
* ``lightning lean``: a ``LightningModule`` whose ``training_step`` does what
  :meth:`~mpnn.train.trainer.Trainer.train_epoch` does per step (the same
  :class:`~mpnn.train.targets.Predictions` module and targets, the same loss, the loss checked
  finite, the training sums accumulated; Adam, the learning rate of
  :mod:`mpnn.train.schedule` per step through ``LambdaLR``, the same clipping through
  ``gradient_clip_val``), run by ``lightning.Trainer(accelerator="cpu", devices=1,
  logger=False, enable_checkpointing=False, enable_progress_bar=False,
  enable_model_summary=False)``, no validation;
* ``lightning defaults``: the same module, also logging the loss with ``self.log`` every step,
  run by ``lightning.Trainer`` with its defaults (logger, a checkpoint per epoch, progress bar
  written to ``os.devnull``, model summary).

What is timed, in this process, on one CPU thread, as wall-clock time and as CPU time of the
process (the second is less disturbed by other jobs on a shared machine): (1) the whole call
(``fit(...)``; ``lightning.Trainer(...)`` and ``trainer.fit(...)``) divided by the number of
optimisation steps; (2) the steady step: the mean interval between the starts of two consecutive
forward passes of the same epoch (a forward pre-hook on the model), i.e. one whole step
(batching, forward, loss, backward, clipping, Adam, the loop's hooks) without what happens once
per call or per epoch. Repetitions are interleaved, each loop in every place in turn (ours, lean,
defaults; lean, defaults, ours; ...), after one untimed warm-up of each; the medians over the
repetitions are reported with their ratios to ours. The weights after the first repetition are
compared: the three loops must agree (they take the same steps).

The loop's own cost is measured apart (``--loop-steps``): the three loops train a model that
costs almost nothing (:class:`OneLayer`) on one QM9 batch handed out again and again, so that a
step is the loop's own work; the difference from ours, divided by our step on a workload, is what
Lightning adds to that workload, measured with far less noise than the difference of two
workload timings. Two more loops there show where the defaults' extra cost goes: the defaults
without the progress bar, and the defaults without ``self.log``.

Skips, with a message, when ``lightning`` is not installed (it is not a dependency of mpnn:
``pip install lightning`` for this benchmark).

    python -m benchmarks.lightning_overhead [--workload qm9|ethanol|both|none] [--repeats 7]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import gc
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks.common import machine
from mpnn.train.distributed import Context
from mpnn.train.schedule import check_finite_loss, lr_factor, progress
from mpnn.train.settings import TrainSettings
from mpnn.train.targets import Predictions, Target, Totals
from mpnn.train.trainer import Loader, fit

LOOPS = ("ours", "lightning lean", "lightning defaults")
#: Where the defaults' extra cost goes (measured on the loop alone): without the progress bar,
#: without ``self.log``.
PARTS = ("lightning defaults, no bar", "lightning defaults, no log")


@dataclasses.dataclass
class Workload:
    """What a loop trains: the model (float32, untrained), targets, loaders, settings, monitor."""

    name: str
    model: nn.Module
    targets: list[Target]
    train: Loader
    valid: Loader
    settings: TrainSettings
    monitor: str
    description: str


# -- the workloads ------------------------------------------------------------------------------
def qm9_workload(molecules: int, valid: int, epochs: int, full: bool) -> Workload:
    """enn-s2s as ``mpnn train`` builds it (all 13 targets jointly), batch 32, float32."""
    from benchmarks.common import load_qm9
    from mpnn.data.qm9 import TARGETS
    from mpnn.models import build_model
    from mpnn.train.loader import BatchLoader, target_values
    from mpnn.train.metrics import target_columns
    from mpnn.train.properties import fit_standardization
    from mpnn.train.run import MONITOR, RunSpec
    from mpnn.train.targets import Properties

    data, source = load_qm9(full=full)
    pick = np.random.default_rng(0).permutation(len(data))
    train_idx, valid_idx = pick[:molecules], pick[molecules : molecules + valid]
    spec = RunSpec(list(TARGETS), joint=True)  # the defaults of `mpnn train`
    settings = dataclasses.replace(spec.training, epochs=epochs, time_budget=None)
    torch.manual_seed(settings.init_seed)
    model = build_model({**spec.model, "num_targets": len(TARGETS), "node_features": int(data[0].x.shape[1])})
    columns = target_columns(TARGETS)
    fit_standardization(model, target_values(data, train_idx, columns))

    def loader(indices: np.ndarray, shuffle: bool) -> BatchLoader:
        size = settings.batch_size if shuffle else max(settings.batch_size, 64)
        return BatchLoader(
            data, indices, columns, size, model.graph, shuffle, settings.init_seed, hydrogens=model.hydrogens
        )

    atoms = sum(data[int(i)].num_atoms for i in train_idx) / len(train_idx)
    return Workload(
        "qm9",
        model,
        [Properties(list(TARGETS), model.mean, model.std)],
        loader(train_idx, True),
        loader(valid_idx, False),
        settings,
        MONITOR,
        f"enn-s2s (13 targets), {source}: {len(train_idx)} molecules ({atoms:.1f} atoms), batch "
        f"{settings.batch_size}, clip {settings.clip}, {len(valid_idx)} validation molecules",
    )


def ethanol_workload(structures: int, valid: int, epochs: int) -> Workload:
    """The HDNNP of benchmarks/ethanol_train.py on rMD17 ethanol, cached symmetry functions, float32."""
    from ase.data import chemical_symbols

    from benchmarks.ethanol_train import SETTINGS, unpack
    from mpnn.cli.app import build_parser
    from mpnn.cli.train_potential import overrides
    from mpnn.train import potential_data as pdata
    from mpnn.train.potential_inputs import read_set
    from mpnn.train.potential_run import MONITOR, PotentialSpec, _new_potential, targets_of
    from mpnn.train.run import apply_overrides

    with tempfile.TemporaryDirectory() as folder:
        train_file, _ = unpack(Path(folder))
        args = build_parser().parse_args(["train-potential", str(train_file), *SETTINGS])
        given = overrides(args)
        spec = PotentialSpec.from_json(apply_overrides(PotentialSpec(train=given["train"]).to_json(), given))
        everything = read_set(spec.train, forces=True)
    pick = np.random.default_rng(0).permutation(len(everything))
    train_set = [everything[i] for i in pick[:structures]]
    valid_set = [everything[i] for i in pick[structures : structures + valid]]
    elements = [chemical_symbols[z] for z in sorted({int(z) for m in everything for z in m.z})]
    settings = dataclasses.replace(spec.training, epochs=epochs, time_budget=None)
    # the model `mpnn train-potential` builds: constant functions dropped, scaling, energy terms
    model, train = _new_potential(spec, elements, train_set, False, lambda _: None)
    valid_structures = pdata.build_structures(model, valid_set)
    dtype = settings.dtype
    for parameter in model.parameters():  # as potential_run.fit_structures: the networks in float32
        parameter.data = parameter.data.to(dtype)
    sizes = model.symmetry_functions.sizes
    return Workload(
        "ethanol",
        model,
        targets_of(settings),
        pdata.StructureLoader(train, settings.batch_size, shuffle=True, seed=settings.seed, dtype=dtype),
        pdata.StructureLoader(valid_structures, 256, dtype=dtype),
        settings,
        MONITOR,
        f"HDNNP ({sum(sizes)} symmetry functions, networks {spec.nodes}), rMD17 ethanol: "
        f"{len(train_set)} structures, batch {settings.batch_size}, energies + forces "
        f"(w_F {settings.force_weight:g}), clip {settings.clip}, {len(valid_set)} validation structures",
    )


class OneLayer(nn.Module):
    """A property model that costs almost nothing: ``standardized(batch)`` is one Linear(1, K) of
    ones, so that a step of a loop on it is the loop's own work (batch handling, loss, hooks)."""

    def __init__(self, targets: int) -> None:
        super().__init__()
        self.net = nn.Linear(1, targets)
        self.register_buffer("mean", torch.zeros(targets))
        self.register_buffer("std", torch.ones(targets))

    def standardized(self, batch: Any) -> torch.Tensor:
        return self.net(batch.y.new_ones(batch.num_graphs, 1))


class RepeatedBatch:
    """A loader (:class:`mpnn.train.trainer.Loader`) that hands out one batch ``count`` times per epoch."""

    def __init__(self, batch: Any, count: int) -> None:
        self.batch, self.count = batch, count
        self.totals = Totals(batch.num_graphs, batch.num_atoms, 1.0)

    def __len__(self) -> int:
        return self.count

    def steps(self, epoch: int, ctx: Context) -> Iterator[tuple[Any, Totals]]:
        for _ in range(self.count):
            yield self.batch, self.totals


def loop_alone_workload(steps: int) -> Workload:
    """The loop's own cost: :class:`OneLayer` on one batch of 32 QM9 molecules (targets of all 13
    properties, as the qm9 workload), the settings of the qm9 workload (gradient clipping)."""
    from benchmarks.common import load_qm9
    from mpnn.data.qm9 import TARGETS
    from mpnn.train.loader import BatchLoader
    from mpnn.train.metrics import target_columns
    from mpnn.train.run import MONITOR, RunSpec
    from mpnn.train.targets import Properties

    data, _ = load_qm9(full=False)
    spec = RunSpec(list(TARGETS), joint=True)
    settings = dataclasses.replace(spec.training, epochs=1, time_budget=None)
    batch = BatchLoader(data, np.arange(settings.batch_size), target_columns(TARGETS), settings.batch_size)
    batch = batch.make_batch(np.arange(settings.batch_size))
    model = OneLayer(len(TARGETS))
    return Workload(
        "loop alone",
        model,
        [Properties(list(TARGETS), model.mean, model.std)],
        RepeatedBatch(batch, steps),
        RepeatedBatch(batch, 1),
        settings,
        MONITOR,
        f"one Linear(1, 13) layer, one batch of {batch.num_graphs} QM9 molecules handed out {steps} times, "
        f"clip {settings.clip}",
    )


# -- the Lightning side -------------------------------------------------------------------------
def lightning_module(work: Workload, model: nn.Module, log_loss: bool) -> Any:
    """A LightningModule whose training step is the step of :meth:`Trainer.train_epoch`."""
    import lightning

    settings, targets = work.settings, work.targets
    steps = len(work.train)
    forces = any(t.key == "forces" and t.weight > 0 for t in targets)

    class Module(lightning.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.predictions = Predictions(model)

        def configure_optimizers(self) -> Any:
            optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
            if settings.schedule != "linear":
                return optimizer

            def factor(step: int) -> float:
                p = progress(step, steps, settings.epochs, 0.0, None)
                return lr_factor(p, settings.decay_start, settings.decay_factor)

            schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

        def transfer_batch_to_device(self, data: Any, device: torch.device, dataloader_idx: int) -> Any:
            batch, totals = data
            return batch.to(device), totals

        def on_train_epoch_start(self) -> None:
            self.sums: dict[int, torch.Tensor] = {}
            self.loss_sum = torch.zeros(2, dtype=torch.float64)

        def training_step(self, data: Any, batch_idx: int) -> torch.Tensor:
            batch, totals = data
            predicted = self.predictions(batch, forces=forces, create_graph=forces)
            terms = [
                t.weight * t.loss(predicted[t.key], batch, totals)
                for t in targets
                if t.weight > 0 and t.key in predicted
            ]
            loss = torch.stack(terms).sum() * totals.share
            value = float(loss.detach())
            check_finite_loss(value, self.current_epoch + 1)
            if log_loss:
                self.log("train_loss", value)
            if totals.share:
                self.loss_sum += torch.tensor(
                    [value * totals.structures, batch.num_graphs], dtype=torch.float64
                )
                for k, t in enumerate(targets):
                    if t.key in predicted:
                        part = t.sums(predicted[t.key], batch)
                        self.sums[k] = part if k not in self.sums else self.sums[k] + part
            return loss

        def on_train_epoch_end(self) -> None:  # the training columns of ours
            row = {"train_loss": float(self.loss_sum[0] / self.loss_sum[1])}
            for k, t in enumerate(targets):
                row.update(t.metrics(self.sums.get(k), "train"))
            self.row = row

    return Module()


class EpochBatches:
    """A loader's batches of the trainer's current epoch, as Lightning iterates a dataloader."""

    def __init__(self, loader: Loader, epoch: Callable[[], int]) -> None:
        self.loader, self.epoch = loader, epoch

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.loader.steps(self.epoch(), Context()))


# -- timing -------------------------------------------------------------------------------------
#: The figures of one call, seconds per optimisation step: the whole call and the steady step,
#: each as wall-clock time and as CPU time of this process.
FIGURES = ("whole wall", "steady wall", "whole cpu", "steady cpu")


def clocks() -> tuple[float, float]:
    """(wall-clock, CPU time of this process), seconds."""
    return time.perf_counter(), time.process_time()


def step_clock(model: nn.Module) -> tuple[list[tuple[float, float]], set[int], Any]:
    """The clocks at the start of every training-mode forward pass of ``model``, the CPU thread
    counts seen then, and the hook's handle."""
    times: list[tuple[float, float]] = []
    threads: set[int] = set()
    called = model.net if hasattr(model, "standardized") else model  # property model / potential

    def hook(module: nn.Module, args: Any) -> None:
        if module.training:
            times.append(clocks())
            threads.add(torch.get_num_threads())

    return times, threads, called.register_forward_pre_hook(hook)


def run_loop(loop: str, work: Workload, epochs: int, folder: str) -> tuple[dict[str, float], nn.Module]:
    """Train a copy of the workload's model with ``loop`` for ``epochs``: the :data:`FIGURES`
    of the call and the trained model."""
    import lightning

    model = copy.deepcopy(work.model)
    settings = dataclasses.replace(work.settings, epochs=epochs)
    steps = len(work.train)
    times, threads, handle = step_clock(model)
    if loop == "ours":
        start = clocks()
        fit(
            model,
            work.targets,
            work.train,
            work.valid,
            settings,
            folder,
            monitor=work.monitor,
            show_progress=False,
        )
        stop = clocks()
    else:
        lean = loop == "lightning lean"
        log_loss = loop in ("lightning defaults", "lightning defaults, no bar")
        module = lightning_module(dataclasses.replace(work, settings=settings), model, log_loss=log_loss)
        options: dict[str, Any] = dict(
            accelerator="cpu", devices=1, max_epochs=epochs, default_root_dir=folder
        )
        if lean:
            options.update(
                logger=False,
                enable_checkpointing=False,
                enable_progress_bar=False,
                enable_model_summary=False,
            )
        if loop == "lightning defaults, no bar":
            options.update(enable_progress_bar=False)
        if settings.clip:
            options.update(gradient_clip_val=settings.clip, gradient_clip_algorithm="norm")
        with (
            open(os.devnull, "w") as sink,
            contextlib.redirect_stderr(sink),
            contextlib.redirect_stdout(sink),
        ):
            start = clocks()
            trainer = lightning.Trainer(**options)
            batches = EpochBatches(work.train, lambda: trainer.current_epoch)
            trainer.fit(module, train_dataloaders=batches)
            stop = clocks()
    handle.remove()
    if len(times) != epochs * steps:
        raise RuntimeError(f"{loop}: {len(times)} training forward passes, expected {epochs * steps}")
    if threads != {torch.get_num_threads()}:
        raise RuntimeError(f"{loop}: trained with {sorted(threads)} CPU threads")
    figures = {}
    for c, clock in enumerate(("wall", "cpu")):
        within = [
            times[e * steps + k + 1][c] - times[e * steps + k][c]
            for e in range(epochs)
            for k in range(steps - 1)
        ]
        figures[f"whole {clock}"] = (stop[c] - start[c]) / (epochs * steps)
        figures[f"steady {clock}"] = sum(within) / len(within)
    return figures, model


@torch.no_grad()
def max_difference(a: nn.Module, b: nn.Module) -> float:
    """The largest absolute difference between the parameters of two copies of a model."""
    return max(float((p - q).abs().max()) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def measure(
    work: Workload, epochs: int, repeats: int, loops: tuple[str, ...] = LOOPS
) -> dict[str, list[dict[str, float]]]:
    """Per loop, the :data:`FIGURES` of each repetition; the loops interleaved, each in every place."""
    results: dict[str, list[dict[str, float]]] = {loop: [] for loop in loops}
    print(f"\n## {work.name}: {work.description}", flush=True)
    print(f"# {epochs} epoch(s) x {len(work.train)} steps per call; {repeats} repetitions after a warm-up")
    print(f"# load average (1 min) at the start: {os.getloadavg()[0]:.2f}", flush=True)
    for rep in range(-1, repeats):
        trained = {}
        order = loops[rep % len(loops) :] + loops[: rep % len(loops)]
        for loop in order:
            gc.collect()
            with tempfile.TemporaryDirectory() as folder:
                figures, model = run_loop(loop, work, 1 if rep < 0 else epochs, folder)
            if rep < 0:
                continue
            results[loop].append(figures)
            trained[loop] = model
            shown = "  ".join(f"{k} {1e3 * v:7.2f}" for k, v in figures.items())
            print(f"  rep {rep + 1} {loop:18s} ms/step: {shown}", flush=True)
        if rep == 0:
            for loop in loops[1:]:
                difference = max_difference(trained["ours"], trained[loop])
                print(f"  weights after rep 1, {loop} vs ours: max |difference| {difference:.2e}")
    print(f"# load average (1 min) at the end: {os.getloadavg()[0]:.2f}", flush=True)
    return results


def report(work: Workload, results: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    """A markdown table of the medians over the repetitions (ms per step) and their ratios to ours;
    then the ratios of each repetition (a loop against ours in the same repetition)."""
    medians = {
        loop: {f: statistics.median(r[f] for r in rows) for f in FIGURES} for loop, rows in results.items()
    }
    print(f"\n| {work.name} loop | " + " | ".join(f"{f} ms/step | vs ours" for f in FIGURES) + " |")
    print("|---|" + "---:|---:|" * len(FIGURES))
    for loop in results:
        cells = [
            f"{1e3 * medians[loop][f]:.2f} | {medians[loop][f] / medians['ours'][f]:.3f}" for f in FIGURES
        ]
        print(f"| {loop} | " + " | ".join(cells) + " |")
    for loop in list(results)[1:]:
        for f in ("steady wall", "steady cpu"):
            paired = [r[f] / o[f] for r, o in zip(results[loop], results["ours"], strict=True)]
            print(
                f"# {loop} / ours, {f}, per repetition: {', '.join(f'{p:.3f}' for p in paired)} "
                f"(median {statistics.median(paired):.3f})"
            )
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workload", choices=("qm9", "ethanol", "both", "none"), default="both", help="none: the loop alone"
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed repetitions of each loop (>= 5)")
    parser.add_argument("--qm9-molecules", type=int, default=2048, help="training molecules (batches of 32)")
    parser.add_argument("--qm9-epochs", type=int, default=1)
    parser.add_argument(
        "--ethanol-structures", type=int, default=480, help="training structures (batches of 16)"
    )
    parser.add_argument("--ethanol-epochs", type=int, default=6)
    parser.add_argument("--valid", type=int, default=4, help="validation structures of ours (per epoch)")
    parser.add_argument("--full", action="store_true", help="QM9: the release beside the repository")
    parser.add_argument(
        "--loop-steps", type=int, default=2000, help="steps of the loop-alone measurement (0: skip it)"
    )
    args = parser.parse_args()
    try:
        import lightning
    except ImportError:
        print("lightning is not installed (pip install lightning): skipping this benchmark", file=sys.stderr)
        return
    torch.set_num_threads(1)
    for name in (
        "lightning",
        "lightning.pytorch",
        "lightning.pytorch.utilities.rank_zero",
        "lightning.fabric",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)  # the "GPU available" lines
    warnings.filterwarnings("ignore", module="lightning")
    print(f"# {machine()}; lightning {lightning.__version__}; float32; calls timed in this process")
    medians: dict[str, dict[str, dict[str, float]]] = {}
    works = []
    if args.workload in ("qm9", "both"):
        works.append(
            (qm9_workload(args.qm9_molecules, args.valid, args.qm9_epochs, args.full), args.qm9_epochs)
        )
    if args.workload in ("ethanol", "both"):
        works.append(
            (ethanol_workload(args.ethanol_structures, args.valid, args.ethanol_epochs), args.ethanol_epochs)
        )
    for work, epochs in works:
        medians[work.name] = report(work, measure(work, epochs, args.repeats))
    if args.loop_steps:
        work = loop_alone_workload(args.loop_steps)
        medians[work.name] = report(work, measure(work, 1, args.repeats, LOOPS + PARTS))
    if "loop alone" in medians and len(medians) > 1:
        alone = medians["loop alone"]
        print("\n# what the loop alone adds to a step of each workload (steady step, medians):")
        for name, m in medians.items():
            if name == "loop alone":
                continue
            for loop in LOOPS[1:] + PARTS:
                cells = []
                for f in ("steady wall", "steady cpu"):
                    extra = alone[loop][f] - alone["ours"][f]
                    cells.append(f"{f}: {1e6 * extra:+.0f} us/step = {100 * extra / m['ours'][f]:+.2f}%")
                print(f"# {name}, {loop} - ours: " + "; ".join(cells))


if __name__ == "__main__":
    main()
