"""The fused kernels' table of Gaussian symmetry functions (types 2, 3, 9, 12, 13), from plain
numbers: no PyTorch, so that a process predicting with an n2p2 potential need not import it.

:func:`group_functions` splits each element's functions into groups of one type and one set of
neighbour species (the groups of :class:`~mpnn.messages.symmetry_functions.SymmetryFunctions`);
:func:`gaussian_table` packs the Gaussian ones into the arguments of
:func:`mpnn.symmetry.fused_kernels.fused_walk` and
:func:`mpnn.symmetry.fused_energy.energy_walk` (after ``width``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from mpnn.symmetry.spec import SymmetryFunctionSpec

#: the Gaussian types: (angular, narrow (r_jk terms: 3, 13), weighted by atomic numbers (12, 13))
GAUSSIAN_TYPES = {
    2: (False, False, False),
    12: (False, False, True),
    3: (True, True, False),
    9: (True, False, False),
    13: (True, True, True),
}

#: a group's key: (centre species, type, neighbour species (sorted; None where weighted))
GroupKey = tuple[int, int, "tuple[int, ...] | None"]


def group_functions(
    specs: Sequence[Sequence[SymmetryFunctionSpec]],
    species_index: Callable[[str], int],
    weighted: Callable[[int], bool],
) -> dict[GroupKey, list[tuple[int, SymmetryFunctionSpec]]]:
    """Each group's (column, spec) pairs, groups in order of first appearance: ``specs`` per
    species (network-input order), ``species_index(element symbol)``, ``weighted(type)``: whether
    a type weights neighbours by atomic number instead of selecting them by element."""
    grouped: dict[GroupKey, list[tuple[int, SymmetryFunctionSpec]]] = {}
    for s, element_specs in enumerate(specs):
        for column, spec in enumerate(element_specs):
            neighbors = None if weighted(spec.type) else tuple(species_index(e) for e in spec.neighbors)
            if neighbors is not None and len(neighbors) == 2:
                neighbors = tuple(sorted(neighbors))
            grouped.setdefault((s, spec.type, neighbors), []).append((column, spec))
    return grouped


@dataclass(frozen=True)
class GaussianGroup:
    """One group of Gaussian functions, per function in column order (lengths in the unit of the
    edge vectors the kernel will get; ``lambda_`` and ``zeta`` only for angular groups)."""

    element: int  # centre species
    neighbors: tuple[int, ...] | None  # neighbour species; None: weighted by atomic number
    columns: tuple[int, ...]
    angular: bool
    narrow: bool
    eta: tuple[float, ...]
    rs: tuple[float, ...]
    rc: tuple[float, ...]
    lambda_: tuple[float, ...]
    zeta: tuple[float, ...]
    cutoff_type: int
    cutoff_alpha: float


def spec_group(
    key: GroupKey, members: Sequence[tuple[int, SymmetryFunctionSpec]], cutoff: tuple[int, float]
) -> GaussianGroup:
    """The :class:`GaussianGroup` of one :func:`group_functions` group of a Gaussian type;
    ``cutoff``: n2p2's (cutoff type, alpha)."""
    element, type_, neighbors = key
    angular, narrow, _ = GAUSSIAN_TYPES[type_]
    specs = [spec for _, spec in members]
    return GaussianGroup(
        element,
        neighbors,
        tuple(c for c, _ in members),
        angular,
        narrow,
        *(tuple(float(getattr(s, name)) for s in specs) for name in ("eta", "rs", "rc", "lambda_", "zeta")),
        int(cutoff[0]),
        float(cutoff[1]),
    )


