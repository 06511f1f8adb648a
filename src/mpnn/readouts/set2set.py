r"""Set2set readout (Vinyals et al. 2016), as Gilmer et al. use it.

.. math::
    q_t = \mathrm{LSTM}(q^*_{t-1}),\quad a_{v,t} = \mathrm{softmax}_v(h_v \cdot q_t),\quad
    r_t = \sum_v a_{v,t} h_v,\quad q^*_t = [q_t, r_t]

:class:`Set2Set` has PyTorch Geometric's semantics (its weights load as they are).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mpnn.scatter import segment_softmax, segment_sum


class Set2Set(nn.Module):
    """Order-invariant pooling of a set: (N, dim) with index (N,) -> (B, 2·dim)."""

    def __init__(self, dim: int, steps: int) -> None:
        super().__init__()
        self.dim, self.steps = dim, steps
        self.lstm = nn.LSTM(2 * dim, dim)

    def forward(self, h: Tensor, index: Tensor, num_graphs: int) -> Tensor:
        q_star = h.new_zeros(num_graphs, 2 * self.dim)
        state = (h.new_zeros(1, num_graphs, self.dim), h.new_zeros(1, num_graphs, self.dim))
        for _ in range(self.steps):
            q, state = self.lstm(q_star.unsqueeze(0), state)
            q = q.squeeze(0)
            attention = segment_softmax((h * q[index]).sum(dim=-1), index, num_graphs)
            r = segment_sum(attention.unsqueeze(-1) * h, index, num_graphs)
            q_star = torch.cat([q, r], dim=-1)
        return q_star


class Set2SetReadout(nn.Module):
    """Gilmer's readout: set2set over a linear projection of (h^T_v, x_v), then an MLP.

    Args:
        dim: d, width of h.  in_features: F, width of x (0 to read h alone).
        out_features: K targets.  steps: set2set processing steps.
        project: width of the projection (``None``: no projection, set2set reads h).
    """

    def __init__(
        self, dim: int, in_features: int, out_features: int, steps: int, project: int | None = None
    ) -> None:
        super().__init__()
        self.in_features = in_features
        width = project if project is not None else dim
        self.project = nn.Linear(dim + in_features, width) if project is not None else None
        self.set2set = Set2Set(width, steps)
        self.head = nn.Sequential(nn.Linear(2 * width, width), nn.ReLU(), nn.Linear(width, out_features))

    def forward(self, h: Tensor, x: Tensor, index: Tensor, num_graphs: int) -> Tensor:
        if self.project is not None:
            h = self.project(torch.cat([h, x], dim=-1) if self.in_features else h)
        return self.head(self.set2set(h, index, num_graphs))
