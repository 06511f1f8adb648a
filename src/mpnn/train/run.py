"""A training run: targets, data, model and settings; one model per target or one joint model.

Layout of an output directory ``out``:

* ``out/run.json``: the :class:`RunSpec` (what ``mpnn train`` was asked to do);
* one model (``joint`` or a single target): ``out`` is itself a run directory
  (``config.json``, ``split.pt``, ``best.pt``, ``last.pt``, ``metrics.csv``,
  ``test_metrics.csv``, ``learning_curve.png``, ``parity.png``, see :mod:`.checkpoint`);
* one model per target: a run directory ``out/<target>`` for each, and the combined
  ``out/test_metrics.csv``.

Running :func:`train_run` again on the same ``out`` resumes it (:func:`resume_spec`);
:func:`mpnn.experiments.search.ensure_run` does so for scripted runs and skips finished ones.

Configurations (RunSpec-like dicts from JSON/YAML files and command lines): :mod:`.config`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import mpnn
from mpnn import outputs
from mpnn.data.qm9 import TARGETS, UNITS
from mpnn.data.store import is_store_path
from mpnn.errors import DataError
from mpnn.files import remove_stale_temporaries, save_json
from mpnn.models import PropertyModel, build_model
from mpnn.outputs import check_output_folder, check_outputs
from mpnn.train import plots
from mpnn.train.checkpoint import BEST, CONFIG, SPLIT, load_into, load_state_file, save_tensors
from mpnn.train.data import DataSpec, load_molecules, load_split, make_split, split_to_tensors
from mpnn.train.distributed import Context
from mpnn.train.loader import BatchLoader, target_values
from mpnn.train.metrics import TargetError, target_columns, target_errors, write_errors_csv
from mpnn.train.properties import fit_standardization, predict
from mpnn.train.settings import TrainSettings, omitted_value
from mpnn.train.settings_files import load_json
from mpnn.train.targets import Properties
from mpnn.train.trainer import fit, load_for_resume

RUN = "run.json"
TEST_METRICS = "test_metrics.csv"
#: Settings that may change when a run is resumed; any other difference is an error (a resumed
#: run keeps its weight average, loss weights and precision: ``training.ema_decay`` and the others
#: cannot be switched on or off half way).
MUTABLE = ("training.epochs", "training.time_budget", "training.patience", "training.tensorboard")
#: What decides best.pt and early stopping: Gilmer's mean MAE / chemical accuracy on validation.
MONITOR = "valid_ratio"
#: DataLoader workers reading a structure store's batches in each process, unless --workers says.
STORE_READERS = 2


@dataclass
class RunSpec:
    """What to train.

    Attributes:
        targets: QM9 target names, in :data:`~mpnn.data.qm9.TARGETS` order.
        joint: one model for all targets; else one model per target.
        data: the molecules and their split sizes.
        model: ``{"model": name, **hyperparameters}`` without ``num_targets``/``node_features``.
        training: the optimisation settings (``seed`` also draws the subset and the split;
            ``weight_seed``, if set, replaces it for the weights and the epoch order only).
    """

    targets: list[str]
    joint: bool = False
    data: DataSpec = field(default_factory=DataSpec)
    model: dict[str, Any] = field(default_factory=lambda: {"model": "enn_s2s"})
    training: TrainSettings = field(default_factory=lambda: TrainSettings(time_budget=180.0))

    def __post_init__(self) -> None:
        from mpnn.train.validate import check_model_options

        targets = self.targets
        if not targets or any(t not in TARGETS for t in targets) or len(set(targets)) != len(targets):
            raise DataError(f"targets: expected QM9 target names ({', '.join(TARGETS)}), got {targets!r}")
        if not isinstance(self.joint, bool):
            raise DataError(f"joint: expected true or false, got {self.joint!r}")
        if not isinstance(self.model, dict) or not isinstance(self.model.get("model"), str):
            raise DataError(f"model: expected a mapping with a 'model' name, got {self.model!r}")
        check_model_options(self.model)

    def to_json(self) -> dict[str, Any]:
        return {
            "targets": list(self.targets),
            "joint": self.joint,
            "data": self.data.to_json(),
            "model": dict(self.model),
            "training": self.training.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSpec:
        return cls(
            list(data["targets"]),
            data["joint"],
            DataSpec(**data["data"]),
            dict(data["model"]),
            TrainSettings(**data["training"]),
        )

    def groups(self) -> list[tuple[str | None, list[str]]]:
        """(subfolder or None, target names) of each model to train."""
        if self.joint or len(self.targets) == 1:
            return [(None, list(self.targets))]
        return [(name, [name]) for name in self.targets]


def read_spec(path: str | Path) -> RunSpec:
    """The :class:`RunSpec` stored in ``path`` (a ``run.json``)."""
    try:
        return RunSpec.from_json(load_json(path))
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise DataError(f"{path}: not a run description ({error})") from None


def parse_targets(text: str) -> list[str]:
    """``"U0"``, ``"U0,gap"`` or ``"all"`` -> names in :data:`TARGETS` order."""
    if text.strip().lower() == "all":
        return list(TARGETS)
    lower = {t.lower(): t for t in TARGETS}
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n.lower() not in lower]
    if unknown or not names:
        raise DataError(
            f"unknown target {', '.join(unknown) or repr(text)}; choose from {', '.join(TARGETS)} or all"
        )
    chosen = {lower[n.lower()] for n in names}
    return [t for t in TARGETS if t in chosen]


def apply_overrides(
    base: dict[str, Any], overrides: dict[str, Any], *, frozen: str | None = None
) -> dict[str, Any]:
    """``base`` (a :meth:`RunSpec.to_json`) with ``overrides`` by dotted name set.

    With ``frozen`` (the file ``base`` came from), changing a setting outside :data:`MUTABLE`
    is a :class:`DataError` naming that file.
    """
    merged = copy.deepcopy(base)
    for name, value in overrides.items():
        *sections, key = name.split(".")
        target = merged
        for section in sections:
            target = target.setdefault(section, {})
        old = target.get(key, _stored_default(name))
        if frozen is not None and old != value and name not in MUTABLE:
            raise DataError(
                f"{frozen}: this folder holds a run with {name} = {old!r}, not {value!r}; "
                "resume it without that option, or choose another --out"
            )
        target[key] = value
    return merged


def _stored_default(name: str) -> Any:
    """The value of a setting that a stored run leaves out: a training field's default where it
    is written only when set (:func:`mpnn.train.settings.omitted_value`), else None."""
    section, _, key = name.partition(".")
    return omitted_value(key) if section == "training" else None


def resume_spec(out: str | Path, overrides: dict[str, Any]) -> RunSpec | None:
    """The stored spec of ``out`` with ``overrides`` applied, or None if ``out`` holds no run.

    ``overrides`` are the settings given explicitly, by dotted name (``{"training.epochs": 8,
    "targets": ["U0"]}``); only the :data:`MUTABLE` ones may differ from the stored run.
    """
    path = Path(out) / RUN
    if not path.is_file():
        return None
    merged = apply_overrides(load_json(path), overrides, frozen=str(path))
    try:
        return RunSpec.from_json(merged)
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{path}: not a run description ({error})") from None


def train_run(
    spec: RunSpec,
    out: str | Path,
    *,
    workers: int | None = None,
    show_progress: bool = True,
    echo: Callable[[str], None] = print,
    ctx: Context | None = None,
) -> list[TargetError]:
    """Train (or resume) every model of ``spec`` in ``out``; returns the test errors per target.

    Under ``torchrun`` (``ctx`` of :func:`mpnn.train.distributed.context`) every process trains
    its share of each batch and only rank 0 writes, prints and evaluates (the others return []).

    ``workers``: processes featurising a QM9 release (default: one per core), or, when the data
    are a structure store, ``DataLoader`` workers reading each process's batches (default
    :data:`STORE_READERS`).

    Nothing is written until everything has been checked: ``out`` is new, empty or a run of
    ``mpnn train`` (:func:`mpnn.outputs.check_output_folder`) and holds none of the data files; the
    models build; every file the run resumes from (``split.pt``, ``last.pt``, ``best.pt``) loads
    and fits (:func:`check_resumable`). A run that fails these checks leaves ``out`` as it was.
    """
    out = Path(out)
    ctx = ctx or Context()
    if not ctx.main:
        show_progress, echo = False, _silent
    data = spec.data.resolved()
    check_run_folder(spec, out)
    if not ctx.main:
        ctx.barrier()  # rank 0 builds a missing data cache first
    dataset = load_molecules(data, workers=workers, progress=show_progress)
    if ctx.main:
        ctx.barrier()
    split = make_split(data, len(dataset), spec.training.seed)
    echo(
        f"data: {len(dataset)} molecules; train {len(split['train'])}, "
        f"valid {len(split['valid'])}, "
        f"test {len(split['test'])}"
    )
    check_resumable(spec, dataset, out)  # a bad model setting or resume file fails before any write
    stored = {**spec.to_json(), "data": data.to_json()}
    if ctx.main:
        if (out / RUN).is_file() and load_json(out / RUN) != stored:  # extended: old test files are stale
            for path in [out / TEST_METRICS] + [out / sub / TEST_METRICS for sub, _ in spec.groups() if sub]:
                path.unlink(missing_ok=True)
        remove_stale_temporaries(out)  # of a killed run (each model's folder: in fit)
        save_json(stored, out / RUN)
    errors: list[TargetError] = []
    for sub, names in spec.groups():
        run_dir = out / sub if sub else out
        echo(
            f"training {'+'.join(names) if len(names) < 4 else f'{len(names)} targets jointly'} -> {run_dir}"
        )
        errors += train_model(
            spec,
            data,
            names,
            dataset,
            split,
            run_dir,
            show_progress=show_progress,
            echo=echo,
            ctx=ctx,
            readers=(STORE_READERS if workers is None else workers) if is_store_path(data.source) else 0,
        )
    if len(spec.groups()) > 1 and ctx.main:
        write_errors_csv(errors, out / TEST_METRICS)
    return errors


def check_run_folder(spec: RunSpec, out: Path) -> None:
    """Refuse an ``out`` that holds anything but a run of ``mpnn train``, or holds a data file of
    ``spec`` (:mod:`mpnn.outputs`); reads no data."""
    data = spec.data.resolved()
    check_outputs(folders=[out], inputs=[data.source, data.uncharacterized, data.atomref])
    check_output_folder(out, outputs.RUN)


def check_resumable(spec: RunSpec, dataset: Any, out: Path) -> None:
    """Build every model of ``spec`` and load, as :func:`train_model` will, each file of its run
    folder that it resumes from: ``split.pt`` (against ``dataset``), ``last.pt`` (weights,
    optimizer, counters) and ``best.pt``; a :class:`DataError` names the first that does not fit.
    Writes nothing (the torch RNG state is put back)."""
    rng = torch.get_rng_state()
    try:
        for sub, names in spec.groups():
            run_dir = out / sub if sub else out
            model = build(spec, names, dataset)
            make_split(spec.data.resolved(), len(dataset), spec.training.seed)  # sizes that fit
            if (run_dir / SPLIT).is_file():
                load_split(run_dir / SPLIT, len(dataset))
            if (run_dir / BEST).is_file():
                load_into(model, load_state_file(run_dir / BEST), run_dir / BEST)
            targets = [Properties(names, model.mean, model.std)]
            load_for_resume(model, spec.training, targets, run_dir, MONITOR)  # what fit loads first
    finally:
        torch.set_rng_state(rng)


def check_runs(
    runs: Sequence[tuple[RunSpec, Path]], *, workers: int | None = None, show_progress: bool = True
) -> None:
    """:func:`check_run_folder` and :func:`check_resumable` of every (spec, folder) of ``runs``
    (a search's trials, a comparison's runs), each data set loaded once: a search or comparison
    refuses a bad run before it trains, or writes, anything."""
    for spec, out in runs:
        check_run_folder(spec, out)
    datasets: dict[str, Any] = {}
    for spec, out in runs:
        data = spec.data.resolved()
        key = repr(data)
        if key not in datasets:
            datasets[key] = load_molecules(data, workers=workers, progress=show_progress)
        check_resumable(spec, datasets[key], out)


def build(spec: RunSpec, names: Sequence[str], dataset: Any) -> PropertyModel:
    """A fresh model of ``spec`` for targets ``names`` and the data set's node features."""
    sizes = {"num_targets": len(names), "node_features": int(dataset[0].x.shape[1])}
    try:
        return build_model({**spec.model, **sizes})
    except (TypeError, ValueError) as error:  # TypeError: an option of the wrong type
        raise DataError(f"model settings: {error}") from None


