r"""Atom and pair updates of the weave module (Kearnes et al. 2016), in Gilmer et al.'s form.

Atom update (A -> A and the pair-to-atom message joined, :math:`\alpha` the activation):

.. math::
    h_v^{t+1} = \alpha\big(W_1 [\alpha(W_0 h_v^t + b_0),\; m_v^{t+1}] + b_1\big)

Pair update (P -> P and A -> P joined), an ``edge_update`` of the engine:

.. math::
    e_{vw}^{t+1} = \alpha\Big(W_4 \big[\alpha(W_2 e_{vw}^t + b_2),\;
        \alpha(W_3 [h_v^t, h_w^t] + b_3) + \alpha(W_3 [h_w^t, h_v^t] + b_3)\big] + b_4\Big)

The A -> P term uses both orders of the two atoms and adds them (Kearnes et al.: the pair
features must not depend on the order of the atoms), so a symmetric pair state
:math:`e_{vw} = e_{wv}` stays symmetric.  Gilmer et al. write the A -> P term with one order only.

Shapes: h (N, dim), m (N, message_dim) -> (N, dim); e (E, pair_dim), h (N, dim) -> (E, pair_dim).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mpnn.batch import Batch
from mpnn.updates.mlp import activation


class WeaveAtomUpdate(nn.Module):
    """h' = act(W1 [act(W0 h + b0), m] + b1); W0: dim -> hidden."""

    def __init__(self, dim: int, message_dim: int, hidden: int, act: str = "relu") -> None:
        super().__init__()
        self.atom = nn.Linear(dim, hidden)  # W0: A -> A
        self.combine = nn.Linear(hidden + message_dim, dim)  # W1
        self.act = activation(act)

    def forward(self, h: Tensor, m: Tensor) -> Tensor:
        return self.act(self.combine(torch.cat([self.act(self.atom(h)), m], dim=-1)))


class WeavePairUpdate(nn.Module):
    """e' = act(W4 [act(W2 e + b2), act(W3 [h_v, h_w] + b3) + act(W3 [h_w, h_v] + b3)] + b4).

    ``forward(e, h, batch)``; v is the edge's target and w its source.
    """

    def __init__(self, dim: int, pair_dim: int, hidden: int, act: str = "relu") -> None:
        super().__init__()
        self.pair = nn.Linear(pair_dim, hidden)  # W2: P -> P
        self.atoms = nn.Linear(2 * dim, hidden)  # W3: A -> P
        self.combine = nn.Linear(2 * hidden, pair_dim)  # W4
        self.act = activation(act)

    def forward(self, e: Tensor, h: Tensor, batch: Batch) -> Tensor:
        source, target = batch.edge_index
        h_v, h_w = h[target], h[source]
        atoms = self.act(self.atoms(torch.cat([h_v, h_w], dim=-1))) + self.act(
            self.atoms(torch.cat([h_w, h_v], dim=-1))
        )
        return self.act(self.combine(torch.cat([self.act(self.pair(e)), atoms], dim=-1)))
