r"""Interaction network as an MPNN.

Battaglia, Pascanu, Lai, Rezende and Kavukcuoglu, "Interaction networks for learning about
objects, relations and physics", NeurIPS 2016 (arXiv:1612.00222).  In Gilmer et al.'s (2017,
Sec. 2) form, with :math:`x_v` an external input of each vertex:

.. math::
    M(h_v, h_w, e_{vw}) &= \phi_R([h_v, h_w, e_{vw}]) \\
    U(h_v, x_v, m_v) &= \phi_O([h_v, x_v, m_v]) \\
    R &= f\Big(\sum_v h_v^T\Big)

with :math:`\phi_R, \phi_O, f` MLPs.  The engine's update reads only (h, m), so the message
appends :math:`x_v` (the node features of the batch) to the summed effects:
:math:`m_v = [\sum_w \phi_R, x_v]` and :math:`U(h, m) = \phi_O([h, m])`; see
:mod:`mpnn.messages.interaction_network`.

* message: :class:`mpnn.messages.interaction_network.InteractionMessage`;
* update: :class:`mpnn.updates.mlp.MLPUpdate`; readout: :class:`mpnn.readouts.pooled.PooledReadout`.

Edges are the bond-type one-hot and the raw distance (:class:`mpnn.inputs.BondDistanceEdges`) on
the complete graph, so the model reads positions and has forces.  h^0 is x zero-padded to ``dim``.
The original work defines one step (T = 1, the default).  Battaglia et al. use ReLU MLPs; a smooth
``activation`` (``"softplus"``, ``"silu"``, ``"tanh"``) gives continuous forces.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from mpnn.engine import MPNN
from mpnn.inputs import BondDistanceEdges, PaddedNodeInput
from mpnn.messages.interaction_network import InteractionMessage
from mpnn.models.base import PropertyModel
from mpnn.readouts.pooled import PooledReadout
from mpnn.updates.mlp import MLPUpdate, mlp


@dataclass
class InteractionNetworkConfig:
    """Hyperparameters of the interaction network.

    ``dim``: width of h (>= node_features); ``effect_dim``: width of phi_R's output;
    ``hidden``: hidden widths of phi_R and phi_O; ``readout_hidden``: hidden widths of f;
    ``external``: append x_v to the messages (phi_O reads it).
    """

    node_features: int = 13
    num_targets: int = 1
    dim: int = 64
    effect_dim: int = 64
    hidden: list[int] = field(default_factory=lambda: [64])
    readout_hidden: list[int] = field(default_factory=lambda: [64])
    steps: int = 1
    tie_weights: bool = True
    external: bool = True
    activation: str = "relu"
    distance: bool = True
    graph: str = "complete"


def interaction_network(config: InteractionNetworkConfig) -> PropertyModel:
    """Build the interaction network from its configuration."""
    c = config
    edge_input = BondDistanceEdges(distance=c.distance)
    external = c.node_features if c.external else 0
    message = InteractionMessage(
        c.dim, edge_input.out_features, c.effect_dim, c.hidden, external, c.activation
    )
    update = MLPUpdate(c.dim, message.out_features, c.hidden, c.activation)
    readout = PooledReadout(head=mlp([c.dim, *c.readout_hidden, c.num_targets], c.activation))
    net = MPNN(
        PaddedNodeInput(c.node_features, c.dim), edge_input, message, update, readout, c.steps, c.tie_weights
    )
    config_dict = {"model": "interaction_network", **asdict(c)}
    return PropertyModel(net, c.num_targets, config_dict, c.graph, positions=c.distance)
