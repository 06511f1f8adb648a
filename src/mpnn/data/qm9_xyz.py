"""Parser of one file of the QM9 release (Ramakrishnan et al. 2014), ``dsgdb9nsd_NNNNNN.xyz``.

The format (tab separated; see ``shared/data/SOURCES.md``), for a molecule of n atoms:

====================  ============================================================================
line                  content
====================  ============================================================================
1                     n
2                     ``gdb <id>`` and 15 properties: A B C (GHz), mu (D), alpha (Bohr^3), homo
                      lumo gap (Hartree), r2 (Bohr^2), zpve U0 U H G (Hartree), Cv (cal/(mol K))
3 .. n+2              element, x, y, z (Angstrom), Mulliken charge (e)
n+3                   harmonic frequencies (cm^-1)
n+4                   SMILES of GDB-17 and of the B3LYP geometry
n+5                   InChI of GDB-17 and of the B3LYP geometry
====================  ============================================================================

Some numbers use Mathematica notation (``1.2*^-6`` = 1.2e-6). Every error is a
:class:`~mpnn.errors.DataError` whose message starts with ``<source>:<line>:``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mpnn.errors import DataError

#: The elements of QM9, with their atomic numbers.
ATOMIC_NUMBERS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}

#: The 15 values of line 2, in file order.
PROPERTY_NAMES = tuple("A B C mu alpha homo lumo gap r2 zpve U0 U H G Cv".split())


@dataclass
class QM9Record:
    """One molecule of the QM9 release, values as found in its file.

    Attributes:
        index: the QM9 index (the ``<id>`` of ``gdb <id>``, 1-based as in the file names).
        symbols: n element symbols (H, C, N, O, F).
        positions: (n, 3) float64 B3LYP equilibrium positions, Angstrom.
        charges: (n,) float64 Mulliken charges, e.
        properties: the 15 values of line 2 by :data:`PROPERTY_NAMES`, in the file's units
            (energies in Hartree).
        frequencies: (3n-6 or 3n-5, sometimes listed twice) float64 harmonic frequencies, cm^-1.
        smiles_gdb, smiles_b3lyp: SMILES from GDB-17 and from the relaxed geometry.
        inchi_gdb, inchi_b3lyp: InChI from GDB-17 and from the relaxed geometry.
    """

    index: int
    symbols: list[str]
    positions: np.ndarray
    charges: np.ndarray
    properties: dict[str, float]
    frequencies: np.ndarray
    smiles_gdb: str
    smiles_b3lyp: str
    inchi_gdb: str
    inchi_b3lyp: str

    @property
    def name(self) -> str:
        """The file stem, e.g. ``"dsgdb9nsd_000001"``."""
        return f"dsgdb9nsd_{self.index:06d}"

    @property
    def atomic_numbers(self) -> np.ndarray:
        """(n,) int64 atomic numbers."""
        return np.array([ATOMIC_NUMBERS[s] for s in self.symbols], dtype=np.int64)


def _fail(source: str, lineno: int, what: str) -> DataError:
    return DataError(f"{source}:{lineno}: {what}")


def _numbers(tokens: list[str], source: str, lineno: int, names: Sequence[str]) -> list[float]:
    """The tokens as floats; the error names the first token that is not a number.

    ``names`` labels the tokens in messages; a single string is numbered (``"frequency 3"``).
    """
    try:
        return [float(t) for t in tokens]
    except ValueError:
        k, token = next((k, t) for k, t in enumerate(tokens) if not _is_number(t))
        label = f"{names} {k + 1}" if isinstance(names, str) else names[k]
        raise _fail(source, lineno, f"{label} {token!r} is not a number") from None


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _atom_count(lines: list[str], source: str) -> int:
    if not lines or not lines[0].strip():
        raise _fail(source, 1, "missing atom count (empty file or blank first line)")
    try:
        n = int(lines[0].strip())
    except ValueError:
        raise _fail(source, 1, f"atom count {lines[0].strip()!r} is not an integer") from None
    if n <= 0:
        raise _fail(source, 1, f"empty molecule: atom count is {n}")
    return n


def _require_lines(lines: list[str], n: int, source: str) -> None:
    if len(lines) < n + 5:
        raise _fail(
            source,
            len(lines) + 1,
            f"missing line: the file ends after {len(lines)} lines, but {n} atoms need {n + 5}",
        )


def _properties(line: str, source: str) -> tuple[int, dict[str, float]]:
    tokens = line.split()
    if len(tokens) < 2 or tokens[0] != "gdb":
        raise _fail(source, 2, f"expected 'gdb <id>' and 15 properties, got {line[:40]!r}")
    try:
        index = int(tokens[1])
    except ValueError:
        raise _fail(source, 2, f"molecule id {tokens[1]!r} is not an integer") from None
    values = tokens[2:]
    if len(values) != len(PROPERTY_NAMES):
        raise _fail(source, 2, f"expected {len(PROPERTY_NAMES)} properties, got {len(values)}")
    numbers = _numbers(values, source, 2, PROPERTY_NAMES)
    return index, dict(zip(PROPERTY_NAMES, numbers, strict=True))


def _atom_rows(lines: list[str], n: int, source: str) -> list[list[str]]:
    """The fields of the atom lines (file lines 3..n+2, those present), each checked to be 5."""
    rows = [line.split() for line in lines]
    for k, row in enumerate(rows):
        if len(row) != 5 or not row[0].isalpha():
            raise _fail(
                source,
                k + 3,
                f"expected an atom line 'element x y z charge' (line 1 declares {n} atoms), "
                f"got {len(row)} fields",
            )
    return rows


def _atoms(rows: list[list[str]], source: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Parse the n atom rows: symbols, (n, 3) positions, (n,) charges."""
    symbols = [row[0] for row in rows]
    unknown = set(symbols).difference(ATOMIC_NUMBERS)
    if unknown:
        k = next(k for k, s in enumerate(symbols) if s in unknown)
        raise _fail(source, k + 3, f"unknown element {symbols[k]!r} (QM9 has H, C, N, O, F)")
    try:
        values = np.array([row[1:] for row in rows], dtype=np.float64)
    except ValueError:
        k = next(k for k, row in enumerate(rows) if not all(map(_is_number, row[1:])))
        _numbers(rows[k][1:], source, k + 3, ("x", "y", "z", "charge"))
        raise  # pragma: no cover - _numbers raised
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise _fail(source, k + 3, "coordinate or charge is not a finite number")
    return symbols, values[:, :3].copy(), values[:, 3].copy()


