"""Plain XYZ files: what ``mpnn predict`` reads when a structure is not a QM9 record.

One frame is::

    3                      <- number of atoms n (> 0)
    water, any comment     <- comment line (may be empty)
    O  0.000  0.000  0.117 <- n lines: element x y z (Angstrom); further columns are ignored
    H  0.000  0.757 -0.467
    H  0.000 -0.757 -0.467

and a file holds one or more frames back to back (blank lines between frames are allowed).
Every problem raises :class:`~mpnn.errors.DataError` as ``"file:line: what"`` with a 1-based
line number: a bad count line, a missing atom line, an unparsable or non-finite coordinate,
an element other than H, C, N, O, F (the only ones the QM9 featurisation knows), an empty
molecule, a count larger than the number of lines left in the file (found at the first missing
line; nothing is allocated from the count), or two atoms closer than :data:`MIN_DISTANCE`. Atoms closer than
:data:`mpnn.sanity.CLOSE_FRACTION` x the sum of their covalent radii get one
:class:`~mpnn.sanity.UnphysicalWarning` per file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mpnn.errors import DataError
from mpnn.sanity import close_atoms, warn_close_atoms

#: Elements that :func:`mpnn.data.featurize.featurize_molecule` can featurise.
ELEMENTS = ("H", "C", "N", "O", "F")
_ATOMIC_NUMBERS = {"1": "H", "6": "C", "7": "N", "8": "O", "9": "F"}
ATOMIC_NUMBERS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}

#: Two atoms closer than this (Angstrom) are an error (duplicated or corrupted lines).
MIN_DISTANCE = 0.5


@dataclass(frozen=True)
class XYZFrame:
    """One structure of an XYZ file.

    Attributes:
        symbols: n element symbols, capitalised (``"C"``, ``"H"``, ...).
        positions: (n, 3) float64 Cartesian coordinates, Angstrom.
        comment: the comment line, stripped.
        source: the file name used in error messages.
        line: 1-based line number of the frame's count line.
    """

    symbols: tuple[str, ...]
    positions: np.ndarray
    comment: str
    source: str
    line: int

    @property
    def num_atoms(self) -> int:
        return len(self.symbols)


def read_xyz(path: str | Path) -> list[XYZFrame]:
    """All frames of the XYZ file at ``path`` (at least one)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read: {error}") from None
    return parse_xyz_frames(text, str(path))


def parse_xyz_frames(text: str, source: str) -> list[XYZFrame]:
    """Parse every frame of ``text``; ``source`` names the file in error messages."""
    lines = text.splitlines()
    frames: list[XYZFrame] = []
    notes: list[tuple[str, str]] = []
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        frame = _parse_frame(lines, i, source)
        frames.append(frame)
        numbers = [ATOMIC_NUMBERS[symbol] for symbol in frame.symbols]
        note = close_atoms(np.asarray(numbers), frame.positions)
        if note:
            notes.append((f"line {frame.line}", note))
        i += 2 + frame.num_atoms
    if not frames:
        raise DataError(f"{source}:1: no structure in file (expected an atom count line)")
    warn_close_atoms(notes, source)
    return frames


def _parse_frame(lines: list[str], start: int, source: str) -> XYZFrame:
    """The frame whose count line is ``lines[start]`` (0-based index)."""
    count = _parse_count(lines[start], source, start + 1)
    if start + 1 >= len(lines):
        raise DataError(f"{source}:{start + 2}: missing comment line after the atom count")
    symbols: list[str] = []
    rows: list[tuple[float, float, float]] = []  # grown line by line: a count is no promise
    for k in range(count):
        index = start + 2 + k
        if index >= len(lines) or not lines[index].strip():
            raise DataError(
                f"{source}:{index + 1}: expected atom {k + 1} of {count} as 'El x y z', "
                f"found {'end of file' if index >= len(lines) else 'a blank line'}"
            )
        symbol, xyz = _parse_atom(lines[index], source, index + 1)
        symbols.append(symbol)
        rows.append(xyz)
    positions = np.array(rows, dtype=np.float64)
    _check_distances(positions, source, start + 3)
    return XYZFrame(tuple(symbols), positions, lines[start + 1].strip(), source, start + 1)


def _parse_count(line: str, source: str, lineno: int) -> int:
    """The atom count of a count line; it must be a positive integer."""
    token = line.split()[0] if line.split() else ""
    try:
        count = int(token)
    except ValueError:
        raise DataError(f"{source}:{lineno}: expected the number of atoms, found {line.strip()!r}") from None
    if count == 0:
        raise DataError(f"{source}:{lineno}: empty molecule (0 atoms)")
    if count < 0:
        raise DataError(f"{source}:{lineno}: negative number of atoms ({count})")
    return count


def _parse_atom(line: str, source: str, lineno: int) -> tuple[str, tuple[float, float, float]]:
    """``El x y z [...]`` -> (symbol, coordinates); element and finiteness are checked."""
    parts = line.split()
    if len(parts) < 4:
        raise DataError(f"{source}:{lineno}: expected 'El x y z', found {line.strip()!r}")
    symbol = _ATOMIC_NUMBERS.get(parts[0], parts[0].capitalize())
    if symbol not in ELEMENTS:
        raise DataError(
            f"{source}:{lineno}: unknown element {parts[0]!r} (only {', '.join(ELEMENTS)} can be featurised)"
        )
    try:
        xyz = tuple(float(p.replace("*^", "e")) for p in parts[1:4])
    except ValueError:
        raise DataError(f"{source}:{lineno}: cannot read coordinates from {line.strip()!r}") from None
    if not all(math.isfinite(c) for c in xyz):
        raise DataError(f"{source}:{lineno}: non-finite coordinate in {line.strip()!r}")
    return symbol, xyz  # type: ignore[return-value]


def _check_distances(positions: np.ndarray, source: str, first_atom_line: int) -> None:
    """Raise if two atoms are closer than :data:`MIN_DISTANCE`; the message names both lines."""
    from mpnn.neighbors import neighbor_list

    if positions.shape[0] < 2:
        return
    try:  # O(n) memory: only the pairs closer than MIN_DISTANCE
        first, second, _ = neighbor_list(positions, MIN_DISTANCE)
    except DataError as error:  # atoms at the same position: the distance is 0
        first, second = _same_position(positions)
        if not first.size:
            raise DataError(f"{source}:{first_atom_line}: {error}") from None
    if first.size:
        distances = np.linalg.norm(positions[second] - positions[first], axis=1)
        k = int(np.argmin(distances))
        i, j = sorted((int(first[k]), int(second[k])))
        raise DataError(
            f"{source}:{first_atom_line + j}: atom {j + 1} is {distances[k]:.3f} Angstrom "
            f"from atom {i + 1} (line {first_atom_line + i}); atoms closer than "
            f"{MIN_DISTANCE} Angstrom overlap"
        )


def _same_position(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first two atoms (by index) at exactly the same position: (i,), (j,) arrays."""
    _, first, inverse = np.unique(positions, axis=0, return_index=True, return_inverse=True)
    owner = first[inverse.reshape(-1)]
    dup = np.flatnonzero(owner != np.arange(positions.shape[0]))[:1]
    return owner[dup], dup
