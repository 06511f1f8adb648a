r"""Convolutional networks on graphs for learning molecular fingerprints, as an MPNN.

Duvenaud, Maclaurin, Aguilera-Iparraguirre, Gómez-Bombarelli, Hirzel, Aspuru-Guzik and Adams,
NeurIPS 2015 (arXiv:1509.09292); the MPNN form is Gilmer et al. (2017), Sec. 2:

.. math::
    M(h_v^t, h_w^t, e_{vw}) &= [h_w^t, e_{vw}] \quad\text{(summed over } w \in N(v)\text{)} \\
    U_t(h_v^t, m_v^{t+1}) &= \sigma\big(H_t^{\deg(v)} m_v^{t+1}\big) \\
    R &= f\Big(\sum_{v, t} \mathrm{softmax}(W_t h_v^t)\Big)

* message: :class:`mpnn.messages.duvenaud.NeighbourSum` (it also carries deg(v));
* update: :class:`mpnn.updates.duvenaud.DegreeUpdate`, one matrix per step and degree, plus the
  shared self matrix and bias of Duvenaud et al.'s code (``self_weight``; off: Gilmer's form);
* readout: :class:`mpnn.readouts.duvenaud.FingerprintReadout` over every step (engine
  ``readout_states="all"``), including the inputs x (t = 0) with ``read_inputs``.

Chemical graph (``graph="bonds"``), edges are the bond-type one-hot; no positions are read.
h^0 is x zero-padded to ``dim``.  Defaults follow the regression example of Duvenaud et al.'s code
(fingerprint length 50, depth 4, convolution width 20, hidden layer 100).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from mpnn.batch import BOND_TYPES
from mpnn.engine import MPNN
from mpnn.inputs import BondDistanceEdges, PaddedNodeInput
from mpnn.messages.duvenaud import NeighbourSum
from mpnn.models.base import PropertyModel
from mpnn.readouts.duvenaud import FingerprintReadout
from mpnn.updates.duvenaud import DegreeUpdate


@dataclass
class DuvenaudConfig:
    """Hyperparameters of the neural-fingerprint model.

    ``dim``: width of h (>= node_features); ``fingerprint``: length L; ``hidden``: widths of f;
    ``max_degree``: degrees with their own matrix (higher degrees share the last one).
    """

    node_features: int = 13
    num_targets: int = 1
    dim: int = 20
    steps: int = 4
    fingerprint: int = 50
    hidden: list[int] = field(default_factory=lambda: [100])
    max_degree: int = 5
    self_weight: bool = True
    read_inputs: bool = True
    activation: str = "relu"
    hydrogens: str = "explicit"


def duvenaud(config: DuvenaudConfig) -> PropertyModel:
    """Build the neural-fingerprint model from its configuration."""
    c = config
    edge_input = BondDistanceEdges(distance=False)
    update = DegreeUpdate(c.dim, c.dim + len(BOND_TYPES), c.max_degree, c.self_weight, c.activation)
    readout = FingerprintReadout(
        c.dim,
        c.steps,
        c.fingerprint,
        c.num_targets,
        c.hidden,
        in_features=c.node_features if c.read_inputs else 0,
        act=c.activation,
    )
    net = MPNN(
        PaddedNodeInput(c.node_features, c.dim),
        edge_input,
        NeighbourSum(),
        update,
        readout,
        c.steps,
        tie_weights=False,
        readout_states="all",
    )
    config_dict = {"model": "duvenaud", **asdict(c)}
    return PropertyModel(net, c.num_targets, config_dict, "bonds", hydrogens=c.hydrogens, positions=False)
