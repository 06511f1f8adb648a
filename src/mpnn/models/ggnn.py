r"""GG-NN: gated graph neural networks (Li, Tarlow, Brockschmidt & Zemel, ICLR 2016).

Li et al. propagate node states with one learned matrix per edge type and direction and a GRU,
unrolled for a fixed T steps with the same weights, and read out with a gated sum:

.. math::
    m_v = \Big[\sum_{w \to v} A^{in}_{e_{vw}} h_w,\ \sum_{v \to w} A^{out}_{e_{wv}} h_w\Big] + b,
    \qquad h_v' = \mathrm{GRU}(m_v, h_v), \qquad
    \hat y = \mathrm{MLP}\Big(\sum_v \sigma\big(i([h_v^T, x_v])\big) \odot j(h_v^T)\Big)

On QM9 this is the topology-only baseline of Gilmer et al. (2017, Table 3, row "GG-NN"): the
chemical graph (bond types single, double, triple, aromatic; no distances, so no positions are
read), hydrogens implicit, h^0 = x zero-padded to d.  It is the configurable MPNN
(:mod:`mpnn.models.gilmer`) with ``message="matrix"``, ``edges="chemical"``,
``readout="gated"``; ``graph="complete"`` adds Gilmer's virtual edge type for unbonded pairs.
Default sizes: those of Gilmer et al.'s published code (d 50, T 6, readout width 200).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from mpnn.models.base import PropertyModel
from mpnn.models.gilmer import GilmerConfig, gilmer_net


@dataclass
class GGNNConfig:
    """Hyperparameters of GG-NN (registered as model ``"ggnn"``)."""

    node_features: int = 13
    num_targets: int = 1
    dim: int = 50
    steps: int = 6
    tie_weights: bool = True
    directed: bool = True
    aggregation: str = "sum"
    readout_hidden: int = 200
    graph: str = "bonds"
    hydrogens: str = "implicit"


def ggnn(config: GGNNConfig) -> PropertyModel:
    """Build GG-NN from its configuration (a topology-only model: ``positions=False``)."""
    c = config
    settings = GilmerConfig(
        node_features=c.node_features,
        num_targets=c.num_targets,
        dim=c.dim,
        steps=c.steps,
        tie_weights=c.tie_weights,
        message="matrix",
        directed=c.directed,
        aggregation=c.aggregation,
        edges="chemical",
        graph=c.graph,
        hydrogens=c.hydrogens,
        readout="gated",
        readout_hidden=c.readout_hidden,
    )
    net = gilmer_net(settings, owner="ggnn")
    return PropertyModel(
        net, c.num_targets, {"model": "ggnn", **asdict(c)}, c.graph, c.hydrogens, positions=False
    )
