"""DeePMD-kit's npy data sets, read frame by frame (:func:`find_systems`, :func:`iter_frames`).

A *system* is a folder of frames that share their atoms::

    type_map.raw         element symbol of each type index, one a line (required here)
    type.raw             type index of each of the n atoms, one a line (the same for every frame)
    nopbc                optional: the frames are not periodic (no box.npy needed)
    set.000/coord.npy    (frames, 3n) positions, Angstrom
    set.000/box.npy      (frames, 9) cell vectors as rows, row-major, Angstrom
    set.000/energy.npy   (frames,) total energy, eV (optional)
    set.000/force.npy    (frames, 3n) forces, eV/Angstrom (optional)
    set.001/ ...

DeePMD files do not record units; these are DeePMD's conventions (Angstrom, eV). Arrays are
opened with ``numpy.load(mmap_mode="r", allow_pickle=False)`` (no code runs; a header declaring
more data than the file holds is refused by numpy) and copied one frame at a time. Every
problem is a one-line :class:`~mpnn.errors.DataError` naming the file; :func:`check_system`
reads every header before the first frame is converted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import chemical_symbols

from mpnn.errors import DataError
from mpnn.files import read_text

#: Largest type.raw / type_map.raw (bytes).
MAX_RAW_BYTES = 64 * 2**20


@dataclass
class System:
    """A checked DeePMD system: its folder, element symbol per atom, sets and frames per set."""

    folder: Path
    symbols: list[str]
    sets: list[Path]
    frames: list[int]
    periodic: bool
    energy: bool
    forces: bool

    @property
    def num_frames(self) -> int:
        return sum(self.frames)


def find_systems(path: str | Path) -> list[Path]:
    """``path`` if it holds ``type.raw``, else every folder below it that does (sorted)."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: not a folder of DeePMD data")
    if (path / "type.raw").is_file():
        return [path]
    systems = sorted(p.parent for p in path.rglob("type.raw") if p.is_file())
    if not systems:
        raise DataError(f"{path}: no DeePMD system (a folder with type.raw) in this folder")
    return systems


def _load(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:  # ValueError: not .npy, object arrays, short data
        raise DataError(f"{path}: not a readable .npy array ({' '.join(str(error).split())})") from None


def check_system(folder: str | Path) -> System:
    """Read and check a system's type files and every array header (no frame data)."""
    folder = Path(folder)
    names = read_text(folder / "type_map.raw", "type_map.raw", MAX_RAW_BYTES).split()
    unknown = [s for s in names if s not in chemical_symbols[1:]]
    if not names or unknown:
        raise DataError(f"{folder}/type_map.raw: needs element symbols, got {unknown[:1] or 'none'}")
    try:
        types = [int(t) for t in read_text(folder / "type.raw", "type.raw", MAX_RAW_BYTES).split()]
    except ValueError:
        raise DataError(f"{folder}/type.raw: a type index is not an integer") from None
    if not types or min(types) < 0 or max(types) >= len(names):
        raise DataError(f"{folder}/type.raw: needs type indices in 0..{len(names) - 1}, one per atom")
    n = len(types)
    periodic = not (folder / "nopbc").exists()
    sets = sorted(p for p in folder.glob("set.*") if p.is_dir())
    if not sets:
        raise DataError(f"{folder}: no set.* folders")
    has = {name: all((s / f"{name}.npy").is_file() for s in sets) for name in ("energy", "force")}
    frames = []
    for s in sets:
        shapes = {"coord": (-1, 3 * n)}
        if periodic:
            shapes["box"] = (-1, 9)
        if has["energy"]:
            shapes["energy"] = (-1,)
        if has["force"]:
            shapes["force"] = (-1, 3 * n)
        count = None
        for name, shape in shapes.items():
            array = _load(s / f"{name}.npy")
            if name == "energy" and array.ndim == 2 and array.shape[1] == 1:
                array = array[:, 0]
            if array.ndim != len(shape) or array.shape[1:] != shape[1:] or array.dtype.kind != "f":
                raise DataError(
                    f"{s}/{name}.npy: shape {array.shape} {array.dtype}, expected (frames, "
                    f"{', '.join(map(str, shape[1:]))}) floating point for {n} atoms"
                )
            if count is not None and array.shape[0] != count:
                raise DataError(f"{s}/{name}.npy: {array.shape[0]} frames, coord.npy has {count}")
            count = array.shape[0]
        frames.append(int(count))
    return System(folder, [names[t] for t in types], sets, frames, periodic, has["energy"], has["force"])


def iter_frames(system: System) -> Iterator[tuple[Path, int, Atoms]]:
    """``(set folder, frame index in the set, atoms)`` of each frame of a checked system; ``atoms``
    has the energy and forces (when the system has them) in a ``SinglePointCalculator``. One set
    at a time is mapped; each frame is copied out of it."""
    n = len(system.symbols)
    for s, count in zip(system.sets, system.frames, strict=True):
        arrays = {"coord": _load(s / "coord.npy")}
        if system.periodic:
            arrays["box"] = _load(s / "box.npy")
        if system.energy:
            arrays["energy"] = _load(s / "energy.npy").reshape(count)
        if system.forces:
            arrays["force"] = _load(s / "force.npy")
        for k in range(count):
            frame = {name: np.array(a[k], dtype=np.float64) for name, a in arrays.items()}
            atoms = Atoms(
                system.symbols,
                positions=frame["coord"].reshape(n, 3),
                cell=frame["box"].reshape(3, 3) if system.periodic else None,
                pbc=system.periodic,
            )
            if system.energy or system.forces:
                atoms.calc = SinglePointCalculator(
                    atoms,
                    energy=float(frame["energy"]) if system.energy else None,
                    forces=frame["force"].reshape(n, 3) if system.forces else None,
                )
            yield s, k, atoms
