"""Update functions U_t: ``forward(h, m) -> h'``, (N, d) x (N, d_m) -> (N, d)."""

from mpnn.updates.gru import GRUUpdate

__all__ = ["GRUUpdate"]
