r"""Behler's Gaussian symmetry-function families, as n2p2 defines them (all sums over
neighbours within the cutoff; r_ij = |r_j - r_i|, cos theta_ijk = r_ij . r_ik / (r_ij r_ik)):

* type 2, radial:      :math:`G_i = \sum_j e^{-\eta (r_{ij} - r_s)^2} f_c(r_{ij})`
* type 12, weighted:   the same with each neighbour weighted by its atomic number Z_j
* type 3, narrow angular:
  :math:`G_i = 2^{1-\zeta} \sum_{j<k} (1 + \lambda \cos\theta_{ijk})^\zeta
  e^{-\eta [(r_{ij}-r_s)^2 + (r_{ik}-r_s)^2 + (r_{jk}-r_s)^2]} f_c(r_{ij}) f_c(r_{ik}) f_c(r_{jk})`
* type 9, wide angular: type 3 without the r_jk Gaussian and f_c(r_jk)
* type 13: type 3 with each pair weighted by Z_j Z_k

A non-positive :math:`1 + \lambda\cos\theta` contributes 0.  The modules below compute the
*terms* of several functions of one family at once, one column per function; the sums over
neighbours are done by :mod:`mpnn.messages.symmetry_functions`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mpnn.symmetry.cutoffs import CutoffFunction


def _unique_columns(values: Tensor) -> tuple[Tensor, Tensor]:
    """Unique rows of (F, k) parameters and, for each of the F functions, its row index."""
    unique, inverse = torch.unique(values, dim=0, return_inverse=True)
    return unique, inverse


class GaussianRadial(nn.Module):
    """Terms of radial functions (types 2 and 12) sharing one cutoff function type.

    Args:
        eta, rs, rc: (F,) parameters, lengths in the unit of the positions.
        cutoff: the cutoff function.
        weighted: multiply each term by the neighbour's atomic number (type 12).

    ``forward(r (P,), zj (P,)) -> (P, F)``.
    """

    def __init__(
        self,
        eta: Sequence[float],
        rs: Sequence[float],
        rc: Sequence[float],
        cutoff: CutoffFunction,
        weighted: bool = False,
    ) -> None:
        super().__init__()
        self.register_buffer("eta", torch.tensor(eta, dtype=torch.float64))
        self.register_buffer("rs", torch.tensor(rs, dtype=torch.float64))
        self.register_buffer("rc", torch.tensor(rc, dtype=torch.float64))
        self.cutoff_fn, self.weighted = cutoff, weighted
        self.cutoff = float(max(rc))

    def forward(self, r: Tensor, zj: Tensor) -> Tensor:
        r = r.unsqueeze(1)
        terms = torch.exp(-self.eta * (r - self.rs) ** 2) * self.cutoff_fn(r, self.rc)
        return terms * zj.unsqueeze(1) if self.weighted else terms


class GaussianAngular(nn.Module):
    """Terms of angular functions (types 3, 9, 13) sharing one cutoff function type.

    Args:
        eta, rs, lambda_, zeta, rc: (F,) parameters.
        cutoff: the cutoff function.
        narrow: include the r_jk Gaussian and f_c(r_jk) (types 3, 13), else wide (type 9).
        weighted: multiply each term by Z_j Z_k (type 13).

    ``forward(rij, rik, rjk, cos, zj, zk)`` (all (T,)) ``-> (T, F)``.  Products shared by
    several functions (the Gaussians of one (eta, rs), the angular factor of one
    (lambda, zeta), the cutoff functions of one rc) are computed once.
    """

    def __init__(
        self,
        eta: Sequence[float],
        rs: Sequence[float],
        lambda_: Sequence[float],
        zeta: Sequence[float],
        rc: Sequence[float],
        cutoff: CutoffFunction,
        narrow: bool,
        weighted: bool = False,
    ) -> None:
        super().__init__()
        f64 = torch.float64
        radial, radial_index = _unique_columns(torch.tensor([eta, rs], dtype=f64).T)
        angular, angular_index = _unique_columns(torch.tensor([lambda_, zeta], dtype=f64).T)
        cutoffs, cutoff_index = torch.unique(torch.tensor(rc, dtype=f64), return_inverse=True)
        self.register_buffer("radial", radial)  # (R, 2) unique (eta, rs)
        self.register_buffer("radial_index", radial_index)
        self.register_buffer("angular", angular)  # (A, 2) unique (lambda, zeta)
        self.register_buffer("angular_index", angular_index)
        self.register_buffer("rc", cutoffs)  # (C,) unique radii
        self.register_buffer("rc_index", cutoff_index)
        self.register_buffer("norm", 2.0 ** (1.0 - torch.tensor(zeta, dtype=f64)))
        self.cutoff_fn, self.narrow, self.weighted = cutoff, narrow, weighted
        self.cutoff = float(max(rc))

    def kernel_parameters(self) -> tuple:
        """Arguments of :mod:`mpnn.symmetry.angular_kernels` after the per-batch ones."""
        if getattr(self, "_kernel_parameters", None) is None:
            numpy = [
                t.detach().cpu().numpy().copy()
                for t in (
                    self.radial[:, 0],
                    self.radial[:, 1],
                    self.angular[:, 0],
                    self.angular[:, 1],
                    self.rc,
                    self.radial_index,
                    self.angular_index,
                    self.rc_index,
                    self.norm,
                )
            ]
            self._kernel_parameters = (
                self.narrow,
                self.weighted,
                *numpy,
                self.cutoff_fn.cutoff_type,
                float(self.cutoff_fn.alpha),
                self.cutoff,
            )
        return self._kernel_parameters

    def forward(self, rij: Tensor, rik: Tensor, rjk: Tensor, cos: Tensor, zj: Tensor, zk: Tensor) -> Tensor:
        eta, rs = self.radial[:, 0], self.radial[:, 1]
        square = (rij.unsqueeze(1) - rs) ** 2 + (rik.unsqueeze(1) - rs) ** 2
        fc = self.cutoff_fn(rij.unsqueeze(1), self.rc) * self.cutoff_fn(rik.unsqueeze(1), self.rc)
        if self.narrow:
            square = square + (rjk.unsqueeze(1) - rs) ** 2
            fc = fc * self.cutoff_fn(rjk.unsqueeze(1), self.rc)
        gauss = torch.exp(-eta * square)  # (T, R)
        lam, zeta = self.angular[:, 0], self.angular[:, 1]
        angle = (1.0 + lam * cos.unsqueeze(1)).clamp(min=0.0) ** zeta  # (T, A)
        terms = (
            angle[:, self.angular_index] * gauss[:, self.radial_index] * fc[:, self.rc_index]
        ) * self.norm
        return terms * (zj * zk).unsqueeze(1) if self.weighted else terms
