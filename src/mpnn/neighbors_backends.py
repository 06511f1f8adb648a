"""Raw pair finders and the pair sort behind :mod:`mpnn.neighbors`.

Cell-list backends, O(N) at fixed density and cutoff: vesin (C, multi-threaded) and ASE's
``primitive_neighbor_list`` (NumPy). For already validated input each returns the unsorted full list
of ordered pairs (i, j, S) with ``|pos[j] - pos[i] + S @ box| < cutoff`` and the distances:

    i, j  (E,) int64 atom indices;  S (E, 3) integer cell shifts;  d (E,) float64 Angstrom.

The box handed to a backend is made by :func:`backend_box`: its periodic rows are the user's lattice
vectors; its non-periodic rows are replaced by an orthonormal basis of the complement of the periodic
rows, scaled to the extent of the atoms along it (+ 1 Angstrom). Shifts in non-periodic directions are
zero, so ``S @ box`` and hence every distance is the same with the made-up rows as with the user's;
the made-up rows only size the backends' bins, and a user's (possibly zero) non-periodic rows never
reach a backend.

:func:`dense_molecule_pairs` enumerates all n_b^2 pairs of many small molecules at once (a batch of
QM9-sized molecules); :func:`sort_pairs` orders a list by i, then j, then S with one int64 key sort;
:func:`edge_pairs_by_centre` lists the pairs of edges around each centre (angular triplets).
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import numpy as np

#: vesin versions before this one skip pairs with mixed periodicity in rotated boxes and when all
#: coordinates are negative in a non-periodic direction (vesin 0.5.8 release notes).
VESIN_MIN_VERSION = (0, 5, 8)


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


#: Set by the ``mpnn`` command run as a process (:func:`mpnn.cli.app.main` reading ``sys.argv``):
#: vesin, imported before PyTorch, leaves PyTorch out (vesin imports it for its own tensor support
#: when it can, 1.5-2 s; the backends hand it numpy arrays only), so that ``mpnn predict`` of an
#: n2p2 potential (:mod:`mpnn.potentials.n2p2_predict`) never loads it. A program calling vesin
#: with tensors afterwards would get numpy arrays back, so a library user's process keeps vesin's
#: own import.
VESIN_WITHOUT_TORCH = False


def _import_vesin() -> Any:
    if not VESIN_WITHOUT_TORCH or "torch" in sys.modules or "vesin" in sys.modules:
        import vesin

        return vesin
    sys.modules["torch"] = None  # type: ignore[assignment]  # vesin's "import torch" fails at once
    try:
        import vesin
    finally:
        del sys.modules["torch"]
    return vesin


def vesin_available() -> bool:
    """Whether a vesin recent enough for every pbc pattern (>= 0.5.8) is importable."""
    try:
        vesin = _import_vesin()
    except ImportError:
        return False
    return _version_tuple(getattr(vesin, "__version__", "0")) >= VESIN_MIN_VERSION


def backend_box(pos: np.ndarray, cell: np.ndarray, pbc: np.ndarray, minimum: float = 0.0) -> np.ndarray:
    """(3, 3) box for the backends: periodic rows of ``cell`` kept, non-periodic rows made up.

    The made-up rows span the orthogonal complement of the periodic rows (via SVD), each of length
    (extent of the atoms along it) + 1 Angstrom, and at least ``minimum`` (the search radius: the
    backends loop over cutoff / length shells even along non-periodic rows); the box is made
    right-handed by flipping the sign of a made-up row if needed. ``cell`` rows in non-periodic
    directions are ignored.
    """
    if pbc.all():
        return cell.copy()
    periodic = cell[pbc]
    if periodic.shape[0] == 0:
        complement = np.eye(3)
    else:
        complement = np.linalg.svd(periodic)[2][periodic.shape[0] :]
    extent = np.ptp(pos @ complement.T, axis=0) if pos.shape[0] else np.zeros(complement.shape[0])
    box = np.zeros((3, 3))
    box[pbc] = periodic
    box[~pbc] = complement * np.maximum(extent + 1.0, minimum)[:, None]
    if np.linalg.det(box) < 0:
        last = np.flatnonzero(~pbc)[-1]
        box[last] = -box[last]
    return box


_VESIN_CACHE = threading.local()


def vesin_pairs(
    pos: np.ndarray, cutoff: float, box: np.ndarray, pbc: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unsorted full list from vesin: i, j (E,) int64, S (E, 3) int32, d (E,) float64.

    The arrays are views into a calculator kept per thread (reusing its buffers saves about a third
    of the time on large systems): they are valid until the next call in the same thread.
    """
    from vesin import NeighborList

    calculator = getattr(_VESIN_CACHE, "calculator", None)
    if calculator is None or calculator.cutoff != float(cutoff):
        calculator = NeighborList(cutoff=float(cutoff), full_list=True)
        _VESIN_CACHE.calculator = calculator
    pairs, shifts, dist = calculator.compute(
        points=pos, box=box, periodic=np.asarray(pbc, dtype=bool), quantities="PSd", copy=False
    )
    pairs = pairs.view(np.int64) if pairs.dtype == np.uint64 else pairs.astype(np.int64)
    pairs = pairs.reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1], shifts.reshape(-1, 3), dist


