r"""Master node (Gilmer et al. 2017, Sec. 5.2): one extra node per structure joined to every atom.

The master node has its own width d_master and its own weights.  With its state
:math:`g \in \mathbb{R}^{d_{master}}` (learned initial value :math:`g^0`), at every step

.. math::
    m_v \mathrel{+}= A_{\to v}\, g^t, \qquad
    g^{t+1} = \mathrm{GRU}\Big(\sum_v A_{\to g}\, h_v^t,\; g^t\Big)

i.e. the messages along the special "master" edge type are linear in the sender's state
(a matrix multiplication message), and the master's update is a GRU of its own.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mpnn.batch import Batch
from mpnn.scatter import segment_sum


class MasterNode(nn.Module):
    """Master node of width ``master_dim`` for atoms of width ``dim`` receiving ``message_dim`` messages.

    ``initial_state(batch) -> g`` (B, master_dim); ``to_atoms(g, batch) -> m`` (N, message_dim);
    ``forward(g, h, batch) -> g'`` (B, master_dim) from the atoms' states h (N, dim).
    """

    def __init__(self, dim: int, master_dim: int, message_dim: int | None = None) -> None:
        super().__init__()
        self.initial = nn.Parameter(torch.zeros(master_dim))
        self.to_atom_matrix = nn.Linear(master_dim, message_dim or dim, bias=False)
        self.to_master_matrix = nn.Linear(dim, master_dim, bias=False)
        self.cell = nn.GRUCell(master_dim, master_dim)

    def initial_state(self, batch: Batch) -> Tensor:
        return self.initial.to(batch.pos.dtype).expand(batch.num_graphs, -1)

    def to_atoms(self, g: Tensor, batch: Batch) -> Tensor:
        return self.to_atom_matrix(g)[batch.batch]

    def forward(self, g: Tensor, h: Tensor, batch: Batch) -> Tensor:
        return self.cell(segment_sum(self.to_master_matrix(h), batch.batch, batch.num_graphs), g)
