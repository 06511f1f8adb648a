"""Many runs from one base configuration: seeded random hyperparameter searches.

A *search space* file (JSON or YAML; built in: ``paper``, Gilmer et al. 2017 Sec. 8) holds a
base configuration (see :mod:`mpnn.train.run`) and one distribution per setting::

    {"base": {"model": "enn_s2s", "training": {"batch_size": 20}},
     "space": {"training.lr": {"uniform": [1e-5, 5e-4]},
               "training.decay_factor": {"log_uniform": [0.01, 1]},
               "model.steps": {"int": [3, 8]},
               "model.aggregation": {"choice": ["sum", "mean"]}}}

Trial :math:`i` of seed :math:`S` draws every setting, in sorted name order, from
``numpy.random.default_rng([S, i])``:

.. math::
    \\text{uniform}[a, b]: x \\sim U(a, b), \\qquad
    \\text{log\\_uniform}[a, b]: \\ln x \\sim U(\\ln a, \\ln b), \\qquad
    \\text{int}[a, b]: x \\in \\{a, \\dots, b\\} \\text{ uniformly},

so trial :math:`i` depends only on :math:`(S, i)` and the space: more trials keep the earlier
ones. Every trial is a normal run in ``out/trial-000``, ... (with the training seed of the base,
hence the same split); a search resumes where it stopped and never retrains a finished trial.
``out/search.csv`` ranks the trials by their validation mean error ratio (at the best epoch).

Ablations (``mpnn compare``) are in :mod:`mpnn.experiments.ablation`.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from mpnn import outputs
from mpnn.data.qm9 import CHEMICAL_ACCURACY, TARGETS, UNITS
from mpnn.errors import DataError
from mpnn.files import save_json, write_text
from mpnn.outputs import check_output_folder, check_outputs
from mpnn.train.config import (
    flatten_config,
    load_config,
    merge_configs,
    normalize_config,
    spec_from_config,
)
from mpnn.train.history import METRICS
from mpnn.train.metrics import TargetError, csv_number, mean_ratio, read_csv_rows, read_errors_csv
from mpnn.train.run import MUTABLE, RUN, TEST_METRICS, RunSpec, check_runs, read_spec, train_run
from mpnn.train.settings_files import load_json
from mpnn.train.validate import MAX_SEED, is_number

SEARCH, SEARCH_CSV = "search.json", "search.csv"
DISTRIBUTIONS = ("uniform", "log_uniform", "int", "choice")
_FORMS = "{'uniform': [low, high]}, {'log_uniform': [low, high]}, {'int': [low, high]} or {'choice': [...]}"


# -- finished runs ---------------------------------------------------------------------------------
def run_state(spec: RunSpec, out: str | Path) -> str:
    """``"new"``, ``"finished"`` or ``"unfinished"``: what training ``spec`` in ``out`` would do.

    Raises :class:`DataError` when ``out`` holds a run that differs outside :data:`MUTABLE`.
    """
    path = Path(out) / RUN
    if not path.is_file():
        return "new"
    wanted = flatten_config({**spec.to_json(), "data": spec.data.resolved().to_json()})
    stored = flatten_config(read_spec(path).to_json())  # checked: a foreign run.json is an error
    for name in sorted(set(stored) | set(wanted)):
        old, new = stored.get(name), wanted.get(name)
        if old != new and name not in MUTABLE:
            raise DataError(
                f"{path}: this folder holds a run with {name} = {old!r}, not {new!r}; choose another --out"
            )
    return "finished" if stored == wanted and (Path(out) / TEST_METRICS).is_file() else "unfinished"


def ensure_run(
    spec: RunSpec,
    out: str | Path,
    *,
    workers: int | None = None,
    show_progress: bool = True,
    echo: Callable[[str], None] = print,
) -> tuple[list[TargetError], bool]:
    """Train ``spec`` in ``out`` unless it is finished there; returns test errors and whether it trained."""
    if run_state(spec, out) == "finished":
        return read_errors_csv(Path(out) / TEST_METRICS), False
    return train_run(spec, out, workers=workers, show_progress=show_progress, echo=echo), True


def model_dirs(out: str | Path) -> list[tuple[Path, list[str]]]:
    """The model folders of the run in ``out`` and their targets."""
    out = Path(out)
    return [(out / sub if sub else out, names) for sub, names in read_spec(out / RUN).groups()]


def validation_errors(out: str | Path) -> list[TargetError]:
    """The validation errors of each model of a run at its best epoch (that of ``best.pt``), from
    ``metrics.csv``; their :func:`~mpnn.train.metrics.mean_ratio` ranks runs."""
    errors: list[TargetError] = []
    for run_dir, names in model_dirs(out):
        path = run_dir / METRICS
        if not path.is_file():
            raise DataError(f"{path}: no such file (not trained yet?)")
        columns = ["valid_ratio", *(f"valid_mae_{name}" for name in names)]
        rows = read_csv_rows(path, columns)
        if not rows:
            raise DataError(f"{path}: no epochs yet")
        ratios = [_ratio(path, line, row) for line, row in rows]
        finite = [k for k, r in enumerate(ratios) if math.isfinite(r)]
        if not finite:
            raise DataError(f"{path}: no finite validation error (the training diverged)")
        line, best = rows[min(finite, key=lambda k: ratios[k])]  # the first minimum, as fit keeps
        for name in names:
            c = TARGETS.index(name)
            mae = csv_number(path, line, best, f"valid_mae_{name}")
            errors.append(TargetError(name, UNITS[c], mae, CHEMICAL_ACCURACY[c]))
    return errors


def _ratio(path: Path, line: int, row: dict[str, str]) -> float:
    """A row's ``valid_ratio``: a number (NaN or inf for an epoch that diverged)."""
    try:
        return float(row["valid_ratio"])
    except (TypeError, ValueError):
        text = row["valid_ratio"]
        raise DataError(f"{path}:{line}: valid_ratio: expected a number, got {text!r}") from None


