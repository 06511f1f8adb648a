"""n2p2 / RuNNer ``input.data``: structures with energies and forces, read into and written from ASE.

One block per structure (``Structure::readFromLines``); leading whitespace is allowed::

    begin [set=train|set=test]
    comment <free text>                      optional
    lattice ax ay az                         three lines for a periodic cell, none otherwise
    lattice bx by bz
    lattice cx cy cz
    atom x y z element q n fx fy fz          one per atom (q: charge, n: unused, written 0)
    energy E                                 total energy
    charge Q                                 total charge (optional, 0)
    end

Units are those of the file: ``length`` and ``energy`` give Angstrom and eV per file unit
(e.g. ``ase.units.Bohr`` and ``ase.units.Hartree``). Each structure becomes an ``ase.Atoms`` with
positions and cell in Angstrom, ``pbc`` all True with three lattice lines and all False without,
per-atom charges as initial charges, ``info["comment"]`` and ``info["charge"]``, and a
``SinglePointCalculator`` holding the energy (eV; only when the block has an ``energy`` line) and
forces (eV/Angstrom), so ``atoms.get_potential_energy()`` and ``atoms.get_forces()`` work. Writing
uses n2p2's own format (``%24.16E``: 17 significant digits, so float64 values read back exactly
when the unit factors are 1; other factors add at most the rounding of one multiplication).

Every problem raises a one-line :class:`~mpnn.errors.DataError` ``"file:line: what"``: a file that
ends inside a structure, an unknown line type, a wrong number of fields, a value that is not a
number or not finite, an unknown element symbol, a structure without atoms, a number of lattice
lines other than 0 or 3.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import chemical_symbols

from mpnn.errors import DataError
from mpnn.files import check_regular_file, read_text, write_text

_ELEMENTS = frozenset(chemical_symbols[1:])
_FIELDS = {"begin": (1, 2), "lattice": (4,), "atom": (10,), "energy": (2,), "charge": (2,), "end": (1,)}
_SETS = {"set=train": "train", "set=test": "test"}


def read_input_data(path: str | Path, length: float = 1.0, energy: float = 1.0) -> list[Atoms]:
    """All structures of an ``input.data`` file (see the module docstring for units and checks)."""
    text = read_text(path, "an input.data file")
    return list(_parse(text.splitlines(), path, length, energy))


def iter_input_data(path: str | Path, length: float = 1.0, energy: float = 1.0) -> Iterator[Atoms]:
    """The structures of an ``input.data`` file one at a time, read line by line (memory: one
    structure), with the units and checks of :func:`read_input_data`."""
    check_regular_file(path, "an input.data file")
    try:
        with open(path, encoding="utf-8") as f:
            yield from _parse((line.rstrip("\n") for line in f), path, length, energy)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read: {error.strerror or error}") from None


def _parse(lines: Iterable[str], path: str | Path, length: float, energy: float) -> Iterator[Atoms]:
    """The structures of the lines of an ``input.data`` file, each as soon as its ``end`` is read."""
    count = 0
    block: list[tuple[int, str, list[str]]] = []
    for lineno, raw in enumerate(lines, start=1):
        words = raw.split()
        if not words:
            continue
        if words[0] not in _FIELDS and words[0] != "comment":
            raise DataError(f"{path}:{lineno}: unknown line type {words[0]!r}")
        if not block and words[0] != "begin":
            raise DataError(f"{path}:{lineno}: expected 'begin', found {words[0]!r}")
        if block and words[0] == "begin":
            raise DataError(f"{path}:{lineno}: 'begin' inside the structure of line {block[0][0]} (no 'end')")
        block.append((lineno, raw, words))
        if words[0] == "end":
            yield _structure(block, path, length, energy)
            count += 1
            block = []
    if block:
        raise DataError(f"{path}:{block[0][0]}: structure has no 'end' (the file ends first)")
    if not count:
        raise DataError(f"{path}: no structure in file")


def _structure(
    block: list[tuple[int, str, list[str]]], path: str | Path, length: float, energy: float
) -> Atoms:
    start = block[0][0]
    info: dict = {"comment": "", "charge": 0.0}
    lattice, symbols, rows = [], [], []
    total_energy = None
    for lineno, raw, words in block:
        kind = words[0]
        if kind == "comment":
            info["comment"] = raw[raw.index("comment") + len("comment") + 1 :]
            continue
        if len(words) not in _FIELDS[kind]:
            want = " or ".join(map(str, _FIELDS[kind]))
            raise DataError(f"{path}:{lineno}: {kind!r} line needs {want} fields, found {len(words)}")
        if kind == "begin" and len(words) == 2:
            if words[1] not in _SETS:
                raise DataError(f"{path}:{lineno}: unknown 'begin' argument {words[1]!r}")
            info["n2p2_set"] = _SETS[words[1]]
        elif kind == "lattice":
            if len(lattice) == 3:
                raise DataError(f"{path}:{lineno}: more than three lattice lines")
            lattice.append(_numbers(words[1:], path, lineno))
        elif kind == "atom":
            if words[4] not in _ELEMENTS:
                raise DataError(f"{path}:{lineno}: unknown element symbol {words[4]!r}")
            symbols.append(words[4])
            rows.append(_numbers(words[1:4] + words[5:], path, lineno))
        elif kind == "energy":
            total_energy = _numbers(words[1:], path, lineno)[0]
        elif kind == "charge":
            info["charge"] = _numbers(words[1:], path, lineno)[0]
    if len(lattice) not in (0, 3):
        raise DataError(f"{path}:{start}: structure has {len(lattice)} lattice lines (0 or 3)")
    if not symbols:
        raise DataError(f"{path}:{start}: structure has no atoms")
    data = np.array(rows, dtype=np.float64)
    periodic = len(lattice) == 3
    atoms = Atoms(
        symbols,
        positions=data[:, :3] * length,
        pbc=periodic,
        cell=np.array(lattice) * length if periodic else None,
    )
    atoms.set_initial_charges(data[:, 3])
    atoms.info.update(info)
    atoms.calc = SinglePointCalculator(
        atoms,
        energy=None if total_energy is None else total_energy * energy,
        forces=data[:, 5:8] * (energy / length),
    )
    return atoms


def _numbers(words: list[str], path: str | Path, lineno: int) -> list[float]:
    values = []
    for word in words:
        try:
            value = float(word)
        except ValueError:
            raise DataError(f"{path}:{lineno}: not a number: {word!r}") from None
        if not math.isfinite(value):
            raise DataError(f"{path}:{lineno}: not a finite number: {word!r}")
        values.append(value)
    return values


def write_input_data(
    path: str | Path, atoms_list: Iterable[Atoms], length: float = 1.0, energy: float = 1.0
) -> None:
    """Write structures as ``input.data`` (inverse of :func:`read_input_data`), atomically.

    Energy and forces come from ``atoms.calc.results`` when present, else 0; the total charge from
    ``info["charge"]``, else the sum of the initial charges.
    """
    lines: list[str] = []
    for index, atoms in enumerate(atoms_list):
        lines += _block(atoms, index, length, energy)
    if not lines:
        raise DataError(f"{path}: no structures to write")
    write_text("\n".join(lines) + "\n", path)


def _block(atoms: Atoms, index: int, length: float, energy: float) -> list[str]:
    where = f"structure {index}"
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.any() and not pbc.all():
        raise DataError(f"{where}: pbc {pbc.tolist()}: n2p2 knows only fully periodic or non-periodic cells")
    if len(atoms) == 0:
        raise DataError(f"{where}: no atoms")
    results = atoms.calc.results if atoms.calc is not None else {}
    e = float(results.get("energy", 0.0)) / energy
    forces = np.asarray(results.get("forces", np.zeros((len(atoms), 3))), dtype=np.float64)
    forces = forces * (length / energy)
    charges = atoms.get_initial_charges()
    total_charge = float(atoms.info.get("charge", charges.sum()))
    positions = atoms.get_positions() / length
    cell = np.asarray(atoms.cell) / length
    if pbc.all() and abs(np.linalg.det(cell)) == 0.0:
        raise DataError(f"{where}: periodic structure with a singular cell")
    numbers = [positions, forces, charges, [e, total_charge]] + ([cell] if pbc.all() else [])
    if not all(np.isfinite(np.asarray(x, dtype=np.float64)).all() for x in numbers):
        raise DataError(f"{where}: positions, cell, charges, energy and forces must be finite")
    comment = str(atoms.info.get("comment", ""))
    if "\n" in comment or "\r" in comment:
        raise DataError(f"{where}: the comment must be one line")
    n2p2_set = atoms.info.get("n2p2_set")
    out = ["begin" + (f" set={n2p2_set}" if n2p2_set in ("train", "test") else ""), f"comment {comment}"]
    if pbc.all():
        out += ["lattice " + " ".join(f"{v:24.16E}" for v in row) for row in cell]
    for symbol, r, q, f in zip(atoms.get_chemical_symbols(), positions, charges, forces, strict=True):
        out.append(
            f"atom {r[0]:24.16E} {r[1]:24.16E} {r[2]:24.16E} {symbol:>2s} {q:24.16E} {0.0:24.16E} "
            f"{f[0]:24.16E} {f[1]:24.16E} {f[2]:24.16E}"
        )
    out += [f"energy {e:24.16E}", f"charge {total_charge:24.16E}", "end"]
    return out
