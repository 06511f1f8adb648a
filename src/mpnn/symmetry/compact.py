r"""n2p2's compact polynomial symmetry functions, types 20-25 (Bircher et al.; ``SymFncComp*``).

A *compact function* on a window [left, right] (centre c = (left + right)/2, half-width
w = (right - left)/2) is :math:`f(a) = C(|a - c| / w)` inside the window and 0 outside, with
the core function C on x in [0, 1] (``CoreFunction``): 1 at x = 0, 0 at x = 1, with zero slope
at both ends.  The ``subtype`` names the core:

=========  ===================================================================
subtype    C(x)
=========  ===================================================================
p1         :math:`(2x - 3)x^2 + 1`
p2         :math:`((15 - 6x)x - 10)x^3 + 1`
p3         :math:`(x(x(20x - 70) + 84) - 35)x^4 + 1`
p4         :math:`(x(x((315 - 70x)x - 540) + 420) - 126)x^5 + 1`
p1a..p4a   the same polynomial of :math:`x' = (2 - x)x` ("asymmetric"; radial part only)
e..        :math:`e^{1 + 1/(x^2 - 1)}` (any subtype of 1-3 letters starting with "e")
=========  ===================================================================

With lengths in the unit of the positions (rl, rc) and angles in degrees in the input
(:math:`\theta_l, \theta_r`, converted to radians), f_r the compact function on [rl, rc] and
f_a the one on [theta_l, theta_r] (always the *symmetric* core of the same polynomial: n2p2
gives the "a" flag to the radial part only):

* type 20, radial: :math:`G_i = \sum_{j:\, r_l < r_{ij} < r_c} f_r(r_{ij})`
* type 22, wide angular: :math:`G_i = \sum_{j<k} f_r(r_{ij}) f_r(r_{ik}) f_a(\theta_{ijk})`,
  over r_ij, r_ik in (rl, rc) and :math:`\theta_{ijk} = \arccos\cos\theta_{ijk}` in the window
* type 21, narrow angular: type 22 times :math:`f_r(r_{jk})`, with r_jk in (max(rl, 0), rc)
* types 23, 24, 25: 20, 21, 22 over all neighbours, weighted by Z_j (Z_j Z_k)

No cutoff function multiplies these terms (the compact windows are the cutoff) and there is
no normalisation factor.  A negative rl only moves the window's centre: the lower bound then
excludes no distance.  With rl = -rc (n2p2's SCAN potentials) the window is centred at 0 and
f_r(r) = C(r / rc) falls from 1 at r = 0 to 0 at rc; with -rc < rl < 0 it peaks at
(rl + rc)/2 > 0 and is below 1 at r = 0.  Angle windows may reach below 0 or above 180 degrees
only when centred at 0 or 180.  A triplet with :math:`|\cos\theta| = 1` contributes 0, as in n2p2.

Shapes: radial families map (P,) distances and neighbour Z to (P, F) terms, angular ones (T,)
r_ij, r_ik, r_jk, cos theta_ijk, Z_j, Z_k to (T, F) terms, F functions; float64 buffers.
Work is shared between the functions of a family: the radial factor of each distinct window
(rl, rc, subtype), (T, R), and the angular factor of each distinct angle window, (T, A), are
computed once, and a function's term is the product of its two factors (for n2p2's sorted
functions, the outer product of the two).  :meth:`CompactAngular.triplet_sums` goes further and
sums them per centre atom as one batched (R x T_i)(T_i x A) matrix product, never forming the
(T, F) terms, most of which are 0 for windows much smaller than the largest cutoff.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mpnn.errors import DataError
from mpnn.symmetry.cutoffs import CutoffFunction, polynomial_core
from mpnn.symmetry.families import Builder, Family, register
from mpnn.symmetry.spec import SymmetryFunctionSpec, angle_window_ok, parse_subtype


def core_function(x: Tensor, core: str, asymmetric: bool = False) -> Tensor:
    """C(x) for x in [0, 1] (x must be strictly below 1 for ``exp``)."""
    if asymmetric:
        x = (2.0 - x) * x
    if core == "exp":
        return math.e * torch.exp(1.0 / (x * x - 1.0))
    return polynomial_core(x, int(core[-1]))


class CompactWindows(nn.Module):
    """Compact functions f(a) on W windows at once: ``forward(a (T,)) -> (T, W)``.

    Args:
        left, right: (W,) window bounds (left < right).
        cores: (W,) core names; ``asymmetric``: (W,) flags.

    f is 0 unless left < a < right.  Windows of one core are evaluated together, so the
    output columns are grouped by core: window w is column ``column[w]``.
    """

    def __init__(
        self, left: Sequence[float], right: Sequence[float], cores: Sequence[str], asymmetric: Sequence[bool]
    ) -> None:
        super().__init__()
        kinds = sorted(set(zip(cores, asymmetric, strict=True)))
        order = [w for kind in kinds for w in range(len(left)) if (cores[w], asymmetric[w]) == kind]
        f64 = torch.float64
        lo, hi = torch.tensor(left, dtype=f64)[order], torch.tensor(right, dtype=f64)[order]
        if bool((lo >= hi).any()):
            raise ValueError("CompactWindows: every window needs left < right")
        self.register_buffer("left", lo)
        self.register_buffer("right", hi)
        self.register_buffer("centre", (hi + lo) / 2.0)
        self.register_buffer("scale", 1.0 / ((hi - lo) / 2.0))  # n2p2 multiplies by the inverse width
        self.register_buffer("column", torch.argsort(torch.tensor(order)))
        counts = [sum(1 for c, a in zip(cores, asymmetric, strict=True) if (c, a) == kind) for kind in kinds]
        self.kinds = [(core, asym, n) for (core, asym), n in zip(kinds, counts, strict=True)]

    def forward(self, a: Tensor) -> Tensor:
        # |x| >= 1 outside the window.  The polynomial cores vanish with zero slope at x = 1, so
        # clamping x to 1 gives exactly 0 there, and a zero gradient, without a mask.
        x = ((a.unsqueeze(1) - self.centre) * self.scale).abs().clamp(max=1.0)
        parts, start = [], 0
        for core, asym, n in self.kinds:
            xk = x if len(self.kinds) == 1 else x[:, start : start + n]
            if core == "exp":
                inside = xk < 1.0
                value = core_function(torch.where(inside, xk, torch.zeros_like(xk)), core)
                value = torch.where(inside, value, torch.zeros_like(value))
            else:
                value = core_function(xk, core, asym)
            parts.append(value)
            start += n
        return parts[0] if len(parts) == 1 else torch.cat(parts, 1)


def _check_radial(rl: Sequence[float], rc: Sequence[float]) -> None:
    for lo, hi in zip(rl, rc, strict=True):
        if not lo < hi:
            raise DataError(f"compact symmetry function: rl = {lo} must be below rc = {hi}")


def _unique(keys: Sequence[tuple]) -> tuple[list[tuple], list[int]]:
    """Distinct keys in first-seen order and each key's index into them."""
    index: dict[tuple, int] = {}
    for key in keys:
        index.setdefault(key, len(index))
    return list(index), [index[k] for k in keys]


