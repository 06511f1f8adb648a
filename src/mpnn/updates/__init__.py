"""Update functions U_t: ``forward(h, m) -> h'``, (N, d) x (N, d_m) -> (N, d)."""

from mpnn.updates.duvenaud import DegreeUpdate
from mpnn.updates.grouped_gru import GroupedGRU
from mpnn.updates.gru import GRUUpdate
from mpnn.updates.master_node import MasterNode
from mpnn.updates.mlp import MLPUpdate
from mpnn.updates.weave import WeaveAtomUpdate, WeavePairUpdate

__all__ = [
    "DegreeUpdate",
    "GRUUpdate",
    "GroupedGRU",
    "MLPUpdate",
    "MasterNode",
    "WeaveAtomUpdate",
    "WeavePairUpdate",
]
