r"""Multiple towers (Gilmer et al. 2017, Sec. 5.4): k narrow message-passing steps, then a mix.

The d-wide state is split into k towers of width d/k,
:math:`h_v = [h_v^{1}, \dots, h_v^{k}]`.  Each tower has its own message function and its own
GRU, and after every step a network g shared by all nodes mixes the towers:

.. math::
    m_v^{i} = \sum_{w} M^{i}(h_v^{i}, h_w^{i}, e_{vw}), \qquad
    \tilde h_v^{i} = \mathrm{GRU}^{i}(m_v^{i}, h_v^{i}), \qquad
    h_v' = g\big([\tilde h_v^{1}, \dots, \tilde h_v^{k}]\big)

It fits the engine as the pair ``message``, ``update = TowerUpdate(...)``: the message module
returns the towers' messages side by side, the update splits them again, runs the k GRUs
(:class:`~mpnn.updates.grouped_gru.GroupedGRU`: batched over the towers, no loop) and mixes.
Two message layouts:

* generic (:func:`towers`, any message function): :class:`TowerMessage` holds k separate message
  modules and concatenates their messages tower by tower, (N, k·d_m/k) (``channels=1``);
* edge network (the configurable model's ``towers`` with ``message="edge_network"``): one
  :class:`~mpnn.messages.EdgeNetwork` with ``blocks=k``, whose matrix A(e) is block diagonal,
  k towers of (d/k) x (d/k) blocks sharing the hidden layers of z(e), in one computation (inside a
  :class:`~mpnn.messages.DirectedMessage` when directed: [incoming, outgoing], each tower-major,
  ``channels=2``).

A master node (:class:`~mpnn.updates.MasterNode`) adds its message to the message columns.

Cost model: with the contracted path of the edge network (complete molecular graphs, N nodes,
``slots`` = sum of n² over structures, H hidden edge features) one step costs
N·(H+1)·d² multiply-adds for the products with the weights W of A(e) plus slots·(H+1)·d for the
sums over the neighbours; with k towers the first term is N·(H+1)·d²/k (block-diagonal W) and
the second is unchanged.  At d = 200, H = 128 and QM9's ~18 atoms the first term dominates, so
k = 8 needs ~5x fewer multiply-adds (cached matrices: E·d² per step and E·H·d² to build them,
both divided by k).  The GRUs, with messages d_m wide in all, cost 3·(d_m·d + d²)/k per node
instead of 3·(d_m·d + d²); the mixing network adds N·d·(its hidden widths) per step.  Gilmer et
al. report k = 8 towers at d = 200 inferring about twice as fast as one tower
(``python -m benchmarks.towers_speed`` measures ours: ~3x on an idle 2-core CPU).

Shapes: h (N, d) with d = k·(d/k); messages (N, d_m) -> h' (N, d).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from mpnn.batch import Batch
from mpnn.updates.grouped_gru import GroupedGRU


class TowerMessage(nn.Module):
    """The messages of k towers, tower i reading columns ``[i·d/k, (i+1)·d/k)`` of h.

    Args:
        messages: one message module per tower (``in_dim`` d/k each, any ``out_dim``).
    """

    def __init__(self, messages: Sequence[nn.Module]) -> None:
        super().__init__()
        widths = {m.in_dim for m in messages}
        if len(widths) != 1:
            raise ValueError(f"TowerMessage: the towers must read h of one width, got {sorted(widths)}")
        self.towers = nn.ModuleList(messages)
        self.tower_dim = widths.pop()
        self.in_dim = self.tower_dim * len(messages)
        self.out_dims = [m.out_dim for m in messages]
        self.out_dim = sum(self.out_dims)

    def prepare(self, batch: Batch, edge_attr: Tensor, steps: int = 1) -> list:
        """One context per tower (each tower has its own weights, hence its own context)."""
        return [tower.prepare(batch, edge_attr, steps) for tower in self.towers]

    def forward(self, h: Tensor, contexts: list) -> Tensor:
        """h (N, d) -> (N, sum of the towers' message widths)."""
        parts = torch.split(h, self.tower_dim, dim=-1)
        return torch.cat(
            [tower(part, ctx) for tower, part, ctx in zip(self.towers, parts, contexts, strict=True)], dim=-1
        )


class TowerUpdate(nn.Module):
    """A GRU per tower (batched: :class:`~mpnn.updates.grouped_gru.GroupedGRU`), then the mixing network g.

    Args:
        dim: d, the full state width (k·d/k).
        message_dims: the message width each tower reads (equal for all towers).
        mixing_hidden: hidden widths of g (ReLU between layers, linear output of width d);
            ``None``: one hidden layer of width d.
        channels: the message's layout (see :mod:`mpnn.updates.grouped_gru`): 1 for
            :class:`TowerMessage` (each tower's message contiguous), 2 for a directed edge network
            with blocks ([incoming, outgoing], each tower-major).
    """

    def __init__(
        self,
        dim: int,
        message_dims: Sequence[int],
        mixing_hidden: Sequence[int] | None = None,
        channels: int = 1,
    ) -> None:
        super().__init__()
        k = len(message_dims)
        if k < 1 or dim % k:
            raise ValueError(f"TowerUpdate: dim {dim} is not divisible into {k} towers")
        if len(set(message_dims)) != 1:
            raise ValueError(
                f"TowerUpdate: the towers must read messages of one width, got {list(message_dims)}"
            )
        self.dim, self.tower_dim, self.message_dims = dim, dim // k, list(message_dims)
        self.cells = GroupedGRU(dim, k, sum(message_dims), channels)
        widths = [dim, *(mixing_hidden if mixing_hidden is not None else [dim]), dim]
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.mixing = nn.Sequential(*layers[:-1])

    def forward(self, h: Tensor, m: Tensor) -> Tensor:
        """h (N, d), m (N, sum message_dims) -> mixed h' (N, d)."""
        return self.mixing(self.cells(h, m))


def towers(
    dim: int,
    k: int,
    message_factory: Callable[[int], nn.Module],
    mixing_hidden: Sequence[int] | None = None,
) -> tuple[TowerMessage, TowerUpdate]:
    """The (message, update) pair of k towers over d-wide states.

    ``message_factory(d/k)`` builds one tower's message module (called k times, so each tower has
    its own weights).
    """
    if k < 1 or dim % k:
        raise ValueError(f"towers: dim {dim} is not divisible into {k} towers")
    message = TowerMessage([message_factory(dim // k) for _ in range(k)])
    return message, TowerUpdate(dim, message.out_dims, mixing_hidden)