def _windows(keys: Sequence[tuple[float, float, str, bool]]) -> CompactWindows:
    return CompactWindows(
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [k[3] for k in keys]
    )


class CompactRadial(nn.Module):
    """Terms of compact radial functions (types 20 and 23): ``forward(r (P,), zj (P,)) -> (P, F)``.

    Args:
        rl, rc: (F,) window bounds (lengths in the unit of the positions); subtypes: (F,) names.
        weighted: multiply each term by Z_j (type 23).
    """

    def __init__(
        self, rl: Sequence[float], rc: Sequence[float], subtypes: Sequence[str], weighted: bool = False
    ) -> None:
        super().__init__()
        cores = [parse_subtype(s) for s in subtypes]
        _check_radial(rl, rc)
        keys, index = _unique([(lo, hi, c, a) for lo, hi, (c, a) in zip(rl, rc, cores, strict=True)])
        self.windows = _windows(keys)
        column = self.windows.column[torch.tensor(index, dtype=torch.long)]
        self.register_buffer("index", column)
        self.identity = column.tolist() == list(range(len(index)))
        self.weighted = weighted
        self.cutoff = float(max(rc))

    def forward(self, r: Tensor, zj: Tensor) -> Tensor:
        terms = self.windows(r)
        terms = terms if self.identity else terms[:, self.index]
        return terms * zj.unsqueeze(1) if self.weighted else terms