def train_model(
    spec: RunSpec,
    data: DataSpec,
    names: Sequence[str],
    dataset: Any,
    split: dict[str, np.ndarray],
    run_dir: Path,
    *,
    show_progress: bool = True,
    echo: Callable[[str], None] = print,
    ctx: Context | None = None,
    readers: int = 0,
) -> list[TargetError]:
    """Train one model of targets ``names`` in ``run_dir``, then evaluate ``best.pt`` on test;
    ``readers`` ``DataLoader`` workers read the training and validation batches (0: this process)."""
    settings, columns = spec.training, target_columns(names)
    ctx = ctx or Context()
    if (run_dir / SPLIT).is_file():
        split = load_split(run_dir / SPLIT, len(dataset))
    elif ctx.main:
        save_tensors(split_to_tensors(split, len(dataset)), run_dir / SPLIT)
    torch.manual_seed(settings.init_seed)  # the split keeps settings.seed
    model = build(spec, names, dataset)
    mean, std = fit_standardization(model, target_values(dataset, split["train"], columns))
    if ctx.main:
        save_json(_config(model.config, names, spec, data, mean, std, split, len(dataset)), run_dir / CONFIG)

    def loader(part: str, shuffle: bool = False) -> BatchLoader:
        size = settings.batch_size if shuffle else max(settings.batch_size, 64)
        return BatchLoader(
            dataset,
            split[part],
            columns,
            size,
            model.graph,
            shuffle,
            settings.init_seed,
            hydrogens=model.hydrogens,
            workers=readers,
        )

    result = fit(
        model,
        [Properties(names, model.mean, model.std)],
        loader("train", shuffle=True),
        loader("valid"),
        settings,
        run_dir,
        monitor=MONITOR,
        ctx=ctx,
        show_progress=show_progress,
        describe=lambda row: f"train loss {row['train_loss']:.4f}  valid MAE/chem. acc. {row[MONITOR]:.3f}",
    )
    echo(
        f"stopped ({result.stop_reason}) after {len(result.history)} epochs, "
        f"{result.history[-1]['elapsed_s']:.0f} s; best epoch {result.best_epoch} "
        f"(valid MAE/chem. acc. {result.best_score:.3f})"
    )
    if not ctx.main:
        return []
    load_into(model, load_state_file(run_dir / BEST), run_dir / BEST)
    return evaluate_model(model, names, dataset, split["test"], run_dir, history=result.history)


