r"""Neural-fingerprint readout of Duvenaud et al. (2015), over the states of *every* step.

.. math::
    \hat y = f\Big(\sum_{v} \sum_{t} \mathrm{softmax}\big(W_t h_v^t + b_t\big)\Big)

(Gilmer et al. 2017, Sec. 2).  Each atom writes a probability vector of length L (the fingerprint
length) per step; their sum over atoms and steps is the fingerprint, and f an MLP.  The engine
hands the states of steps 1..T concatenated (``readout_states="all"``, h of shape (N, T·d)).
With ``in_features`` > 0 the input features x (t = 0) write to the fingerprint too, as in
Duvenaud et al.'s code (HIPS/neural-fingerprint, which includes the input layer).

Shapes: h (N, T·d), x (N, F), index (N,) -> (B, out).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mpnn.scatter import segment_sum
from mpnn.updates.mlp import mlp


class FingerprintReadout(nn.Module):
    """y = f(sum_{v,t} softmax(W_t h_v^t + b_t)), f = ``mlp([fingerprint, *hidden, out])``."""

    def __init__(
        self,
        dim: int,
        steps: int,
        fingerprint: int,
        out_features: int,
        hidden: Sequence[int] = (),
        in_features: int = 0,
        act: str = "relu",
    ) -> None:
        super().__init__()
        self.dim, self.steps = dim, steps
        self.per_step = nn.ModuleList(nn.Linear(dim, fingerprint) for _ in range(steps))
        self.inputs = nn.Linear(in_features, fingerprint) if in_features > 0 else None
        self.head = mlp([fingerprint, *hidden, out_features], act)

    def fingerprint(self, h: Tensor, x: Tensor, index: Tensor, num_graphs: int) -> Tensor:
        """(B, L) the fingerprint of each structure (before f)."""
        states = h.split(self.dim, dim=-1)
        if len(states) != self.steps:
            raise ValueError(
                f"FingerprintReadout: h has width {h.shape[-1]}, expected {self.steps}·{self.dim}"
            )
        per_atom = sum(torch.softmax(w(s), dim=-1) for w, s in zip(self.per_step, states, strict=True))
        if self.inputs is not None:
            per_atom = per_atom + torch.softmax(self.inputs(x.to(h.dtype)), dim=-1)
        return segment_sum(per_atom, index, num_graphs)

    def forward(self, h: Tensor, x: Tensor, index: Tensor, num_graphs: int) -> Tensor:
        return self.head(self.fingerprint(h, x, index, num_graphs))
