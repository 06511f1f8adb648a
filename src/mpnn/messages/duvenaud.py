r"""The message of Duvenaud et al.'s (2015) convolutional fingerprints, in Gilmer et al.'s form.

.. math::
    M(h_v, h_w, e_{vw}) = [h_w, e_{vw}, 1], \qquad
    m_v = \sum_{w \in N(v)} [h_w, e_{vw}, 1] = \Big[\sum_w h_w,\; \sum_w e_{vw},\; \deg(v)\Big]

The neighbours' states and the bond features are summed *separately* (Gilmer et al. note this);
the constant 1 appended to every message makes the last column of :math:`m_v` the degree of v,
which the degree-dependent update (:class:`mpnn.updates.duvenaud.DegreeUpdate`) reads: the update
sees only (h, m), and this keeps it an MPNN without a side channel.

Shapes: h (N, d), e (E, D_e) -> m (N, d + D_e + 1).  The edge part does not depend on h and is
summed once per forward pass (:meth:`NeighbourSum.prepare`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mpnn.batch import Batch
from mpnn.scatter import segment_sum


@dataclass
class NeighbourContext:
    """source, target (E,) edge endpoints; edge_sum (N, D_e + 1) the summed [e_vw, 1] of each v."""

    source: Tensor
    target: Tensor
    num_nodes: int
    edge_sum: Tensor


class NeighbourSum(nn.Module):
    """m_v = [sum_w h_w, sum_w e_vw, deg(v)], no weights (they are the update's)."""

    def prepare(self, batch: Batch, edge_attr: Tensor, steps: int = 1) -> NeighbourContext:
        source, target = batch.edge_index
        ones = edge_attr.new_ones(edge_attr.shape[0], 1)
        edge_sum = segment_sum(torch.cat([edge_attr, ones], dim=1), target, batch.num_atoms)
        return NeighbourContext(source, target, batch.num_atoms, edge_sum)

    def forward(self, h: Tensor, ctx: NeighbourContext) -> Tensor:
        """h (N, d) -> (N, d + D_e + 1)."""
        neighbours = segment_sum(h[ctx.source], ctx.target, ctx.num_nodes)
        return torch.cat([neighbours, ctx.edge_sum.to(h.dtype)], dim=1)
