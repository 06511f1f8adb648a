r"""Compiled CPU kernel for n2p2's compact functions (types 20-25, :mod:`mpnn.symmetry.compact`).

One call computes one group (centre element, family, neighbour selection): G (N, F) and, with
``jacobian``, dG/d(edge vector) (E, F, 3), walking each centre's edges (radial types) or edge
pairs (angular types) as :mod:`mpnn.symmetry.angular_kernels` does.  The compact windows make
most factors 0: per edge the radial windows' values are computed once, per pair the nonzero
radial products and angle factors are listed, and only their (radial, angle) combinations that
are functions (``grid`` (R, A): the function's column, or -1) are visited.

Windows (lengths in the unit of ``vec``, angles in radians): ``*_centre``, ``*_scale`` (1 / half
width), ``*_core`` (0: exp, 1-4: polynomial order), ``r_asym`` (the radial core of
x' = (2 - x) x), ``r_min`` (R,) the lower bound of r_jk (narrow types).  Each radial function f
uses radial window ``f_r[f]``.  A window's value is C(|a - centre| scale) for
|a - centre| scale < 1, else 0.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def _core(code, x):  # pragma: no cover - compiled
    """(C(x), C'(x)) for 0 <= x < 1."""
    if code == 0:
        d = x * x - 1.0
        value = math.e * math.exp(1.0 / d)
        return value, value * (-2.0 * x / (d * d))
    x2 = x * x
    if code == 1:
        return (2.0 * x - 3.0) * x2 + 1.0, x * (6.0 * x - 6.0)
    if code == 2:
        return ((15.0 - 6.0 * x) * x - 10.0) * x2 * x + 1.0, x2 * ((60.0 - 30.0 * x) * x - 30.0)
    if code == 3:
        return (
            (x * (x * (20.0 * x - 70.0) + 84.0) - 35.0) * x2 * x2 + 1.0,
            x2 * x * (x * (x * (140.0 * x - 420.0) + 420.0) - 140.0),
        )
    return (
        (x * (x * ((315.0 - 70.0 * x) * x - 540.0) + 420.0) - 126.0) * x2 * x2 * x + 1.0,
        x2 * x2 * (x * (x * ((2520.0 - 630.0 * x) * x - 3780.0) + 2520.0) - 630.0),
    )


@njit(cache=True, inline="always")
def _window(a, centre, scale, code, asym):  # pragma: no cover - compiled
    """(f(a), f'(a)) of one compact window."""
    t = (a - centre) * scale
    x = abs(t)
    if x >= 1.0:
        return 0.0, 0.0
    sign = 1.0 if t > 0.0 else (-1.0 if t < 0.0 else 0.0)
    if asym:
        value, slope = _core(code, (2.0 - x) * x)
        return value, slope * (2.0 - 2.0 * x) * scale * sign
    value, slope = _core(code, x)
    return value, slope * scale * sign


@njit(cache=True, parallel=True)
def compact_forward(
    vec,
    dist,
    ptr,
    species,
    nspecies,
    nweight,
    centre_species,
    e1,
    e2,
    angular,
    narrow,
    weighted,
    r_centre,
    r_scale,
    r_core,
    r_asym,
    r_min,
    a_centre,
    a_scale,
    a_core,
    f_r,
    grid,
    cutoff,
    nf,
    jacobian,
    rows,
):  # pragma: no cover - compiled
    """(G (N, nf), D (rows, nf, 3)): D holds the edges of the group's centres only, in edge order
    (``rows`` of them; 0 without ``jacobian``); see the module docstring."""
    n = ptr.shape[0] - 1
    nr, na = r_centre.shape[0], a_centre.shape[0]
    out = np.zeros((n, nf))
    jac = np.zeros((rows if jacobian else 0, nf, 3))
    nsp = max(e1, e2) + 1  # at least the group's species, present or not
    for e in range(nspecies.shape[0]):
        nsp = max(nsp, nspecies[e] + 1)
    base = np.zeros(n, dtype=np.int64)  # first row of D of each centre
    total = 0
    for i in range(n):
        base[i] = total
        if species[i] == centre_species:
            total += ptr[i + 1] - ptr[i]
    for i in prange(n):
        if species[i] != centre_species:
            continue
        start, stop = ptr[i], ptr[i + 1]
        shift = base[i] - start  # row of edge e in D: e + shift
        count = stop - start
        fr = np.zeros((count, nr))
        dfr = np.zeros((count, nr))
        for a in range(start, stop):
            if dist[a] >= cutoff:
                continue
            for w in range(nr):
                fr[a - start, w], dfr[a - start, w] = _window(
                    dist[a], r_centre[w], r_scale[w], r_core[w], r_asym[w]
                )
        if not angular:
            for a in range(start, stop):
                if dist[a] >= cutoff or (e1 >= 0 and nspecies[a] != e1):
                    continue
                w8 = nweight[a] if weighted else 1.0
                inv = 1.0 / dist[a]
                for f in range(nf):
                    w = f_r[f]
                    value = fr[a - start, w]
                    if value == 0.0 and dfr[a - start, w] == 0.0:
                        continue
                    out[i, f] += w8 * value
                    if jacobian:
                        d = w8 * dfr[a - start, w] * inv
                        for x in range(3):
                            jac[a + shift, f, x] += d * vec[a, x]
            continue
        pr = np.empty(nr)
        dpr = np.empty((nr, 3))
        qa = np.empty(na)
        dqa = np.empty(na)
        live_r = np.empty(nr, dtype=np.int64)
        live_a = np.empty(na, dtype=np.int64)
        # the edges within the cutoff ordered by neighbour species: a group's pairs are blocks
        first = np.zeros(nsp + 1, dtype=np.int64)
        for a in range(start, stop):
            if dist[a] < cutoff:
                first[nspecies[a] + 1] += 1
        for t in range(nsp):
            first[t + 1] += first[t]
        fill = first[:nsp].copy()
        local = np.empty(first[nsp], dtype=np.int64)
        for a in range(start, stop):
            if dist[a] < cutoff:
                local[fill[nspecies[a]]] = a
                fill[nspecies[a]] += 1
        a_lo, a_hi = (0, first[nsp]) if e1 < 0 else (first[e1], first[e1 + 1])
        for ia in range(a_lo, a_hi):
            a = local[ia]
            rij = dist[a]
            b_lo, b_hi = (ia + 1, a_hi) if e1 < 0 or e1 == e2 else (first[e2], first[e2 + 1])
            for ib in range(b_lo, b_hi):
                b = local[ib]
                rik = dist[b]
                wx = vec[b, 0] - vec[a, 0]
                wy = vec[b, 1] - vec[a, 1]
                wz = vec[b, 2] - vec[a, 2]
                rjk = math.sqrt(wx * wx + wy * wy + wz * wz)
                if narrow and rjk >= cutoff:
                    continue
                cos = (vec[a, 0] * vec[b, 0] + vec[a, 1] * vec[b, 1] + vec[a, 2] * vec[b, 2]) / (rij * rik)
                if not (-1.0 < cos < 1.0):  # n2p2 skips |cos| = 1
                    continue
                # the nonzero radial products (and d/d r_ij, r_ik, r_jk) and angle factors
                nlr = 0
                for w in range(nr):
                    f1, f2 = fr[a - start, w], fr[b - start, w]
                    if f1 == 0.0 and dfr[a - start, w] == 0.0 or f2 == 0.0 and dfr[b - start, w] == 0.0:
                        continue
                    f3, d3 = 1.0, 0.0
                    if narrow:
                        if rjk > r_min[w]:
                            f3, d3 = _window(rjk, r_centre[w], r_scale[w], r_core[w], r_asym[w])
                        else:
                            f3, d3 = 0.0, 0.0
                        if f3 == 0.0 and d3 == 0.0:
                            continue
                    pr[w] = f1 * f2 * f3
                    dpr[w, 0] = dfr[a - start, w] * f2 * f3
                    dpr[w, 1] = f1 * dfr[b - start, w] * f3
                    dpr[w, 2] = f1 * f2 * d3
                    live_r[nlr] = w
                    nlr += 1
                if nlr == 0:
                    continue
                theta = math.acos(cos)
                dtheta = -1.0 / math.sqrt(1.0 - cos * cos)
                nla = 0
                for w in range(na):
                    value, slope = _window(theta, a_centre[w], a_scale[w], a_core[w], False)
                    if value == 0.0 and slope == 0.0:
                        continue
                    qa[w] = value
                    dqa[w] = slope * dtheta
                    live_a[nla] = w
                    nla += 1
                if nla == 0:
                    continue
                w8 = nweight[a] * nweight[b] if weighted else 1.0
                inv_ij, inv_ik = 1.0 / rij, 1.0 / rik
                inv_jk = 1.0 / rjk if rjk > 0.0 else 0.0
                for p in range(nlr):
                    wr = live_r[p]
                    for q in range(nla):
                        wa = live_a[q]
                        f = grid[wr, wa]
                        if f < 0:
                            continue
                        out[i, f] += w8 * pr[wr] * qa[wa]
                        if not jacobian:
                            continue
                        angle = w8 * qa[wa]
                        d_cos = w8 * pr[wr] * dqa[wa]
                        jk = angle * dpr[wr, 2] * inv_jk
                        cu = angle * dpr[wr, 0] * inv_ij - d_cos * cos * inv_ij * inv_ij + jk
                        cv = angle * dpr[wr, 1] * inv_ik - d_cos * cos * inv_ik * inv_ik + jk
                        mix = d_cos * inv_ij * inv_ik - jk
                        for x in range(3):
                            jac[a + shift, f, x] += cu * vec[a, x] + mix * vec[b, x]
                            jac[b + shift, f, x] += cv * vec[b, x] + mix * vec[a, x]
    return out, jac
