r"""Layouts for the contracted edge-network sums :math:`S_v = \sum_w z'(e_{vw}) h_w^\top`.

``z'`` is z with a trailing 1 (so the bias b2 rides along), width H+1.  A layout is built
once per forward pass from z' and the graph, then computes, at every step,
``messages(h, weight)`` = vec(S_v) @ weight for all nodes, (N, d_out), without forming any
per-edge tensor wider than z'.

:class:`BlockLayout`
    for graphs whose every structure is a complete graph (the molecular graphs of
    Gilmer et al.).  Structures of equal size n form a group; a group's z' is a dense
    (g, n·(H+1), n) block, so S is one batched matrix product with h viewed as (g, n, d):
    no per-edge gather of h and no padding.
:class:`SlotLayout`
    for any graph: the incoming edges of each node are laid out in D = max in-degree slots
    (empty slots hold z' = 0), and h is gathered per slot.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mpnn.batch import pair_template


def is_complete_graph(edge_index: Tensor, ptr: Tensor) -> bool:
    """True if edge_index is exactly every ordered pair of every structure, sorted by target."""
    counts = (ptr[1:] - ptr[:-1]).tolist()
    if edge_index.shape[1] != sum(n * (n - 1) for n in counts):
        return False
    expected = [
        pair_template(n).to(edge_index.device) + start
        for n, start in zip(counts, ptr[:-1].tolist(), strict=True)
    ]
    return bool(torch.equal(torch.cat(expected, dim=1), edge_index)) if expected else True


class BlockLayout:
    """Dense per-size blocks of z' for complete graphs.

    Args:
        z1: (E, H+1) z' of the edges, in edge_index order (sorted by target then source).
        ptr: (B+1,) atom offsets of the structures.
    """

    def __init__(self, z1: Tensor, ptr: Tensor) -> None:
        sizes = ptr[1:] - ptr[:-1]
        edge_ptr = torch.zeros_like(ptr)
        edge_ptr[1:] = torch.cumsum(sizes * (sizes - 1), 0)
        width = z1.shape[1]
        self.num_nodes = int(ptr[-1])
        self.groups: list[tuple[Tensor, Tensor]] = []
        order = []
        for n in torch.unique(sizes).tolist():
            structures = torch.nonzero(sizes == n).squeeze(1)
            nodes = (ptr[structures].unsqueeze(1) + torch.arange(n, device=ptr.device)).reshape(-1)
            order.append(nodes)
            if n < 2:
                self.groups.append((nodes, z1.new_zeros(0)))
                continue
            edges = edge_ptr[structures].unsqueeze(1) + torch.arange(n * (n - 1), device=ptr.device)
            pairs = pair_template(n).to(ptr.device)
            flat = pairs[1] * n + pairs[0]  # target v, source w -> v*n + w
            block = z1.new_zeros(structures.numel(), n * n, width)
            block[:, flat] = z1[edges.reshape(-1)].view(structures.numel(), n * (n - 1), width)
            block = block.view(-1, n, n, width).transpose(2, 3).reshape(-1, n * width, n)
            self.groups.append((nodes, block))
        self.order = torch.cat(order)
        self.slots = int((sizes * sizes).sum())

    def messages(self, h: Tensor, weight: Tensor) -> Tensor:
        """h (N, d_in), weight ((H+1)·d_in, d_out) -> (N, d_out) in node order."""
        parts = []
        for nodes, block in self.groups:
            if block.numel() == 0:
                parts.append(h.new_zeros(nodes.numel(), weight.shape[1]))
                continue
            g, n = block.shape[0], block.shape[2]
            sums = torch.bmm(block, h.index_select(0, nodes).view(g, n, -1))  # (g, n(H+1), d_in)
            parts.append(sums.view(g * n, -1) @ weight)
        out = h.new_empty(self.num_nodes, weight.shape[1])
        return out.index_copy(0, self.order, torch.cat(parts))


class SlotLayout:
    """Incoming edges of each node in D padded slots; works for any graph.

    Args:
        z1: (E, H+1) z' of the edges.  source, target: (E,) endpoints.  num_nodes: N.
    """

    def __init__(self, z1: Tensor, source: Tensor, target: Tensor, num_nodes: int) -> None:
        degree = torch.bincount(target, minlength=num_nodes)
        d_max = int(degree.max()) if target.numel() else 0
        order = torch.argsort(target, stable=True)
        source, target, z1 = source[order], target[order], z1[order]
        first = torch.cumsum(degree, 0) - degree
        slot = torch.arange(target.numel(), device=target.device) - first[target]
        flat = target * d_max + slot
        padded = z1.new_zeros(num_nodes * d_max, z1.shape[1]).index_copy(0, flat, z1)
        self.z_padded_t = padded.view(num_nodes, d_max, -1).transpose(1, 2)  # (N, H+1, D)
        self.source_padded = source.new_zeros(num_nodes * d_max).index_copy(0, flat, source)
        self.num_nodes, self.max_degree = num_nodes, d_max
        self.slots = num_nodes * d_max

    def messages(self, h: Tensor, weight: Tensor) -> Tensor:
        """h (N, d_in), weight ((H+1)·d_in, d_out) -> (N, d_out)."""
        h_slots = h.index_select(0, self.source_padded).view(self.num_nodes, self.max_degree, -1)
        sums = torch.bmm(self.z_padded_t, h_slots)  # (N, H+1, d_in)
        return sums.reshape(self.num_nodes, -1) @ weight
