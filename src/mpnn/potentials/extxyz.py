"""Extended XYZ text of predicted structures, as ``ase.io.write(..., format="extxyz")`` writes it.

Importing ``ase.io`` costs about 0.7 s (its trajectory module pulls in ASE's constraints,
space groups and SciPy's integrators), a third of ``mpnn predict``'s start-up on a 1,000-atom
box.  :func:`extxyz_text` writes the common case itself with ASE's rules (columns ``species``,
``pos``, the other arrays, then the calculator's per-atom results; the comment line with
``Lattice``, ``Properties``, ``atoms.info``, the calculator's per-structure results, the stress
as a 3x3 matrix, ``pbc``; numbers formatted as ASE formats them) and returns None for anything
else (constraints, info values other than numbers, booleans, plain strings and numeric vectors,
array columns of other kinds), which the caller then hands to ASE.  Tests compare the two texts.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
from ase import Atoms

__all__ = ["extxyz_text"]

_NAMES = {"positions": "pos", "numbers": "Z", "charges": "charge", "symbols": "species"}
_FORMATS = {"f": ("R", "%16.8f"), "i": ("I", "%8d"), "U": ("S", "%-2s"), "b": ("L", " %.1s")}
_PER_ATOM = ("energies", "forces", "charges", "magmoms")  # ASE's per-atom results (those we write)
_PER_CONFIG = ("energy", "free_energy", "stress")


def extxyz_text(structures: Sequence[Atoms]) -> str | None:
    """The extended-XYZ text of ``structures``, or None where ASE's writer must be used."""
    parts = []
    for atoms in structures:
        text = _frame(atoms)
        if text is None:
            return None
        parts.append(text)
    return "".join(parts)


def _escape(string: str) -> str:
    if any(c in string for c in " \"'{}[]"):
        string = '"' + string.replace('"', '\\"') + '"'
    return string


def _value(key: str, value: object) -> str | None:
    """ASE's text of one info value (key_val_dict_to_str), None where unsupported."""
    if isinstance(value, np.ndarray):
        if key in ("Lattice", "virial", "stress"):
            value = value.reshape(value.size, order="F")
        if value.dtype.kind not in "ifb" or value.ndim != 1:
            return None
        return _escape(" ".join(_scalar(v) for v in value))
    if isinstance(value, (bool, np.bool_, numbers.Real)):
        return _escape(_scalar(value))
    if isinstance(value, str) and not value.startswith("_JSON"):
        return _escape(value)
    return None


def _scalar(value: object) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "T" if value else "F"
    return f"{value}"


def _frame(atoms: Atoms) -> str | None:
    if atoms.constraints:
        return None
    results = dict(getattr(atoms.calc, "results", None) or {})
    if set(results) - set(_PER_ATOM) - set(_PER_CONFIG):
        return None
    info = dict(atoms.info)
    if {"symbols", "species", "pos"} & set(atoms.arrays):
        return None
    arrays = {k: v for k, v in atoms.arrays.items() if k not in ("numbers", "positions")}
    for key, value in results.items():
        target = arrays if key in _PER_ATOM else info
        if key in target:  # ASE refuses this too
            return None
        target[key] = np.asarray(value) if key in _PER_ATOM else value
    if "stress" in info and np.shape(info["stress"]) == (6,):
        xx, yy, zz, yz, xz, xy = np.asarray(info["stress"], dtype=float)
        info["stress"] = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    columns = [("symbols", np.array(atoms.get_chemical_symbols())), ("positions", atoms.positions)]
    columns += list(arrays.items())
    names, formats, data = [], [], []
    n = len(atoms)
    for key, array in columns:
        array = np.asarray(array)
        kind = array.dtype.kind
        if kind not in _FORMATS or array.shape[:1] != (n,) or array.ndim > 2:
            return None
        ncol = 1 if array.ndim == 1 or array.shape[1] == 1 else array.shape[1]
        code, fmt = _FORMATS[kind]
        names.append(f"{_NAMES.get(key, key)}:{code}:{ncol}")
        formats += [fmt] * ncol
        data.append(array.reshape(n, ncol))
    comment = ""
    if atoms.cell.any():
        comment += 'Lattice="' + " ".join(str(x) for x in np.reshape(atoms.cell.T, 9, order="F")) + '" '
    comment += "Properties=" + ":".join(names)
    info["pbc"] = atoms.get_pbc()
    pairs = []
    for key, value in info.items():
        text = _value(key, value)
        if text is None:
            return None
        pairs.append(f"{_escape(key)}={text}")
    comment += " " + " ".join(pairs)
    line = " ".join(formats) + "\n"
    rows = [line % tuple(_cells(data, i)) for i in range(n)]
    return f"{n}\n{comment}\n" + "".join(rows)


def _cells(data: list[np.ndarray], i: int) -> list:
    out: list = []
    for array in data:
        out += array[i].tolist()
    return out
