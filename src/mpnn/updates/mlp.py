r"""Feed-forward networks, and the update :math:`h_v' = \mathrm{NN}([h_v, m_v])` built from one.

:func:`mlp` is the small builder the earlier models of Gilmer et al. (2017, Sec. 2) share: linear
layers with an activation between them and a *linear* last layer (unlike
:func:`mpnn.messages.edge_network.mlp`, which activates every layer).

:class:`MLPUpdate` is the update of the interaction network (Battaglia et al. 2016):

.. math::
    h_v^{t+1} = U(h_v^t, m_v^{t+1}) = \mathrm{NN}([h_v^t, m_v^{t+1}])

Shapes: h (N, dim), m (N, message_dim) -> (N, dim).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

#: Activations by name, for the ``activation`` field of model configurations.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
    "silu": nn.SiLU,
}


def activation(name: str) -> nn.Module:
    """A fresh activation module of the given name (one of :data:`ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


def mlp(widths: Sequence[int], act: str = "relu", last_activation: bool = False) -> nn.Sequential:
    """Linear layers of the given widths (input first), ``act`` between them.

    The last layer is linear unless ``last_activation``.  ``mlp([a, b])`` is one ``Linear(a, b)``.
    """
    if len(widths) < 2:
        raise ValueError(f"mlp: widths needs an input and an output width, got {list(widths)}")
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2 or last_activation:
            layers.append(activation(act))
    return nn.Sequential(*layers)


class MLPUpdate(nn.Module):
    """h' = NN([h, m]) with NN = ``mlp([dim + message_dim, *hidden, dim])``.

    Shapes: h (N, dim), m (N, message_dim) -> (N, dim).
    """

    def __init__(self, dim: int, message_dim: int, hidden: Sequence[int] = (), act: str = "relu") -> None:
        super().__init__()
        self.net = mlp([dim + message_dim, *hidden, dim], act)

    def forward(self, h: Tensor, m: Tensor) -> Tensor:
        return self.net(torch.cat([h, m], dim=-1))