# -- built-in files --------------------------------------------------------------------------------
def builtin_names(folder: str) -> list[str]:
    """Names of the built-in files of ``folder`` (``"spaces"`` or ``"ablations"``)."""
    root = resources.files("mpnn.experiments").joinpath(folder)
    return sorted(p.name[: -len(".json")] for p in root.iterdir() if p.name.endswith(".json"))


def read_file_or_builtin(text: str, folder: str, what: str) -> tuple[dict[str, Any], str, Path | None]:
    """(mapping, name for messages, folder that relative paths start from) of a file or built-in name."""
    path = Path(text).expanduser()
    if path.is_file() or (path.exists() and text not in builtin_names(folder)):  # a FIFO, a folder:
        return load_config(path), str(path), path.resolve().parent  # refused by load_config
    if text in builtin_names(folder):
        builtin = resources.files("mpnn.experiments").joinpath(folder, f"{text}.json")
        return load_config(Path(str(builtin))), f"{what} {text!r}", None
    builtins = ", ".join(builtin_names(folder))
    raise DataError(f"{text}: no such file, nor a built-in {what} ({builtins})")


def _base(
    mapping: dict[str, Any], where: str, base_dir: Path | None, keys: tuple[str, ...]
) -> dict[str, Any]:
    bad = [key for key in mapping if key not in keys]
    if bad:
        raise DataError(f"{where}: unknown section {bad[0]!r}; expected {', '.join(keys)}")
    base = mapping.get("base", {})
    if not isinstance(base, dict):
        raise DataError(f"{where}: base must be a mapping of run settings")
    return normalize_config(base, f"{where}: base", base_dir=base_dir)


# -- searches --------------------------------------------------------------------------------------
@dataclass
class SearchSpace:
    """A base configuration and the distributions of the searched settings.

    Attributes:
        base: normalised configuration shared by every trial.
        space: dotted setting name -> (distribution, its arguments).
        source: the file or built-in name, for messages.
    """

    base: dict[str, Any]
    space: dict[str, tuple[str, list[Any]]]
    source: str

    def to_json(self) -> dict[str, Any]:
        return {"base": self.base, "space": {name: {kind: args} for name, (kind, args) in self.space.items()}}


