"""One configurable MPNN spanning the catalogue of Gilmer et al. (2017, Sec. 5 and 8).

Every variant of the paper is a :class:`GilmerConfig`:

==============  ===========================================================================
field           choices
==============  ===========================================================================
message         ``"edge_network"`` (:class:`~mpnn.messages.EdgeNetwork`), ``"matrix"``
                (GG-NN's matrix per discrete edge type), ``"pair"`` (MLP of h_w, h_v, e_vw)
directed        separate messages along and against the edges (message width 2d)
edges           ``"raw_distance"`` (bond one-hot + distance), ``"distance_bins"`` (14 types),
                ``"chemical"`` (bond types only: no positions)
graph           ``"complete"`` (unbonded pairs joined by the virtual "none" type) or ``"bonds"``
hydrogens       ``"explicit"`` (H atoms are nodes) or ``"implicit"`` (a node feature)
master_dim      width of a master node joined to every atom (0: none)
towers          k towers of width d/k with a mixing network (1: none)
readout         ``"set2set"`` (on a projection of [h^T, x]), ``"gated"`` (GG-NN), ``"sum"``
==============  ===========================================================================

The matrix message needs discrete edge types (``"chemical"`` or ``"distance_bins"``); the edge
network and the pair message read the one-hot (or raw) vectors.  h^0 is x zero-padded to d
(``node_input="pad"``), the update a GRU (one per tower).

Towers (Sec. 5.4) of the edge network are one :class:`~mpnn.messages.EdgeNetwork` with
``blocks=k`` per direction (block-diagonal A(e): each tower has its own output layer of the edge
network, whose hidden layers the towers share) and k GRUs batched in one
:class:`~mpnn.messages.TowerUpdate`; the matrix and pair messages use k separate message modules
(:func:`~mpnn.messages.towers`).

A model whose edges read no positions (``edges="chemical"``) is marked ``positions=False`` (it
predicts from the topology alone).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from torch import nn

from mpnn.engine import MPNN
from mpnn.inputs import BondDistanceEdges, BondTypeEdges, DistanceBinEdges, LinearNodeInput, PaddedNodeInput
from mpnn.messages import DirectedMessage, EdgeNetwork, MatrixMessage, PairMessage, TowerUpdate, towers
from mpnn.models.base import PropertyModel
from mpnn.readouts import GatedReadout, Set2SetReadout, SumReadout
from mpnn.updates import GRUUpdate, MasterNode

CHOICES = {
    "message": ("edge_network", "matrix", "pair"),
    "edges": ("raw_distance", "distance_bins", "chemical"),
    "graph": ("complete", "bonds"),
    "hydrogens": ("explicit", "implicit"),
    "readout": ("set2set", "gated", "sum"),
    "node_input": ("pad", "linear"),
    "aggregation": ("sum", "mean"),
}


@dataclass
class GilmerConfig:
    """Hyperparameters of the configurable MPNN (registered as model ``"mpnn"``).

    ``message_hidden``: hidden widths of the edge network's z(e) or of the pair message's MLP
    (unused by the matrix message).  ``readout_hidden``: width of the gated readout's networks
    and of the sum readout's atom network (``None``: d).  ``mixing_hidden``: hidden widths of the
    towers' mixing network (``None``: one layer of width d).  ``edge_path``: the edge network's
    computation path (:data:`mpnn.messages.PATHS`).
    """

    node_features: int = 13
    num_targets: int = 1
    dim: int = 64
    steps: int = 3
    tie_weights: bool = True
    message: str = "edge_network"
    directed: bool = True
    message_hidden: list[int] = field(default_factory=lambda: [128])
    aggregation: str = "sum"
    edge_path: str = "auto"
    edges: str = "raw_distance"
    graph: str = "complete"
    hydrogens: str = "explicit"
    master_dim: int = 0
    towers: int = 1
    mixing_hidden: list[int] | None = None
    readout: str = "set2set"
    set2set_steps: int = 3
    readout_hidden: int | None = None
    node_input: str = "pad"


def check(c: GilmerConfig, owner: str = "mpnn") -> None:
    """Raise ValueError (one line naming the field) for an unknown or incompatible setting."""
    for name, options in CHOICES.items():
        value = getattr(c, name)
        if value not in options:
            raise ValueError(f"{owner}: {name} must be one of {list(options)}, got {value!r}")
    if c.message == "matrix" and c.edges == "raw_distance":
        raise ValueError(
            f"{owner}: edges 'raw_distance' is continuous; the matrix message needs discrete edge types "
            "(edges 'chemical' or 'distance_bins')"
        )
    if c.towers < 1 or c.dim % c.towers:
        raise ValueError(f"{owner}: towers must be >= 1 and divide dim {c.dim}, got {c.towers}")
    if c.master_dim < 0:
        raise ValueError(f"{owner}: master_dim must be >= 0 (0: no master node), got {c.master_dim}")
    if c.steps < 1:
        raise ValueError(f"{owner}: steps must be >= 1, got {c.steps}")
    if c.node_input == "pad" and c.node_features > c.dim:
        raise ValueError(f"{owner}: dim {c.dim} is smaller than node_features {c.node_features} (h0 pads x)")


def edge_input(c: GilmerConfig) -> nn.Module:
    """The edge representation: discrete types for the matrix message, vectors otherwise."""
    onehot = c.message != "matrix"
    if c.edges == "chemical":
        return BondTypeEdges(onehot=onehot)
    if c.edges == "distance_bins":
        return DistanceBinEdges(onehot=onehot)
    return BondDistanceEdges(distance=True)


def message_factory(c: GilmerConfig, edges: nn.Module) -> Callable[..., nn.Module]:
    """``build(width, blocks=1)`` -> the message module on ``width``-wide states (one tower or all of h).

    ``blocks`` > 1 (edge network only): k towers in one edge network with block-diagonal matrices.
    """

    def one(width: int, blocks: int) -> nn.Module:
        if c.message == "matrix":
            return MatrixMessage(edges.num_types, width, width, c.aggregation)
        if c.message == "pair":
            return PairMessage(edges.out_features, width, width, c.message_hidden, c.aggregation)
        return EdgeNetwork(
            edges.out_features,
            width,
            width,
            c.message_hidden,
            aggregation=c.aggregation,
            path=c.edge_path,
            blocks=blocks,
        )

    def build(width: int, blocks: int = 1) -> nn.Module:
        if c.directed:
            return DirectedMessage(one(width, blocks), one(width, blocks))
        return one(width, blocks)

    return build


def readout(c: GilmerConfig) -> nn.Module:
    hidden = c.readout_hidden or c.dim
    if c.readout == "set2set":
        return Set2SetReadout(c.dim, c.node_features, c.num_targets, c.set2set_steps, project=c.dim)
    if c.readout == "gated":
        return GatedReadout(c.dim, c.node_features, c.num_targets, hidden)
    atom_net = nn.Sequential(nn.Linear(c.dim, hidden), nn.ReLU(), nn.Linear(hidden, c.num_targets))
    return SumReadout(atom_net)


def gilmer_net(c: GilmerConfig, owner: str = "mpnn") -> MPNN:
    """The :class:`~mpnn.engine.MPNN` of a configuration (checked first)."""
    check(c, owner)
    if c.node_input == "pad":
        node_input: nn.Module = PaddedNodeInput(c.node_features, c.dim)
    else:
        node_input = LinearNodeInput(c.node_features, c.dim)
    edges = edge_input(c)
    build = message_factory(c, edges)
    if c.towers > 1 and c.message == "edge_network":
        message = build(c.dim, c.towers)  # block-diagonal edge networks: [in, out], each tower-major
        message_dims = [message.out_dim // c.towers] * c.towers
        update = TowerUpdate(c.dim, message_dims, c.mixing_hidden, channels=2 if c.directed else 1)
    elif c.towers > 1:
        message, update = towers(c.dim, c.towers, build, c.mixing_hidden)
    else:
        message = build(c.dim)
        update = GRUUpdate(c.dim, message.out_dim)
    master = MasterNode(c.dim, c.master_dim, message.out_dim) if c.master_dim else None
    return MPNN(node_input, edges, message, update, readout(c), c.steps, c.tie_weights, master=master)


def gilmer(config: GilmerConfig) -> PropertyModel:
    """Build the configurable MPNN (model ``"mpnn"``) from its configuration."""
    net = gilmer_net(config)
    return PropertyModel(
        net,
        config.num_targets,
        {"model": "mpnn", **asdict(config)},
        config.graph,
        config.hydrogens,
        positions=net.edge_input.reads_positions,
    )
