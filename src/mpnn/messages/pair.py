r"""Pair message (Gilmer et al. 2017, Sec. 5.1): the message depends on both end nodes.

.. math::
    m_v = \bigoplus_{w \in N(v)} f\big([h_w, h_v, e_{vw}]\big), \qquad
    f = L_n \circ \mathrm{ReLU} \circ \dots \circ \mathrm{ReLU} \circ L_1

an MLP on the concatenation (linear layers :math:`L_i`, ReLU between them, a linear output of
width d_out), and :math:`\bigoplus` a sum (Gilmer) or a mean.  Unlike the matrix and edge-network
messages, the message from w to v sees the receiver's state h_v.

Cost per step: the first layer is split by its input blocks,
:math:`L_1[h_w, h_v, e] = W_s h_w + W_t h_v + (W_e e + b_1)`: the node terms are computed once
per node (2·N·d_in·H_1), the edge term once per forward pass (:meth:`PairMessage.prepare`), so a
step costs E·H_1 for the sum plus the remaining layers on every edge,
E·(H_1·H_2 + ... + H_n·d_out).

Shapes: h (N, d_in), e (E, D_e) float, edge_index (2, E) -> m (N, d_out).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from mpnn.batch import Batch
from mpnn.messages.edge_type_matrix import inverse_degree
from mpnn.scatter import segment_sum


@dataclass
class PairContext:
    """Step-independent quantities of one forward pass (:meth:`PairMessage.prepare`).

    Attributes:
        source, target: (E,) edge endpoints (message w -> v).
        edge_term: (E, H_1) :math:`W_e e_{vw} + b_1`.
        num_nodes: N.
        inv_degree: (N, 1) for mean aggregation, else ``None``.
    """

    source: Tensor
    target: Tensor
    edge_term: Tensor
    num_nodes: int
    inv_degree: Tensor | None = None


class PairMessage(nn.Module):
    """m_v = sum_w f(h_w, h_v, e_vw) with f an MLP on the concatenation.

    Args:
        edge_features: D_e, width of e_vw (0 for none).
        in_dim, out_dim: d_in, d_out.
        hidden: widths of f's hidden layers (at least one).
        aggregation: "sum" or "mean".

    ``first`` is f's first layer on :math:`[h_w, h_v, e_{vw}]` (2·d_in + D_e inputs);
    ``rest`` the layers after it, ReLU first.
    """

    def __init__(
        self,
        edge_features: int,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (64,),
        aggregation: str = "sum",
    ) -> None:
        super().__init__()
        if aggregation not in ("sum", "mean"):
            raise ValueError(f"PairMessage: aggregation must be 'sum' or 'mean', got {aggregation!r}")
        if len(hidden) < 1:
            raise ValueError("PairMessage: hidden needs at least one layer width")
        self.edge_features, self.in_dim, self.out_dim, self.aggregation = (
            edge_features,
            in_dim,
            out_dim,
            aggregation,
        )
        self.first = nn.Linear(2 * in_dim + edge_features, hidden[0])
        layers: list[nn.Module] = []
        for a, b in zip(hidden, [*hidden[1:], out_dim], strict=True):
            layers += [nn.ReLU(), nn.Linear(a, b)]
        self.rest = nn.Sequential(*layers)

    def prepare(self, batch: Batch, edge_attr: Tensor, steps: int = 1) -> PairContext:
        """The edge term :math:`W_e e + b_1` (E, H_1), once per forward pass."""
        if (
            not edge_attr.is_floating_point()
            or edge_attr.dim() != 2
            or edge_attr.shape[1] != self.edge_features
        ):
            raise ValueError(
                f"PairMessage: edge_attr must be a float (E, {self.edge_features}) tensor, "
                f"got {edge_attr.dtype} of shape {tuple(edge_attr.shape)}"
            )
        source, target = batch.edge_index
        start = 2 * self.in_dim
        edge_term = nn.functional.linear(edge_attr, self.first.weight[:, start:], self.first.bias)
        inv_degree = None
        if self.aggregation == "mean":
            inv_degree = inverse_degree(target, batch.num_atoms, edge_attr.dtype)
        return PairContext(source, target, edge_term, batch.num_atoms, inv_degree)

    def forward(self, h: Tensor, ctx: PairContext) -> Tensor:
        """h (N, d_in) -> aggregated messages (N, d_out)."""
        d = self.in_dim
        sender = h @ self.first.weight[:, :d].T  # (N, H_1): W_s h_w for every node
        receiver = h @ self.first.weight[:, d : 2 * d].T  # W_t h_v
        z = sender.index_select(0, ctx.source) + receiver.index_select(0, ctx.target) + ctx.edge_term
        m = segment_sum(self.rest(z), ctx.target, ctx.num_nodes)
        if ctx.inv_degree is not None:
            m = m * ctx.inv_degree
        return m
