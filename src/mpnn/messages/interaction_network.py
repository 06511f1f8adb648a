r"""Relational message of the interaction network (Battaglia et al. 2016), carrying x_v along.

.. math::
    m_v = \Big[\sum_{w \in N(v)} \phi_R([h_v, h_w, e_{vw}]),\; x_v\Big]

:math:`\phi_R` is the relational MLP ("effects" of width ``effect_dim``).  The interaction
network's update :math:`U(h_v, x_v, m_v) = \phi_O([h_v, x_v, m_v])` also reads the external input
:math:`x_v` (Gilmer et al. 2017, Sec. 2), but the engine's update sees only (h, m).  So the message
appends :math:`x_v` (taken from the batch in :meth:`InteractionMessage.prepare`) to the summed
effects: then :math:`U(h, m) = \phi_O([h, m])` is exactly :math:`\phi_O` applied to
:math:`(h_v, \sum_w \phi_R, x_v)`, with its input columns in that order
(:class:`mpnn.updates.mlp.MLPUpdate`).

Shapes: h (N, d), e (E, D_e), x (N, F) -> m (N, effect_dim + F) (F = 0 without ``external``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mpnn.batch import Batch
from mpnn.errors import DataError
from mpnn.scatter import segment_sum
from mpnn.updates.mlp import mlp


@dataclass
class InteractionContext:
    """source, target (E,); edge_attr (E, D_e); external (N, F) the x_v appended to m_v."""

    source: Tensor
    target: Tensor
    num_nodes: int
    edge_attr: Tensor
    external: Tensor


class InteractionMessage(nn.Module):
    """m_v = [sum_w phi_R([h_v, h_w, e_vw]), x_v]; phi_R = ``mlp([2 dim + D_e, *hidden, effect_dim])``.

    Args:
        dim: d, width of h.  edge_features: D_e.  effect_dim: width of phi_R's output.
        hidden: hidden widths of phi_R.  external: F, the width of x appended (0: none).
        act: activation between phi_R's layers.
    """

    def __init__(
        self,
        dim: int,
        edge_features: int,
        effect_dim: int,
        hidden: Sequence[int] = (),
        external: int = 0,
        act: str = "relu",
    ) -> None:
        super().__init__()
        self.external = external
        self.out_features = effect_dim + external
        self.relational = mlp([2 * dim + edge_features, *hidden, effect_dim], act)

    def prepare(self, batch: Batch, edge_attr: Tensor, steps: int = 1) -> InteractionContext:
        source, target = batch.edge_index
        if self.external and batch.x.shape[1] != self.external:
            raise DataError(
                f"x: {batch.x.shape[1]} node features, the interaction network expects {self.external}"
            )
        external = batch.x[:, : self.external].to(edge_attr.dtype)
        return InteractionContext(source, target, batch.num_atoms, edge_attr, external)

    def forward(self, h: Tensor, ctx: InteractionContext) -> Tensor:
        """h (N, d) -> (N, effect_dim + F)."""
        effects = self.relational(torch.cat([h[ctx.target], h[ctx.source], ctx.edge_attr], dim=1))
        return torch.cat([segment_sum(effects, ctx.target, ctx.num_nodes), ctx.external], dim=1)
