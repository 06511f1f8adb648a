"""Update functions U_t: ``forward(h, m) -> h'``, (N, d) x (N, d_m) -> (N, d)."""

from mpnn.updates.gru import GRUUpdate
from mpnn.updates.master_node import MasterNode

__all__ = ["GRUUpdate", "MasterNode"]
