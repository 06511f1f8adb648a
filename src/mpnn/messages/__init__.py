"""Message functions M_t: ``prepare(batch, edge_attr, steps)`` once per
forward pass, then ``forward(h, context) -> m`` (N, d_out) aggregated messages per step.

Gilmer et al.'s (2017, Sec. 5.1) catalogue: :class:`EdgeNetwork` (continuous edge features),
:class:`MatrixMessage` (GG-NN: one matrix per discrete edge type), :class:`PairMessage`
(an MLP of both end states and the edge); :class:`DirectedMessage` runs two of them along and
against the edges; :func:`towers` splits the state into k towers (Sec. 5.4).  The earlier
models' messages: :class:`NeighbourSum` (Duvenaud et al.), :class:`InteractionMessage` (Battaglia
et al.), :class:`PairToAtom` (Kearnes et al.), :class:`DTNNMessage` (Schütt et al.),
:class:`NormalizedSum` (Kipf and Welling).
"""

from mpnn.messages.directed import DirectedMessage, reverse_edges
from mpnn.messages.dtnn import DTNNMessage, GaussianDistances
from mpnn.messages.duvenaud import NeighbourSum
from mpnn.messages.edge_network import PATHS, EdgeContext, EdgeNetwork
from mpnn.messages.edge_type_matrix import MatrixContext, MatrixMessage
from mpnn.messages.gcn import NormalizedSum
from mpnn.messages.interaction_network import InteractionMessage
from mpnn.messages.pair import PairContext, PairMessage
from mpnn.messages.towers import TowerMessage, TowerUpdate, towers
from mpnn.messages.weave import PairToAtom

__all__ = [
    "PATHS",
    "DTNNMessage",
    "DirectedMessage",
    "EdgeContext",
    "EdgeNetwork",
    "GaussianDistances",
    "InteractionMessage",
    "MatrixContext",
    "MatrixMessage",
    "NeighbourSum",
    "NormalizedSum",
    "PairContext",
    "PairMessage",
    "PairToAtom",
    "TowerMessage",
    "TowerUpdate",
    "reverse_edges",
    "towers",
]
