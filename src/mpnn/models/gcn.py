r"""Graph convolutional network (GCN), the first-order spectral model, as an MPNN.

Kipf and Welling, "Semi-supervised classification with graph convolutional networks", ICLR 2017
(arXiv:1609.02907): :math:`H' = \sigma(\tilde D^{-1/2} (A + I) \tilde D^{-1/2} H W)`, the
first-order approximation of the spectral convolutions of Bruna et al. (2013) and Defferrard et
al. (2016).  In Gilmer et al.'s (2017, Sec. 2) form:

.. math::
    M_t(h_v^t, h_w^t) &= c_{vw} h_w^t, \quad c_{vw} = (\tilde d_v \tilde d_w)^{-1/2},
        \quad w \in N(v) \cup \{v\} \\
    U_t(h_v^t, m_v^{t+1}) &= \sigma(W^t m_v^{t+1} + b^t) \\
    R &= f\Big(\bigoplus_v h_v^T\Big)

with :math:`\tilde d` the degrees of A + I, one W per layer (``tie_weights=False`` by default, as
in Kipf & Welling), and for a graph-level target a sum (or mean) over the atoms followed by an
MLP f (Kipf & Welling classify nodes; the pooling is the usual graph-level extension).

* message: :class:`mpnn.messages.gcn.NormalizedSum`; update: :class:`GCNUpdate`;
* readout: :class:`mpnn.readouts.pooled.PooledReadout`.

Chemical graph (``graph="bonds"``), no edge features and no positions; h^0 is x zero-padded to
``dim`` (the first layer's W then acts on x, its extra columns on zeros).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from torch import Tensor, nn

from mpnn.batch import Batch
from mpnn.engine import MPNN
from mpnn.inputs import PaddedNodeInput
from mpnn.messages.gcn import NormalizedSum
from mpnn.models.base import PropertyModel
from mpnn.readouts.pooled import PooledReadout
from mpnn.updates.mlp import activation, mlp


class NoEdges(nn.Module):
    """e_vw of width 0: (E, 0).  GCN's edges carry no features."""

    out_features = 0

    def forward(self, batch: Batch) -> Tensor:
        return batch.pos.new_zeros(batch.num_edges, 0)


class GCNUpdate(nn.Module):
    """h' = act(W m + b): (N, dim) x (N, dim) -> (N, dim); h itself enters through the self loop of m."""

    def __init__(self, dim: int, act: str = "relu") -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        self.act = activation(act)

    def forward(self, h: Tensor, m: Tensor) -> Tensor:
        return self.act(self.linear(m))


@dataclass
class GCNConfig:
    """Hyperparameters of the GCN.  ``pool``: ``"sum"`` or ``"mean"``; ``hidden``: widths of f."""

    node_features: int = 13
    num_targets: int = 1
    dim: int = 64
    steps: int = 3
    tie_weights: bool = False
    pool: str = "sum"
    hidden: list[int] = field(default_factory=lambda: [64])
    activation: str = "relu"
    hydrogens: str = "explicit"


def gcn(config: GCNConfig) -> PropertyModel:
    """Build the GCN from its configuration."""
    c = config
    readout = PooledReadout(head=mlp([c.dim, *c.hidden, c.num_targets], c.activation), pool=c.pool)
    net = MPNN(
        PaddedNodeInput(c.node_features, c.dim),
        NoEdges(),
        NormalizedSum(),
        GCNUpdate(c.dim, c.activation),
        readout,
        c.steps,
        c.tie_weights,
    )
    config_dict = {"model": "gcn", **asdict(c)}
    return PropertyModel(net, c.num_targets, config_dict, "bonds", hydrogens=c.hydrogens, positions=False)
