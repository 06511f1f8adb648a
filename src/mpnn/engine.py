r"""The message passing scheme of Gilmer et al. (2017), Eq. (1)-(3).

.. math::
    m_v^{t+1} = \sum_{w \in N(v)} M_t(h_v^t, h_w^t, e_{vw}), \qquad
    h_v^{t+1} = U_t(h_v^t, m_v^{t+1}), \qquad
    \hat y = R(\{h_v^T\}, \{x_v\})

Every model of the package is an :class:`MPNN` with different parts:

* ``node_input(batch) -> h0`` (N, d) and ``edge_input(batch) -> e`` (E, D_e);
* ``message.prepare(batch, e, steps) -> context`` once per forward pass, then
  ``message(h, context) -> m`` (N, d_m) per step (aggregation included);
* ``update(h, m) -> h`` (N, d);
* ``readout(h, x, index, B) -> y`` (B, K).

With ``tie_weights`` (the default) one message and one update module serve all T steps;
otherwise each step has its own copy, made from the given modules.
"""

from __future__ import annotations

import copy

from torch import Tensor, nn

from mpnn.batch import Batch


class MPNN(nn.Module):
    """``MPNN(node_input, edge_input, message, update, readout, steps)``; ``forward(batch)`` -> (B, K)."""

    def __init__(
        self,
        node_input: nn.Module,
        edge_input: nn.Module,
        message: nn.Module,
        update: nn.Module,
        readout: nn.Module,
        steps: int,
        tie_weights: bool = True,
    ) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f"MPNN: steps must be >= 1, got {steps}")
        copies = 1 if tie_weights else steps
        self.steps, self.tie_weights = steps, tie_weights
        self.node_input, self.edge_input, self.readout = node_input, edge_input, readout
        self.messages = nn.ModuleList([message] + [copy.deepcopy(message) for _ in range(copies - 1)])
        self.updates = nn.ModuleList([update] + [copy.deepcopy(update) for _ in range(copies - 1)])
        if not tie_weights:
            for module in [*self.messages[1:], *self.updates[1:]]:
                module.apply(_reset)

    def node_states(self, batch: Batch) -> Tensor:
        """h^T (N, d) after T steps of message passing."""
        h = self.node_input(batch)
        edge_attr = self.edge_input(batch)
        shared = self.tie_weights
        contexts = [
            message.prepare(batch, edge_attr, self.steps if shared else 1) for message in self.messages
        ]
        for t in range(self.steps):
            k = 0 if shared else t
            h = self.updates[k](h, self.messages[k](h, contexts[k]))
        return h

    def forward(self, batch: Batch) -> Tensor:
        """Predictions (B, K) for the B structures of the batch."""
        h = self.node_states(batch)
        return self.readout(h, batch.x, batch.batch, batch.num_graphs)


def _reset(module: nn.Module) -> None:
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()
