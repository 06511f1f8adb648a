r"""Molecular graph convolutions (the weave model) as an MPNN with evolving pair states.

Kearnes, McCloskey, Berndl, Pande and Riley, "Molecular graph convolutions: moving beyond
fingerprints", J. Comput.-Aided Mol. Des. 30, 595-608 (2016) (arXiv:1603.00856).  Atoms (h) and
pairs (e) both have states, and each weave module updates both.  In Gilmer et al.'s (2017, Sec. 2)
form, :math:`\alpha` the ReLU:

.. math::
    M(h_v^t, h_w^t, e_{vw}^t) &= \alpha(W_{PA} e_{vw}^t + b_{PA}) \quad
        \text{(Gilmer: } e_{vw}^t\text{; Kearnes' P}\to\text{A transforms it first)} \\
    U_t(h_v^t, m_v^{t+1}) &= \alpha\big(W_1 [\alpha(W_0 h_v^t), m_v^{t+1}]\big) \\
    e_{vw}^{t+1} &= \alpha\big(W_4 [\alpha(W_2 e_{vw}^t),\;
        \alpha(W_3 [h_v^t, h_w^t]) + \alpha(W_3 [h_w^t, h_v^t])]\big) \\
    R &= f\Big(\sum_v \alpha(W_5 h_v^T + b_5)\Big)

(biases left out above).  The A -> P term adds both orders of the atoms, so pair states stay
symmetric (:math:`e_{vw} = e_{wv}`), Kearnes et al.'s order invariance.  The readout is an atom
layer, a *sum* over the atoms and an MLP f; with ``reduction="histogram"`` the sum is over Kearnes
et al.'s Gaussian memberships of each atom feature (:class:`mpnn.readouts.histogram.GaussianHistogram`,
after a tanh atom layer), a fuzzy histogram per feature.

* message: :class:`mpnn.messages.weave.PairToAtom`;
* updates: :class:`mpnn.updates.weave.WeaveAtomUpdate`, :class:`mpnn.updates.weave.WeavePairUpdate`
  (the engine's ``edge_update``);
* readout: :class:`mpnn.readouts.pooled.PooledReadout`.

All pairs (the complete graph); the initial pair state is the bond-type one-hot and the distance
(:class:`mpnn.inputs.BondDistanceEdges`) zero-padded to ``pair_dim``, the initial atom state x
zero-padded to ``dim`` (zero columns make a first layer of the raw width).  Each weave module has its
own weights (``tie_weights=False`` by default).  The model reads positions, so it has forces
(continuous ones with a smooth ``activation``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from torch import Tensor, nn

from mpnn.batch import Batch
from mpnn.engine import MPNN
from mpnn.inputs import BondDistanceEdges, PaddedNodeInput
from mpnn.messages.weave import PairToAtom
from mpnn.models.base import PropertyModel
from mpnn.readouts.histogram import GaussianHistogram
from mpnn.readouts.pooled import PooledReadout
from mpnn.updates.mlp import activation, mlp
from mpnn.updates.weave import WeaveAtomUpdate, WeavePairUpdate


class PaddedEdgeInput(nn.Module):
    """e^0_vw = [bond-type one-hot, distance] zero-padded to ``pair_dim`` -> (E, pair_dim)."""

    def __init__(self, pair_dim: int, distance: bool = True) -> None:
        super().__init__()
        self.features = BondDistanceEdges(distance=distance)
        if self.features.out_features > pair_dim:
            raise ValueError(f"pair_dim {pair_dim} is below the {self.features.out_features} pair features")
        self.pair_dim = pair_dim

    def forward(self, batch: Batch) -> Tensor:
        e = self.features(batch)
        return nn.functional.pad(e, (0, self.pair_dim - e.shape[1]))


@dataclass
class WeaveConfig:
    """Hyperparameters of the weave model.

    ``dim``, ``pair_dim``: widths of the atom and pair states; ``hidden``: width of the
    A->A, P->A, A->P, P->P layers; ``steps``: weave modules; ``readout_width``: the atom layer
    before the sum; ``readout_hidden``: hidden widths of f; ``reduction``: ``"sum"`` of the atom
    layer, or ``"histogram"`` (Kearnes et al.'s Gaussian histogram of each feature, 11 bins).
    """

    node_features: int = 13
    num_targets: int = 1
    dim: int = 50
    pair_dim: int = 50
    hidden: int = 50
    steps: int = 2
    tie_weights: bool = False
    readout_width: int = 128
    readout_hidden: list[int] = field(default_factory=lambda: [128])
    activation: str = "relu"
    distance: bool = True
    reduction: str = "sum"


def weave(config: WeaveConfig) -> PropertyModel:
    """Build the weave model from its configuration."""
    c = config
    a = c.activation
    if c.reduction == "sum":
        atom_net = nn.Sequential(nn.Linear(c.dim, c.readout_width), activation(a))
        pooled = c.readout_width
    elif c.reduction == "histogram":
        histogram = GaussianHistogram()
        atom_net = nn.Sequential(nn.Linear(c.dim, c.readout_width), nn.Tanh(), histogram)
        pooled = c.readout_width * histogram.bins
    else:
        raise ValueError(f"weave: reduction must be 'sum' or 'histogram', got {c.reduction!r}")
    readout = PooledReadout(head=mlp([pooled, *c.readout_hidden, c.num_targets], a), atom_net=atom_net)
    net = MPNN(
        PaddedNodeInput(c.node_features, c.dim),
        PaddedEdgeInput(c.pair_dim, c.distance),
        PairToAtom(c.pair_dim, c.hidden, a),
        WeaveAtomUpdate(c.dim, c.hidden, c.hidden, a),
        readout,
        c.steps,
        c.tie_weights,
        edge_update=WeavePairUpdate(c.dim, c.pair_dim, c.hidden, a),
    )
    return PropertyModel(
        net, c.num_targets, {"model": "weave", **asdict(c)}, "complete", positions=c.distance
    )
