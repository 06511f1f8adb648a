r"""Deep tensor neural network (DTNN) as an MPNN.

Schütt, Arbabzadah, Chmiela, Müller and Tkatchenko, "Quantum-chemical insights from deep tensor
neural networks", Nat. Commun. 8, 13890 (2017) (arXiv:1609.08259).  In Gilmer et al.'s (2017,
Sec. 2) form, with :math:`e_{vw}` the Gaussian expansion of the distance:

.. math::
    h_v^0 &= c_{Z_v} \quad\text{(a learned embedding of the atomic number)} \\
    M_t(h_v^t, h_w^t, e_{vw}) &= \tanh\big(W^{fc}((W^{cf} h_w^t + b_1) \odot (W^{df} e_{vw} + b_2))\big) \\
    U_t(h_v^t, m_v^{t+1}) &= h_v^t + m_v^{t+1} \\
    R &= \sum_v \mathrm{NN}(h_v^T), \quad \mathrm{NN}(h) = W^{out2} \tanh(W^{out1} h + b^{out1}) + b^{out2}

* message and edges: :class:`mpnn.messages.dtnn.DTNNMessage`, :class:`mpnn.messages.dtnn.GaussianDistances`;
* update: :class:`AddUpdate`; readout: :class:`mpnn.readouts.SumReadout` (atomic contributions).

Complete graph (every atom pair, no cutoff, as for QM9 in the paper); distances are computed in the
forward pass, so forces :math:`-\partial E / \partial r` follow by autograd.  The node features x
are not read (``node_features`` is accepted for a uniform interface).  Defaults are those of the
authors' code (atomistic-machine-learning/dtnn): basis 30, 60 factors, 3 interaction passes with
shared weights, Gaussians every 0.2 Angstrom of width 0.2 Angstrom up to 20 Angstrom, a hidden
output layer of basis / 2 units.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import Tensor, nn

from mpnn.batch import Batch
from mpnn.engine import MPNN
from mpnn.errors import DataError
from mpnn.messages.dtnn import DTNNMessage, GaussianDistances
from mpnn.models.base import PropertyModel
from mpnn.readouts import SumReadout


class AtomEmbedding(nn.Module):
    """h^0_v = c_{Z_v}: one learned vector of width ``dim`` per atomic number 0..max_z -> (N, dim)."""

    def __init__(self, dim: int, max_z: int = 100) -> None:
        super().__init__()
        self.max_z = max_z
        self.embedding = nn.Embedding(max_z + 1, dim)

    def forward(self, batch: Batch) -> Tensor:
        if batch.z.numel() and int(batch.z.max()) > self.max_z:
            raise DataError(f"z: atomic number {int(batch.z.max())} exceeds the model's max_z {self.max_z}")
        return self.embedding(batch.z).to(batch.pos.dtype)


class AddUpdate(nn.Module):
    """h' = h + m (no weights)."""

    def forward(self, h: Tensor, m: Tensor) -> Tensor:
        return h + m


@dataclass
class DTNNConfig:
    """Hyperparameters of the DTNN.  ``dim``: basis size B; ``factors``: width of the factor space;
    ``rbf_*``: Gaussian grid (Angstrom); ``readout_hidden``: hidden units of NN (B / 2 in the paper)."""

    node_features: int = 13
    num_targets: int = 1
    dim: int = 30
    factors: int = 60
    steps: int = 3
    tie_weights: bool = True
    rbf_min: float = 0.0
    rbf_max: float = 20.0
    rbf_spacing: float = 0.2
    rbf_width: float = 0.2
    readout_hidden: int = 15
    max_z: int = 100


def dtnn(config: DTNNConfig) -> PropertyModel:
    """Build the DTNN from its configuration."""
    c = config
    edge_input = GaussianDistances(c.rbf_min, c.rbf_max, c.rbf_spacing, c.rbf_width)
    message = DTNNMessage(c.dim, edge_input.out_features, c.factors)
    atom_net = nn.Sequential(
        nn.Linear(c.dim, c.readout_hidden), nn.Tanh(), nn.Linear(c.readout_hidden, c.num_targets)
    )
    net = MPNN(
        AtomEmbedding(c.dim, c.max_z),
        edge_input,
        message,
        AddUpdate(),
        SumReadout(atom_net),
        c.steps,
        c.tie_weights,
    )
    return PropertyModel(net, c.num_targets, {"model": "dtnn", **asdict(c)}, "complete")
