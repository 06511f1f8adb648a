r"""n2p2's cutoff functions f_c(r), ``cutoff_type`` 0-8, with the inner cutoff ``alpha``.

With :math:`r_i = \alpha r_c` and :math:`x = (r - r_i)/(r_c - r_i)`, every function is 1 for
:math:`r < r_i` and 0 for :math:`r \ge r_c`; in between:

====  =====  ================================================================
type  name   f_c
====  =====  ================================================================
0     hard   1
1     cos    :math:`\tfrac12(\cos \pi x + 1)`
2     tanhu  :math:`\tanh^3(1 - r/r_c)` (no inner cutoff)
3     tanh   :math:`\tanh^3(1 - r/r_c) / \tanh^3(1)` (no inner cutoff)
4     exp    :math:`e^{1 - 1/(1 - x^2)}`
5-8   poly1  :math:`(2x - 3)x^2 + 1`, poly2 :math:`((15 - 6x)x - 10)x^3 + 1`,
             poly3 :math:`(x(x(20x - 70) + 84) - 35)x^4 + 1`,
             poly4 :math:`(x(x((315 - 70x)x - 540) + 420) - 126)x^5 + 1`
====  =====  ================================================================
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

CUTOFF_TYPES = {
    0: "hard",
    1: "cos",
    2: "tanhu",
    3: "tanh",
    4: "exp",
    5: "poly1",
    6: "poly2",
    7: "poly3",
    8: "poly4",
}
_TANH_NORM = 1.0 / math.tanh(1.0) ** 3


def polynomial_core(x: Tensor, order: int) -> Tensor:
    """n2p2's ``CoreFunction`` POLY1-4 on x in [0, 1]: 1 at 0, 0 at 1, flat at both ends."""
    if order == 1:
        return (2.0 * x - 3.0) * x * x + 1.0
    if order == 2:
        return ((15.0 - 6.0 * x) * x - 10.0) * x * x * x + 1.0
    x2 = x * x
    if order == 3:
        return (x * (x * (20.0 * x - 70.0) + 84.0) - 35.0) * x2 * x2 + 1.0
    if order == 4:
        return (x * (x * ((315.0 - 70.0 * x) * x - 540.0) + 420.0) - 126.0) * x2 * x2 * x + 1.0
    raise ValueError(f"polynomial_core: order must be 1-4, got {order}")


class CutoffFunction(nn.Module):
    """f_c(r) of one n2p2 ``cutoff_type`` and inner-cutoff fraction ``alpha``; r and rc in one unit.

    ``forward(r)`` takes r (...) and returns f_c (...), 0 at and beyond ``rc``. ``rc`` may be a
    float or a tensor broadcasting against r (one radius per function).
    """

    def __init__(self, cutoff_type: int, alpha: float = 0.0) -> None:
        super().__init__()
        if cutoff_type not in CUTOFF_TYPES:
            raise ValueError(f"unknown cutoff_type {cutoff_type}; known: 0-8")
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"cutoff alpha must satisfy 0 <= alpha < 1, got {alpha}")
        self.cutoff_type, self.alpha = cutoff_type, alpha

    @property
    def name(self) -> str:
        return CUTOFF_TYPES[self.cutoff_type]

    def forward(self, r: Tensor, rc: Tensor | float) -> Tensor:
        kind = self.cutoff_type
        if kind == 2:
            value = torch.tanh(1.0 - r / rc) ** 3
        elif kind == 3:
            value = _TANH_NORM * torch.tanh(1.0 - r / rc) ** 3
        elif kind == 0:
            value = torch.ones_like(r * rc)
        else:
            inner = self.alpha * rc
            x = ((r - inner) / (rc - inner)).clamp(0.0, 1.0)
            if kind == 1:
                value = 0.5 * (torch.cos(math.pi * x) + 1.0)
            elif kind == 4:
                # e^(1 - 1/(1 - x^2)); x is kept below 1 so that the gradient stays finite
                x = x.clamp(max=1.0 - 1e-12)
                value = torch.exp(1.0 - 1.0 / (1.0 - x * x))
            else:
                value = polynomial_core(x, kind - 4)
        return torch.where(r < rc, value, torch.zeros_like(value))

    def extra_repr(self) -> str:
        return f"{self.name}, alpha={self.alpha}"
