r"""Compiled CPU kernels for the Gaussian angular families (types 3, 9, 13), used when numba is present.

The PyTorch path (:class:`mpnn.symmetry.triplets.TripletSum`) forms the list of triplets and
evaluates tensors over it; on a CPU that is memory-bound (tens of passes over millions of
triplets).  These kernels walk the triplets of each centre atom in place, as n2p2 does, and
share the expensive factors between the functions of a group: one exponential per distinct
(eta, rs), one power per distinct (lambda, zeta), one cutoff product per distinct rc.

* :func:`angular_forward`: G[i, f] for the centres of one element.
* :func:`angular_forward_jacobian`: G and, in the same walk, dG/d(edge vector) (E, F, 3),
  analytically: with u = r_ij, v = r_ik, w = v - u and the partial derivatives of each term with
  respect to r_ij, r_ik, r_jk and cos theta, dG/du and dG/dv are combinations of u and v.

Arguments shared by both kernels: ``vec`` (E, 3) edge vectors r_j - r_i, ``dist`` (E,) their
lengths, ``ptr`` (N+1,), ``species`` (N,) and ``nspecies`` (E,) species of centres and neighbours,
``nweight`` (E,) neighbour atomic numbers, the group's centre species and neighbour species
``e1``, ``e2`` (-1: any), flags, the distinct parameters ``eta``, ``rs`` (M,), ``lam``, ``zeta``
(K,), ``rc`` (C,), each function's indices into them and its normalisation ``norm`` (F,), the
cutoff type, alpha and the largest rc.

Centres are distributed over threads; every edge belongs to exactly one centre, so threads
never write to the same output row.  Edges must be sorted by centre (``ptr`` (N+1,) gives each
centre's edge range), as :class:`mpnn.batch.Batch` keeps them.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_TANH_NORM = 1.0 / math.tanh(1.0) ** 3


@njit(cache=True, inline="always")
def _cutoff(kind, r, rc, alpha):  # pragma: no cover - compiled
    """(f_c(r), f_c'(r)) of n2p2's cutoff type ``kind`` (0-8); r < rc is assumed."""
    if kind == 0:
        return 1.0, 0.0
    if kind == 2 or kind == 3:
        t = math.tanh(1.0 - r / rc)
        scale = 1.0 if kind == 2 else _TANH_NORM
        return scale * t * t * t, scale * 3.0 * t * t * (t * t - 1.0) / rc
    inner = alpha * rc
    if r < inner:
        return 1.0, 0.0
    width = rc - inner
    x = (r - inner) / width
    if kind == 1:
        return 0.5 * (math.cos(math.pi * x) + 1.0), -0.5 * math.pi * math.sin(math.pi * x) / width
    if kind == 4:
        s = 1.0 - x * x
        f = math.exp(1.0 - 1.0 / s)
        return f, -2.0 * x / (s * s) * f / width
    x2 = x * x
    if kind == 5:
        return (2.0 * x - 3.0) * x2 + 1.0, x * (6.0 * x - 6.0) / width
    if kind == 6:
        return ((15.0 - 6.0 * x) * x - 10.0) * x2 * x + 1.0, x2 * ((60.0 - 30.0 * x) * x - 30.0) / width
    if kind == 7:
        return (
            (x * (x * (20.0 * x - 70.0) + 84.0) - 35.0) * x2 * x2 + 1.0,
            x2 * x * (x * (x * (140.0 * x - 420.0) + 420.0) - 140.0) / width,
        )
    return (
        (x * (x * ((315.0 - 70.0 * x) * x - 540.0) + 420.0) - 126.0) * x2 * x2 * x + 1.0,
        x2 * x2 * (x * (x * ((2520.0 - 630.0 * x) * x - 3780.0) + 2520.0) - 630.0) / width,
    )


@njit(cache=True, inline="always")
def _pair_allowed(sj, sk, e1, e2):  # pragma: no cover - compiled
    if e1 < 0:
        return True
    return (sj == e1 and sk == e2) or (sj == e2 and sk == e1)


@njit(cache=True, inline="always")
def _power(base, zeta):  # pragma: no cover - compiled
    """(base^zeta, base^(zeta - 1)), 0 for base <= 0; integer zeta by multiplication."""
    if base <= 0.0:
        return 0.0, 0.0
    n = int(zeta)
    if n == zeta and 1 <= n <= 64:
        lower = 1.0
        for _ in range(n - 1):
            lower *= base
        return lower * base, lower
    value = base**zeta
    return value, value / base


@njit(cache=True, inline="always")
def _edge_cutoffs(dist, start, stop, rc, kind, alpha, fc, dfc):  # pragma: no cover - compiled
    """f_c and f_c' of one centre's edges, for each distinct rc (rows relative to ``start``)."""
    for a in range(start, stop):
        for c in range(rc.shape[0]):
            if dist[a] < rc[c]:
                fc[a - start, c], dfc[a - start, c] = _cutoff(kind, dist[a], rc[c], alpha)
            else:
                fc[a - start, c], dfc[a - start, c] = 0.0, 0.0


@njit(cache=True, parallel=True)
def angular_forward(
    vec,
    dist,
    ptr,
    species,
    nspecies,
    nweight,
    centre_species,
    e1,
    e2,
    narrow,
    weighted,
    eta,
    rs,
    lam,
    zeta,
    rc,
    rindex,
    aindex,
    cindex,
    norm,
    kind,
    alpha,
    rcmax,
):  # pragma: no cover
    """G (N, F) of one group; rows of other elements are 0."""
    n = ptr.shape[0] - 1
    nf = norm.shape[0]
    out = np.zeros((n, nf), dtype=vec.dtype)
    for i in prange(n):
        if species[i] != centre_species:
            continue
        gs = np.empty(eta.shape[0])
        ang = np.empty(lam.shape[0])
        fcp = np.empty(rc.shape[0])
        start, stop = ptr[i], ptr[i + 1]
        fc = np.empty((stop - start, rc.shape[0]))
        dfc = np.empty((stop - start, rc.shape[0]))
        _edge_cutoffs(dist, start, stop, rc, kind, alpha, fc, dfc)
        for a in range(ptr[i], ptr[i + 1]):
            rij = dist[a]
            if rij >= rcmax or (e1 >= 0 and nspecies[a] != e1 and nspecies[a] != e2):
                continue
            for b in range(a + 1, ptr[i + 1]):
                rik = dist[b]
                if rik >= rcmax or not _pair_allowed(nspecies[a], nspecies[b], e1, e2):
                    continue
                dx = vec[b, 0] - vec[a, 0]
                dy = vec[b, 1] - vec[a, 1]
                dz = vec[b, 2] - vec[a, 2]
                rjk = math.sqrt(dx * dx + dy * dy + dz * dz)
                if narrow and rjk >= rcmax:
                    continue
                cos = (vec[a, 0] * vec[b, 0] + vec[a, 1] * vec[b, 1] + vec[a, 2] * vec[b, 2]) / (rij * rik)
                for c in range(rc.shape[0]):
                    value = fc[a - start, c] * fc[b - start, c]
                    if narrow:
                        value *= _cutoff(kind, rjk, rc[c], alpha)[0] if rjk < rc[c] else 0.0
                    fcp[c] = value
                for m in range(eta.shape[0]):
                    s = (rij - rs[m]) ** 2 + (rik - rs[m]) ** 2
                    if narrow:
                        s += (rjk - rs[m]) ** 2
                    gs[m] = math.exp(-eta[m] * s)
                for k in range(lam.shape[0]):
                    ang[k] = _power(1.0 + lam[k] * cos, zeta[k])[0]
                w = nweight[a] * nweight[b] if weighted else 1.0
                for f in range(nf):
                    out[i, f] += w * norm[f] * ang[aindex[f]] * gs[rindex[f]] * fcp[cindex[f]]
    return out


@njit(cache=True, parallel=True)
def angular_forward_jacobian(
    vec,
    dist,
    ptr,
    species,
    nspecies,
    nweight,
    centre_species,
    e1,
    e2,
    narrow,
    weighted,
    eta,
    rs,
    lam,
    zeta,
    rc,
    rindex,
    aindex,
    cindex,
    norm,
    kind,
    alpha,
    rcmax,
):  # pragma: no cover
    """G (N, F) and its derivative with respect to each edge vector, D (E, F, 3), in one pass.

    The backward pass is then a contraction, dL/dvec[e] = sum_f dL/dG[centre(e), f] D[e, f],
    instead of a second walk over the triplets (n2p2 stores the same dG/dr).
    """
    n = ptr.shape[0] - 1
    nf = norm.shape[0]
    out = np.zeros((n, nf), dtype=vec.dtype)
    jac = np.zeros((vec.shape[0], nf, 3), dtype=vec.dtype)
    for i in prange(n):
        if species[i] != centre_species:
            continue
        nm, nk, nc = eta.shape[0], lam.shape[0], rc.shape[0]
        gs = np.empty(nm)
        dgs = np.empty((nm, 3))
        ang = np.empty(nk)
        dang = np.empty(nk)
        fcp = np.empty(nc)
        dfcp = np.empty((nc, 3))
        start, stop = ptr[i], ptr[i + 1]
        fc = np.empty((stop - start, nc))
        dfc = np.empty((stop - start, nc))
        _edge_cutoffs(dist, start, stop, rc, kind, alpha, fc, dfc)
        for a in range(start, stop):
            rij = dist[a]
            if rij >= rcmax or (e1 >= 0 and nspecies[a] != e1 and nspecies[a] != e2):
                continue
            for b in range(a + 1, stop):
                rik = dist[b]
                if rik >= rcmax or not _pair_allowed(nspecies[a], nspecies[b], e1, e2):
                    continue
                wx = vec[b, 0] - vec[a, 0]
                wy = vec[b, 1] - vec[a, 1]
                wz = vec[b, 2] - vec[a, 2]
                rjk = math.sqrt(wx * wx + wy * wy + wz * wz)
                if narrow and rjk >= rcmax:
                    continue
                cos = (vec[a, 0] * vec[b, 0] + vec[a, 1] * vec[b, 1] + vec[a, 2] * vec[b, 2]) / (rij * rik)
                for c in range(nc):
                    fij, dij = fc[a - start, c], dfc[a - start, c]
                    fik, dik = fc[b - start, c], dfc[b - start, c]
                    fjk, djk = 1.0, 0.0
                    if narrow:
                        fjk, djk = _cutoff(kind, rjk, rc[c], alpha) if rjk < rc[c] else (0.0, 0.0)
                    fcp[c] = fij * fik * fjk
                    dfcp[c, 0] = dij * fik * fjk
                    dfcp[c, 1] = fij * dik * fjk
                    dfcp[c, 2] = fij * fik * djk
                for m in range(nm):
                    s = (rij - rs[m]) ** 2 + (rik - rs[m]) ** 2
                    if narrow:
                        s += (rjk - rs[m]) ** 2
                    g = math.exp(-eta[m] * s)
                    gs[m] = g
                    dgs[m, 0] = -2.0 * eta[m] * (rij - rs[m]) * g
                    dgs[m, 1] = -2.0 * eta[m] * (rik - rs[m]) * g
                    dgs[m, 2] = -2.0 * eta[m] * (rjk - rs[m]) * g if narrow else 0.0
                for k in range(nk):
                    value, lower = _power(1.0 + lam[k] * cos, zeta[k])
                    ang[k] = value
                    dang[k] = zeta[k] * lam[k] * lower
                w = nweight[a] * nweight[b] if weighted else 1.0
                inv_jk = 1.0 / rjk if rjk > 0.0 else 0.0
                inv_ij_ik = 1.0 / (rij * rik)
                for f in range(nf):
                    m, k, c = rindex[f], aindex[f], cindex[f]
                    scale = w * norm[f]
                    radial = gs[m] * fcp[c]
                    out[i, f] += scale * ang[k] * radial
                    d_cos = scale * dang[k] * radial
                    angular = scale * ang[k]
                    d_ij = angular * (dgs[m, 0] * fcp[c] + gs[m] * dfcp[c, 0])
                    d_ik = angular * (dgs[m, 1] * fcp[c] + gs[m] * dfcp[c, 1])
                    jk = angular * (dgs[m, 2] * fcp[c] + gs[m] * dfcp[c, 2]) * inv_jk
                    cross = d_cos * inv_ij_ik
                    cu = d_ij / rij - d_cos * cos / (rij * rij) + jk
                    cv = d_ik / rik - d_cos * cos / (rik * rik) + jk
                    mix = cross - jk
                    for x in range(3):
                        jac[a, f, x] += cu * vec[a, x] + mix * vec[b, x]
                        jac[b, f, x] += cv * vec[b, x] + mix * vec[a, x]
    return out, jac
