r"""Learned messages over the radius graph, every term zero (with its derivative) at the cutoff.

:class:`RadialFilterMessage` (``"filter"``), a continuous radial filter:

.. math::
    m_v = \sum_{w:\, r_{vw} < r_c} W(r_{vw}) \odot (A h_w + B h_v), \qquad
    W(r) = f_c(r)\, \mathrm{NN}(\phi(r)),

with :math:`\phi(r)` (K,) Gaussians :math:`e^{-(r - \mu_k)^2 / 2\sigma^2}` spread over
:math:`[0, r_c]` (:math:`\sigma` their spacing), NN a two-layer SiLU network (K -> d -> d), and
:math:`f_c` one of n2p2's cutoff functions (:mod:`mpnn.symmetry.cutoffs`), so every term and its
derivative vanish at :math:`r_c` (energies and forces continuous when an atom crosses it).
This is the edge network of Gilmer et al. contracted to a diagonal matrix (SchNet's continuous
filter, Schütt et al. 2017) with the receiving atom's own state added: the sum over w is one
scatter of the (E, 2d) products ``[W ⊙ A h_w, W]``, the second half multiplied by ``B h_v``
after it. Cost per step: O(E d) flops and bytes, no per-edge matrices.

:class:`RadialPairMessage` (``"pair"``), an edge network on the pair's states and distance:

.. math::
    m_v = \sum_{w:\, r_{vw} < r_c} f_c(r_{vw})\, L_2\, \mathrm{SiLU}(A h_v + B h_w + C \phi(r_{vw}) + b),

nonlinear in h_v, h_w and r jointly (the interaction network's message, Battaglia et al. 2016). Its
first layer on the concatenation [h_v, h_w, phi] is split into per-atom products A h, B h (N, d),
gathered per edge, and C phi (E, d): the same O(E (K d + d^2)) cost as the filter.

Shapes: h (N, d) -> m (N, d); edge vectors (E, 3) in the length unit of ``cutoff``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mpnn.batch import Batch
from mpnn.scatter import segment_sum
from mpnn.symmetry.cutoffs import CutoffFunction
from mpnn.updates.mlp import mlp


class GaussianBasis(nn.Module):
    """``forward(r (E,)) -> (E, K)``: K Gaussians on ``linspace(0, cutoff, K)``, width their spacing."""

    def __init__(self, count: int, cutoff: float) -> None:
        super().__init__()
        if count < 2:
            raise ValueError(f"GaussianBasis: at least 2 functions are needed, got {count}")
        self.register_buffer("centres", torch.linspace(0.0, cutoff, count, dtype=torch.float64))
        self.width = cutoff / (count - 1)

    def forward(self, r: Tensor) -> Tensor:
        x = (r.unsqueeze(-1) - self.centres.to(r.dtype)) / self.width
        return torch.exp(-0.5 * x * x)


class RadialEdges(nn.Module):
    """What both messages share: the cutoff r_c, the Gaussians and f_c; ``edges(batch, vectors)``
    gives the edges within r_c, their basis (E', K) and cutoff values."""

    def __init__(self, basis: int, cutoff: float, cutoff_type: int, cutoff_alpha: float) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.basis = GaussianBasis(basis, self.cutoff)
        self.cutoff_fn = CutoffFunction(cutoff_type, cutoff_alpha)

    def edges(self, batch: Batch, vectors: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The edges shorter than r_c: source w and target v (E',), the basis phi(r) (E', K) and
        f_c(r) (E', 1), differentiable with respect to the edge vectors (E, 3)."""
        source, target = batch.edge_index
        r = vectors.norm(dim=1)
        within = (r.detach() < self.cutoff).nonzero().squeeze(1)
        r = r[within]
        return source[within], target[within], self.basis(r), self.cutoff_fn(r, self.cutoff).unsqueeze(1)


@dataclass
class FilterContext:
    """What one forward pass prepares: the edges within the cutoff and their filters.

    Attributes:
        source, target: (E',) the atoms w and v of the edges within ``cutoff``.
        filters: (E', d) W(r_vw), zero at the cutoff.
        num_atoms: N.
    """

    source: Tensor
    target: Tensor
    filters: Tensor
    num_atoms: int


class RadialFilterMessage(RadialEdges):
    """The message of the module docstring; ``prepare(batch, vectors) -> FilterContext``,
    ``forward(h (N, d), context) -> (N, d)``.

    Args:
        features: d, the width of the node states.
        basis: K, the number of Gaussians.
        cutoff: r_c (Angstrom for a model of ours), at most the neighbour-list radius.
        cutoff_type, cutoff_alpha: n2p2's cutoff function f_c.
    """

    def __init__(
        self, features: int, basis: int, cutoff: float, cutoff_type: int = 6, cutoff_alpha: float = 0.0
    ) -> None:
        super().__init__(basis, cutoff, cutoff_type, cutoff_alpha)
        self.filter = mlp([basis, features, features], "silu")
        self.neighbor = nn.Linear(features, features, bias=False)
        self.centre = nn.Linear(features, features)

    def prepare(self, batch: Batch, vectors: Tensor, steps: int = 1) -> FilterContext:
        """The edges within the cutoff and their filters (E', d), from edge vectors (E, 3)."""
        source, target, phi, envelope = self.edges(batch, vectors)
        return FilterContext(source, target, self.filter(phi) * envelope, batch.num_atoms)

    def forward(self, h: Tensor, context: FilterContext) -> Tensor:
        c = context
        d = h.shape[1]
        pair = torch.cat([c.filters * self.neighbor(h)[c.source], c.filters], dim=1)
        summed = segment_sum(pair, c.target, c.num_atoms)
        return summed[:, :d] + summed[:, d:] * self.centre(h)


@dataclass
class PairContext:
    """The edges within the cutoff: ``source``, ``target`` (E',), their basis term ``C phi + b``
    (E', d), their cutoff values ``envelope`` (E', 1), and N."""

    source: Tensor
    target: Tensor
    radial: Tensor
    envelope: Tensor
    num_atoms: int


class RadialPairMessage(RadialEdges):
    """The pair message of the module docstring; ``prepare(batch, vectors) -> PairContext``,
    ``forward(h (N, d), context) -> (N, d)``. Arguments as :class:`RadialFilterMessage`."""

    def __init__(
        self, features: int, basis: int, cutoff: float, cutoff_type: int = 6, cutoff_alpha: float = 0.0
    ) -> None:
        super().__init__(basis, cutoff, cutoff_type, cutoff_alpha)
        self.radial = nn.Linear(basis, features)
        self.centre = nn.Linear(features, features, bias=False)
        self.neighbor = nn.Linear(features, features, bias=False)
        self.out = nn.Linear(features, features)

    def prepare(self, batch: Batch, vectors: Tensor, steps: int = 1) -> PairContext:
        """The edges within the cutoff, their basis terms (E', d) and cutoff values (E', 1)."""
        source, target, phi, envelope = self.edges(batch, vectors)
        return PairContext(source, target, self.radial(phi), envelope, batch.num_atoms)

    def forward(self, h: Tensor, context: PairContext) -> Tensor:
        c = context
        hidden = self.centre(h)[c.target] + self.neighbor(h)[c.source] + c.radial
        pair = self.out(nn.functional.silu(hidden)) * c.envelope
        return segment_sum(pair, c.target, c.num_atoms)
