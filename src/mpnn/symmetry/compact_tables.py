"""The tables of :func:`mpnn.symmetry.compact_kernels.compact_forward` for a message's compact groups.

The windows' centres and inverse half-widths are read from the groups' own
:class:`~mpnn.symmetry.compact.CompactWindows` buffers, so that the kernel evaluates exactly the
numbers the PyTorch path does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mpnn.symmetry.compact import CompactAngular, CompactRadial, CompactWindows


def compact(terms: Any) -> bool:
    """Whether a group's terms module is a compact family (types 20-25)."""
    return isinstance(terms, (CompactRadial, CompactAngular))


def _windows(windows: CompactWindows) -> list[tuple[float, float, int, bool, float]]:
    """(centre, 1 / half-width, core order (0: exponential), asymmetric, left) of each output
    column of ``windows``."""
    kinds = [
        (0 if core == "exp" else int(core[-1]), asym) for core, asym, n in windows.kinds for _ in range(n)
    ]
    return [
        (float(c), float(s), order, asym, float(left))
        for c, s, (order, asym), left in zip(
            windows.centre.tolist(), windows.scale.tolist(), kinds, windows.left.tolist(), strict=True
        )
    ]


def tables(groups: Sequence[Any], species_count: int) -> tuple | None:
    """The kernel's table arguments for the compact ``groups`` (``_Group``s of
    :class:`~mpnn.messages.symmetry_functions.SymmetryFunctions`), or None when there are none."""
    groups = [g for g in groups if compact(g.terms)]
    if not groups:
        return None
    i64, f64 = np.int64, np.float64
    # distinct radial windows per centre species
    per_species: list[dict[tuple, int]] = [{} for _ in range(species_count)]
    cut = np.zeros(species_count, dtype=f64)

    def window(s: int, key: tuple) -> int:
        return per_species[s].setdefault(key, len(per_species[s]))

    radial = {k: [] for k in ("centre", "e", "f0", "f1", "w", "col")}
    angular = {k: [] for k in "centre e1 e2 narrow cut r0 r1 a0 a1 g0 rw ac as ao".split()}
    cells: list[list[int]] = []
    for group in groups:
        terms, s = group.terms, group.element
        cut[s] = max(cut[s], terms.cutoff)
        columns = group.columns.tolist()
        if isinstance(terms, CompactRadial):
            keys = _windows(terms.windows)
            radial["centre"].append(s)
            radial["e"].append(-1 if group.neighbors is None else group.neighbors[0])
            radial["f0"].append(len(radial["w"]))
            for index, col in zip(terms.index.tolist(), columns, strict=True):
                radial["w"].append((s, window(s, keys[index])))
                radial["col"].append(col)
            radial["f1"].append(len(radial["w"]))
            continue
        a = angular
        e1, e2 = (-1, -1) if group.neighbors is None else group.neighbors
        rkeys, akeys = _windows(terms.radial), _windows(terms.angular)
        a["centre"].append(s)
        a["e1"].append(e1)
        a["e2"].append(e2)
        a["narrow"].append(bool(terms.narrow))
        a["cut"].append(float(terms.cutoff))
        a["r0"].append(len(a["rw"]))
        a["rw"] += [(s, window(s, key)) for key in rkeys]
        a["r1"].append(len(a["rw"]))
        a["a0"].append(len(a["ac"]))
        a["ac"] += [key[0] for key in akeys]
        a["as"] += [key[1] for key in akeys]
        a["ao"] += [key[2] for key in akeys]
        a["a1"].append(len(a["ac"]))
        # the grid of (radial window, angle window) cells and each cell's columns
        nr, na = len(rkeys), len(akeys)
        grid: list[list[int]] = [[] for _ in range(nr * na)]
        for rho, alpha, col in zip(
            terms.radial_index.tolist(), terms.angular_index.tolist(), columns, strict=True
        ):
            grid[rho * na + alpha].append(col)
        a["g0"].append(len(cells))
        cells += grid
    # global window numbering: species after species
    w0 = np.zeros(species_count, dtype=i64)
    w1 = np.zeros(species_count, dtype=i64)
    rw: list[tuple] = []
    for s in range(species_count):
        w0[s] = len(rw)
        rw += list(per_species[s])
        w1[s] = len(rw)

    def global_index(pairs: list[tuple[int, int]]) -> np.ndarray:
        return np.asarray([w0[s] + w for s, w in pairs], dtype=i64)

    cell_ptr = np.zeros(len(cells) + 1, dtype=i64)
    np.cumsum([len(c) for c in cells], out=cell_ptr[1:])

    def ints(values: list) -> np.ndarray:
        return np.asarray(values, dtype=i64)

    def floats(values: list) -> np.ndarray:
        return np.asarray(values, dtype=f64)

    r, a = radial, angular
    return (
        floats([k[0] for k in rw]),
        floats([k[1] for k in rw]),
        ints([k[2] for k in rw]),
        np.asarray([k[3] for k in rw], dtype=np.bool_),
        floats([max(k[4], 0.0) for k in rw]),
        w0,
        w1,
        cut,
        ints(r["centre"]),
        ints(r["e"]),
        ints(r["f0"]),
        ints(r["f1"]),
        global_index(r["w"]),
        ints(r["col"]),
        ints(a["centre"]),
        ints(a["e1"]),
        ints(a["e2"]),
        np.asarray(a["narrow"], dtype=np.bool_),
        floats(a["cut"]),
        ints(a["r0"]),
        ints(a["r1"]),
        ints(a["a0"]),
        ints(a["a1"]),
        ints(a["g0"]),
        global_index(a["rw"]),
        floats(a["ac"]),
        floats(a["as"]),
        ints(a["ao"]),
        cell_ptr,
        ints([col for c in cells for col in c]),
    )
