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
otherwise each step has its own copy, made from the given modules. Gilmer's :math:`M_t` and
:math:`U_t` may also differ in kind from step to step: ``message`` and ``update`` given as lists
of T modules are used as they are, step t running ``message[t]`` and ``update[t]`` (the
symmetry-function potentials of :mod:`mpnn.models.sf_mpnn`: symmetry functions first, learned
messages after).

Three optional parts cover the rest of Gilmer et al.'s Sec. 2 and 5:

* ``edge_update(e, h, batch) -> e'`` (E, D_e): edge *states* updated every step
  (Kearnes et al. 2016, Gilmer's Eq. for :math:`e_{vw}^{t+1}`); the message's context is then
  prepared again from the new states at every step.
* ``master``: a master node joined to every atom (Sec. 5.2): with its state g (B, d_master),
  ``master.to_atoms(g, batch) -> m`` (N, d_m) is added to the atoms' messages and
  ``master(g, h, batch) -> g'`` updates it from the atoms' states of the same step.
* ``readout_states="all"``: the readout reads :math:`[h^1, \dots, h^T]` concatenated
  (N, T·d), for readouts over every step (Duvenaud et al. 2015); ``"last"`` reads h^T.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mpnn.batch import Batch

READOUT_STATES = ("last", "all")


class MPNN(nn.Module):
    """``MPNN(node_input, edge_input, message, update, readout, steps)``; ``forward(batch)`` -> (B, K).

    ``message`` and ``update`` are one module each (tied, or copied per step) or lists (or
    ``nn.ModuleList``) of ``steps`` modules, one per step (``tie_weights=False``, unless T = 1).
    """

    def __init__(
        self,
        node_input: nn.Module,
        edge_input: nn.Module,
        message: nn.Module | Sequence[nn.Module],
        update: nn.Module | Sequence[nn.Module],
        readout: nn.Module,
        steps: int,
        tie_weights: bool = True,
        *,
        edge_update: nn.Module | None = None,
        master: nn.Module | None = None,
        readout_states: str = "last",
    ) -> None:
        super().__init__()
        if steps < 1:
            raise ValueError(f"MPNN: steps must be >= 1, got {steps}")
        if readout_states not in READOUT_STATES:
            raise ValueError(f"MPNN: readout_states must be one of {READOUT_STATES}, got {readout_states!r}")
        copies = 1 if tie_weights else steps
        self.steps, self.tie_weights, self.readout_states = steps, tie_weights, readout_states
        self.node_input, self.edge_input, self.readout = node_input, edge_input, readout
        self.messages = _per_step(message, copies, "message")
        self.updates = _per_step(update, copies, "update")
        # the edge states after the last step are never read: T - 1 untied edge updates suffice
        edge_copies = 1 if tie_weights else max(1, steps - 1)
        self.edge_updates = None if edge_update is None else _copies(edge_update, edge_copies)
        self.masters = None if master is None else _copies(master, copies)

    def node_states(self, batch: Batch) -> Tensor:
        """h^T (N, d) after T steps of message passing (or [h^1..h^T], see ``readout_states``)."""
        h = self.node_input(batch)
        edge_attr = self.edge_input(batch)
        shared = self.tie_weights
        evolving = self.edge_updates is not None
        contexts = None
        if not evolving:  # step-independent contexts, prepared once per forward pass
            contexts = [
                message.prepare(batch, edge_attr, self.steps if shared else 1) for message in self.messages
            ]
        g = self.masters[0].initial_state(batch) if self.masters is not None else None
        history = []
        for t in range(self.steps):
            k = 0 if shared else t
            context = contexts[k] if contexts is not None else self.messages[k].prepare(batch, edge_attr, 1)
            m = self.messages[k](h, context)
            if g is not None:
                m = m + self.masters[k].to_atoms(g, batch)
                g = self.masters[k](g, h, batch)
            if evolving and t < self.steps - 1:  # the last states would not be read
                edge_attr = self.edge_updates[k](edge_attr, h, batch)
            h = self.updates[k](h, m)
            history.append(h)
        return torch.cat(history, dim=-1) if self.readout_states == "all" else h

    def forward(self, batch: Batch) -> Tensor:
        """Predictions (B, K) for the B structures of the batch."""
        h = self.node_states(batch)
        return self.readout(h, batch.x, batch.batch, batch.num_graphs)


def _per_step(modules: nn.Module | Sequence[nn.Module], count: int, what: str) -> nn.ModuleList:
    """``count`` modules: the list given (one per step), or copies of the one module given."""
    if isinstance(modules, nn.Module) and not isinstance(modules, nn.ModuleList):
        return _copies(modules, count)
    if len(modules) != count:
        raise ValueError(
            f"MPNN: {len(modules)} {what} modules given; one per step needs {count} "
            "(and tie_weights=False for more than one)"
        )
    return nn.ModuleList(modules)


def _copies(module: nn.Module, count: int) -> nn.ModuleList:
    """``module`` and ``count - 1`` freshly initialised copies of it."""
    modules = nn.ModuleList([module] + [copy.deepcopy(module) for _ in range(count - 1)])
    for extra in modules[1:]:
        extra.apply(_reset)
    return modules


def _reset(module: nn.Module) -> None:
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()
