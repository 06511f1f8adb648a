"""A potential training run (``mpnn train-potential``): data, symmetry functions, fit, test, files.

Steps: read the structures (energies in eV, forces in eV/Angstrom; any format of
:func:`mpnn.data.atoms.read_structures`); hold out a validation set (a fraction of the training
file, or another file); build an HDNNP with :func:`mpnn.symmetry.defaults.default_symmetry_functions`
for the training set's elements; compute the symmetry functions and their Jacobians once
(:mod:`.potential_data`); drop functions that are constant on the training set; set the scaling
and the energy offsets and scale from the training set; train on energies and forces with the one
loop (:mod:`.trainer`); evaluate ``best.pt`` with the full model on the test file. Training,
testing, prediction and MD run the same modules and the same force code
(:func:`mpnn.potentials.forces.evaluate`).

A run folder holds ``config.json`` (``"model"``: the HDNNP configuration for
:func:`mpnn.models.build_model`; ``"run"``: the :class:`PotentialSpec`), ``split.pt`` (training
and validation indices into the training file), ``best.pt``, ``last.pt``, ``metrics.csv``,
``test_metrics.csv`` and the parity plots (and ``tensorboard/`` with ``training.tensorboard``).
Running again into the same folder resumes; only the training length, the patience and
TensorBoard logging may change (:data:`mpnn.train.run.MUTABLE`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

import mpnn
from mpnn import outputs
from mpnn.errors import DataError
from mpnn.files import save_json
from mpnn.models.hdnnp import PotentialModel
from mpnn.outputs import check_output_folder, check_outputs
from mpnn.train import potential_data as pdata
from mpnn.train import potential_stream
from mpnn.train.checkpoint import (
    BEST,
    CONFIG,
    LAST,
    SPLIT,
    load_into,
    load_last,
    load_split_file,
    load_state_file,
    rebuild_model,
    save_tensors,
)
from mpnn.train.distributed import Context
from mpnn.train.history import summary_writer_class
from mpnn.train.metrics import PotentialErrors
from mpnn.train.potential_eval import EVAL_BATCH, eval_batch_size, evaluate_run
from mpnn.train.potential_inputs import check_data_hashes, data_hashes, read_set, split_indices
from mpnn.train.potential_spec import (  # noqa: F401  (PotentialSpec, new_model: re-exported)
    PotentialSpec,
    _new_potential,
    fit_inputs,
    new_model,
    resume_spec,
)
from mpnn.train.settings import TrainSettings
from mpnn.train.targets import Energy, Forces
from mpnn.train.trainer import Loader, fit


def train_potential(
    spec: PotentialSpec,
    out: str | Path,
    *,
    show_progress: bool = True,
    echo: Callable[[str], None] = print,
    stop_after: int | None = None,
    ctx: Context | None = None,
    lazy: bool = False,
    readers: int = 2,
) -> list[PotentialErrors]:
    """Train (or resume) the potential of ``spec`` in ``out``; returns the errors of ``best.pt``.

    ``lazy``: ``spec.train`` is a structure store read per batch by ``readers`` ``DataLoader``
    workers (:mod:`mpnn.train.potential_stream`), for sets whose cached symmetry functions would
    not fit in memory; else the structures are read and their functions cached.

    Under ``torchrun`` (``ctx`` of :func:`mpnn.train.distributed.context`) every process trains
    its share of each batch and only rank 0 writes, prints and evaluates (the others return []).

    Nothing is written before everything is checked: ``out`` is new, empty or a potential run
    (:func:`mpnn.outputs.check_output_folder`) and holds none of the data files; the data are
    read; a resumed run's ``config.json``, ``split.pt``, ``best.pt`` and ``last.pt`` load and fit.
    """
    from ase.data import chemical_symbols

    out = Path(out)
    ctx = ctx or Context()
    if not ctx.main:
        show_progress, echo = False, lambda _: None
    valid_file = spec.valid if isinstance(spec.valid, str) else None
    check_outputs(folders=[out], inputs=[spec.train, valid_file, spec.test, spec.input_nn])
    check_output_folder(out, outputs.POTENTIAL_RUN)
    if spec.training.tensorboard:
        summary_writer_class()  # a missing package is an error before anything is written
    hashes = data_hashes(spec)
    if (out / LAST).is_file() and (out / CONFIG).is_file():
        check_data_hashes(out / CONFIG, spec, hashes)
    settings = spec.training
    forces = settings.trains_forces
    resuming = (out / LAST).is_file() and (out / CONFIG).is_file()
    if lazy:
        if isinstance(spec.valid, str):
            raise DataError(
                f"{spec.valid}: --lazy draws the validation structures from the store (--valid FRACTION)"
            )
        store = potential_stream.open_energy_store(spec.train, forces=forces, units=spec.units)
        split = (
            _load_split(out, len(store))
            if resuming
            else split_indices(len(store), float(spec.valid), settings.seed)
        )
        numbers = potential_stream.store_elements(store, np.arange(len(store)), show_progress)
        sizes = len(split["train"]), len(split["valid"])
    else:
        everything = read_set(spec.train, forces=forces, units=spec.units)
        numbers = sorted({int(z) for m in everything for z in m.z})
        if isinstance(spec.valid, str):
            train_set, valid_set = (
                everything,
                read_set(spec.valid, forces=forces, elements=numbers, units=spec.units),
            )
        else:
            split = (
                _load_split(out, len(everything))
                if resuming
                else split_indices(len(everything), float(spec.valid), settings.seed)
            )
            train_set = [everything[i] for i in split["train"]]
            valid_set = [everything[i] for i in split["valid"]]
        sizes = len(train_set), len(valid_set)
    test_set = read_set(spec.test, forces=forces, elements=numbers, units=spec.units) if spec.test else None
    elements = [chemical_symbols[z] for z in numbers]
    echo(
        f"data: {sizes[0]} training, {sizes[1]} validation"
        f"{f', {len(test_set)} test' if test_set else ''} structures; elements {' '.join(elements)}"
    )
    start = time.perf_counter()
    if resuming:
        model, _ = rebuild_model(out / CONFIG)  # checked as every stored configuration
        if (out / BEST).is_file():  # read at the end: checked before any write (last.pt's weights win)
            load_into(model, load_state_file(out / BEST), out / BEST)
        load_into(model, load_last(out / LAST)["model"], out / LAST)
    if lazy:
        if not resuming:
            model = new_model(spec, elements)
            stats, terms = potential_stream.streamed_inputs(
                model, store, split["train"], len(elements), show_progress
            )
            model, _ = fit_inputs(spec, elements, model, stats, terms, echo)
        train, valid = (
            potential_stream.store_loader(
                store, split[part], model.cutoff, size, shuffle=shuffle, seed=settings.seed,
                dtype=settings.dtype, workers=readers,
            )
            for part, size, shuffle in (("train", settings.batch_size, True), ("valid", EVAL_BATCH, False))
        )  # fmt: skip
        echo(
            f"reading {spec.train} lazily ({readers} reader processes); "
            f"statistics in {time.perf_counter() - start:.1f} s"
        )
    else:
        if resuming:
            train = pdata.build_structures(model, train_set, progress=show_progress)
        else:
            model, train = _new_potential(spec, elements, train_set, show_progress, echo)
        valid = pdata.build_structures(model, valid_set, progress=show_progress)
        size = (train.batch.descriptor_grad.numel() + valid.batch.descriptor_grad.numel()) * 8 / 2**20
        counts = dict(zip(elements, model.symmetry_functions.sizes, strict=True))
        echo(
            f"symmetry functions per element: {counts}; "
            f"descriptors and Jacobians {size:.0f} MB in {time.perf_counter() - start:.1f} s"
        )
    if not resuming and ctx.main:
        out.mkdir(parents=True, exist_ok=True)
        if not isinstance(spec.valid, str):
            save_tensors({k: torch.from_numpy(v) for k, v in split.items()}, out / SPLIT)
        save_json(_config(model, spec, *sizes, hashes), out / CONFIG)
    echo(f"{'resuming' if resuming else 'training'} in {out}")
    ctx.barrier()  # the folder exists before any process trains into it
    history, best, reason = fit_structures(model, train, valid, settings, out, show_progress, stop_after, ctx)
    if reason == "interrupted" or not ctx.main:
        return []
    row = history[best - 1]
    echo(
        f"stopped ({reason}) after {len(history)} epochs, {history[-1]['elapsed_s']:.0f} s; "
        f"best epoch {best} "
        f"(valid E {row['valid_energy_mae']:.3f} meV/atom, F {row['valid_force_mae']:.2f} meV/A)"
    )
    load_into(model, load_state_file(out / BEST), out / BEST)
    return evaluate_run(model, train, valid, test_set, out, forces=forces)


#: What decides best.pt, early stopping and the plateau schedule: the weighted validation loss.
MONITOR = "valid_loss"


def targets_of(settings: TrainSettings) -> list[Energy | Forces]:
    """The targets of a potential run: energies per atom and force components, weighted (the
    weights change from ``energy_weight`` to ``energy_weight_final`` where that is set, ...)."""
    return [
        Energy(settings.energy_weight, settings.energy_weight_final),
        Forces(settings.force_weight, settings.force_weight_final),
    ]


def fit_structures(
    model: PotentialModel,
    train: pdata.StructureSet | Loader,
    valid: pdata.StructureSet | Loader,
    settings: TrainSettings,
    out: Path,
    show_progress: bool = True,
    stop_after: int | None = None,
    ctx: Context | None = None,
) -> tuple[list[dict[str, float]], int, str]:
    """Train ``model`` with the one loop (:func:`mpnn.train.trainer.fit`) on cached structures (or
    on the loaders given, e.g. :func:`~mpnn.train.potential_stream.store_loader`);
    returns the history, the best epoch and why training stopped. The networks train in
    ``settings.dtype`` (the offsets, scaling and energy sum stay float64); ``best.pt`` and the
    returned model are float64."""
    dtype = settings.dtype
    for parameter in model.parameters():
        parameter.data = parameter.data.to(dtype)
    try:
        result = fit(
            model,
            targets_of(settings),
            (
                pdata.StructureLoader(
                    train, settings.batch_size, shuffle=True, seed=settings.seed, dtype=dtype
                )
                if isinstance(train, pdata.StructureSet)
                else train
            ),
            pdata.StructureLoader(valid, eval_batch_size(valid), dtype=dtype)
            if isinstance(valid, pdata.StructureSet)
            else valid,
            settings,
            out,
            monitor=MONITOR,
            ctx=ctx,
            export_dtype=torch.float64,
            show_progress=show_progress,
            describe=lambda row: (
                f"valid E {row['valid_energy_mae']:.2f} meV/atom F {row['valid_force_mae']:.1f} meV/A"
            ),
            stop_after=stop_after,
        )
    finally:
        for parameter in model.parameters():
            parameter.data = parameter.data.double()
    return result.history, result.best_epoch, result.stop_reason


def _load_split(out: Path, count: int) -> dict[str, np.ndarray]:
    return load_split_file(out / SPLIT, ("train", "valid"), count)


def _config(
    model: PotentialModel,
    spec: PotentialSpec,
    n_train: int,
    n_valid: int,
    hashes: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "mpnn_version": mpnn.__version__,
        "model": model.config,
        "run": spec.to_json(),
        "units": {
            "energy": "eV",
            "length": "Angstrom",
            "forces": "eV/Angstrom",
            "metrics": "energy errors meV/atom, force errors meV/Angstrom (metrics.csv, test_metrics.csv)",
        },
        "data": {
            "train": n_train,
            "valid": n_valid,
            "split": SPLIT if not isinstance(spec.valid, str) else None,
            "sha256": hashes or {},
        },
        "energy": {"offsets": model.update.offsets.tolist(), "scale": float(model.update.energy_scale)},
    }