class CompactAngular(nn.Module):
    """Terms of compact angular functions (types 21, 22, 24, 25).

    Args:
        rl, rc: (F,) radial windows; angle_left, angle_right: (F,) angle windows in degrees;
        subtypes: (F,) names.
        narrow: include f_r(r_jk) (types 21, 24); the engine passes only r_jk < cutoff.
        weighted: multiply each term by Z_j Z_k (types 24, 25).

    ``forward(rij, rik, rjk, cos, zj, zk)`` (all (T,)) ``-> (T, F)``: the radial factor of each
    distinct radial window, (T, R), times the angular factor of each distinct angle window,
    (T, A): their outer product when the functions are the full grid of windows (``grid``, in
    row-major order unless ``permuted``), else gathered per function.  ``triplet_sums`` gives the
    per-atom sums directly.
    """

    def __init__(
        self,
        rl: Sequence[float],
        rc: Sequence[float],
        angle_left: Sequence[float],
        angle_right: Sequence[float],
        subtypes: Sequence[str],
        narrow: bool,
        weighted: bool = False,
    ) -> None:
        super().__init__()
        cores = [parse_subtype(s) for s in subtypes]
        _check_radial(rl, rc)
        for lo, hi in zip(angle_left, angle_right, strict=True):
            if not angle_window_ok(lo, hi):
                raise DataError(
                    f"compact angular symmetry function: angle window [{lo}, {hi}] unsupported "
                    "(needs left < right within [0, 180], or a window centred at 0 or 180)"
                )
        radial, radial_of = _unique([(lo, hi, c, a) for lo, hi, (c, a) in zip(rl, rc, cores, strict=True)])
        windows = zip(angle_left, angle_right, cores, strict=True)
        angular, angular_of = _unique(
            [
                (lo * math.pi / 180.0, hi * math.pi / 180.0, c, False)  # as n2p2
                for lo, hi, (c, _) in windows
            ]
        )
        self.radial, self.angular = _windows(radial), _windows(angular)
        long = torch.long
        self.register_buffer("radial_index", self.radial.column[torch.tensor(radial_of, dtype=long)])
        self.register_buffer("angular_index", self.angular.column[torch.tensor(angular_of, dtype=long)])
        self.register_buffer("rjk_min", self.radial.left.clamp(min=0.0))
        # When the functions are the full grid of (radial window, angle window) pairs, their terms
        # are the outer product of the two factors; n2p2's sort order makes it the row-major one.
        position = self.radial_index * len(angular) + self.angular_index
        self.grid = sorted(position.tolist()) == list(range(len(radial) * len(angular)))
        self.permuted = self.grid and position.tolist() != list(range(len(position)))
        self.register_buffer("position", position)
        self.narrow, self.weighted = narrow, weighted
        self.cutoff = float(max(rc))

    def factors(self, rij: Tensor, rik: Tensor, rjk: Tensor, cos: Tensor) -> tuple[Tensor, Tensor]:
        """(T, R) radial and (T, A) angular factors of the distinct windows."""
        return self._with_rjk(self.radial(rij) * self.radial(rik), rjk), self._angular(cos)

    def _with_rjk(self, radial: Tensor, rjk: Tensor) -> Tensor:
        if not self.narrow:
            return radial
        fjk = self.radial(rjk)
        return radial * torch.where(rjk.unsqueeze(1) > self.rjk_min, fjk, torch.zeros_like(fjk))

    def _angular(self, cos: Tensor) -> Tensor:
        # |cos| = 1 contributes 0 (n2p2 skips it); acos is evaluated away from its singular ends
        valid = (cos > -1.0) & (cos < 1.0)
        theta = torch.acos(torch.where(valid, cos, torch.zeros_like(cos)))
        return self.angular(theta) * valid.unsqueeze(1)

    def forward(self, rij: Tensor, rik: Tensor, rjk: Tensor, cos: Tensor, zj: Tensor, zk: Tensor) -> Tensor:
        radial, angular = self.factors(rij, rik, rjk, cos)
        if self.grid:
            terms = (radial.unsqueeze(2) * angular.unsqueeze(1)).flatten(1)
            if self.permuted:
                terms = terms.index_select(1, self.position)
        else:
            terms = radial[:, self.radial_index] * angular[:, self.angular_index]
        return terms * (zj * zk).unsqueeze(1) if self.weighted else terms

    def triplet_sums(
        self, vectors: Tensor, a: Tensor, b: Tensor, centre: Tensor, weights: Tensor, num_atoms: int
    ) -> Tensor:
        r"""The terms summed per centre atom, (N, F), without forming the (T, F) terms.

        Args: vectors (E, 3) edge vectors r_j - r_i; a, b (T,) the two edges of each triplet;
        centre (E,) the centre atom of each edge; weights (E,) Z of each edge's neighbour.
        Equals ``zeros(N, F).index_add(0, centre[a], forward(geometry of (a, b)))``: per centre,
        :math:`G_i[\rho, \alpha] = \sum_t P_{t\rho} Q_{t\alpha}` is one matrix product of the
        (T_i, R) radial and (T_i, A) angular factors, and the radial factors of r_ij and r_ik are
        computed once per edge when the triplets outnumber the edges.  Differentiable in vectors.
        """
        u, v = vectors[a], vectors[b]
        rij, rik = u.norm(dim=1), v.norm(dim=1)
        if 2 * a.shape[0] >= vectors.shape[0]:
            per_edge = self.radial(vectors.norm(dim=1))
            radial = per_edge[a] * per_edge[b]
        else:
            radial = self.radial(rij) * self.radial(rik)
        radial = self._with_rjk(radial, (v - u).norm(dim=1) if self.narrow else rij)
        if self.weighted:
            radial = radial * (weights[a] * weights[b]).unsqueeze(1)
        angular = self._angular((u * v).sum(1) / (rij * rik))
        sums = segment_outer_sum(radial, angular, centre[a], num_atoms)  # (N, R, A)
        return sums.flatten(1).index_select(1, self.position)