def load_space(text: str) -> SearchSpace:
    """The search space of a JSON/YAML file or a built-in name (:func:`builtin_names` ``("spaces")``)."""
    mapping, where, base_dir = read_file_or_builtin(text, "spaces", "search space")
    base = _base(mapping, where, base_dir, ("description", "base", "space"))
    space = mapping.get("space")
    if not isinstance(space, dict) or not space:
        raise DataError(f"{where}: space must map settings like 'training.lr' to distributions")
    return SearchSpace(base, {name: _distribution(name, d, where) for name, d in space.items()}, where)


def _distribution(name: str, value: Any, where: str) -> tuple[str, list[Any]]:
    section, _, key = name.partition(".")
    if name != "joint" and (section not in ("data", "model", "training") or not key):
        raise DataError(f"{where}: space: {name!r} is not a setting like 'training.lr' or 'model.steps'")
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in DISTRIBUTIONS:
        raise DataError(f"{where}: space.{name}: expected {_FORMS}")
    kind, args = next(iter(value.items()))
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise DataError(f"{where}: space.{name}: choice needs a non-empty list of values")
        return kind, args
    numbers = isinstance(args, list) and len(args) == 2 and all(is_number(a) for a in args)
    if not numbers or args[0] > args[1] or not math.isfinite(float(args[1]) - float(args[0])):
        raise DataError(
            f"{where}: space.{name}: {kind} needs finite [low, high] with low <= high, got {args!r}"
        )
    if kind == "int" and max(abs(a) for a in args) > MAX_SEED:
        raise DataError(f"{where}: space.{name}: int bounds beyond 2**63, got {args!r}")
    if kind == "log_uniform" and args[0] <= 0:
        raise DataError(f"{where}: space.{name}: log_uniform needs low > 0, got {args[0]!r}")
    if kind == "int" and not all(float(a).is_integer() for a in args):
        raise DataError(f"{where}: space.{name}: int needs integer bounds, got {args!r}")
    return kind, list(args)


def sample(space: SearchSpace, seed: int, trial: int) -> dict[str, Any]:
    """The settings of trial ``trial`` (dotted name -> plain Python value), a function of
    ``(seed, trial)`` and the space only."""
    rng = np.random.default_rng([seed, trial])
    values: dict[str, Any] = {}
    for name in sorted(space.space):
        kind, args = space.space[name]
        if kind == "uniform":
            values[name] = float(rng.uniform(args[0], args[1]))
        elif kind == "log_uniform":
            values[name] = float(np.exp(rng.uniform(np.log(args[0]), np.log(args[1]))))
        elif kind == "int":
            values[name] = int(rng.integers(int(args[0]), int(args[1]), endpoint=True))
        else:
            values[name] = copy.deepcopy(args[int(rng.integers(len(args)))])
    return values


def nest(values: dict[str, Any]) -> dict[str, Any]:
    """Dotted settings -> a configuration (``{"training.lr": 1e-4}`` -> ``{"training": {"lr": 1e-4}}``)."""
    config: dict[str, Any] = {}
    for name, value in values.items():
        section, _, key = name.partition(".")
        if key:
            config.setdefault(section, {})[key] = value
        else:
            config[section] = value
    return config


@dataclass
class TrialResult:
    """One finished trial: its number, sampled settings, validation and test mean error ratios."""

    trial: int
    values: dict[str, Any]
    valid_ratio: float
    test_ratio: float


def trial_dir(out: str | Path, trial: int) -> Path:
    return Path(out) / f"trial-{trial:03d}"


def trial_spec(space: SearchSpace, overrides: dict[str, Any], seed: int, trial: int) -> RunSpec:
    """The run of one trial: the base, then ``overrides`` (the command line), then the draw."""
    where = f"{space.source}: trial {trial}"
    drawn = normalize_config(nest(sample(space, seed, trial)), where)
    return spec_from_config(merge_configs(space.base, overrides, drawn), where)


