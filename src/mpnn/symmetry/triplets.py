r"""Neighbour pairs (j, k) around each centre i, and the chunked sum of angular terms over them.

An angular symmetry function sums over the unordered pairs j < k of neighbours of i; with N
atoms of ~n neighbours that is N n^2/2 triplets (about 5 million for 1080 atoms of water
within 6.35 Angstrom).  Two things keep this cheap:

* :func:`pair_blocks` only forms the pairs one function group needs: both neighbours of the
  right elements and within the group's cutoff (and, for narrow functions, r_jk < rc).
* :class:`TripletSum` evaluates the terms chunk by chunk and keeps no per-triplet tensor
  between forward and backward: the backward pass recomputes each chunk's terms and
  differentiates them (activation checkpointing).  Memory stays O(chunk), not O(triplets).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

#: Triplets evaluated at once.
CHUNK = 1 << 18


def _block_starts(counts: Tensor) -> Tensor:
    return torch.cumsum(counts, 0) - counts


def pair_blocks(
    centre: Tensor, first: Tensor, second: Tensor | None, num_atoms: int
) -> tuple[Tensor, Tensor]:
    """Pairs of edges (a, b) around the same centre atom.

    Args:
        centre: (E,) centre atom of every edge, sorted ascending.
        first: (E1,) edge indices allowed as the first neighbour, ascending.
        second: (E2,) edge indices allowed as the second, ascending; ``None``: the same set as
            ``first``, and then only pairs a < b are formed (unordered pairs).
        num_atoms: N.

    Returns:
        (a, b), each (T,) int64 edge indices; with ``second`` given, all pairs of an edge of
        ``first`` and an edge of ``second`` sharing a centre.
    """
    same = second is None
    second = first if same else second
    count_a = torch.bincount(centre[first], minlength=num_atoms)
    count_b = torch.bincount(centre[second], minlength=num_atoms)
    per_centre = count_a * (count_a - 1) // 2 if same else count_a * count_b
    total = int(per_centre.sum())
    if total == 0:
        empty = torch.zeros(0, dtype=torch.long, device=centre.device)
        return empty, empty
    owner = torch.repeat_interleave(torch.arange(num_atoms, device=centre.device), per_centre)
    q = torch.arange(total, device=centre.device) - _block_starts(per_centre)[owner]
    if same:
        # q enumerates x < y by y: q = y (y - 1) / 2 + x
        y = ((1.0 + torch.sqrt(1.0 + 8.0 * q.double())) / 2.0).floor().long()
        y = y - (y * (y - 1) // 2 > q).long() + ((y + 1) * y // 2 <= q).long()
        x = q - y * (y - 1) // 2
        start = _block_starts(count_a)[owner]
        return first[start + x], first[start + y]
    x, y = q // count_b[owner], q % count_b[owner]
    return first[_block_starts(count_a)[owner] + x], second[_block_starts(count_b)[owner] + y]


def triplet_geometry(vectors: Tensor, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """r_ij, r_ik, r_jk, cos theta_ijk (each (T,)) from edge vectors (E, 3) and pairs (a, b)."""
    u, v = vectors[a], vectors[b]
    rij, rik = u.norm(dim=1), v.norm(dim=1)
    rjk = (v - u).norm(dim=1)
    cos = (u * v).sum(1) / (rij * rik)
    return rij, rik, rjk, cos


Terms = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]


class TripletSum(torch.autograd.Function):
    r"""G[i, f] = \sum_{(a, b): centre(a) = i} terms_f(triplet (a, b)), chunk by chunk.

    ``TripletSum.apply(vectors, a, b, centre, weights, terms, num_atoms, width)`` with vectors
    (E, 3) edge vectors (differentiable), a, b (T,) edge pairs, centre (E,) centre atom per
    edge, weights (E,) atomic number of each edge's neighbour, terms the family module
    ``terms(rij, rik, rjk, cos, zj, zk) -> (T, F)``; a family with a method
    ``triplet_sums(vectors, a, b, centre, weights, num_atoms) -> (N, F)`` sums per centre itself
    (no (T, F) tensor).  Returns (N, F).

    The backward pass is itself differentiable with respect to the incoming gradient (so a
    loss on forces trains the networks behind G); the symmetry-function parameters are
    constants.
    """

    @staticmethod
    def forward(
        ctx,
        vectors: Tensor,
        a: Tensor,
        b: Tensor,
        centre: Tensor,
        weights: Tensor,  # noqa: D102
        terms: Terms,
        num_atoms: int,
        width: int,
    ) -> Tensor:
        ctx.save_for_backward(vectors, a, b, centre, weights)
        ctx.terms = terms
        out = vectors.new_zeros((num_atoms, width))
        summed = getattr(terms, "triplet_sums", None)
        for start in range(0, a.shape[0], CHUNK):
            ca, cb = a[start : start + CHUNK], b[start : start + CHUNK]
            if summed is not None:  # the family sums per centre itself, without (T, F) terms
                out += summed(vectors, ca, cb, centre, weights, num_atoms)
                continue
            values = terms(*triplet_geometry(vectors, ca, cb), weights[ca], weights[cb])
            out.index_add_(0, centre[ca], values)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        vectors, a, b, centre, weights = ctx.saved_tensors
        grad_vectors = triplet_vector_grad(vectors, a, b, centre, weights, ctx.terms, grad)
        return grad_vectors, None, None, None, None, None, None, None


def triplet_vector_grad(
    vectors: Tensor, a: Tensor, b: Tensor, centre: Tensor, weights: Tensor, terms: Terms, grad: Tensor
) -> Tensor:
    """dL/d(vectors) (E, 3) of the triplet sum, from dL/dG (N, F), recomputing chunk by chunk.

    Differentiable with respect to ``grad`` when grad mode is on (double backward).
    """
    keep_graph = torch.is_grad_enabled()
    summed = getattr(terms, "triplet_sums", None)
    if summed is not None:
        total = torch.zeros_like(vectors)
        for start in range(0, a.shape[0], CHUNK):
            ca, cb = a[start : start + CHUNK], b[start : start + CHUNK]
            with torch.enable_grad():
                vec = vectors.detach().requires_grad_()
                sums = summed(vec, ca, cb, centre, weights, grad.shape[0])
                (dv,) = torch.autograd.grad(sums, vec, grad, create_graph=keep_graph)
            total = total + dv
        return total
    grad_vectors = torch.zeros_like(vectors)
    parts = []
    for start in range(0, a.shape[0], CHUNK):
        ca, cb = a[start : start + CHUNK], b[start : start + CHUNK]
        with torch.enable_grad():
            u = vectors[ca].detach().requires_grad_()
            v = vectors[cb].detach().requires_grad_()
            rij, rik = u.norm(dim=1), v.norm(dim=1)
            rjk = (v - u).norm(dim=1)
            cos = (u * v).sum(1) / (rij * rik)
            values = terms(rij, rik, rjk, cos, weights[ca], weights[cb])
            du, dv = torch.autograd.grad(values, (u, v), grad[centre[ca]], create_graph=keep_graph)
        if keep_graph:
            parts.append((ca, du, cb, dv))
        else:
            grad_vectors.index_add_(0, ca, du).index_add_(0, cb, dv)
    if keep_graph and parts:  # out of place, so that the result stays differentiable
        index = torch.cat([p[0] for p in parts] + [p[2] for p in parts])
        grad_vectors = grad_vectors.index_add(
            0, index, torch.cat([p[1] for p in parts] + [p[3] for p in parts])
        )
    return grad_vectors
