r"""Symmetrically normalised neighbour sum of Kipf & Welling's (2017) graph convolution.

In Gilmer et al.'s (2017, Sec. 2) form the message is :math:`M(h_v, h_w) = c_{vw} h_w`:

.. math::
    m_v = \sum_{w \in N(v) \cup \{v\}} c_{vw}\, h_w, \qquad
    c_{vw} = \frac{1}{\sqrt{\tilde d_v \tilde d_w}}, \qquad \tilde d_v = \deg(v) + 1

i.e. :math:`m = \tilde D^{-1/2} (A + I) \tilde D^{-1/2} h` with the degrees of A + I (self loops
included).  The weights are the update's: :math:`h' = \sigma(W m + b)`.  The graph's edges must
come in both directions (A symmetric), as :func:`mpnn.batch.collate` gives them.

Shapes: h (N, d) -> m (N, d).  The coefficients do not depend on h and are computed once per
forward pass (:meth:`NormalizedSum.prepare`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mpnn.batch import Batch
from mpnn.scatter import segment_sum


@dataclass
class NormalizedContext:
    """source, target (E,); coefficient (E, 1) c_vw of each edge; self_coefficient (N, 1) c_vv."""

    source: Tensor
    target: Tensor
    num_nodes: int
    coefficient: Tensor
    self_coefficient: Tensor


class NormalizedSum(nn.Module):
    """m_v = sum over w in N(v) and v itself of h_w / sqrt((deg v + 1)(deg w + 1)); no weights."""

    def prepare(self, batch: Batch, edge_attr: Tensor, steps: int = 1) -> NormalizedContext:
        source, target = batch.edge_index
        dtype = batch.pos.dtype
        degree = torch.bincount(target, minlength=batch.num_atoms).to(dtype) + 1.0
        inv_sqrt = degree.rsqrt()
        coefficient = (inv_sqrt[source] * inv_sqrt[target]).unsqueeze(1)
        return NormalizedContext(source, target, batch.num_atoms, coefficient, (1.0 / degree).unsqueeze(1))

    def forward(self, h: Tensor, ctx: NormalizedContext) -> Tensor:
        """h (N, d) -> (N, d)."""
        neighbours = segment_sum(ctx.coefficient.to(h.dtype) * h[ctx.source], ctx.target, ctx.num_nodes)
        return neighbours + ctx.self_coefficient.to(h.dtype) * h
