r"""Gaussian histogram of atom features (Kearnes et al. 2016, "fuzzy histograms"): the weave model's
alternative to summing atom features.

Each feature :math:`a` of an atom is spread over K = 11 Gaussian bins
:math:`\phi_k(a) = \mathcal N(a; \mu_k, \sigma_k)` placed so that each holds the same share of a
standard normal, and normalised so that an atom's memberships of one feature sum to one:

.. math::
    p_k(a) = \frac{\phi_k(a)}{\sum_{k'} \phi_{k'}(a) + \epsilon}, \qquad
    \hat h_G = \sum_{v \in G} [p_1(a_{v1}), \dots, p_K(a_{v1}), \dots, p_K(a_{vd})]

so the sum over a molecule's atoms is a histogram per feature (how many atoms fall in each bin),
(B, d·K).  The means and widths are those of Kearnes et al.'s code (DeepChem ``WeaveGather``).
Features should be of order one: the weave model feeds a tanh layer.

Shapes: a (N, d) -> memberships (N, d·K).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

#: (mean, standard deviation) of the 11 bins: equal areas of a standard normal.
GAUSSIAN_BINS = (
    (-1.645, 0.283), (-1.080, 0.170), (-0.739, 0.134), (-0.468, 0.118), (-0.228, 0.114), (0.0, 0.114),
    (0.228, 0.114), (0.468, 0.118), (0.739, 0.134), (1.080, 0.170), (1.645, 0.283),
)  # fmt: skip


class GaussianHistogram(nn.Module):
    """Per-feature membership of each atom in :data:`GAUSSIAN_BINS`: (N, d) -> (N, d·11)."""

    def __init__(self, epsilon: float = 1e-7) -> None:
        super().__init__()
        mean, std = zip(*GAUSSIAN_BINS, strict=True)
        self.register_buffer("mean", torch.tensor(mean), persistent=False)
        self.register_buffer("std", torch.tensor(std), persistent=False)
        self.epsilon = epsilon
        self.bins = len(GAUSSIAN_BINS)

    def forward(self, a: Tensor) -> Tensor:
        mean, std = self.mean.to(a.dtype), self.std.to(a.dtype)
        z = (a.unsqueeze(-1) - mean) / std  # (N, d, K)
        density = torch.exp(-0.5 * z * z) / (std * math.sqrt(2 * math.pi))
        memberships = density / (density.sum(-1, keepdim=True) + self.epsilon)
        return memberships.flatten(1)
