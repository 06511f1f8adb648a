"""All functions of a message in one compiled call (:mod:`mpnn.symmetry.fused_kernels`).

:func:`tables` packs the parameters of a message's Gaussian groups (radial types 2, 12, angular
3, 9, 13) and of its compact ones (types 20-25, :mod:`mpnn.symmetry.compact_kernels`, a second
walk adding to the same arrays) once; :class:`FusedFunctions` computes their (N, W) matrix, and
its backward pass walks the same pairs again to give sum_f dL/dG_f dG_f/d(edge vector) (E, 3)
directly (:func:`contract`), without forming dG/d(edge vector) (E, W, 3) as n2p2 stores it.  A
differentiable backward (training on forces, second derivatives) recomputes the vector gradient
with the per-group path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mpnn.symmetry import compact_tables, compiled
from mpnn.symmetry.gaussian import GaussianAngular, GaussianRadial


def fusable(terms: Any) -> bool:
    """Whether a group's terms module is one the fused kernels compute."""
    return isinstance(terms, (GaussianRadial, GaussianAngular)) or compact_tables.compact(terms)


def tables(groups: Sequence[Any], species_count: int) -> tuple[tuple | None, tuple | None]:
    """(the Gaussian kernel's table arguments (after ``width``), the compact kernel's), each None
    where there are no such groups, for the fusable ``groups`` (``_Group``s of
    :class:`~mpnn.messages.symmetry_functions.SymmetryFunctions`)."""
    gaussian = [g for g in groups if isinstance(g.terms, (GaussianRadial, GaussianAngular))]
    gaussian_table = _gaussian_tables(gaussian, species_count) if gaussian else None
    return gaussian_table, compact_tables.tables(groups, species_count)


def _gaussian_tables(groups: Sequence[Any], species_count: int) -> tuple:
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
        terms = group.terms
        kind, alpha = terms.cutoff_fn.cutoff_type, float(terms.cutoff_fn.alpha)
        columns = group.columns.tolist()
        if isinstance(terms, GaussianRadial):
            r = radial
            r["centre"].append(group.element)
            r["e"].append(-1 if group.neighbors is None else group.neighbors[0])
            r["f0"].append(len(r["eta"]))
            r["eta"] += terms.eta.tolist()
            r["rs"] += terms.rs.tolist()
            r["c"] += [rc_index(v) for v in terms.rc.tolist()]
            r["col"] += columns
            r["f1"].append(len(r["eta"]))
            continue
        a = angular
        e1, e2 = (-1, -1) if group.neighbors is None else group.neighbors
        a["centre"].append(group.element)
        a["e1"].append(e1)
        a["e2"].append(e2)
        a["narrow"].append(bool(terms.narrow))
        for name, values in (("m", terms.radial), ("k", terms.angular)):
            a[f"{name}0"].append(len(a["eta" if name == "m" else "lam"]))
            a["eta" if name == "m" else "lam"] += values[:, 0].tolist()
            a["rs" if name == "m" else "zeta"] += values[:, 1].tolist()
            a[f"{name}1"].append(len(a["eta" if name == "m" else "lam"]))
        a["c0"].append(len(a["crc"]))
        a["crc"] += [rc_index(v) for v in terms.rc.tolist()]
        a["c1"].append(len(a["crc"]))
        a["f0"].append(len(a["fm"]))
        # the functions of one Gaussian and one cutoff next to each other (the backward walk
        # sums their angular parts first; the functions themselves do not depend on the order)
        fm, fk, fc = terms.radial_index.tolist(), terms.angular_index.tolist(), terms.rc_index.tolist()
        norm = terms.norm.tolist()
        for f in sorted(range(len(fm)), key=lambda f: (fm[f], fc[f], fk[f])):
            a["fm"].append(fm[f])
            a["fk"].append(fk[f])
            a["fc"].append(fc[f])
            a["norm"].append(norm[f])
            a["col"].append(columns[f])
        a["f1"].append(len(a["fm"]))
        rcmax[group.element] = max(rcmax[group.element], terms.cutoff)
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


