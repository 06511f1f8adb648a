r"""Separate messages along and against the edges (Li et al. 2016; Gilmer et al. 2017, Sec. 2, 5).

.. math::
    m_v = \Big[\ \sum_{w:\ w \to v} M_{in}(h_v, h_w, e_{vw}),\ \
    \sum_{w:\ v \to w} M_{out}(h_v, h_w, e_{wv})\ \Big]

The graph is treated as directed: the incoming channel is an ordinary message over the edges
w -> v; the outgoing channel runs the other message function over the *reversed* edges, so node
v hears from w along every edge v -> w, with that edge's features.  With d-wide channels the
message is 2d wide (Gilmer's "message width 2d").  On a symmetric graph (both directions of
every bond present, e_vw = e_wv) the two channels see the same edges and differ by their
weights.

Any message module of the package fits either channel: ``prepare(batch, edge_attr, steps)``
then ``forward(h, context)``, with ``in_dim`` and ``out_dim`` attributes.

Shapes: h (N, d_in) -> m (N, d_in_out + d_out_out).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import Tensor, nn

from mpnn.batch import Batch


def reverse_edges(batch: Batch, edge_attr: Tensor) -> tuple[Batch, Tensor]:
    """The batch with every edge w -> v turned into v -> w, keeping its features.

    The reversed edges are sorted by their new target, then source (the batch's convention), and
    ``edge_type``, ``shift`` (negated: the image of the new source) and ``edge_attr`` follow them.
    """
    source, target = batch.edge_index
    order = torch.argsort(source * max(batch.num_atoms, 1) + target)
    shift = None if batch.shift is None else -batch.shift[order]
    reversed_batch = replace(
        batch,
        edge_index=torch.stack([target[order], source[order]]),
        edge_type=batch.edge_type[order],
        shift=shift,
    )
    return reversed_batch, edge_attr[order]


class DirectedMessage(nn.Module):
    """``[incoming(h) over the edges, outgoing(h) over the reversed edges]``.

    Args:
        incoming, outgoing: message modules (e.g. two :class:`~mpnn.messages.MatrixMessage` or two
            :class:`~mpnn.messages.EdgeNetwork` of the same widths), each with its own weights.
    """

    def __init__(self, incoming: nn.Module, outgoing: nn.Module) -> None:
        super().__init__()
        if incoming.in_dim != outgoing.in_dim:
            raise ValueError(
                f"DirectedMessage: incoming and outgoing read h of different widths "
                f"({incoming.in_dim}, {outgoing.in_dim})"
            )
        self.incoming, self.outgoing = incoming, outgoing
        self.in_dim = incoming.in_dim
        self.out_dim = incoming.out_dim + outgoing.out_dim

    def prepare(self, batch: Batch, edge_attr: Tensor, steps: int = 1) -> tuple[Any, Any]:
        """The contexts of both channels (the outgoing one on the reversed edges)."""
        reversed_batch, reversed_attr = reverse_edges(batch, edge_attr)
        return (
            self.incoming.prepare(batch, edge_attr, steps),
            self.outgoing.prepare(reversed_batch, reversed_attr, steps),
        )

    def forward(self, h: Tensor, context: tuple[Any, Any]) -> Tensor:
        """h (N, d_in) -> (N, out_dim): incoming messages, then outgoing ones."""
        return torch.cat([self.incoming(h, context[0]), self.outgoing(h, context[1])], dim=-1)
