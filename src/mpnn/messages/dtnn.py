r"""Distance expansion and interaction of the deep tensor neural network (Schütt et al. 2017).

Edges: the interatomic distance :math:`D_{vw}` (Angstrom) expanded on a uniform grid of Gaussians,

.. math::
    \hat d_{vw} = \Big[\exp\Big(-\frac{(D_{vw} - \mu_k)^2}{2\sigma^2}\Big)\Big]_{k=0..K-1},
    \qquad \mu_k = \mu_{min} + k\,\Delta\mu

Message (Gilmer et al. 2017, Sec. 2; Schütt et al.'s interaction :math:`v_{ij}`):

.. math::
    m_v = \sum_{w \ne v} \tanh\Big(W^{fc}\big((W^{cf} h_w + b_1) \odot (W^{df} \hat d_{vw} + b_2)\big)\Big)

:math:`W^{df} \hat d + b_2` does not depend on h: it is computed once per forward pass
(:meth:`DTNNMessage.prepare`), then every step costs one (E, factors) product.

Shapes: h (N, d), d-hat (E, K) -> m (N, d).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mpnn.batch import Batch
from mpnn.inputs import edge_vectors
from mpnn.scatter import segment_sum


class GaussianDistances(nn.Module):
    """e_vw = Gaussians of the distance |r_w - r_v| centred at start, start + spacing, ... <= stop.

    ``width`` is sigma (Angstrom).  Output (E, K) with K = floor((stop - start) / spacing) + 1.
    """

    def __init__(
        self, start: float = 0.0, stop: float = 20.0, spacing: float = 0.2, width: float = 0.2
    ) -> None:
        super().__init__()
        if spacing <= 0 or width <= 0 or stop < start:
            raise ValueError(
                f"GaussianDistances: need spacing > 0, width > 0, stop >= start; got {spacing}, {width}, "
                f"{start}..{stop}"
            )
        count = int((stop - start) / spacing + 1e-9) + 1
        self.register_buffer("centers", start + spacing * torch.arange(count, dtype=torch.float64))
        self.width = float(width)
        self.out_features = count

    def forward(self, batch: Batch) -> Tensor:
        distance = edge_vectors(batch).norm(dim=-1, keepdim=True)
        return torch.exp(-((distance - self.centers.to(distance.dtype)) ** 2) / (2.0 * self.width**2))


@dataclass
class DTNNContext:
    """source, target (E,); edge_factors (E, factors) = W^df d-hat + b_2."""

    source: Tensor
    target: Tensor
    num_nodes: int
    edge_factors: Tensor


class DTNNMessage(nn.Module):
    """The DTNN interaction: ``dim`` atom basis, ``edge_features`` Gaussians, ``factors`` factors."""

    def __init__(self, dim: int, edge_features: int, factors: int) -> None:
        super().__init__()
        self.atom_to_factors = nn.Linear(dim, factors)  # W^cf, b_1
        self.edge_to_factors = nn.Linear(edge_features, factors)  # W^df, b_2
        self.factors_to_atom = nn.Linear(factors, dim, bias=False)  # W^fc

    def prepare(self, batch: Batch, edge_attr: Tensor, steps: int = 1) -> DTNNContext:
        source, target = batch.edge_index
        return DTNNContext(source, target, batch.num_atoms, self.edge_to_factors(edge_attr))

    def forward(self, h: Tensor, ctx: DTNNContext) -> Tensor:
        """h (N, d) -> (N, d)."""
        v = torch.tanh(self.factors_to_atom(self.atom_to_factors(h)[ctx.source] * ctx.edge_factors))
        return segment_sum(v, ctx.target, ctx.num_nodes)