@dataclass
class Walk:
    """What :func:`contract` needs to give the vector gradient: the edges and the tables, walked
    again with dL/dG.  The (E, W, 3) Jacobian dG/d(edge vector) is never formed (75 MB for
    n2p2's 1,080-atom water box, 400 MB for its 256-atom anisole): a second walk that sums the
    functions' derivatives weighted by dL/dG costs less than writing and reading it."""

    edges: compiled.EdgeArrays
    width: int
    table: tuple


_NONE = np.empty((0, 0))


def run(
    edges: compiled.EdgeArrays, width: int, table: tuple, jacobian: bool
) -> tuple[np.ndarray, Walk | None]:
    """G (N, width) of the fused functions (other columns 0) and, with ``jacobian``, what
    :func:`contract` needs for the gradient."""
    from mpnn.symmetry.fused_kernels import fused_walk

    gaussian, compact = table
    arrays = edges.kernel_args()
    if gaussian is not None:
        no_grad = (_NONE.reshape(0, width), _NONE.reshape(0, 3))
        out = compiled._run(fused_walk, (*arrays, width, *gaussian, *no_grad))
    else:
        out = np.zeros((edges.ptr.shape[0] - 1, width))
    if compact is not None:
        from mpnn.symmetry.compact_kernels import compact_forward

        compiled._run(compact_forward, (*arrays, compact, out))
    return out, Walk(edges, width, table) if jacobian else None


def contract(grad: np.ndarray, walk: Walk) -> np.ndarray:
    """(E, 3) sum_f grad[centre(e), f] dG[centre(e), f]/dvec[e] (``grad`` (N, W) float64)."""
    from mpnn.symmetry.fused_kernels import fused_walk

    grad = np.ascontiguousarray(grad, dtype=np.float64)
    gaussian, compact = walk.table
    arrays = walk.edges.kernel_args()
    dvec = np.zeros((walk.edges.vectors.shape[0], 3))
    if gaussian is not None:
        compiled._run(fused_walk, (*arrays, walk.width, *gaussian, grad, dvec))
    if compact is not None:
        from mpnn.symmetry.compact_kernels import compact_backward

        compiled._run(compact_backward, (*arrays, compact, grad, dvec))
    return dvec


def energy_forces(
    edges: compiled.EdgeArrays,
    width: int,
    table: tuple,
    scaling: tuple,
    networks: tuple,
    scale: float,
    offsets: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(raw G (N, width), atomic energies (N,), dE/d(edge vector) (E, 3)) of an HDNNP whose
    functions are all Gaussian (``table``'s compact part None) in one walk
    (:func:`mpnn.symmetry.fused_energy.energy_walk`: ``scaling``, ``networks``, ``scale`` and
    ``offsets`` as it takes them)."""
    from mpnn.symmetry.fused_energy import energy_walk

    n = edges.ptr.shape[0] - 1
    raw, energies = np.zeros((n, width)), np.zeros(n)
    dvec = np.zeros((edges.vectors.shape[0], 3))
    args = (*edges.kernel_args(), table[0], scaling, networks, scale, offsets, raw, energies, dvec)
    compiled._run(energy_walk, args)
    return raw, energies, dvec


class FusedFunctions(torch.autograd.Function):
    """``apply(vectors (E, 3), edges, width, tables, fallback) -> (N, width)`` unscaled values of
    the fused groups (other columns 0).  ``fallback(vectors, grad)`` gives the differentiable vector
    gradient (used when the backward pass itself is recorded)."""

    @staticmethod
    def forward(
        ctx: Any,
        vectors: Tensor,
        edges: compiled.EdgeArrays,
        width: int,
        table: tuple,
        fallback: Callable[[Tensor, Tensor], Tensor],
    ) -> Tensor:
        need = vectors.requires_grad
        out, walk = run(edges, width, table, need)
        ctx.walk, ctx.fallback = walk, fallback
        if need:
            ctx.save_for_backward(vectors)
        return torch.from_numpy(out).to(device=vectors.device, dtype=vectors.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor):  # noqa: D102
        if torch.is_grad_enabled():
            (vectors,) = ctx.saved_tensors
            grad_vectors = ctx.fallback(vectors, grad)
        else:
            grad_vectors = torch.from_numpy(contract(grad.detach().cpu().double().numpy(), ctx.walk))
            grad_vectors = grad_vectors.to(device=grad.device, dtype=grad.dtype)
        return grad_vectors, None, None, None, None
