"""O(N) neighbour lists (with periodic images) and angular triplets.

For positions ``pos`` (N, 3) in Angstrom, lattice vectors as the rows of ``cell`` (3, 3) and periodic
directions ``pbc`` (3,) bool (any of the 8 patterns), the full neighbour list is the set of all ordered
pairs (i, j, S), S in Z^3 with S_k = 0 where pbc_k is False, such that

    r_ij = pos[j] - pos[i] + S @ cell,        0 < |r_ij| < cutoff        (strict).

It holds both (i, j, S) and (j, i, -S), self images (i == i, S != 0) and several images of one j
when the cell is shorter than the cutoff; never (i, i, 0). In a batch (message passing) the edge
j -> i carries ``edge_index = [source j, target i]`` and ``shifts = S``, so a model computes r_ij
from ``pos``, ``cell`` and ``shifts`` with gradients flowing into ``pos`` (forces) and ``cell`` (stress).

The pairs come from a cell-list backend (O(N) for a fixed density and cutoff): vesin when a recent
one is importable, else ``ase.neighborlist.primitive_neighbor_list``; they are then sorted by i, then
j, then S lexicographically (one int64 key sort). In a batch, the small molecules (at most
DENSE_MAX_ATOMS atoms) skip the cell list: all their n_b^2 pairs are tested in one vectorised pass.
Triplets (pairs of edges around one centre, for angular symmetry functions) are built without a
Python loop from a target-sorted edge list: T = sum over atoms of d (d - 1) / 2 for degree d.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from mpnn.errors import DataError
from mpnn.neighbors_backends import (
    argsort_keys,
    ase_pairs,
    backend_box,
    dense_molecule_pairs,
    edge_pairs_by_centre,
    sort_pairs,
    vesin_available,
    vesin_pairs,
)

if TYPE_CHECKING:  # PyTorch is imported where a function needs it: the numpy ones run without
    from torch import Tensor

#: Two atoms (or an atom and an image) closer than this (Angstrom) are "at the same position".
SAME_POSITION_TOL = 1e-8
#: Refuse a structure whose list would hold more than about this many pairs (about 50 bytes and
#: a microsecond each; a 100,000-atom box of a dense metal with a 12 Angstrom cutoff has 6e7).
MAX_PAIRS = 1e8
#: Refuse a structure whose atoms would have more than about this many neighbours on average (the
#: angular terms cost their square per atom; a dense metal with a 20 Angstrom cutoff has about 3,000).
MAX_NEIGHBORS = 5e3
#: Refuse a periodic cell so thin that the cutoff reaches more than this many images along one row.
MAX_IMAGES = 100
#: The cell-list backends bin each box row into cells of the search radius; vesin 0.6 crashes the
#: process beyond about 1e5 bins along one row. A structure longer than this many cutoffs (12
#: micrometres at 6 Angstrom) is searched with radius length / MAX_BINS and the list then cut.
MAX_BINS = 20_000
#: Refuse a structure longer than this (Angstrom) along a box row: 10 micrometres is no atomistic
#: structure, and vesin 0.6 crashes the process on some far larger ones (a unit mix-up).
MAX_EXTENT = 1e5
#: In a batch, molecules up to this size go through one vectorised all-pairs pass instead of a
#: cell list each (per-call overhead dominates below about 50 atoms).
DENSE_MAX_ATOMS = 48
BACKENDS = ("auto", "vesin", "ase")

__all__ = ["BACKENDS", "batch_neighbor_list", "check_size", "check_structure", "neighbor_list", "triplets"]


def _checked_cutoff(cutoff: float) -> float:
    try:
        cutoff = float(cutoff)
    except (TypeError, ValueError):
        raise DataError(f"cutoff must be a number, got {cutoff!r}") from None
    if not (np.isfinite(cutoff) and cutoff > 0):
        raise DataError(f"cutoff must be a positive finite number of Angstrom, got {cutoff}")
    return cutoff


def _validate(
    pos: np.ndarray, cutoff: float, cell: np.ndarray | None, pbc: Sequence[bool] | np.ndarray
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Checked float64 copies of the inputs; a zero cell stands for ``None``."""
    pos = np.ascontiguousarray(pos, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise DataError(f"positions must have shape (N, 3), got {tuple(pos.shape)}")
    if not np.isfinite(pos).all():
        raise DataError("positions contain NaN or inf")
    cutoff = _checked_cutoff(cutoff)
    pbc = np.asarray(pbc, dtype=bool).reshape(-1)
    if pbc.shape != (3,):
        raise DataError(f"pbc must have 3 entries, got {pbc.shape[0]}")
    if cell is None:
        if pbc.any():
            raise DataError(f"pbc is {pbc.tolist()} but no cell was given")
        check_size(pos, cutoff, np.zeros((3, 3)), pbc)
        return pos, cutoff, np.zeros((3, 3)), pbc
    cell = np.ascontiguousarray(cell, dtype=np.float64)
    if cell.shape != (3, 3):
        raise DataError(f"cell must have shape (3, 3), got {tuple(cell.shape)}")
    if not np.isfinite(cell[pbc]).all():
        raise DataError("cell contains NaN or inf in a periodic direction")
    if pbc.any():
        periodic = cell[pbc]
        norms = np.linalg.norm(periodic, axis=1)
        singular = bool((norms == 0).any())
        if not singular:
            # smallest singular value of the unit-normalised periodic rows: 0 when they are dependent
            singular = np.linalg.svd(periodic / norms[:, None], compute_uv=False)[-1] < 1e-8
        if singular:
            rows = np.flatnonzero(pbc).tolist()
            raise DataError(f"cell is singular: rows {rows} (pbc True) are zero or linearly dependent")
    check_size(pos, cutoff, cell, pbc)
    return pos, cutoff, cell, pbc


def check_structure(
    pos: np.ndarray, cutoff: float, cell: np.ndarray | None, pbc: Sequence[bool] | np.ndarray
) -> None:
    """The checks of :func:`neighbor_list` (shapes, finite values, a regular cell, :func:`check_size`
    at ``cutoff``) without the search: one-line :class:`DataError` naming ``cutoff``."""
    _validate(pos, cutoff, cell, pbc)


def check_size(pos: np.ndarray, cutoff: float, cell: np.ndarray, pbc: np.ndarray) -> None:
    """Refuse, before any pair is searched, a structure whose list would be absurdly large.

    Estimates from the extent of the structure alone: the box is the periodic rows of ``cell`` and,
    across the non-periodic directions, the extent of the atoms + 1 Angstrom; with V its volume and
    h_k its thickness across row k, the cutoff reaches m_k = ceil(cutoff / h_k) images along a
    periodic row. Neighbours per atom: the atoms in a ball of the cutoff at the mean density,
    n (4/3 pi rc^3) / V, or the atom's own images, about c_d prod_k (2 floor(rc / h_k) + 1) over the
    d rows thinner than the cutoff (c_d = 1, pi/4, pi/6: ball over box), whichever is larger (a thin
    cell packs images on a line or plane), at most n prod_k (2 m_k + 1). Raises a
    one-line :class:`DataError` when m_k > :data:`MAX_IMAGES`, the neighbours per atom exceed
    :data:`MAX_NEIGHBORS` or the pairs :data:`MAX_PAIRS`.

    Args:
        pos: (n, 3) finite positions, Angstrom. cutoff: > 0, Angstrom. cell: (3, 3) rows (zero rows
            where not periodic). pbc: (3,) bool; periodic rows are independent (checked before).
    """
    n = pos.shape[0]
    if n == 0:
        return
    box = backend_box(pos, cell, pbc)
    with np.errstate(over="ignore", invalid="ignore"):
        lengths = np.sqrt(np.square(box).sum(axis=1))
    if not lengths.max() <= MAX_EXTENT:
        k = int(np.nanargmax(np.where(np.isnan(lengths), np.inf, lengths)))
        what = "the cell is" if pbc[k] else "the atoms spread over"
        raise DataError(
            f"{what} {lengths[k]:.3g} A along row {k}, more than {MAX_EXTENT:.0e} A; "
            "check the units and the coordinates"
        )
    volume = abs(float(np.linalg.det(box)))
    areas = np.linalg.norm(np.cross(box[[1, 2, 0]], box[[2, 0, 1]]), axis=1)
    thickness = volume / areas
    reach = np.where(pbc, np.ceil(cutoff / thickness), 0.0)
    if reach.max() > MAX_IMAGES:
        k = int(np.argmax(reach))
        raise DataError(
            f"the cell is {thickness[k]:.3g} A thick across row {k}: cutoff {cutoff:g} A reaches "
            f"{reach[k]:.3g} periodic images along it (bound {MAX_IMAGES}); check the cell units"
        )
    layers = np.where(pbc, np.floor(cutoff / thickness), 0.0)
    own = float(np.prod(2.0 * layers + 1.0)) * (1.0, 1.0, np.pi / 4, np.pi / 6)[int((layers > 0).sum())] - 1.0
    ball = 4.0 / 3.0 * np.pi * cutoff**3
    most = n * float(np.prod(2.0 * reach + 1.0)) - (0.0 if pbc.any() else 1.0)
    per_atom = min(max(n * ball / volume, own), most)
    if per_atom > MAX_NEIGHBORS or n * per_atom > MAX_PAIRS:
        where = f"a cell of {volume:.4g} A^3" if pbc.all() else f"a region of {volume:.4g} A^3"
        raise DataError(
            f"cutoff {cutoff:g} A reaches about {per_atom:.2g} neighbours per atom "
            f"({n * per_atom:.2g} pairs) for {n} atoms in {where}; the bounds are {MAX_NEIGHBORS:.0e} "
            f"per atom and {MAX_PAIRS:.0e} pairs (mpnn.neighbors); check the cell units and the coordinates"
        )


def _raise_same_position(i: np.ndarray, j: np.ndarray, shifts: np.ndarray, bad: np.ndarray) -> None:
    """One-line error for the first (by i, j, S) pair closer than :data:`SAME_POSITION_TOL`."""
    s = shifts[bad]
    first = bad[np.lexsort((s[:, 2], s[:, 1], s[:, 0], j[bad], i[bad]))[0]]
    a, b, shift = int(i[first]), int(j[first]), shifts[first].tolist()
    if a == b:
        raise DataError(f"atom {a} is at the same position as its periodic image {shift}")
    where = f" (periodic image {shift})" if any(shift) else ""
    raise DataError(f"atoms {a} and {b} are at the same position{where}")


def neighbor_list(
    pos: np.ndarray,
    cutoff: float,
    cell: np.ndarray | None = None,
    pbc: Sequence[bool] | np.ndarray = (False, False, False),
    *,
    backend: str = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full neighbour list: all ordered pairs (i, j, S) with 0 < |pos[j] - pos[i] + S @ cell| < cutoff.

    Args:
        pos: (N, 3) positions, Angstrom (need not be wrapped into the cell).
        cutoff: radius in Angstrom, > 0; pairs at exactly ``cutoff`` are excluded.
        cell: (3, 3) lattice vectors as rows, Angstrom; only its periodic rows are used (``None`` for
            molecules). pbc: (3,) bool, mixed patterns allowed (a slab is (True, True, False)).
        backend: ``"auto"`` (vesin >= 0.5.8 if importable, else ASE), ``"vesin"`` or ``"ase"``.

    Returns:
        i (E,), j (E,) int64 and S (E, 3) int64 integer cell shifts (zero in non-periodic
        directions), sorted by i, then j, then S lexicographically. Self images (i == j, S != 0)
        and several images of one j (cells shorter than the cutoff) are included.

    Raises:
        DataError: bad shapes, NaN/inf, cutoff <= 0, a singular cell where pbc is True, or two atoms
            (or an atom and a periodic image) closer than 1e-8 Angstrom.
    """
    if backend not in BACKENDS:
        raise DataError(f"unknown neighbour-list backend {backend!r}; expected one of {list(BACKENDS)}")
    pos, cutoff, cell, pbc = _validate(pos, cutoff, cell, pbc)
    n = pos.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros((0, 3), dtype=np.int64)
    use_vesin = backend == "vesin" or (backend == "auto" and vesin_available())
    if backend == "vesin" and not vesin_available():
        raise DataError("neighbour-list backend 'vesin' needs vesin >= 0.5.8 (pip install -U vesin)")
    box = backend_box(pos, cell, pbc)
    search = max(cutoff, float(np.linalg.norm(box, axis=1).max()) / MAX_BINS)
    if search > cutoff:  # a very long structure: fewer, wider bins, then the pairs within cutoff
        check_size(pos, search, cell, pbc)
        box = backend_box(pos, cell, pbc, minimum=search)
    i, j, shifts, dist = (vesin_pairs if use_vesin else ase_pairs)(pos, search, box, pbc)
    if search > cutoff:
        keep = dist < cutoff
        i, j, shifts, dist = i[keep], j[keep], shifts[keep], dist[keep]
    bad = np.flatnonzero(dist < SAME_POSITION_TOL)
    if bad.size:
        _raise_same_position(i, j, shifts, bad)
    return sort_pairs(i, j, shifts, n)


def batch_neighbor_list(
    pos: Tensor,
    ptr: Tensor,
    cutoff: float,
    cell: Tensor | None = None,
    pbc: Tensor | None = None,
    *,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """Neighbour lists of a flat batch of B structures (atoms ``ptr[b]:ptr[b+1]``).

    Args:
        pos: (N, 3) positions, Angstrom. ptr: (B + 1,) int64 with ptr[0] = 0, ptr[B] = N.
        cell: (B, 3, 3) lattice rows or ``None``. pbc: (B, 3) bool; ``None`` means all structures
            are molecules (non-periodic, any ``cell`` is then unused).
        backend: as in :func:`neighbor_list`. Non-periodic structures of at most
            :data:`DENSE_MAX_ATOMS` atoms are handled together by one vectorised all-pairs pass.

    Returns:
        edge_index (2, E) int64 = [source j, target i] in GLOBAL atom indices, sorted by target, then
        source (then shift), and shifts (E, 3) in ``pos.dtype`` (integer values) = S, so that
        ``r_ij = pos[j] - pos[i] + S @ cell[batch[i]]``; both on ``pos.device``.
    """
    import torch

    pos_np, ptr_np, cell_np, pbc_np = _validate_batch(pos, ptr, cell, pbc)
    source, target, shift = batch_pairs(pos_np, ptr_np, cutoff, cell_np, pbc_np, backend=backend)
    edge_index = torch.from_numpy(np.stack([source, target]))
    shifts = torch.from_numpy(shift.astype(np.float64))
    return edge_index.to(pos.device), shifts.to(device=pos.device, dtype=pos.dtype)


def batch_pairs(
    pos_np: np.ndarray,
    ptr_np: np.ndarray,
    cutoff: float,
    cell_np: np.ndarray | None,
    pbc_np: np.ndarray | None,
    *,
    backend: str = "auto",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`batch_neighbor_list` in numpy: (source j (E,), target i (E,), shifts S (E, 3)) int64
    from ``pos_np`` (N, 3) float64, ``ptr_np`` (B + 1,) int64, ``cell_np`` (B, 3, 3) or None and
    ``pbc_np`` (B, 3) bool or None, in the same order."""
    cutoff = _checked_cutoff(cutoff)
    counts = np.diff(ptr_np)
    periodic = pbc_np.any(axis=1) if pbc_np is not None else np.zeros(len(counts), dtype=bool)
    dense = ~periodic & (counts <= DENSE_MAX_ATOMS)
    sources, targets, all_shifts = [], [], []
    if dense.any():
        i, j, dist = dense_molecule_pairs(pos_np, ptr_np[:-1][dense], counts[dense], cutoff)
        bad = np.flatnonzero(dist < SAME_POSITION_TOL)
        if bad.size:
            b = int(np.searchsorted(ptr_np, i[bad[0]], side="right")) - 1
            start = int(ptr_np[b])
            raise DataError(
                f"{_structure(b, ptr_np)}: atoms {i[bad[0]] - start} and {j[bad[0]] - start} "
                "are at the same position"
            )
        sources.append(j)
        targets.append(i)
        all_shifts.append(np.zeros((len(i), 3), dtype=np.int64))
    for b in np.flatnonzero(~dense):
        start, stop = int(ptr_np[b]), int(ptr_np[b + 1])
        try:
            i, j, s = neighbor_list(
                pos_np[start:stop],
                cutoff,
                cell_np[b] if periodic[b] else None,
                pbc_np[b] if periodic[b] else (False, False, False),
                backend=backend,
            )
        except DataError as err:
            raise DataError(f"{_structure(b, ptr_np)}: {err}") from None
        sources.append(j + start)
        targets.append(i + start)
        all_shifts.append(s)
    source = np.concatenate(sources) if sources else np.zeros(0, dtype=np.int64)
    target = np.concatenate(targets) if targets else np.zeros(0, dtype=np.int64)
    shift = np.concatenate(all_shifts) if all_shifts else np.zeros((0, 3), dtype=np.int64)
    if dense.any() and not dense.all():  # merge the two groups by target, then source; S order kept
        order = argsort_keys(target * len(pos_np) + source)
        source, target, shift = source[order], target[order], shift[order]
    return source, target, shift


def cell_volumes(cell: np.ndarray) -> np.ndarray:
    """(B,) volumes |a . (b x c)| of (B, 3, 3) cells (lattice vectors as rows, Angstrom^3),
    NaN where a cell spans no volume; the triple product term by term, so that every path
    dividing by a volume (stress) divides by the same number."""
    a, b, c = (np.asarray(cell, dtype=np.float64)[:, k] for k in range(3))
    cross = np.stack(
        [
            b[:, 1] * c[:, 2] - b[:, 2] * c[:, 1],
            b[:, 2] * c[:, 0] - b[:, 0] * c[:, 2],
            b[:, 0] * c[:, 1] - b[:, 1] * c[:, 0],
        ],
        axis=1,
    )
    volumes = np.abs(a[:, 0] * cross[:, 0] + a[:, 1] * cross[:, 1] + a[:, 2] * cross[:, 2])
    return np.where(volumes > 0, volumes, np.nan)


def numpy_edge_vectors(
    pos: np.ndarray,
    source: np.ndarray,
    target: np.ndarray,
    shift: np.ndarray | None = None,
    cell: np.ndarray | None = None,
    graph: np.ndarray | None = None,
) -> np.ndarray:
    """(E, 3) edge vectors ``pos[source] - pos[target] + S @ cell`` in numpy, outside autograd
    (:func:`mpnn.inputs.edge_vectors` in PyTorch), from ``pos`` (N, 3), the edges' atoms (E,),
    their shifts S (E, 3) and the cells (B, 3, 3) with each atom's structure ``graph`` (N,)
    (needed for B > 1).  ``take`` gathers: a quarter of torch's indexing time on 100,000 edges
    (the cell product may round differently from torch's, within 1e-15 relative)."""
    vectors = pos.take(source, 0)
    vectors -= pos.take(target, 0)
    if shift is not None and cell is not None:
        shift = shift.astype(vectors.dtype, copy=False)
        if cell.shape[0] == 1:
            vectors += shift @ cell[0]
        else:
            vectors += np.einsum("ex,exy->ey", shift, cell[graph[target]])
    return vectors


def _structure(b: int, ptr: np.ndarray) -> str:
    return f"structure {b} (atoms {int(ptr[b])}:{int(ptr[b + 1])})"


def _validate_batch(
    pos: Tensor, ptr: Tensor, cell: Tensor | None, pbc: Tensor | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """float64 / int64 / bool NumPy copies of a batch's tensors, checked for shapes and NaN."""
    import torch

    pos_np = pos.detach().to("cpu", torch.float64).numpy()
    if pos_np.ndim != 2 or pos_np.shape[1] != 3:
        raise DataError(f"positions must have shape (N, 3), got {tuple(pos_np.shape)}")
    ptr_np = ptr.detach().to("cpu", torch.int64).numpy().reshape(-1)
    n_atoms = pos_np.shape[0]
    if ptr_np.size < 1 or ptr_np[0] != 0 or ptr_np[-1] != n_atoms or (np.diff(ptr_np) < 0).any():
        shown = ptr_np.tolist() if ptr_np.size <= 8 else f"{ptr_np[:4].tolist()} ... {ptr_np[-2:].tolist()}"
        raise DataError(f"ptr must rise from 0 to the number of atoms {n_atoms}, got {shown}")
    finite = np.isfinite(pos_np).all(axis=1)
    if not finite.all():
        b = int(np.searchsorted(ptr_np, np.argmin(finite), side="right")) - 1
        raise DataError(f"{_structure(b, ptr_np)}: positions contain NaN or inf")
    num = ptr_np.size - 1
    cell_np = pbc_np = None
    if pbc is not None:
        pbc_np = pbc.detach().to("cpu", torch.bool).numpy()
        if pbc_np.shape != (num, 3):
            raise DataError(f"pbc must have shape ({num}, 3), got {tuple(pbc_np.shape)}")
        if pbc_np.any() and cell is None:
            raise DataError("pbc has periodic directions but no cell was given")
        if cell is not None:
            cell_np = cell.detach().to("cpu", torch.float64).numpy()
            if cell_np.shape != (num, 3, 3):
                raise DataError(f"cell must have shape ({num}, 3, 3), got {tuple(cell_np.shape)}")
    return pos_np, ptr_np, cell_np, pbc_np


def triplets(target: Tensor, num_atoms: int) -> tuple[Tensor, Tensor]:
    """All unordered pairs of edges around one centre, for angular terms (j, i, k with j != k).

    Args:
        target: (E,) int64 centre of each edge, sorted ascending (as ``edge_index[1]``).
        num_atoms: number of atoms N (centres are 0..N-1).

    Returns:
        a, b (T,) int64 edge indices with ``target[a] == target[b]`` and ``a < b``, ordered by centre,
        then a, then b; T = sum over centres of d (d - 1) / 2 for degree d. Edge a is followed by its
        ``end[target[a]] - a - 1`` partners a + 1, ..., end - 1, where end is one past the centre's
        last edge: one repeat, no Python loop (NumPy on CPU, torch on other devices).
    """
    import torch

    target = torch.as_tensor(target)
    if target.dim() != 1:
        raise DataError(f"triplets: target must be one-dimensional, got shape {tuple(target.shape)}")
    target = target.long()
    num_edges = target.numel()
    device = target.device
    if num_edges and bool((target[1:] < target[:-1]).any()):
        raise DataError("triplets: target (edge_index[1]) must be sorted ascending")
    if num_edges and (int(target[0]) < 0 or int(target[-1]) >= num_atoms):
        raise DataError(f"triplets: target holds atoms outside 0..{num_atoms - 1}")
    if device.type == "cpu":  # NumPy's repeat is about 10 times faster than torch's on CPU
        a, b = edge_pairs_by_centre(target.numpy(), num_atoms)
        return torch.from_numpy(a), torch.from_numpy(b)
    return _triplets_torch(target, num_atoms)


def _triplets_torch(target: Tensor, num_atoms: int) -> tuple[Tensor, Tensor]:
    """:func:`triplets` in torch ops on ``target``'s device (same formulas as the NumPy version)."""
    import torch

    end = torch.cumsum(torch.bincount(target, minlength=num_atoms), 0)
    edges = torch.arange(target.numel(), device=target.device)
    partners = end[target] - edges - 1
    a = torch.repeat_interleave(edges, partners)
    b = torch.arange(a.numel(), device=target.device)
    b += (edges + 1 - (torch.cumsum(partners, 0) - partners))[a]
    return a, b
