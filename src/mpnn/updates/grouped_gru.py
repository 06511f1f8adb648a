r"""k independent GRU cells on the k column blocks of the state (towers, Gilmer et al. 2017, Sec. 5.4).

The d-wide state is split into k towers of width c = d/k, :math:`h_v = [h_v^{(1)}, \dots,
h_v^{(k)}]`, and tower i has its own GRU (Cho et al. 2014, PyTorch's ``nn.GRUCell`` convention):

.. math::
    r &= \sigma(W_{ir}^{(i)} x^{(i)} + b_{ir}^{(i)} + W_{hr}^{(i)} h^{(i)} + b_{hr}^{(i)}) \\
    u &= \sigma(W_{iu}^{(i)} x^{(i)} + b_{iu}^{(i)} + W_{hu}^{(i)} h^{(i)} + b_{hu}^{(i)}) \\
    n &= \tanh(W_{in}^{(i)} x^{(i)} + b_{in}^{(i)} + r \odot (W_{hn}^{(i)} h^{(i)} + b_{hn}^{(i)})) \\
    \tilde h^{(i)} &= (1 - u) \odot n + u \odot h^{(i)}

All k cells run as two batched products (``torch.baddbmm`` over the towers), no loop over them.

Message layout: the message m (N, d_m) is ``channels`` channels of equal width, each tower-major:
column ``ch·(d_m/channels) + i·q + j`` (q = d_m/(channels·k)) is column j of tower i in channel
ch, and tower i reads :math:`x^{(i)} = [m^{(i)}_{ch=0}, \dots, m^{(i)}_{ch=C-1}]` (width
channels·q).  A directed edge-network message with blocks (``channels=2``) is
``[incoming (d), outgoing (d)]``, each tower-major, so tower i reads columns i of both
channels.  With ``channels=1`` tower i reads the contiguous columns ``[i·d_m/k, (i+1)·d_m/k)``
(what :class:`~mpnn.messages.TowerMessage` gives).

Parameters (tower i, gates in PyTorch's order r, u, n): ``weight_ih`` (k, 3c, channels·q),
``weight_hh`` (k, 3c, c), ``bias_ih`` and ``bias_hh`` (k, 3c); ``weight_ih[i]`` is an
``nn.GRUCell(channels·q, c)``'s ``weight_ih``.  Shapes: h (N, d), m (N, d_m) -> (N, d).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class GroupedGRU(nn.Module):
    """``GroupedGRU(dim, k, message_dim, channels=1)``: k GRU cells of width dim/k; see the module doc.

    Args:
        dim: d, the full state width (k·c).
        k: the number of towers; must divide ``dim`` and ``message_dim / channels``.
        message_dim: d_m, the full message width.
        channels: how many tower-major channels the message holds (2 for directed messages).
    """

    def __init__(self, dim: int, k: int, message_dim: int | None = None, channels: int = 1) -> None:
        super().__init__()
        message_dim = message_dim or dim
        if k < 1 or dim % k:
            raise ValueError(f"GroupedGRU: dim {dim} is not divisible into {k} towers")
        if channels < 1 or message_dim % (channels * k):
            raise ValueError(
                f"GroupedGRU: message_dim {message_dim} is not {channels} channel(s) of {k} towers"
            )
        self.dim, self.k, self.message_dim, self.channels = dim, k, message_dim, channels
        self.tower_dim = dim // k
        self.tower_input = message_dim // k  # channels·q
        c = self.tower_dim
        self.weight_ih = nn.Parameter(torch.empty(k, 3 * c, self.tower_input))
        self.weight_hh = nn.Parameter(torch.empty(k, 3 * c, c))
        self.bias_ih = nn.Parameter(torch.empty(k, 3 * c))
        self.bias_hh = nn.Parameter(torch.empty(k, 3 * c))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform on ±1/sqrt(c), as ``nn.GRUCell`` of hidden size c."""
        bound = 1.0 / math.sqrt(self.tower_dim)
        for weight in self.parameters():
            nn.init.uniform_(weight, -bound, bound)

    def tower_inputs(self, m: Tensor) -> Tensor:
        """m (N, d_m) -> (k, N, channels·q): the message columns each tower reads."""
        n = m.shape[0]
        if self.channels == 1:
            return m.reshape(n, self.k, -1).transpose(0, 1)
        return m.reshape(n, self.channels, self.k, -1).permute(2, 0, 1, 3).reshape(self.k, n, -1)

    def forward(self, h: Tensor, m: Tensor) -> Tensor:
        """h (N, d), m (N, d_m) -> the k towers' new states, concatenated (N, d)."""
        n = h.shape[0]
        if self.k == 1:  # one tower: exactly nn.GRUCell
            return torch.gru_cell(
                m, h, self.weight_ih[0], self.weight_hh[0], self.bias_ih[0], self.bias_hh[0]
            )
        states = h.reshape(n, self.k, self.tower_dim).transpose(0, 1)  # (k, N, c)
        gi = torch.baddbmm(self.bias_ih.unsqueeze(1), self.tower_inputs(m), self.weight_ih.transpose(1, 2))
        gh = torch.baddbmm(self.bias_hh.unsqueeze(1), states, self.weight_hh.transpose(1, 2))
        i_r, i_u, i_n = gi.chunk(3, dim=2)
        h_r, h_u, h_n = gh.chunk(3, dim=2)
        reset = torch.sigmoid(i_r + h_r)
        keep = torch.sigmoid(i_u + h_u)
        candidate = torch.tanh(i_n + reset * h_n)
        new = candidate + keep * (states - candidate)  # (1 - u) n + u h
        return new.transpose(0, 1).reshape(n, self.dim)
