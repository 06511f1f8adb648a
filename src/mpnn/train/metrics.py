"""Errors in target units, error ratios (MAE / chemical accuracy), and their table and CSV files.

The error ratio is Gilmer et al.'s yardstick: a ratio below 1 is chemical accuracy.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mpnn.data.qm9 import CHEMICAL_ACCURACY, TARGETS, UNITS
from mpnn.errors import DataError
from mpnn.files import write_text


def target_columns(names: Sequence[str]) -> list[int]:
    """Columns of the QM9 targets ``names`` in :data:`mpnn.data.qm9.TARGETS` order."""
    return [TARGETS.index(name) for name in names]


@dataclass(frozen=True)
class TargetError:
    """The error of one target on one split.

    Attributes:
        target: name (``"U0"``).
        unit: unit of ``mae`` and ``chemical_accuracy`` (``"eV"``).
        mae: mean absolute error, target units.
        chemical_accuracy: the target's chemical accuracy, target units.
    """

    target: str
    unit: str
    mae: float
    chemical_accuracy: float

    @property
    def ratio(self) -> float:
        """MAE / chemical accuracy."""
        return self.mae / self.chemical_accuracy


def target_errors(names: Sequence[str], predicted: np.ndarray, true: np.ndarray) -> list[TargetError]:
    """Per-target errors of ``predicted`` vs ``true``, both (M, K = len(names)), target units."""
    predicted, true = np.asarray(predicted, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if predicted.shape != true.shape or predicted.shape[1:] != (len(names),):
        raise ValueError(f"target_errors: shapes {predicted.shape} and {true.shape} for {len(names)} targets")
    mae = np.abs(predicted - true).mean(axis=0)
    columns = target_columns(names)
    return [
        TargetError(name, UNITS[c], float(m), CHEMICAL_ACCURACY[c])
        for name, c, m in zip(names, columns, mae, strict=True)
    ]


def mean_ratio(errors: Sequence[TargetError]) -> float:
    """Mean error ratio over targets (Gilmer et al.'s "average" row)."""
    return float(np.mean([e.ratio for e in errors]))


def format_table(errors: Sequence[TargetError], title: str | None = None) -> str:
    """An aligned text table: target, unit, MAE, chem. acc., ratio; then the mean ratio."""
    header = ("target", "unit", "MAE", "chem. acc.", "ratio")
    rows = [(e.target, e.unit, f"{e.mae:.4g}", f"{e.chemical_accuracy:g}", f"{e.ratio:.2f}") for e in errors]
    rows.append(("mean", "", "", "", f"{mean_ratio(errors):.2f}"))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    left = (True, True, False, False, False)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if lj else c.rjust(w) for c, w, lj in zip(cells, widths, left, strict=True)
        )

    rule = "-" * len(line(header))
    body = [line(header), rule, *map(line, rows[:-1]), rule, line(rows[-1])]
    return "\n".join(([title] if title else []) + body).rstrip() + "\n"


def errors_csv(errors: Sequence[TargetError]) -> str:
    """CSV text with columns target, unit, mae, chemical_accuracy, ratio; a final ``mean`` row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["target", "unit", "mae", "chemical_accuracy", "ratio"])
    for e in errors:
        writer.writerow([e.target, e.unit, repr(e.mae), repr(e.chemical_accuracy), repr(e.ratio)])
    writer.writerow(["mean", "", "", "", repr(mean_ratio(errors))])
    return out.getvalue()


def write_errors_csv(errors: Sequence[TargetError], path: str | Path) -> None:
    """Write :func:`errors_csv` atomically to ``path``."""
    write_text(errors_csv(errors), path)


#: The columns :func:`read_errors_csv` needs (an ensemble's file has more).
ERROR_COLUMNS = ("target", "unit", "mae", "chemical_accuracy")


def read_csv_rows(path: str | Path, columns: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) of each data row of a CSV file with a header holding ``columns``.

    A missing, unreadable or foreign file (no such header), or not a regular file, is a
    :class:`DataError` naming it.
    """
    from mpnn.files import check_regular_file

    check_regular_file(path, "a CSV table")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [c for c in columns if c not in header]
            if missing:
                raise DataError(
                    f"{path}: not a file of mpnn (no column {missing[0]!r}; expected {', '.join(columns)})"
                )
            return [(reader.line_num, row) for row in reader]
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: cannot read: {getattr(error, 'strerror', None) or error}") from None