def _pair(line: str, source: str, lineno: int, what: str) -> tuple[str, str]:
    tokens = line.split()
    if len(tokens) != 2:
        raise _fail(source, lineno, f"expected 2 {what} strings, got {len(tokens)} fields")
    return tokens[0], tokens[1]


def parse_xyz(text: str, source: str) -> QM9Record:
    """Parse the text of one QM9 xyz file.

    Args:
        text: the whole file.
        source: the name used in error messages (a path, or ``archive/member``).

    Raises:
        DataError: ``"<source>:<line>: <what is wrong>"`` for any malformed input.
    """
    lines = text.replace("*^", "e").splitlines() if "*^" in text else text.splitlines()
    n = _atom_count(lines, source)
    rows = _atom_rows(lines[2 : n + 2], n, source)  # before the length check: a wrong n shows here
    _require_lines(lines, n, source)
    index, properties = _properties(lines[1], source)
    symbols, positions, charges = _atoms(rows, source)
    freq_tokens = lines[n + 2].split()
    if freq_tokens and freq_tokens[0] in ATOMIC_NUMBERS:
        raise _fail(source, n + 3, f"an atom line where frequencies belong: line 1 says {n} atoms")
    frequencies = np.array(_numbers(freq_tokens, source, n + 3, "frequency"), dtype=np.float64)
    smiles = _pair(lines[n + 3], source, n + 4, "SMILES")
    inchi = _pair(lines[n + 4], source, n + 5, "InChI")
    for k in range(n + 5, len(lines)):
        if lines[k].strip():
            raise _fail(source, k + 1, "unexpected text after the InChI line")
    return QM9Record(index, symbols, positions, charges, properties, frequencies, *smiles, *inchi)


def decode(data: bytes, source: str) -> str:
    """Decode a file's bytes as ASCII; the error names the line of the first bad byte."""
    try:
        return data.decode("ascii")
    except UnicodeDecodeError as e:
        lineno = data.count(b"\n", 0, e.start) + 1
        raise _fail(source, lineno, f"byte {data[e.start]:#04x} is not ASCII") from None
