r"""The gated readout of GG-NN (Li et al. 2016, Eq. 7; Gilmer et al. 2017, Sec. 5.3).

.. math::
    r_G = \sum_{v \in G} \sigma\big(i([h_v^T, x_v])\big) \odot j(h_v^T), \qquad
    \hat y_G = \mathrm{MLP}(r_G)

i and j are small networks of the same output width H (Linear, ReLU, Linear); the gate
:math:`\sigma(i(\cdot))` reads the input features x_v, which stand for :math:`h_v^0` (h^0 is
x_v zero-padded, so they carry the same information).  As in Gilmer et al.'s code, j has no
output nonlinearity (Li et al. put a tanh there; identity is better for regression).  The sum
r_G (H) goes through an MLP (Linear, ReLU, Linear) to the K targets.

Shapes: h (N, dim), x (N, F), index (N,) -> (B, K).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mpnn.scatter import segment_sum


def _two_layers(a: int, hidden: int, b: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(a, hidden), nn.ReLU(), nn.Linear(hidden, b))


class GatedReadout(nn.Module):
    """GG-NN's graph-level output: a gated sum over atoms, then an MLP to K targets.

    Args:
        dim: width of h (d, or T·d when reading every step's states).
        in_features: F, width of x (0: the gate reads h alone).
        out_features: K targets.
        hidden: H, width of i, j (hidden and output) and of the final MLP's hidden layer.

    Attributes ``gate`` (i), ``value`` (j) and ``head`` are the three networks.
    """

    def __init__(self, dim: int, in_features: int, out_features: int, hidden: int = 128) -> None:
        super().__init__()
        self.in_features = in_features
        self.gate = _two_layers(dim + in_features, hidden, hidden)
        self.value = _two_layers(dim, hidden, hidden)
        self.head = _two_layers(hidden, hidden, out_features)

    def forward(self, h: Tensor, x: Tensor, index: Tensor, num_graphs: int) -> Tensor:
        gate_input = torch.cat([h, x.to(h.dtype)], dim=-1) if self.in_features else h
        gated = torch.sigmoid(self.gate(gate_input)) * self.value(h)
        return self.head(segment_sum(gated, index, num_graphs))