def run_search(
    space: SearchSpace,
    out: str | Path,
    *,
    trials: int,
    seed: int,
    overrides: dict[str, Any] | None = None,
    workers: int | None = None,
    show_progress: bool = True,
    echo: Callable[[str], None] = print,
) -> list[TrialResult]:
    """Run (or resume) trials ``0 .. trials-1`` in ``out``; returns them sorted by validation ratio.

    ``echo`` gets one line before and after each trial, and the runs' own lines with ``show_progress``.
    """
    out, overrides = Path(out), overrides or {}
    specs = [trial_spec(space, overrides, seed, i) for i in range(trials)]  # all valid before any work
    stored = {**space.to_json(), "seed": seed}
    check_output_folder(out, outputs.SEARCH)
    if (out / SEARCH).is_file() and load_json(out / SEARCH) != stored:
        raise DataError(
            f"{out / SEARCH}: this folder holds a search with another space or seed; choose another --out"
        )
    check_all(specs, [trial_dir(out, i) for i in range(trials)], out, workers, show_progress)
    save_json(stored, out / SEARCH)
    results: list[TrialResult] = []
    for i, spec in enumerate(specs):
        values, folder = sample(space, seed, i), trial_dir(out, i)
        drawn = ", ".join(f"{name}={_short(v)}" for name, v in values.items())
        echo(f"trial {i + 1}/{trials} ({drawn}) -> {folder}")
        errors, trained = ensure_run(
            spec, folder, workers=workers, show_progress=show_progress, echo=_quiet(echo, show_progress)
        )
        result = TrialResult(i, values, mean_ratio(validation_errors(folder)), mean_ratio(errors))
        results.append(result)
        write_text(search_csv(results, list(space.space)), out / SEARCH_CSV)
        best = min(results, key=lambda r: (r.valid_ratio, r.trial))
        echo(
            f"trial {i + 1}/{trials}{'' if trained else ' (finished before)'}: valid ratio "
            f"{result.valid_ratio:.3f}, test ratio {result.test_ratio:.3f}; best: trial {best.trial} "
            f"(valid {best.valid_ratio:.3f})"
        )
    return sorted(results, key=lambda r: (r.valid_ratio, r.trial))


def check_all(
    specs: Sequence[RunSpec], folders: Sequence[Path], out: Path, workers: int | None, show_progress: bool
) -> None:
    """Check every run of a search or comparison before the first is trained or anything is written:
    ``out`` holds no data file, each folder is new or holds this run (:func:`run_state`), and its
    models build and resume files load (:func:`mpnn.train.run.check_runs`)."""
    data = [spec.data.resolved() for spec in specs]
    check_outputs(folders=[out], inputs=[p for d in data for p in (d.source, d.uncharacterized, d.atomref)])
    for spec, folder in zip(specs, folders, strict=True):
        run_state(spec, folder)
    check_runs(list(zip(specs, folders, strict=True)), workers=workers, show_progress=show_progress)


def _quiet(echo: Callable[[str], None], show_progress: bool) -> Callable[[str], None]:
    """The echo of a run's own lines (data, epochs): silent without progress output."""
    return echo if show_progress else lambda _: None


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _cell(value: Any) -> str:
    """A sampled value in ``search.csv``: floats exactly, strings as they are, the rest as JSON."""
    return repr(value) if isinstance(value, float) else value if isinstance(value, str) else json.dumps(value)


def search_csv(results: Sequence[TrialResult], names: Sequence[str]) -> str:
    """``search.csv``: trial, the sampled settings, valid_ratio, test_ratio; best validation first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["trial", *sorted(names), "valid_ratio", "test_ratio"])
    for r in sorted(results, key=lambda r: (r.valid_ratio, r.trial)):
        cells = [_cell(r.values[n]) for n in sorted(names)]
        writer.writerow([r.trial, *cells, repr(r.valid_ratio), repr(r.test_ratio)])
    return buffer.getvalue()


def format_search(results: Sequence[TrialResult], top: int = 10) -> str:
    """An aligned text table of the ``top`` trials (best validation ratio first)."""
    names = sorted(results[0].values) if results else []
    rows = [["trial", *names, "valid", "test"]]
    for r in sorted(results, key=lambda r: (r.valid_ratio, r.trial))[:top]:
        rows.append(
            [
                str(r.trial),
                *[_short(r.values[n]) for n in names],
                f"{r.valid_ratio:.3f}",
                f"{r.test_ratio:.3f}",
            ]
        )
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    return "".join("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + "\n" for row in rows)
