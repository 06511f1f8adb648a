r"""Matrix-multiplication message of GG-NN (Li et al. 2016; Gilmer et al. 2017, Sec. 5.1).

.. math::
    m_v = \bigoplus_{w \in N(v)} A_{e_{vw}}^\top h_w + b, \qquad
    A_k \in \mathbb{R}^{d_{in} \times d_{out}},\ k = 0, \dots, K - 1

with one learned matrix per *discrete* edge type :math:`e_{vw} \in \{0..K-1\}` and
:math:`\bigoplus` a sum (Gilmer) or a mean.  The layout is ``h_w @ A_k`` (as
:class:`~mpnn.messages.EdgeNetwork` and PyTorch Geometric's ``RGCNConv``), i.e. Gilmer's
:math:`A_{e_{vw}} h_w` with A transposed.  The bias b is added once per node, after the
aggregation (Li et al.'s :math:`a_v = A_v^\top [h_1 \dots h_{|V|}] + b`).

Cost per step: every node is mapped through all K matrices at once,
:math:`P = h\,[A_0 | \dots | A_{K-1}]` (N, K·d_out), N·K·d_in·d_out multiply-adds; then each edge
gathers its row :math:`P_{w, e_{vw}}` and the rows are summed per target: E·d_out.  No per-edge
matrix is formed (an (E, d, d) tensor would cost E·d² memory and time).

Shapes: h (N, d_in), edge types (E,) int64, edge_index (2, E) -> m (N, d_out).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mpnn.batch import Batch
from mpnn.scatter import segment_count, segment_sum


def inverse_degree(target: Tensor, num_nodes: int, dtype: torch.dtype) -> Tensor:
    """(N, 1) 1 / in-degree of every node (1 for isolated nodes), for mean aggregation."""
    return (1.0 / segment_count(target, num_nodes).to(dtype).clamp(min=1)).unsqueeze(1)


@dataclass
class MatrixContext:
    """Step-independent quantities of one forward pass (:meth:`MatrixMessage.prepare`).

    Attributes:
        rows: (E,) row ``source * K + type`` of the (N·K, d_out) node projections per edge.
        target: (E,) receiving node of each edge.
        num_nodes: N.
        inv_degree: (N, 1) for mean aggregation, else ``None``.
    """

    rows: Tensor
    target: Tensor
    num_nodes: int
    inv_degree: Tensor | None = None


class MatrixMessage(nn.Module):
    """One learned d_in x d_out matrix per discrete edge type (GG-NN's message).

    Args:
        num_types: K, the number of edge types (``edge_input.num_types``).
        in_dim, out_dim: d_in, d_out.
        aggregation: "sum" (Gilmer, Li et al.) or "mean".
        bias: add a learned b (d_out,) to every node's aggregated message.
    """

    def __init__(
        self, num_types: int, in_dim: int, out_dim: int, aggregation: str = "sum", bias: bool = True
    ) -> None:
        super().__init__()
        if aggregation not in ("sum", "mean"):
            raise ValueError(f"MatrixMessage: aggregation must be 'sum' or 'mean', got {aggregation!r}")
        if num_types < 1:
            raise ValueError(f"MatrixMessage: num_types must be >= 1, got {num_types}")
        self.num_types, self.in_dim, self.out_dim, self.aggregation = num_types, in_dim, out_dim, aggregation
        self.weight = nn.Parameter(torch.empty(num_types, in_dim, out_dim))
        self.bias = nn.Parameter(torch.empty(out_dim)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform in ±1/sqrt(d_in), as ``nn.Linear``; bias 0."""
        bound = 1.0 / math.sqrt(self.in_dim) if self.in_dim else 0.0
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def prepare(self, batch: Batch, edge_attr: Tensor, steps: int = 1) -> MatrixContext:
        """Check the edge types and index the gather; ``edge_attr`` is (E,) int64 in [0, K)."""
        if edge_attr.dtype != torch.long or edge_attr.dim() != 1:
            raise ValueError(
                f"MatrixMessage: edge_attr must be an int64 (E,) tensor of edge types "
                f"(a discrete edge input), got {edge_attr.dtype} of shape {tuple(edge_attr.shape)}"
            )
        if edge_attr.numel() and not (0 <= int(edge_attr.min()) and int(edge_attr.max()) < self.num_types):
            raise ValueError(
                f"MatrixMessage: edge_attr holds types outside [0, {self.num_types}): "
                f"{int(edge_attr.min())}..{int(edge_attr.max())}"
            )
        source, target = batch.edge_index
        num_nodes = batch.num_atoms
        inv_degree = None
        if self.aggregation == "mean":
            inv_degree = inverse_degree(target, num_nodes, self.weight.dtype)
        return MatrixContext(source * self.num_types + edge_attr, target, num_nodes, inv_degree)

    def forward(self, h: Tensor, ctx: MatrixContext) -> Tensor:
        """h (N, d_in) -> aggregated messages (N, d_out)."""
        all_types = self.weight.permute(1, 0, 2).reshape(self.in_dim, -1)  # (d_in, K·d_out)
        projected = (h @ all_types).view(-1, self.out_dim)  # row n·K + k: h_n A_k
        m = segment_sum(projected.index_select(0, ctx.rows), ctx.target, ctx.num_nodes)
        if ctx.inv_degree is not None:
            m = m * ctx.inv_degree
        if self.bias is not None:
            m = m + self.bias
        return m
