"""Gated recurrent update (Li et al. 2016; Gilmer et al. 2017): h' = GRU(m, h)."""

from __future__ import annotations

from torch import Tensor, nn


class GRUUpdate(nn.Module):
    """h'_v = GRU(input=m_v, state=h_v).  h (N, dim), m (N, message_dim) -> (N, dim)."""

    def __init__(self, dim: int, message_dim: int | None = None) -> None:
        super().__init__()
        self.cell = nn.GRUCell(message_dim or dim, dim)

    def forward(self, h: Tensor, m: Tensor) -> Tensor:
        return self.cell(m, h)
