"""Sum readout: y_G = sum over atoms of f(h_v) (atomic contributions, as in HDNNP)."""

from __future__ import annotations

from torch import Tensor, nn

from mpnn.scatter import segment_sum


class SumReadout(nn.Module):
    """y_G = sum_v f(h_v), f an atom-wise network (identity if ``None``).  -> (B, out)."""

    def __init__(self, atom_net: nn.Module | None = None) -> None:
        super().__init__()
        self.atom_net = atom_net if atom_net is not None else nn.Identity()

    def forward(self, h: Tensor, x: Tensor, index: Tensor, num_graphs: int) -> Tensor:
        return segment_sum(self.atom_net(h), index, num_graphs)
