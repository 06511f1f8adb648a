r"""Layouts for the contracted edge-network sums :math:`S_v = \sum_w z'(e_{vw}) h_w^\top`.

``z'`` is z with a trailing 1 (so the bias b2 rides along), width H+1.  A layout is built
once per forward pass from z' and the graph, then computes, at every step,
``messages(h, weight)`` = sum_k W_k^T S_v[k] for all nodes, (N, d_out), with ``weight``
(d_in, d_out, H+1) holding [W2 | b2], without forming any per-edge tensor wider than z'.

:class:`BlockLayout`
    for graphs whose every structure is a complete graph (the molecular graphs of
    Gilmer et al.).  Structures of equal size n form a group; a group's z' is a dense
    (g, n, n·(H+1)) block, and a step is one matrix product per node and one batched
    product per group: no per-edge gather of h and no padding.
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

    For a group of g structures of n atoms, ``block`` (g, n, n·(H+1)) holds z'(e_vw) at
    [v, w·(H+1) + k] (zero for w = v).  Each step first maps every node to
    P_w = h_w W (H+1, d_out), then m_v = sum_{w,k} z'_k(e_vw) P_w[k]: one batched product.

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
            g = structures.numel()
            edges = edge_ptr[structures].unsqueeze(1) + torch.arange(n * (n - 1), device=ptr.device)
            pairs = pair_template(n).to(ptr.device)
            flat = pairs[1] * n + pairs[0]  # target v, source w -> v*n + w
            block = z1.new_zeros(g, n * n, width)
            block[:, flat] = z1[edges.reshape(-1)].view(g, n * (n - 1), width)
            self.groups.append((nodes, block.view(g, n, n * width)))
        self.order = torch.cat(order)
        self.slots = int((sizes * sizes).sum())

    def messages(self, h: Tensor, weight: Tensor) -> Tensor:
        """h (N, d_in), weight (d_in, d_out, H+1) -> (N, d_out) in node order."""
        d_out = weight.shape[1]
        to_p = weight.transpose(1, 2).reshape(weight.shape[0], -1)  # (d_in, (H+1)·d_out)
        parts = []
        for nodes, block in self.groups:
            if block.numel() == 0:
                parts.append(h.new_zeros(nodes.numel(), d_out))
                continue
            g, n = block.shape[0], block.shape[1]
            p = (h.index_select(0, nodes) @ to_p).view(g, -1, d_out)  # (g, n·(H+1), d_out)
            parts.append(torch.bmm(block, p).view(g * n, d_out))
        out = h.new_empty(self.num_nodes, d_out)
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
        """h (N, d_in), weight (d_in, d_out, H+1) -> (N, d_out)."""
        w = weight.permute(2, 0, 1).reshape(-1, weight.shape[1])  # ((H+1)·d_in, d_out)
        h_slots = h.index_select(0, self.source_padded).view(self.num_nodes, self.max_degree, -1)
        sums = torch.bmm(self.z_padded_t, h_slots)  # (N, H+1, d_in)
        return sums.reshape(self.num_nodes, -1) @ w