def _unique(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique rows (or values) and each input's index into them."""
    unique, inverse = np.unique(values, axis=0, return_inverse=True)
    return unique, inverse.reshape(-1)


def gaussian_table(groups: Sequence[GaussianGroup], species_count: int) -> tuple:
    """The kernels' table arguments (after ``width``) of ``groups`` (all of one cutoff function).

    Angular groups share the Gaussians of one (eta, r_s), the angular factors of one
    (lambda, zeta) and the cutoff factors of one r_c between their functions; a group's
    functions are walked in order of (Gaussian, cutoff, angular factor), so that the backward
    walk sums their angular parts first (the functions do not depend on the order)."""
    i64, f64 = np.int64, np.float64
    rc_all: list[float] = []
    kind, alpha = 0, 0.0

    def rc_index(value: float) -> int:
        if value not in rc_all:
            rc_all.append(value)
        return rc_all.index(value)

    radial: dict[str, list] = {k: [] for k in ("centre", "e", "f0", "f1", "eta", "rs", "c", "col")}
    angular: dict[str, list] = {
        k: []
        for k in ("centre e1 e2 narrow m0 m1 k0 k1 c0 c1 f0 f1 eta rs lam zeta crc fm fk fc norm col".split())
    }
    rcmax = np.zeros(species_count, dtype=f64)
    for group in groups:
        kind, alpha = group.cutoff_type, group.cutoff_alpha
        columns = list(group.columns)
        if not group.angular:
            r = radial
            r["centre"].append(group.element)
            r["e"].append(-1 if group.neighbors is None else group.neighbors[0])
            r["f0"].append(len(r["eta"]))
            r["eta"] += list(group.eta)
            r["rs"] += list(group.rs)
            r["c"] += [rc_index(v) for v in group.rc]
            r["col"] += columns
            r["f1"].append(len(r["eta"]))
            continue
        a = angular
        e1, e2 = (-1, -1) if group.neighbors is None else group.neighbors
        a["centre"].append(group.element)
        a["e1"].append(e1)
        a["e2"].append(e2)
        a["narrow"].append(bool(group.narrow))
        gaussians, fm = _unique(np.array([group.eta, group.rs], dtype=f64).T)
        factors, fk = _unique(np.array([group.lambda_, group.zeta], dtype=f64).T)
        cutoffs, fc = _unique(np.array(group.rc, dtype=f64))
        for name, values in (("m", gaussians), ("k", factors)):
            first, second = ("eta", "rs") if name == "m" else ("lam", "zeta")
            a[f"{name}0"].append(len(a[first]))
            a[first] += values[:, 0].tolist()
            a[second] += values[:, 1].tolist()
            a[f"{name}1"].append(len(a[first]))
        a["c0"].append(len(a["crc"]))
        a["crc"] += [rc_index(v) for v in cutoffs.tolist()]
        a["c1"].append(len(a["crc"]))
        a["f0"].append(len(a["fm"]))
        norm = (2.0 ** (1.0 - np.array(group.zeta, dtype=f64))).tolist()
        fm, fk, fc = fm.tolist(), fk.tolist(), fc.tolist()
        for f in sorted(range(len(fm)), key=lambda f: (fm[f], fc[f], fk[f])):
            a["fm"].append(fm[f])
            a["fk"].append(fk[f])
            a["fc"].append(fc[f])
            a["norm"].append(norm[f])
            a["col"].append(columns[f])
        a["f1"].append(len(a["fm"]))
        rcmax[group.element] = max(rcmax[group.element], max(group.rc))
    r, a = radial, angular

    def ints(values: list) -> np.ndarray:
        return np.asarray(values, dtype=i64)

    def floats(values: list) -> np.ndarray:
        return np.asarray(values, dtype=f64)

    return (
        floats(rc_all),
        int(kind),
        float(alpha),
        *(ints(r[k]) for k in ("centre", "e", "f0", "f1")),
        floats(r["eta"]),
        floats(r["rs"]),
        ints(r["c"]),
        ints(r["col"]),
        ints(a["centre"]),
        ints(a["e1"]),
        ints(a["e2"]),
        np.asarray(a["narrow"], dtype=np.bool_),
        *(ints(a[k]) for k in ("m0", "m1", "k0", "k1", "c0", "c1", "f0", "f1")),
        *(floats(a[k]) for k in ("eta", "rs", "lam", "zeta")),
        ints(a["crc"]),
        ints(a["fm"]),
        ints(a["fk"]),
        ints(a["fc"]),
        floats(a["norm"]),
        ints(a["col"]),
        rcmax,
    )
