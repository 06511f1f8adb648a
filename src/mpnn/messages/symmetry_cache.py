r"""Symmetry functions computed once: values and Jacobians that the message produces and consumes.

Symmetry functions depend on positions only, so a training set's are computed once (n2p2's
``memorize_symfunc_results``) and every epoch runs only the element networks. The cache of a
batch with N atoms, E directed edges ``e = (j -> i)`` and W functions is

* ``descriptors`` (N, W): the unscaled functions :math:`G_{if}`;
* ``descriptor_grad`` (E, W, 3): :math:`\partial G_{if} / \partial \mathbf r_e`, the derivative
  with respect to the edge vector :math:`\mathbf r_e` as the message receives it (in the
  model's length unit). :math:`G_i` depends only on the vectors of the edges that end at i, so
  this holds the whole Jacobian.

:func:`jacobian` makes them with the message's own modules; :class:`CachedFunctions` hands
them to the message in place of the computation: its forward returns ``descriptors``, its
backward maps :math:`\partial L / \partial G` (N, W) to the edge vectors,

.. math::
    \frac{\partial L}{\partial \mathbf r_e} = \sum_f \frac{\partial L}{\partial G_{i(e) f}}
    \frac{\partial G_{i(e) f}}{\partial \mathbf r_e},

with differentiable operations, so that the forces of :func:`mpnn.potentials.forces.evaluate`
(the autograd gradient with respect to positions) and a loss on them (a second backward pass)
go through the cache exactly as through the functions themselves. Memory: 8 E W 3 bytes in
float64 (ethanol, W = 100: 170 kB per structure).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from mpnn.batch import Batch
from mpnn.symmetry.families import FAMILIES


class CachedFunctions(torch.autograd.Function):
    """``apply(vectors (E, 3), values (N, W), grad (E, W, 3), centre (E,)) -> values``, with the
    gradient with respect to ``vectors`` from ``grad`` (module docstring)."""

    @staticmethod
    def forward(ctx: Any, vectors: Tensor, values: Tensor, grad: Tensor, centre: Tensor) -> Tensor:
        ctx.save_for_backward(grad, centre)
        return values.clone()

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, None, None, None]:
        grad, centre = ctx.saved_tensors
        return torch.einsum("ew,ewk->ek", grad_out[centre], grad.to(grad_out.dtype)), None, None, None


@dataclass
class FunctionGroup:
    """Some of a message's functions, computed apart: ``module`` holds only them.

    Attributes:
        module: a :class:`~mpnn.messages.symmetry_functions.SymmetryFunctions` of the group's
            functions (centre species ``centre``).
        columns: (W_g,) their columns in the message's (N, W) matrix.
        centre: species index of the centre element.
        neighbors: species indices whose atoms the functions see as neighbours.
    """

    module: Any
    columns: Tensor
    centre: int
    neighbors: Tensor


def function_groups(message: Any) -> list[FunctionGroup]:
    """The message's functions as radial groups (centre element, type, neighbour elements) and
    single angular functions (whose terms are expensive: one module per function keeps each
    column's backward pass to that function's own terms)."""
    from mpnn.messages.symmetry_functions import SymmetryFunctions

    numbers = message.elements
    everyone = list(range(len(numbers)))
    grouped: dict[tuple, list[int]] = {}
    for s, specs in enumerate(message.specs):
        for column, spec in enumerate(specs):
            neighbors = tuple(sorted({message.species_index(e) for e in spec.neighbors}))
            single = column if FAMILIES[spec.type].angular else None
            grouped.setdefault((s, spec.type, neighbors, single), []).append(column)
    out = []
    for (s, _, neighbors, _), columns in grouped.items():
        specs: list[list[Any]] = [[] for _ in numbers]
        specs[s] = [message.specs[s][c] for c in columns]
        module = SymmetryFunctions(numbers, specs, *message.cutoff_args)
        module.compiled = message.compiled
        seen = list(neighbors) if neighbors else everyone
        out.append(FunctionGroup(module, torch.tensor(columns), s, torch.tensor(seen)))
    return out


def jacobian(message: Any, batch: Batch, vectors: Tensor) -> tuple[Tensor, Tensor]:
    """Unscaled functions (N, W) and their Jacobian (E, W, 3) of ``message`` for ``batch``.

    ``vectors`` (E, 3) are the edge vectors as the message receives them. Computing all W
    functions at once would make each column's backward pass run over every function's terms;
    instead each :func:`function_groups` group is evaluated on the edges it can see (its centre
    element, its neighbours' elements) and differentiated column by column.
    """
    groups = function_groups(message)
    by_edges: dict[tuple[int, tuple[int, ...]], list[FunctionGroup]] = {}
    for group in groups:  # the groups that see the same edges
        by_edges.setdefault((group.centre, tuple(group.neighbors.tolist())), []).append(group)
    vectors = vectors.detach()
    species = message.species(batch)
    source, centre = batch.edge_index
    g = vectors.new_zeros((batch.num_atoms, message.width))
    dg = vectors.new_zeros((vectors.shape[0], message.width, 3))
    for (centre_species, neighbor_species), members in by_edges.items():
        seen = (species[centre] == centre_species) & torch.isin(
            species[source], torch.tensor(neighbor_species)
        )
        edges = seen.nonzero().squeeze(1)
        part = replace(
            batch, edge_index=batch.edge_index[:, edges], edge_type=batch.edge_type[edges], shift=None
        )
        local = vectors[edges].requires_grad_(True)
        columns = torch.cat([group.columns for group in members])
        grads = []
        for group in members:
            with torch.enable_grad():
                values = group.module.raw(part, local)
                for k in range(values.shape[1]):
                    (grad,) = torch.autograd.grad(
                        values[:, k].sum(), local, retain_graph=True, allow_unused=True
                    )
                    grads.append(torch.zeros_like(local) if grad is None else grad)
            g.index_add_(1, group.columns, values.detach())
        dg[edges.unsqueeze(1), columns.unsqueeze(0)] = torch.stack(grads, 1)
    return g, dg
