r"""Pool-then-network readout: a sum (or mean) over the atoms between two atom-wise maps.

.. math::
    \hat y_G = f\Big(\bigoplus_{v \in G} g(h_v^T)\Big)

with :math:`\bigoplus` a sum or a mean and f, g networks (identity when not given).  It is the
readout of the interaction network (Battaglia et al. 2016, :math:`R = f(\sum_v h_v^T)`), of the
graph convolution of Kipf & Welling (2017) once pooled, and of the weave model (Kearnes et al. 2016:
g an atom layer, the sum the "reduction", f the molecule-level layers).  With f the identity it
is :class:`mpnn.readouts.SumReadout`.

Shapes: h (N, d), index (N,) -> (B, out).
"""

from __future__ import annotations

from torch import Tensor, nn

from mpnn.scatter import segment_mean, segment_sum

POOLS = {"sum": segment_sum, "mean": segment_mean}


class PooledReadout(nn.Module):
    """y_G = head(pool_v atom_net(h_v)); ``pool`` is ``"sum"`` or ``"mean"``.  -> (B, out)."""

    def __init__(
        self, head: nn.Module | None = None, atom_net: nn.Module | None = None, pool: str = "sum"
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise ValueError(f"PooledReadout: pool must be one of {sorted(POOLS)}, got {pool!r}")
        self.head = head if head is not None else nn.Identity()
        self.atom_net = atom_net if atom_net is not None else nn.Identity()
        self.pool = pool

    def forward(self, h: Tensor, x: Tensor, index: Tensor, num_graphs: int) -> Tensor:
        return self.head(POOLS[self.pool](self.atom_net(h), index, num_graphs))
