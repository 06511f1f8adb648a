r"""Degree-dependent update of Duvenaud et al.'s (2015) convolutional fingerprints.

Gilmer et al. (2017, Sec. 2) write it :math:`U_t(h_v, m_v) = \sigma(H_t^{\deg(v)} m_v)`, one matrix
per step t and per vertex degree.  Duvenaud et al.'s own code (HIPS/neural-fingerprint) adds a
"self" matrix shared by all degrees and a bias; with ``self_weight`` (the default) we do too:

.. math::
    h_v^{t+1} = \sigma\big(H_t^{\min(\deg v,\, D)}\, m_v + W_t^{self} h_v^t + b_t\big)

where :math:`m_v = [\sum_w h_w, \sum_w e_{vw}]` and :math:`\deg v` is read from the last column of
the message of :class:`mpnn.messages.duvenaud.NeighbourSum`.  Degrees above ``max_degree`` D share
the matrix of degree D (organic molecules have degree at most 4, 5 or 6; no error is raised).
Per-step matrices come from the engine (``tie_weights=False``).

Shapes: h (N, dim), m (N, message_dim + 1) -> (N, dim).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mpnn.updates.mlp import activation


class DegreeUpdate(nn.Module):
    """h' = act(H^{deg} m + W_self h + b), one ``H`` (dim x message_dim) per degree 0..max_degree."""

    def __init__(
        self, dim: int, message_dim: int, max_degree: int = 5, self_weight: bool = True, act: str = "relu"
    ) -> None:
        super().__init__()
        if max_degree < 0:
            raise ValueError(f"DegreeUpdate: max_degree must be >= 0, got {max_degree}")
        self.max_degree = max_degree
        self.by_degree = nn.ModuleList(nn.Linear(message_dim, dim, bias=False) for _ in range(max_degree + 1))
        self.root = nn.Linear(dim, dim, bias=False) if self_weight else None
        self.bias = nn.Parameter(torch.zeros(dim))
        self.act = activation(act)

    def forward(self, h: Tensor, m: Tensor) -> Tensor:
        degree = m[:, -1].detach().round().long().clamp(max=self.max_degree)
        m = m[:, :-1]
        # every degree's matrix on every atom, then each atom picks its own: (N, D + 1, dim)
        candidates = torch.stack([linear(m) for linear in self.by_degree], dim=1)
        out = candidates[torch.arange(h.shape[0], device=h.device), degree] + self.bias
        if self.root is not None:
            out = out + self.root(h)
        return self.act(out)