def segment_outer_sum(left: Tensor, right: Tensor, segment: Tensor, num_segments: int) -> Tensor:
    r""":math:`S_s = \sum_{t:\, segment_t = s} left_t \otimes right_t`: (S, R, A) from (T, R), (T, A).

    The rows of each segment are padded to the longest one and contracted by one batched matrix
    product; when the segments are too uneven for padding, the outer products are summed instead.
    """
    shape = (num_segments, left.shape[1], right.shape[1])
    if segment.numel() == 0:
        return left.new_zeros(shape)
    if bool((segment[1:] < segment[:-1]).any()):
        order = torch.argsort(segment, stable=True)
        left, right, segment = left[order], right[order], segment[order]
    counts = torch.bincount(segment, minlength=num_segments)
    present = counts.nonzero().squeeze(1)
    width, total = int(counts.max()), segment.numel()
    if present.numel() * width > 2 * total + 1024:
        return left.new_zeros(shape).index_add(0, segment, left.unsqueeze(2) * right.unsqueeze(1))
    row = (torch.cumsum(counts > 0, 0) - 1)[segment]
    col = torch.arange(total, device=segment.device) - (torch.cumsum(counts, 0) - counts)[segment]
    padded_left = left.new_zeros((present.numel(), width, shape[1])).index_put((row, col), left)
    padded_right = right.new_zeros((present.numel(), width, shape[2])).index_put((row, col), right)
    return left.new_zeros(shape).index_copy(0, present, torch.bmm(padded_left.transpose(1, 2), padded_right))


def _build_radial(weighted: bool) -> Builder:
    def build(specs: Sequence[SymmetryFunctionSpec], cutoff: CutoffFunction) -> nn.Module:  # cutoff unused
        return CompactRadial(
            [s.rl for s in specs], [s.rc for s in specs], [s.subtype for s in specs], weighted=weighted
        )

    return build


def _build_angular(narrow: bool, weighted: bool) -> Builder:
    def build(specs: Sequence[SymmetryFunctionSpec], cutoff: CutoffFunction) -> nn.Module:
        return CompactAngular(
            [s.rl for s in specs],
            [s.rc for s in specs],
            [s.angle_left for s in specs],
            [s.angle_right for s in specs],
            [s.subtype for s in specs],
            narrow=narrow,
            weighted=weighted,
        )

    return build


register(20, Family(False, False, _build_radial(False)))
register(21, Family(True, False, _build_angular(True, False)))
register(22, Family(True, False, _build_angular(False, False)))
register(23, Family(False, True, _build_radial(True)))
register(24, Family(True, True, _build_angular(True, True)))
register(25, Family(True, True, _build_angular(False, True)))
