r"""Pair-to-atom message of the weave module (Kearnes et al. 2016).

Gilmer et al. (2017, Sec. 2) write the weave model's message :math:`M(h_v, h_w, e_{vw}) = e_{vw}`,
the pair state itself.  Kearnes et al.'s P -> A operation (and DeepChem's ``WeaveLayer``)
transforms each pair state before the sum; we follow them:

.. math::
    m_v = \sum_{w \ne v} \alpha(W_{PA}\, e_{vw} + b_{PA})

The message depends on the pair states only, not on h: it is computed in :meth:`PairToAtom.prepare`
(which the engine calls at every step when the pair states evolve, see ``edge_update``).

Shapes: e (E, P) -> m (N, hidden).
"""

from __future__ import annotations

from torch import Tensor, nn

from mpnn.batch import Batch
from mpnn.scatter import segment_sum
from mpnn.updates.mlp import activation


class PairToAtom(nn.Module):
    """m_v = sum_w act(W e_vw + b): pair states (E, pair_dim) -> (N, hidden)."""

    def __init__(self, pair_dim: int, hidden: int, act: str = "relu") -> None:
        super().__init__()
        self.linear = nn.Linear(pair_dim, hidden)
        self.act = activation(act)

    def prepare(self, batch: Batch, edge_attr: Tensor, steps: int = 1) -> Tensor:
        return segment_sum(self.act(self.linear(edge_attr)), batch.edge_index[1], batch.num_atoms)

    def forward(self, h: Tensor, context: Tensor) -> Tensor:
        """The messages summed in :meth:`prepare`, (N, hidden)."""
        return context
