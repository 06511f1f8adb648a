"""Ensembles of trained runs: the k runs with the best validation error, averaged.

Gilmer et al. (2017, Sec. 8 and Table 2, "ens5") average the predictions of the 5 best models
of their hyperparameter search. With :math:`y^{(j)}_{m}` the prediction of member :math:`j` of
:math:`k` for molecule :math:`m` (target units), the ensemble predicts the mean and reports the
spread (population standard deviation) as its uncertainty:

.. math::
    \\bar y_m = \\frac{1}{k} \\sum_{j=1}^{k} y^{(j)}_m, \\qquad
    s_m = \\Big(\\frac{1}{k} \\sum_{j=1}^{k} \\big(y^{(j)}_m - \\bar y_m\\big)^2\\Big)^{1/2}.

Per target, ``test_metrics.csv`` of an ensemble folder holds the ensemble's MAE and error ratio
(the columns of a run's file, so :mod:`mpnn.experiments.report` reads both), the members' mean MAE
(``member_mae``), the mean spread :math:`\\langle s_m \\rangle` (``spread``) and the Pearson
correlation of :math:`s_m` with :math:`|\\bar y_m - y_m|` (``spread_error_corr``; empty when
either is constant). Members must share their targets, data and split (checked).

An ensemble folder (``ensemble.json``) is read back by :func:`ensemble_members`:
``mpnn predict`` writes :math:`\\bar y_m` and :math:`s_m` per target and ``mpnn evaluate``
prints :func:`evaluate_members` of the members on a split.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import mpnn
from mpnn import outputs
from mpnn.errors import DataError
from mpnn.experiments.search import model_dirs, validation_errors
from mpnn.files import save_json, write_text
from mpnn.outputs import check_output_folder, check_outputs
from mpnn.train.checkpoint import SPLIT, load_model, load_split_file
from mpnn.train.data import DataSpec, load_molecules, load_split
from mpnn.train.loader import target_values
from mpnn.train.metrics import TargetError, mean_ratio, read_errors_csv, target_columns, target_errors
from mpnn.train.predict import predict_table
from mpnn.train.run import RUN, TEST_METRICS, read_spec
from mpnn.train.settings_files import load_json

ENSEMBLE = "ensemble.json"


@dataclass(frozen=True)
class EnsembleError(TargetError):
    """A :class:`TargetError` of the ensemble's mean prediction, with

    Attributes:
        member_mae: mean over members of each member's MAE, target units.
        spread: mean over molecules of the members' standard deviation, target units.
        correlation: Pearson correlation of spread and absolute error over molecules (NaN if
            either is constant).
    """

    member_mae: float
    spread: float
    correlation: float


@dataclass
class Member:
    """A run of the ensemble and its validation mean error ratio (at its best epoch)."""

    run: Path
    valid_ratio: float


def candidate_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run folders (with ``run.json``) named, or found one level inside the folders named (a
    search's trials, a comparison's runs)."""
    runs: list[Path] = []
    for path in map(Path, paths):
        if (path / RUN).is_file():
            runs.append(path)
        elif path.is_dir():
            found = sorted(p.parent for p in path.glob(f"*/{RUN}"))
            if not found:
                raise DataError(f"{path}: no runs in this folder or its subfolders (no {RUN})")
            runs += found
        else:
            raise DataError(f"{path}: no such folder")
    return list(dict.fromkeys(p.resolve() for p in runs))


def _mismatch(run: Path, reference: Path, what: str) -> DataError:
    return DataError(
        f"{run}: not the same {what} as {reference}; an ensemble needs runs on the same "
        "targets, data and split"
    )


def check_targets(runs: Sequence[Path]) -> None:
    """Refuse runs whose targets (``run.json``) differ from those of the first."""
    first = read_spec(runs[0] / RUN).targets
    for run in runs[1:]:
        if read_spec(run / RUN).targets != first:
            raise _mismatch(run, runs[0], "targets")


def is_ensemble(folder: str | Path) -> bool:
    """Whether ``folder`` holds an ensemble of ``mpnn ensemble`` (``ensemble.json``)."""
    return (Path(folder) / ENSEMBLE).is_file()


