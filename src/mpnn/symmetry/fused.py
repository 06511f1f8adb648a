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
from mpnn.symmetry.gaussian_table import GaussianGroup
from mpnn.symmetry.gaussian_table import gaussian_table as gaussian_tables


def fusable(terms: Any) -> bool:
    """Whether a group's terms module is one the fused kernels compute."""
    return isinstance(terms, (GaussianRadial, GaussianAngular)) or compact_tables.compact(terms)


def tables(groups: Sequence[Any], species_count: int) -> tuple[tuple | None, tuple | None]:
    """(the Gaussian kernel's table arguments (after ``width``), the compact kernel's), each None
    where there are no such groups, for the fusable ``groups`` (``_Group``s of
    :class:`~mpnn.messages.symmetry_functions.SymmetryFunctions`)."""
    gaussian = [_plain(g) for g in groups if isinstance(g.terms, (GaussianRadial, GaussianAngular))]
    gaussian_table = gaussian_tables(gaussian, species_count) if gaussian else None
    return gaussian_table, compact_tables.tables(groups, species_count)


def _plain(group: Any) -> GaussianGroup:
    """A ``_Group`` of Gaussian terms as the numbers of its functions (from its buffers, which a
    state dict may have loaded), in column order."""
    terms = group.terms
    if isinstance(terms, GaussianRadial):
        per_function = [terms.eta, terms.rs, terms.rc, terms.eta * 0.0, terms.eta * 0.0]
    else:
        radial, angular = terms.radial[terms.radial_index], terms.angular[terms.angular_index]
        per_function = [radial[:, 0], radial[:, 1], terms.rc[terms.rc_index], angular[:, 0], angular[:, 1]]
    return GaussianGroup(
        group.element,
        group.neighbors,
        tuple(group.columns.tolist()),
        isinstance(terms, GaussianAngular),
        bool(getattr(terms, "narrow", False)),
        *(tuple(values.tolist()) for values in per_function),
        int(terms.cutoff_fn.cutoff_type),
        float(terms.cutoff_fn.alpha),
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