def evaluate_model(
    model: Any,
    names: Sequence[str],
    dataset: Any,
    indices: np.ndarray,
    run_dir: Path | None,
    *,
    history: Sequence[dict[str, float]] | None = None,
    batch_size: int = 64,
) -> list[TargetError]:
    """Errors of ``model`` on ``dataset[indices]``; with ``run_dir`` also test files and plots."""
    columns = target_columns(names)
    loader = BatchLoader(dataset, indices, columns, batch_size, model.graph, hydrogens=model.hydrogens)
    predicted, true = predict(model, loader), loader.targets
    errors = target_errors(names, predicted, true)
    if run_dir is not None:
        write_errors_csv(errors, run_dir / TEST_METRICS)
        plots.parity(names, [UNITS[c] for c in columns], predicted, true, run_dir / "parity.png")
        if history:
            plots.learning_curve(history, run_dir / "learning_curve.png")
    return errors


def _config(
    model_config: dict[str, Any],
    names: Sequence[str],
    spec: RunSpec,
    data: DataSpec,
    mean: np.ndarray,
    std: np.ndarray,
    split: dict[str, np.ndarray],
    num: int,
) -> dict[str, Any]:
    """The ``config.json`` of one model."""
    return {
        "mpnn_version": mpnn.__version__,
        "model": model_config,
        "targets": list(names),
        "units": [UNITS[c] for c in target_columns(names)],
        "training": spec.training.to_json(),
        "standardization": {"mean": mean.tolist(), "std": std.tolist()},
        "split": {
            "seed": spec.training.seed,
            "file": SPLIT,
            **{k: int(len(v)) for k, v in split.items()},
        },
        "data": {**data.to_json(), "num_molecules": num},
    }


def _silent(_: str) -> None:
    """The echo of a process that does not print (not rank 0)."""