def ensemble_members(folder: str | Path) -> list[Path]:
    """The member runs of the ensemble in ``folder``, in ``ensemble.json`` order (relative paths
    are taken from ``folder``); each must be a run, and all must share their targets."""
    folder = Path(folder)
    record = load_json(folder / ENSEMBLE)
    try:
        runs = [folder / str(member["run"]) for member in record["members"]]
    except (KeyError, TypeError):
        runs = []
    if not runs:
        raise DataError(f"{folder / ENSEMBLE}: not an ensemble of `mpnn ensemble` (no members)")
    for run in runs:
        if not (run / RUN).is_file():
            raise DataError(f"{folder / ENSEMBLE}: member {run} is not a `mpnn train` run (no {RUN})")
    check_targets(runs)
    return runs


def mean_and_spread(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean :math:`\\bar y` and spread :math:`s` (population std) over members of ``values``
    (k, M, K), float64."""
    values = np.asarray(values, dtype=np.float64)
    return values.mean(axis=0), values.std(axis=0)


def _identity(run: Path) -> tuple[list[str], dict[str, Any], dict[str, np.ndarray]]:
    """(targets, data, split) of a run, for checking that runs can be ensembled."""
    stored = read_spec(run / RUN)
    first = model_dirs(run)[0][0]
    split = {k: np.asarray(v) for k, v in _raw_split(first / SPLIT).items()}
    return list(stored.targets), stored.data.to_json(), split


def _raw_split(path: Path) -> dict[str, Any]:
    return load_split_file(path, ("train", "valid", "test"), None)


def select_members(runs: Sequence[Path], k: int, echo: Callable[[str], None] = print) -> list[Member]:
    """The ``k`` finished runs with the lowest validation mean ratio (ties: path order).

    Every finished run must have the same targets, data and split as the first.
    """
    finished = [r for r in runs if (r / TEST_METRICS).is_file()]
    for run in runs:
        if run not in finished:
            echo(f"skipping {run}: not finished (no {TEST_METRICS})")
    if len(finished) < k:
        raise DataError(f"--k {k}: only {len(finished)} finished runs to choose from")
    reference = _identity(finished[0])
    for run in finished[1:]:
        targets, data, split = _identity(run)
        differs = [part for part in split if not np.array_equal(split[part], reference[2][part])]
        what = "targets" if targets != reference[0] else "data" if data != reference[1] else None
        what = what or (f"{differs[0]} split" if differs else None)
        if what:
            raise _mismatch(run, finished[0], what)
    members = [Member(run, mean_ratio(validation_errors(run))) for run in finished]
    return sorted(members, key=lambda m: m.valid_ratio)[:k]


def member_predictions(run: Path, molecules: Sequence[Any]) -> tuple[list[str], np.ndarray]:
    """(targets in TARGETS order, (M, K) float64 predictions in target units) of one run."""
    models = [(load_model(run_dir)[0], names) for run_dir, names in model_dirs(run)]
    return predict_table(models, molecules)


def ensemble_errors(names: Sequence[str], values: np.ndarray, true: np.ndarray) -> list[EnsembleError]:
    """Errors of the mean of ``values`` (k, M, K) against ``true`` (M, K), with spread statistics."""
    values, true = np.asarray(values, dtype=np.float64), np.asarray(true, dtype=np.float64)
    mean, spread = mean_and_spread(values)
    member_mae = np.abs(values - true).mean(axis=1).mean(axis=0)
    error = np.abs(mean - true)
    out = []
    for c, e in enumerate(target_errors(names, mean, true)):
        s, a = spread[:, c], error[:, c]
        corr = float(np.corrcoef(s, a)[0, 1]) if s.std() > 0 and a.std() > 0 else float("nan")
        out.append(
            EnsembleError(
                e.target, e.unit, e.mae, e.chemical_accuracy, float(member_mae[c]), float(s.mean()), corr
            )
        )
    return out


def ensemble_csv(errors: Sequence[EnsembleError]) -> str:
    """``test_metrics.csv`` of an ensemble (a run's columns, then member_mae, spread, spread_error_corr)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["target", "unit", "mae", "chemical_accuracy", "ratio", "member_mae", "spread", "spread_error_corr"]
    )
    for e in errors:
        corr = "" if np.isnan(e.correlation) else repr(e.correlation)
        writer.writerow(
            [
                e.target,
                e.unit,
                repr(e.mae),
                repr(e.chemical_accuracy),
                repr(e.ratio),
                repr(e.member_mae),
                repr(e.spread),
                corr,
            ]
        )
    writer.writerow(["mean", "", "", "", repr(mean_ratio(errors)), "", "", ""])
    return buffer.getvalue()


def format_ensemble(errors: Sequence[EnsembleError], title: str | None = None) -> str:
    """An aligned text table: target, unit, MAE, ratio, members' MAE, spread, corr.; the mean ratio."""
    header = ("target", "unit", "MAE", "ratio", "member MAE", "spread", "corr.")
    rows = [
        (
            e.target,
            e.unit,
            f"{e.mae:.4g}",
            f"{e.ratio:.2f}",
            f"{e.member_mae:.4g}",
            f"{e.spread:.3g}",
            f"{e.correlation:.2f}",
        )
        for e in errors
    ]
    rows.append(("mean", "", "", f"{mean_ratio(errors):.2f}", "", "", ""))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "-" * len(line(header))
    body = [line(header), rule, *map(line, rows[:-1]), rule, line(rows[-1])]
    return "\n".join(([title] if title else []) + body).rstrip() + "\n"


def build_ensemble(
    paths: Sequence[str | Path],
    k: int,
    out: str | Path,
    *,
    workers: int | None = None,
    echo: Callable[[str], None] = print,
) -> list[EnsembleError]:
    """Choose the ``k`` best runs among ``paths``, evaluate their mean on the test split and write
    ``out/ensemble.json`` and ``out/test_metrics.csv``; returns the errors."""
    if k < 1:
        raise DataError(f"--k {k}: expected a positive number of members")
    candidates = candidate_runs(paths)
    check_outputs(folders=[out], read_dirs=[*paths, *candidates])
    check_output_folder(out, outputs.ENSEMBLE)  # a new folder, or an ensemble to replace
    members = select_members(candidates, k, echo)
    for j, member in enumerate(members):
        echo(f"member {j + 1}/{k}: {member.run} (valid ratio {member.valid_ratio:.3f})")
    errors, data, count = evaluate_members([m.run for m in members], "test", workers=workers)
    names = [e.target for e in errors]
    out = Path(out)
    record = {
        "mpnn_version": mpnn.__version__,
        "k": k,
        "targets": names,
        "members": [
            {
                "run": str(m.run),
                "valid_ratio": m.valid_ratio,
                "test_ratio": mean_ratio(read_errors_csv(m.run / TEST_METRICS)),
            }
            for m in members
        ],
        "data": data.to_json(),
        "test_molecules": count,
    }
    write_text(ensemble_csv(errors), out / TEST_METRICS)
    save_json(record, out / ENSEMBLE)
    return errors


def evaluate_members(
    runs: Sequence[Path], part: str = "test", data: DataSpec | None = None, *, workers: int | None = None
) -> tuple[list[EnsembleError], DataSpec, int]:
    """Errors of the mean of ``runs`` on split ``part`` (``train``, ``valid``, ``test``) of the
    first run's split (``split.pt``) and data (or ``data``): (errors, resolved data, molecules)."""
    first = runs[0]
    data = (data or read_spec(first / RUN).data).resolved()
    dataset = load_molecules(data, workers=workers, progress=False)
    indices = load_split(model_dirs(first)[0][0] / SPLIT, len(dataset))[part]
    molecules = [dataset[int(i)] for i in indices]
    values = []
    for run in runs:
        names, predicted = member_predictions(run, molecules)
        values.append(predicted)
    true = target_values(dataset, indices, target_columns(names))
    return ensemble_errors(names, np.stack(values), true), data, len(indices)