def ase_pairs(
    pos: np.ndarray, cutoff: float, box: np.ndarray, pbc: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unsorted full list from ``ase.neighborlist.primitive_neighbor_list`` (any pbc pattern)."""
    from ase.neighborlist import primitive_neighbor_list

    i, j, shifts, dist = primitive_neighbor_list(
        "ijSd",
        pbc=np.asarray(pbc, dtype=bool),
        cell=box,
        positions=pos,
        cutoff=float(cutoff),
        self_interaction=False,
    )
    return (
        np.asarray(i, dtype=np.int64),
        np.asarray(j, dtype=np.int64),
        np.asarray(shifts, dtype=np.int64).reshape(-1, 3),
        np.asarray(dist, dtype=np.float64),
    )


def dense_molecule_pairs(
    pos: np.ndarray, starts: np.ndarray, counts: np.ndarray, cutoff: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs i != j inside each small non-periodic molecule closer than ``cutoff``: O(sum n_b^2).

    Molecule b holds the atoms ``starts[b] : starts[b] + counts[b]`` of ``pos`` (N, 3); ``starts`` rises.
    Every n_b^2 ordered pair is enumerated at once (no Python loop), which for molecules of a few dozen
    atoms is faster than one cell-list call per molecule. Returns global i, j (E,) int64 sorted by i,
    then j, and the distances d (E,) = |pos[j] - pos[i]| in Angstrom.
    """
    squares = counts.astype(np.int64) ** 2
    molecule = np.repeat(np.arange(len(counts)), squares)
    local = np.arange(int(squares.sum())) - np.repeat(np.cumsum(squares) - squares, squares)
    size = counts[molecule]
    p = local // size
    q = local - p * size
    keep = p != q
    i = (starts[molecule] + p)[keep]
    j = (starts[molecule] + q)[keep]
    diff = pos[j] - pos[i]
    dist = np.sqrt(np.einsum("ek,ek->e", diff, diff))
    within = dist < cutoff
    return i[within], j[within], dist[within]


def argsort_keys(key: np.ndarray) -> np.ndarray:
    """Stable argsort of non-negative int64 keys: sorts ``key << b | index`` when that fits 63 bits."""
    bits = max(int(key.size).bit_length(), 1)
    if key.size and int(key.max()) < 2 ** (63 - bits):
        packed = key << bits
        packed |= np.arange(key.size, dtype=np.int64)
        packed.sort()  # one plain int64 sort (SIMD) is about twice as fast as an argsort
        return packed & ((1 << bits) - 1)
    return np.argsort(key, kind="stable")


def sort_pairs(
    i: np.ndarray, j: np.ndarray, shifts: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort by i, then j, then S: one sort on the key i * n + j, then by S where (i, j) repeats."""
    key = i * n
    key += j
    order = argsort_keys(key)
    key = key[order]
    if key.size > 1 and (key[1:] == key[:-1]).any():  # several images of one j: order them by S
        s = np.take(shifts, order, axis=0).astype(np.int64)
        low = s.min(axis=0)
        width = s.max(axis=0) - low + 1
        if float(n) * n * float(np.prod(width)) < 2.0**62:
            code = ((s[:, 0] - low[0]) * width[1] + (s[:, 1] - low[1])) * width[2] + (s[:, 2] - low[2])
            sub = argsort_keys(key * int(np.prod(width)) + code)
        else:
            sub = np.lexsort((s[:, 2], s[:, 1], s[:, 0], key))
        order = order[sub]
        key = key[sub]
    i_sorted = key // n
    j_sorted = key - i_sorted * n
    return i_sorted, j_sorted, np.take(shifts, order, axis=0).astype(np.int64)


def edge_pairs_by_centre(target: np.ndarray, num_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) int64 with target[a] == target[b], a < b, for ``target`` (E,) sorted ascending.

    With end[c] one past the last edge of centre c, edge a has partners a + 1 ... end[target[a]] - 1;
    a is repeated that many times and b = (position in the output) + a + 1 - (start of a's block).
    """
    end = np.cumsum(np.bincount(target, minlength=num_atoms))
    edges = np.arange(target.size, dtype=np.int64)
    partners = end[target] - edges - 1
    a = np.repeat(edges, partners)
    b = np.arange(a.size, dtype=np.int64)
    b += np.repeat(edges + 1 - (np.cumsum(partners) - partners), partners)
    return a, b
