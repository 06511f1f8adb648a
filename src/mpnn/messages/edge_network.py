r"""Edge-network message (Gilmer et al. 2017, Sec. 5.1), computed three exact ways.

.. math::
    m_v = \bigoplus_{w \in N(v)} A(e_{vw})^\top h_w, \qquad
    A(e) = \mathrm{reshape}_{d_{in} \times d_{out}}(W_2 z(e) + b_2), \qquad
    z(e) = \mathrm{MLP}(e) \in \mathbb{R}^H

with :math:`\bigoplus` a sum or a mean.  The weight layout is PyTorch Geometric's
``NNConv`` (``A`` is ``d_in x d_out`` and the message is ``h_w @ A``), so its weights load as
they are.

Blocks (towers, Gilmer et al. 2017, Sec. 5.4): with ``blocks`` = k > 1, A(e) is block diagonal,

.. math::
    A(e) = \mathrm{diag}\big(A_1(e), \dots, A_k(e)\big), \qquad
    A_i(e) = \mathrm{reshape}_{d_{in}/k \times d_{out}/k}(W_2^{(i)} z(e) + b_2^{(i)}),

so tower i maps columns ``[i·d_in/k, (i+1)·d_in/k)`` of h to columns ``[i·d_out/k, (i+1)·d_out/k)``
of m (tower-major columns), exactly k separate edge networks on d/k-wide states.  The towers
share the hidden layers z(e), which only featurise the edge; each tower has its own output
layer (rows ``[i·(d_in/k)(d_out/k), (i+1)·(d_in/k)(d_out/k))`` of ``matrix``), hence its own
matrices A_i(e).  The paper's cost argument is about the A(e) h products: k blocks hold
d_in·d_out/k entries, k times fewer than one full matrix.  ``blocks=1`` is the plain edge
network, with the same weights and numbers.

Three paths give the same numbers (costs below for ``blocks=1``; the d² terms are divided by k):

``naive``
    builds the E x d_in x d_out matrices at every step (what ``NNConv`` does):
    E·H·d² per step.
``cached``
    builds them once per forward pass and reuses them for all T steps:
    E·H·d² once, then E·d² per step.  Cheapest on sparse graphs (E/N < T).
``contracted``
    never forms a per-edge tensor wider than z.  Summing first,
    :math:`m_v = \sum_k W_{2,k}^\top (\sum_w z_k(e_{vw}) h_w) + B_2^\top \sum_w h_w`:
    E·H·d per step for the sums plus one (H+1)·d_in x d_out matrix product per *node*.
    Cheapest on dense graphs (the complete graph of a molecule).  See
    :mod:`mpnn.messages.contraction` (the blocks share one layout of z).

``auto`` picks the cheaper of ``cached`` and ``contracted`` for each batch by counting
multiply-adds.  Shapes: h (N, d_in), e (E, D_e), edge_index (2, E) -> m (N, d_out).
Per-edge matrices (naive, cached) are (E, k, d_in/k, d_out/k).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mpnn.batch import Batch
from mpnn.messages.contraction import BlockLayout, SlotLayout, is_complete_graph
from mpnn.scatter import segment_count, segment_sum
from mpnn.updates.mlp import mlp

PATHS = ("naive", "cached", "contracted", "auto")


@dataclass
class EdgeContext:
    """Step-independent quantities of one forward pass (built by :meth:`EdgeNetwork.prepare`).

    Attributes:
        path: "naive", "cached" or "contracted".
        source, target: (E,) edge endpoints.
        num_nodes: N.
        inv_degree: (N, 1) 1/deg(v) for mean aggregation, else ``None``.
        z: (E, H) hidden edge features (naive path).
        matrices: (E, k, d_in/k, d_out/k) per-edge blocks of A(e) (cached path).
        layout: a :class:`BlockLayout` or :class:`SlotLayout` of z' (contracted path).
    """

    path: str
    source: Tensor
    target: Tensor
    num_nodes: int
    inv_degree: Tensor | None = None
    z: Tensor | None = None
    matrices: Tensor | None = None
    layout: BlockLayout | SlotLayout | None = None


class EdgeNetwork(nn.Module):
    """Edge-network message function with sum or mean aggregation.

    Args:
        edge_features: D_e, width of e_vw.
        in_dim, out_dim: d_in, d_out.
        hidden: widths of the hidden MLP z(e); the last one is H.
        aggregation: "sum" (Gilmer) or "mean" (PyG's QM9 example).
        path: one of :data:`PATHS`.
        root_weight, bias: add ``W_root h_v + b`` as ``NNConv`` does (off in Gilmer's model);
            ``W_root`` is a full d_in x d_out matrix, also with blocks.
        blocks: k, the number of diagonal blocks of A(e) (towers); must divide d_in and d_out.
    """

    def __init__(
        self,
        edge_features: int,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (128,),
        aggregation: str = "sum",
        path: str = "auto",
        root_weight: bool = False,
        bias: bool = False,
        blocks: int = 1,
    ) -> None:
        super().__init__()
        if aggregation not in ("sum", "mean"):
            raise ValueError(f"EdgeNetwork: aggregation must be 'sum' or 'mean', got {aggregation!r}")
        if path not in PATHS:
            raise ValueError(f"EdgeNetwork: path must be one of {PATHS}, got {path!r}")
        if blocks < 1 or in_dim % blocks or out_dim % blocks:
            raise ValueError(
                f"EdgeNetwork: blocks must be >= 1 and divide {in_dim} and {out_dim}, got {blocks}"
            )
        self.in_dim, self.out_dim, self.aggregation, self.path = in_dim, out_dim, aggregation, path
        self.blocks, self.block_in, self.block_out = blocks, in_dim // blocks, out_dim // blocks
        if not hidden:
            raise ValueError("EdgeNetwork: hidden needs at least one width (H)")
        self.hidden = mlp([edge_features, *hidden], "relu", last_activation=True)
        # k output layers of z, one per block, stacked: k·(d_in/k)·(d_out/k) outputs
        self.matrix = nn.Linear(hidden[-1], blocks * self.block_in * self.block_out)
        self.root = nn.Linear(in_dim, out_dim, bias=False) if root_weight else None
        self.bias = nn.Parameter(torch.zeros(out_dim)) if bias else None

    # -- cost model ---------------------------------------------------------------------------
    def choose_path(self, num_nodes: int, num_edges: int, slots: int, steps: int) -> str:
        """The cheaper exact path, by multiply-adds of a forward pass.

        ``slots`` is the number of (node, incoming-edge) slots the contracted layout uses:
        sum of n² over structures for complete graphs, N·max-degree otherwise.  The k blocks
        of A(e) hold dd = d_in·d_out/k entries.
        """
        if self.path != "auto":
            return self.path
        h1 = self.matrix.in_features + 1
        dd = self.matrix.out_features  # d_in·d_out/k
        cached = num_edges * h1 * dd + steps * num_edges * dd
        contracted = steps * (num_nodes * h1 * dd + slots * h1 * self.in_dim)
        return "cached" if cached < contracted else "contracted"

    # -- once per forward pass ----------------------------------------------------------------
    def prepare(self, batch: Batch, edge_attr: Tensor, steps: int = 1) -> EdgeContext:
        """Everything that does not depend on h: z(e), and the matrices or the contracted layout.

        Args:
            batch: the graph (``edge_index``, ``ptr``).  edge_attr: (E, D_e) edge features.
            steps: how many times the context will be used (for the cost model).
        """
        source, target = batch.edge_index
        num_nodes = batch.num_atoms
        inv_degree = None
        if self.aggregation == "mean":
            inv_degree = 1.0 / segment_count(target, num_nodes).to(edge_attr.dtype).clamp(min=1)
            inv_degree = inv_degree.unsqueeze(1)
        complete = self.path in ("auto", "contracted") and is_complete_graph(batch.edge_index, batch.ptr)
        if complete:
            sizes = batch.ptr[1:] - batch.ptr[:-1]
            slots = int((sizes * sizes).sum())
        else:
            degree = torch.bincount(target, minlength=num_nodes)
            slots = num_nodes * (int(degree.max()) if target.numel() else 0)
        path = self.choose_path(num_nodes, source.numel(), slots, steps)
        z = self.hidden(edge_attr)
        ctx = EdgeContext(path, source, target, num_nodes, inv_degree)
        if path == "naive":
            ctx.z = z
        elif path == "cached":
            ctx.matrices = self._matrices(z)
        else:
            z1 = torch.cat([z, z.new_ones(z.shape[0], 1)], dim=1)
            ctx.layout = BlockLayout(z1, batch.ptr) if complete else SlotLayout(z1, source, target, num_nodes)
        return ctx

    def _matrices(self, z: Tensor) -> Tensor:
        """(E, H) -> (E, k, d_in/k, d_out/k): the diagonal blocks of the per-edge matrices A(e)."""
        return self.matrix(z).view(-1, self.blocks, self.block_in, self.block_out)

    def _augmented_weight(self) -> Tensor:
        """(k, d_in/k, d_out/k, H+1): W2 with b2 as its last column, in the blocks' layout."""
        w = torch.cat([self.matrix.weight, self.matrix.bias.unsqueeze(1)], dim=1)
        return w.view(self.blocks, self.block_in, self.block_out, -1)

    # -- every step ---------------------------------------------------------------------------
    def forward(self, h: Tensor, ctx: EdgeContext) -> Tensor:
        """h (N, d_in) -> aggregated messages (N, d_out)."""
        if ctx.path == "contracted":
            m = ctx.layout.messages(h, self._augmented_weight())
        else:
            matrices = ctx.matrices if ctx.matrices is not None else self._matrices(ctx.z)
            blocks = matrices.view(-1, self.block_in, self.block_out)  # (E·k, d_in/k, d_out/k)
            per_edge = torch.bmm(h[ctx.source].view(-1, 1, self.block_in), blocks)
            m = segment_sum(per_edge.view(-1, self.out_dim), ctx.target, ctx.num_nodes)
        if ctx.inv_degree is not None:
            m = m * ctx.inv_degree
        if self.root is not None:
            m = m + self.root(h)
        if self.bias is not None:
            m = m + self.bias
        return m