def csv_number(
    path: str | Path, line: int, row: dict[str, str], column: str, *, positive: bool = False
) -> float:
    """``row[column]`` as a finite float (positive if asked); else a :class:`DataError` naming
    ``path:line`` and the column."""
    text = row.get(column)
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or (positive and value <= 0):
        raise DataError(
            f"{path}:{line}: {column}: expected a {'positive' if positive else 'finite'} number, got {text!r}"
        )
    return value


def read_errors_csv(path: str | Path) -> list[TargetError]:
    """The per-target rows of a file written by :func:`write_errors_csv` (or of an ensemble):
    QM9 target names, finite MAEs >= 0 and positive chemical accuracies, checked."""
    errors = []
    for line, row in read_csv_rows(path, ERROR_COLUMNS):
        target = row["target"]
        if target == "mean":
            continue
        if target not in TARGETS:
            raise DataError(f"{path}:{line}: unknown target {target!r}")
        mae = csv_number(path, line, row, "mae")
        if mae < 0:
            raise DataError(f"{path}:{line}: mae: expected a number >= 0, got {row['mae']!r}")
        unit = UNITS[TARGETS.index(target)]
        if row["unit"] != unit:  # the tables of mpnn hold each target in its QM9 unit only
            raise DataError(f"{path}:{line}: unit: {target} is in {unit}, got {row['unit']!r}")
        accuracy = csv_number(path, line, row, "chemical_accuracy", positive=True)
        errors.append(TargetError(target, unit, mae, accuracy))
    if not errors:
        raise DataError(f"{path}: no targets (an empty or unfinished table)")
    if len({e.target for e in errors}) != len(errors):
        raise DataError(f"{path}: a target appears twice")
    return errors


# -- potentials: energies per atom and force components ---------------------------------------------
@dataclass(frozen=True)
class PotentialErrors:
    """Errors of one set: energy per atom (meV/atom) and force components (meV/Angstrom)."""

    split: str
    structures: int
    atoms: int
    energy_mae: float
    energy_rmse: float
    force_mae: float
    force_rmse: float


def potential_errors(
    split: str, energy: Tensor, true_energy: Tensor, atoms: Tensor, forces: Tensor | None, true_forces: Tensor
) -> PotentialErrors:
    """Errors from predicted and true energies (M,) eV, atom counts (M,), forces (N, 3) eV/A."""
    de = ((energy.double() - true_energy.double()) / atoms.double()).abs() * 1e3
    df = (
        (forces.double() - true_forces.double()).abs() * 1e3
        if forces is not None
        else torch.full((1,), math.nan)
    )
    return PotentialErrors(
        split,
        int(energy.numel()),
        int(atoms.sum()),
        float(de.mean()),
        float(de.square().mean().sqrt()),
        float(df.mean()),
        float(df.square().mean().sqrt()),
    )


POTENTIAL_COLUMNS = ("split", "structures", "atoms", "energy_mae", "energy_rmse", "force_mae", "force_rmse")


def potential_errors_csv(rows: Sequence[PotentialErrors]) -> str:
    """``test_metrics.csv``: one row per set; energies meV/atom, forces meV/Angstrom."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(POTENTIAL_COLUMNS)
    for r in rows:
        writer.writerow(
            [r.split, r.structures, r.atoms] + [f"{getattr(r, c):.6g}" for c in POTENTIAL_COLUMNS[3:]]
        )
    return out.getvalue()


def potential_errors_table(rows: Sequence[PotentialErrors], title: str | None = None) -> str:
    """An aligned text table of :class:`PotentialErrors`."""
    header = ("set", "structures", "E MAE", "E RMSE", "F MAE", "F RMSE")
    body = [
        (r.split, str(r.structures), *(f"{getattr(r, c):.3f}" for c in POTENTIAL_COLUMNS[3:])) for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = [
        "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in [header, *body]
    ]
    units = "energies meV/atom, forces meV/Angstrom"
    return "\n".join(([title] if title else []) + [lines[0], "-" * len(lines[0]), *lines[1:], units]) + "\n"
