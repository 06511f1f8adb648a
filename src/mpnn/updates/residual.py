r"""Updates of the learned steps of :mod:`mpnn.models.sf_mpnn`, and the pass-through update.

* :class:`ResidualUpdate`: :math:`h' = h + \mathrm{NN}([h, m])`, NN a two-layer SiLU network
  (2d -> d -> d). The residual form keeps the previous step's state, so an untrained step starts
  near the identity and the gradient reaches the first steps undiminished.
* :class:`TakeMessage`: :math:`h' = m`, the update of a step whose message is already the new
  state (the symmetry functions of a one-step model, read by its per-element energy networks).

Shapes: h (N, d), m (N, d) -> (N, d).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mpnn.updates.mlp import mlp


class ResidualUpdate(nn.Module):
    """h' = h + mlp([2d, d, d], "silu")([h, m])."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.net = mlp([2 * features, features, features], "silu")

    def forward(self, h: Tensor, m: Tensor) -> Tensor:
        return h + self.net(torch.cat([h, m], dim=1))


class TakeMessage(nn.Module):
    """h' = m."""

    def forward(self, h: Tensor, m: Tensor) -> Tensor:
        return m
