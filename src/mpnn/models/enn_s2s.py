"""enn-s2s: Gilmer et al.'s best QM9 model (edge network, GRU with tied weights, set2set).

Inputs are explicit-hydrogen complete graphs whose edges carry the bond type and the raw
interatomic distance; h^0 is x zero-padded to d; set2set reads a projection of (h^T, x).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from mpnn.engine import MPNN
from mpnn.inputs import BondDistanceEdges, LinearNodeInput, PaddedNodeInput
from mpnn.messages import EdgeNetwork
from mpnn.models.base import PropertyModel
from mpnn.readouts import Set2SetReadout
from mpnn.updates import GRUUpdate


@dataclass
class EnnS2SConfig:
    """Hyperparameters of enn-s2s.  Defaults: the size PyG's QM9 example uses (d 64, T 3)."""

    node_features: int = 13
    num_targets: int = 1
    dim: int = 64
    edge_hidden: list[int] = field(default_factory=lambda: [128])
    steps: int = 3
    set2set_steps: int = 3
    aggregation: str = "sum"
    tie_weights: bool = True
    edge_path: str = "auto"
    node_input: str = "pad"
    distance: bool = True
    graph: str = "complete"


def enn_s2s(config: EnnS2SConfig) -> PropertyModel:
    """Build enn-s2s from its configuration."""
    c = config
    if c.node_input == "pad":
        node_input = PaddedNodeInput(c.node_features, c.dim)
    elif c.node_input == "linear":
        node_input = LinearNodeInput(c.node_features, c.dim)
    else:
        raise ValueError(f"enn_s2s: node_input must be 'pad' or 'linear', got {c.node_input!r}")
    edge_input = BondDistanceEdges(distance=c.distance)
    message = EdgeNetwork(
        edge_input.out_features, c.dim, c.dim, c.edge_hidden, aggregation=c.aggregation, path=c.edge_path
    )
    readout = Set2SetReadout(c.dim, c.node_features, c.num_targets, c.set2set_steps, project=c.dim)
    net = MPNN(node_input, edge_input, message, GRUUpdate(c.dim), readout, c.steps, c.tie_weights)
    return PropertyModel(net, c.num_targets, {"model": "enn_s2s", **asdict(c)}, c.graph)
