r"""Layouts for the contracted edge-network sums :math:`S_v = \sum_w z'(e_{vw}) h_w^\top`.

``z'`` is z with a trailing 1 (so the bias b2 rides along), width H+1.  A layout is built
once per forward pass from z' and the graph, then computes, at every step,
``messages(h, weight)`` = sum_k W_k^T S_v[k] for all nodes, (N, d_out), with the grouped
``weight`` (k, d_in/k, d_out/k, H+1) holding [W2 | b2] of k blocks, without forming any
per-edge tensor wider than z'.

Blocks (towers, Gilmer et al. 2017, Sec. 5.4): with k > 1 the matrix is block diagonal,
:math:`A(e) = \mathrm{diag}(A_1(e), \dots, A_k(e))`, block i mapping columns
``[i·d_in/k, (i+1)·d_in/k)`` of h to columns ``[i·d_out/k, (i+1)·d_out/k)`` of m (tower-major
columns).  All blocks share z', so one layout serves them all:

.. math::
    m_v^{(i)} = \sum_{w} \sum_{j} z'_j(e_{vw})\, h_w^{(i)} W^{(i)}_j
    = \sum_{j} \Big(\sum_w z'_j(e_{vw})\, h_w^{(i)}\Big) W^{(i)}_j

With k > 1 both layouts form the sums first, transposed, :math:`S_v^\top` (d_in, H+1) per node,
so that block i's rows are contiguous, then one product batched over the k blocks
(:func:`blocked_products`): slots·(H+1)·d_in multiply-adds for the sums plus
N·(H+1)·d_in·d_out/k for the products.  The other order (:math:`P_w = h_w W` first) needs a
(N, H+1, d_out) copy to bring the k blocks' columns together, and was slower on CPU.

:class:`BlockLayout`
    for graphs whose every structure is a complete graph (the molecular graphs of
    Gilmer et al.).  Structures of equal size n form a group; a group's z' is a dense
    (g, n, n·(H+1)) block.  With k = 1 a step first maps every node to
    :math:`P_w = h_w W` (H+1, d_out), then does one batched product per group: no per-edge gather
    of h and no padding; N·(H+1)·d_in·d_out + slots·(H+1)·d_out multiply-adds.  With k > 1 the
    sums are formed a few structures at a time (:data:`CHUNK`).
:class:`SlotLayout`
    for any graph: the incoming edges of each node are laid out in D = max in-degree slots
    (empty slots hold z' = 0), and h is gathered per slot.  Multiply-adds per step:
    slots·(H+1)·d_in for the sums plus N·(H+1)·d_in·d_out/k.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mpnn.batch import pair_template

#: Blocks > 1 on complete graphs: structures are processed a few at a time, so that the per-slot
#: states (and the sums) of one chunk hold about this many numbers (cache-sized, reused memory).
CHUNK = 1 << 21


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
    [v, w·(H+1) + j] (zero for w = v).  One block (k = 1): each step first maps every node to
    P_w = h_w W (H+1, d_out), then m_v = sum_{w,j} z'_j(e_vw) P_w[j]: one batched product.
    k blocks: the n atoms of a structure are every node's n slots (the slot w = v holds z' = 0),
    and :func:`blocked_products` gives the messages, a few structures at a time.

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
        """h (N, d_in), grouped weight (k, d_in/k, d_out/k, H+1) -> (N, d_out) in node order."""
        k, block_in, block_out, width = weight.shape
        d_out = k * block_out
        if k == 1:
            to_p = weight[0].transpose(1, 2).reshape(block_in, -1)  # (d_in, (H+1)·d_out)
        else:
            w_t = weight.transpose(2, 3).reshape(k, block_in * width, block_out)  # (k, d_in/k·(H+1), d_out/k)
        parts = []
        for nodes, block in self.groups:
            if block.numel() == 0:
                parts.append(h.new_zeros(nodes.numel(), d_out))
                continue
            g, n = block.shape[0], block.shape[1]
            rows = h.index_select(0, nodes)
            if k == 1:
                p = (rows @ to_p).view(g, -1, d_out)  # (g, n·(H+1), d_out)
                parts.append(torch.bmm(block, p).view(g * n, d_out))
                continue
            # a few structures at a time, so that the (nodes, d_in, H+1) sums stay small
            step = max(1, CHUNK // (n * rows.shape[1] * width))
            for a in range(0, g, step):
                b = min(g, a + step)
                h_slots = rows[a * n : b * n].view(b - a, 1, n, -1).expand(b - a, n, n, -1)
                z_slots = block[a:b].reshape((b - a) * n, n, width)
                parts.append(blocked_products(h_slots.reshape((b - a) * n, n, -1), z_slots, w_t))
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
        """h (N, d_in), grouped weight (k, d_in/k, d_out/k, H+1) -> (N, d_out)."""
        k, block_in, block_out, width = weight.shape
        h_slots = h.index_select(0, self.source_padded).view(self.num_nodes, self.max_degree, -1)
        if k == 1:
            w = weight[0].permute(2, 0, 1).reshape(-1, block_out)  # ((H+1)·d_in, d_out)
            sums = torch.bmm(self.z_padded_t, h_slots)  # (N, H+1, d_in)
            return sums.reshape(self.num_nodes, -1) @ w
        w_t = weight.transpose(2, 3).reshape(k, block_in * width, block_out)  # (k, d_in/k·(H+1), d_out/k)
        return blocked_products(h_slots, self.z_padded_t.transpose(1, 2), w_t)


def blocked_products(h_slots: Tensor, z_slots: Tensor, w_t: Tensor) -> Tensor:
    r"""Messages of k diagonal blocks from per-slot states and z': (M, D, d_in), (M, D, H+1) -> (M, d_out).

    The sums are formed transposed, :math:`S_v^\top = \sum_s h_{v,s} z'_{v,s}{}^\top` (M, d_in, H+1),
    so that block i's rows ``[i·d_in/k, (i+1)·d_in/k)`` are contiguous, then one product batched
    over the k blocks with ``w_t`` (k, d_in/k·(H+1), d_out/k) gives block i's columns of m.
    """
    sums_t = torch.bmm(h_slots.transpose(1, 2), z_slots)  # (M, d_in, H+1)
    k, rows = w_t.shape[0], sums_t.shape[0]
    m = torch.bmm(sums_t.view(rows, k, -1).transpose(0, 1), w_t)  # (k, M, d_out/k)
    return m.transpose(0, 1).reshape(rows, -1)
