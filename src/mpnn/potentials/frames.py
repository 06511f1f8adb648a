"""Trajectories written frame by frame: extended XYZ appended to ``<path>.partial``, renamed at the end.

Each frame is formatted first, then appended and flushed in one write. The ``.partial`` file is
created with the first frame and renamed to ``path`` by :meth:`FrameWriter.finish`, so a run that
stops early (an error, an interruption) leaves an existing ``path`` as it was and the frames
written so far readable in ``<path>.partial``; a run stopped before its first frame leaves no file.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mpnn.errors import DataError

__all__ = ["FrameWriter", "clear_extras", "frame", "frame_extras"]

#: ``results`` keys that a trajectory frame keeps in its ``info`` (per structure) and ``arrays``
#: (per atom), when the calculator gives them.
FRAME_INFO = ("extrapolation_warnings", "energy_std", "max_force_std")
FRAME_ARRAYS = ("extrapolation", "forces_std")


def clear_extras(atoms: Atoms) -> Atoms:
    """``atoms`` (changed in place) without the keys :func:`frame_extras` writes: a structure read
    from an earlier run's output (a committee's deviations, counts of another potential) must not
    pass them off as the results of the potential that evaluates it now."""
    for key in (*FRAME_INFO, "close_pairs"):
        atoms.info.pop(key, None)
    for key in FRAME_ARRAYS:
        if key in atoms.arrays:
            del atoms.arrays[key]
    return atoms


def frame_extras(results: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(info, arrays) of a frame written from a calculator's ``results``: the extrapolation counts,
    the committee's deviations and, when there are any, the number of too-close pairs."""
    info = {key: results[key] for key in FRAME_INFO if key in results}
    if results.get("close_pairs"):
        info["close_pairs"] = int(results["close_pairs"])
    return info, {key: np.asarray(results[key]) for key in FRAME_ARRAYS if key in results}


def frame(
    atoms: Atoms, results: dict[str, Any], info: dict[str, Any], extras: dict[str, Any] | None = None
) -> Atoms:
    """A copy of ``atoms`` holding ``results`` (energy eV, forces eV/A, stress eV/A^3) and ``info``;
    ``extras``: a :class:`~mpnn.potentials.calculator.MpnnCalculator`'s ``results`` of this
    structure, whose extrapolation counts and committee deviations the frame keeps
    (:func:`frame_extras`)."""
    copy = clear_extras(atoms.copy())
    copy.calc = SinglePointCalculator(copy, **results)
    more, arrays = frame_extras(extras or {})
    copy.info.update(more)
    copy.info.update(info)
    for key, values in arrays.items():
        copy.arrays[key] = values
    return copy


class FrameWriter:
    """``FrameWriter(path)``: frames to ``<path>.partial``, renamed to ``path`` by :meth:`finish`
    (as a context manager: at a normal end of its block).

    ``path=None`` writes nothing (every method is then a no-op).
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = None if path is None else Path(path)
        self.partial = None if self.path is None else self.path.with_name(self.path.name + ".partial")
        self.count = 0
        self._file: io.TextIOBase | None = None

    def write(self, atoms: Atoms) -> None:
        """Append one frame (``atoms`` with its calculator's results and ``info``)."""
        if self.partial is None:
            return
        from ase.io import write

        buffer = io.StringIO()
        write(buffer, atoms, format="extxyz")
        if self._file is None:  # created at the first frame: a run that records none leaves no file
            self.partial.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.partial, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._file.write(buffer.getvalue())
        self._file.flush()
        self.count += 1

    def where(self) -> str:
        """`` (the frames so far are in <path>.partial)`` once a frame is written, else ``""``."""
        return f" (the frames so far are in {self.partial})" if self._file is not None else ""

    def close(self) -> None:
        """Close the ``.partial`` file (kept; :meth:`finish` renames it)."""
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, kind: Any, error: BaseException | None, trace: Any) -> None:
        """Close the file; at a normal end rename it (:meth:`finish`); a :class:`DataError` gains
        where the frames so far are (same error type), any other exception passes unchanged."""
        self.close()
        if error is None:
            self.finish()
        elif isinstance(error, DataError):
            raise type(error)(f"{error}{self.where()}") from None

    def finish(self) -> None:
        """Close and rename ``<path>.partial`` to ``path`` (replacing it) if a frame was written."""
        self.close()
        if self._file is not None and self.partial is not None and self.path is not None:
            os.replace(self.partial, self.path)
