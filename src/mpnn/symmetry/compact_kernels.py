r"""Compiled walks for n2p2's compact functions (types 20-25, :mod:`mpnn.symmetry.compact`).

:func:`compact_forward` adds the values G (N, W) of every compact function of a message to an
(N, W) array; :func:`compact_backward` adds :math:`\sum_f \partial L/\partial G_{if}\,
\partial G_{if}/\partial \mathbf r_e` (E, 3) for given dL/dG (N, W), by a second walk over the
same pairs.  The (E, W, 3) Jacobian is never formed: 400 MB for n2p2's 256-atom anisole, whose
writing and reading would cost more than both walks.

Each centre's edges within its cutoff are ordered by neighbour element (a group's partners are
then blocks); each distinct radial window (rl, rc, core) is evaluated once per edge, f and f'.
For an angular group and one edge j, the pairs (j, k) are handled as vectors over the partners
k: cos, theta (:func:`_acos`), the angle windows Q_alpha(theta) and dQ/dcos (A, K), and, for the
narrow types, f(r_jk) (R, K).  The term of function (rho, alpha) is
:math:`w f_\rho(r_{ij}) f_\rho(r_{ik}) [f_\rho(r_{jk})] Q_\alpha(\theta)` (w: 1, or
Z_j Z_k), so that

* G[rho, alpha] gains :math:`f_\rho(r_{ij}) \sum_k F_{\rho k} Q_{\alpha k}` (a dot product per
  function over the partners; F the partners' radial factors);
* the backward pass needs per pair only :math:`\partial L/\partial` (cos, r_ij, r_ik, r_jk):
  with :math:`V_{\rho k} = \sum_\alpha g_{\rho\alpha} Q_{\alpha k}` (g = dL/dG of the group's
  functions) and :math:`V^c` likewise with dQ/dcos, e.g.
  :math:`t_{\cos} = \sum_\rho f_\rho(r_{ij}) F_{\rho k} V^c_{\rho k}`; then, with u = r_ij,
  v = r_ik, :math:`\partial L/\partial u \mathrel{+}= c_u u + m v`,
  :math:`\partial L/\partial v \mathrel{+}= c_v v + m u`,
  :math:`c_u = t_{r_{ij}}/r_{ij} - t_{\cos}\cos/r_{ij}^2 + t_{r_{jk}}/r_{jk}`,
  :math:`m = t_{\cos}/(r_{ij} r_{ik}) - t_{r_{jk}}/r_{jk}`.

All windows are evaluated without branches (the polynomial cores at x clamped to 1, where they
and their slopes are exactly 0), and the loops over partners run on 1-D views, which LLVM
vectorizes.  Floating point: products and sums may be fused (``fastmath={"contract"}``) and the
dot products over partners are reassociated (``"reassoc"``); nothing else is relaxed (NaN and
infinity keep their meaning).  The results equal the PyTorch path's to about 1e-15 relative.

``table`` (built by :func:`mpnn.symmetry.compact_tables.tables`, a tuple): the radial windows
``rw_*`` (centre c, inverse half-width s, core order 1-4 or 0 for the exponential core,
asymmetric flag, lower bound max(rl, 0) applied to r_jk); the windows of centre species s are
``[sp_w0[s], sp_w1[s])`` and ``sp_cut[s]`` is the largest rc of its functions (0: none).  Radial
groups ``rg_*`` (centre species, neighbour species or -1 for "any, weighted by Z_j", function
range) with functions ``rf_w`` (window) and ``rf_col`` (column).  Angular groups ``ag_*``
(centre species, neighbour species e1 <= e2 or -1, narrow, largest rc, radial windows
``ar_w[ag_r0:ag_r1]``, angle windows ``aw_*[ag_a0:ag_a1]`` (radians), and the grid: cell
(rho, alpha) of group g holds the columns ``cell_col[cell_ptr[k]:cell_ptr[k + 1]]`` with
k = ag_g0[g] + rho * A + alpha).  Lengths in the unit of ``vec``.

:func:`_acos` is the rational approximation of FreeBSD's msun ``e_acos.c`` (as in musl), whose
notice reads: "Copyright (C) 1993 by Sun Microsystems, Inc. All rights reserved.  Developed at
SunPro, a Sun Microsystems, Inc. business.  Permission to use, copy, modify, and distribute this
software is freely granted, provided that this notice is preserved."
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# FreeBSD msun e_acos.c (via musl): rational approximation of (asin(x) - x) / x^3 on [0, 0.25]
_PIO2_HI = 1.57079632679489655800e00
_PIO2_LO = 6.12323399573676603587e-17
_P0, _P1, _P2 = 1.66666666666666657415e-01, -3.25565818622400915405e-01, 2.01212532134862925881e-01
_P3, _P4, _P5 = -4.00555345006794114027e-02, 7.91534994289814532176e-04, 3.47933107596021167570e-05
_Q1, _Q2, _Q3 = -2.40339491173441421878e00, 2.02094576023350569471e00, -6.88283971605453293030e-01
_Q4 = 7.70381505559019352791e-02


@njit(cache=True, inline="always", fastmath={"contract"})
def _acos(x):  # pragma: no cover - compiled
    """acos(x) for |x| < 1, within 1 ulp of the C library's, without branches (vectorizable)."""
    ax = abs(x)
    small = ax < 0.5
    z = x * x if small else (1.0 - ax) * 0.5
    p = z * (_P0 + z * (_P1 + z * (_P2 + z * (_P3 + z * (_P4 + z * _P5)))))
    q = 1.0 + z * (_Q1 + z * (_Q2 + z * (_Q3 + z * _Q4)))
    r = p / q
    s = math.sqrt(z)
    near = _PIO2_HI - (x - (_PIO2_LO - x * r))
    negative = 2.0 * (_PIO2_HI - (s + (r * s - _PIO2_LO)))
    positive = 2.0 * (s + s * r)
    return near if small else (negative if x < 0.0 else positive)


@njit(cache=True, inline="always", fastmath={"contract"})
def _core(order, asym, x):  # pragma: no cover - compiled
    """(C(x), dC/dx) of a core on 0 <= x <= 1 (< 1 for the exponential one): polynomial ``order``
    1-4 or 0 (exponential); ``asym``: the polynomial of (2 - x) x."""
    if order == 0:
        q = x * x - 1.0
        value = math.e * math.exp(1.0 / q)
        return value, value * (-2.0 * x / (q * q))
    inner = 1.0
    if asym:
        inner = 2.0 - 2.0 * x
        x = (2.0 - x) * x
    x2 = x * x
    if order == 1:
        return (2.0 * x - 3.0) * x2 + 1.0, inner * x * (6.0 * x - 6.0)
    if order == 2:
        return ((15.0 - 6.0 * x) * x - 10.0) * x2 * x + 1.0, inner * x2 * ((60.0 - 30.0 * x) * x - 30.0)
    if order == 3:
        return (
            (x * (x * (20.0 * x - 70.0) + 84.0) - 35.0) * x2 * x2 + 1.0,
            inner * x2 * x * (x * (x * (140.0 * x - 420.0) + 420.0) - 140.0),
        )
    return (
        (x * (x * ((315.0 - 70.0 * x) * x - 540.0) + 420.0) - 126.0) * x2 * x2 * x + 1.0,
        inner * x2 * x2 * (x * (x * ((2520.0 - 630.0 * x) * x - 3780.0) + 2520.0) - 630.0),
    )


@njit(cache=True, inline="always", fastmath={"contract"})
def _window(a, centre, scale, order, asym):  # pragma: no cover - compiled
    """(f(a), f'(a)) of the compact function on the window (centre, 1 / half-width): 0 outside."""
    d = a - centre
    x = abs(d * scale)
    if order == 0:
        if not x < 1.0:
            return 0.0, 0.0
        value, slope = _core(order, asym, x)
    else:
        value, slope = _core(order, asym, min(x, 1.0))
    return value, (slope * scale if d >= 0.0 else -slope * scale)


@njit(cache=True, fastmath={"contract"})
def _windows(values, n, centre, scale, order, asym, f, df):  # pragma: no cover - compiled
    """f[k], df[k] of one window at values[k], k < n (1-D arrays; one loop per core: vectorized)."""
    if order == 0:
        for k in range(n):
            f[k], df[k] = _window(values[k], centre, scale, 0, asym)
    elif order == 1:
        for k in range(n):
            f[k], df[k] = _window(values[k], centre, scale, 1, asym)
    elif order == 2:
        if asym:
            for k in range(n):
                f[k], df[k] = _window(values[k], centre, scale, 2, True)
        else:
            for k in range(n):
                f[k], df[k] = _window(values[k], centre, scale, 2, False)
    elif order == 3:
        for k in range(n):
            f[k], df[k] = _window(values[k], centre, scale, 3, asym)
    else:
        for k in range(n):
            f[k], df[k] = _window(values[k], centre, scale, 4, asym)


@njit(cache=True, fastmath={"reassoc", "contract"})
def _dot(x, y, n):  # pragma: no cover - compiled
    """sum_k x[k] y[k], k < n (reassociated: vectorized)."""
    total = 0.0
    for k in range(n):
        total += x[k] * y[k]
    return total


@njit(cache=True, fastmath={"reassoc", "contract"})
def _dot3(x, y0, y1, y2, n):  # pragma: no cover - compiled
    """(x . y0, x . y1, x . y2) over k < n: three dot products sharing the loads of x."""
    t0, t1, t2 = 0.0, 0.0, 0.0
    for k in range(n):
        t0 += x[k] * y0[k]
        t1 += x[k] * y1[k]
        t2 += x[k] * y2[k]
    return t0, t1, t2


@njit(cache=True, fastmath={"reassoc", "contract"})
def _sum(x, n):  # pragma: no cover - compiled
    """sum_k x[k], k < n (reassociated: vectorized)."""
    total = 0.0
    for k in range(n):
        total += x[k]
    return total


@njit(cache=True, inline="always", fastmath={"contract"})
def _centre_edges(
    i, vec, dist, ptr, nspecies, cut, nsp, w0, nw, rw_c, rw_s, rw_order, rw_asym
):  # pragma: no cover - compiled
    """Centre i's edges within ``cut``, ordered by neighbour species (counting sort): ``first``
    (S+1,) block starts, ``local`` (K,) edge indices, ``xyz`` (4, K) coordinates and inverse
    lengths, ``ld`` (K,) lengths, f and f' (nw, K) of the centre's radial windows."""
    start, stop = ptr[i], ptr[i + 1]
    first = np.zeros(nsp + 1, dtype=np.int64)
    for a in range(start, stop):
        if dist[a] < cut:
            first[nspecies[a] + 1] += 1
    for t in range(nsp):
        first[t + 1] += first[t]
    fill = first[:nsp].copy()
    count = first[nsp]
    local = np.empty(count, dtype=np.int64)
    for a in range(start, stop):
        if dist[a] < cut:
            local[fill[nspecies[a]]] = a
            fill[nspecies[a]] += 1
    xyz = np.empty((4, count))  # x, y, z, 1/r
    ld = np.empty(count)
    for q in range(count):
        a = local[q]
        xyz[0, q], xyz[1, q], xyz[2, q] = vec[a, 0], vec[a, 1], vec[a, 2]
        ld[q] = dist[a]
        xyz[3, q] = 1.0 / dist[a]
    fe, dfe = np.empty((nw, count)), np.empty((nw, count))
    for w in range(nw):
        _windows(ld, count, rw_c[w0 + w], rw_s[w0 + w], rw_order[w0 + w], rw_asym[w0 + w], fe[w], dfe[w])
    return first, local, xyz, ld, fe, dfe


@njit(cache=True, inline="always", fastmath={"contract"})
def _pairs(
    ia, lo, n, xyz, table, g, narrow, fg, dfg, theta, cosv, dth, rjk, q, qc, fk, dfk, fjk
):  # pragma: no cover - compiled
    """Geometry and factors of the pairs (ia, lo + k), k < n: cos, theta, Q and dQ/dcos (A, n);
    narrow: the partners' radial factors times f(r_jk), and f'(r_jk) terms (R, n)."""
    rw_c, rw_s, rw_order, rw_asym, rw_min = table[0], table[1], table[2], table[3], table[4]
    ag_r0, ag_r1, ag_a0, ag_a1 = table[19], table[20], table[21], table[22]
    ar_w, aw_c, aw_s, aw_order = table[24], table[25], table[26], table[27]
    ax, ay, az, inv_a = xyz[0, ia], xyz[1, ia], xyz[2, ia], xyz[3, ia]
    hi = lo + n
    bx, by, bz, inv_b = xyz[0, lo:hi], xyz[1, lo:hi], xyz[2, lo:hi], xyz[3, lo:hi]
    th, cs, dt = theta[:n], cosv[:n], dth[:n]
    for k in range(n):
        c = (ax * bx[k] + ay * by[k] + az * bz[k]) * (inv_a * inv_b[k])
        ok = c > -1.0 and c < 1.0  # n2p2 skips |cos| = 1
        c = c if ok else 0.0
        cs[k] = c
        th[k] = _acos(c)
        dt[k] = (-1.0 / math.sqrt(1.0 - c * c)) if ok else 0.0
    a0, na = ag_a0[g], ag_a1[g] - ag_a0[g]
    for al in range(na):
        qa, qd = q[al, :n], qc[al, :n]
        _windows(th, n, aw_c[a0 + al], aw_s[a0 + al], aw_order[a0 + al], False, qa, qd)
        for k in range(n):
            qa[k] = qa[k] if dt[k] != 0.0 else 0.0
            qd[k] *= dt[k]
    if not narrow:
        return
    r = rjk[:n]
    for k in range(n):
        dx, dy, dz = bx[k] - ax, by[k] - ay, bz[k] - az
        r[k] = math.sqrt(dx * dx + dy * dy + dz * dz)
    r0, nr = ag_r0[g], ag_r1[g] - ag_r0[g]
    for rho in range(nr):
        w = ar_w[r0 + rho]
        f, d, e = fk[rho, :n], dfk[rho, :n], fjk[rho, :n]
        _windows(r, n, rw_c[w], rw_s[w], rw_order[w], rw_asym[w], e, d)
        low = rw_min[w]
        fb, db = fg[rho, lo:hi], dfg[rho, lo:hi]
        for k in range(n):
            inside = r[k] > low
            fj, dj = e[k], d[k]
            f[k] = fb[k] * fj if inside else 0.0
            d[k] = db[k] * fj if inside else 0.0
            e[k] = fb[k] * dj if inside else 0.0


@njit(cache=True, inline="always", fastmath={"contract"})
def _group_factors(g, table, nweight, local, fe, w0, weighted, fg, dfg, dfe):  # pragma: no cover - compiled
    """w_q f_rho(r_q), w_q f'_rho(r_q) of the group's radial windows on every edge (R, K)."""
    ag_r0, ag_r1, ar_w = table[19], table[20], table[24]
    count = local.shape[0]
    for rho in range(ag_r1[g] - ag_r0[g]):
        w = ar_w[ag_r0[g] + rho] - w0
        for q in range(count):
            weight = nweight[local[q]] if weighted else 1.0
            fg[rho, q] = weight * fe[w, q]
            dfg[rho, q] = weight * dfe[w, q]


@njit(cache=True, parallel=True, fastmath={"contract"})
def compact_forward(vec, dist, ptr, species, nspecies, nweight, table, out):  # pragma: no cover - compiled
    """Adds the values of the compact functions to ``out`` (N, W).  See the module docstring."""
    (
        rw_c,
        rw_s,
        rw_order,
        rw_asym,
        rw_min,
        sp_w0,
        sp_w1,
        sp_cut,
        rg_centre,
        rg_e,
        rg_f0,
        rg_f1,
        rf_w,
        rf_col,
        ag_centre,
        ag_e1,
        ag_e2,
        ag_narrow,
        ag_cut,
        ag_r0,
        ag_r1,
        ag_a0,
        ag_a1,
        ag_g0,
        ar_w,
        aw_c,
        aw_s,
        aw_order,
        cell_ptr,
        cell_col,
    ) = table
    n = ptr.shape[0] - 1
    nsp = sp_cut.shape[0]
    nr_max, na_max = 1, 1
    for g in range(ag_centre.shape[0]):
        nr_max = max(nr_max, ag_r1[g] - ag_r0[g])
        na_max = max(na_max, ag_a1[g] - ag_a0[g])
    for i in prange(n):
        s = species[i]
        if s < 0 or s >= nsp or sp_cut[s] <= 0.0:
            continue
        w0, nw = sp_w0[s], sp_w1[s] - sp_w0[s]
        first, local, xyz, ld, fe, dfe = _centre_edges(
            i, vec, dist, ptr, nspecies, sp_cut[s], nsp, w0, nw, rw_c, rw_s, rw_order, rw_asym
        )
        count = local.shape[0]
        for g in range(rg_centre.shape[0]):
            if rg_centre[g] != s:
                continue
            e = rg_e[g]
            q_lo, q_hi = (0, count) if e < 0 else (first[e], first[e + 1])
            for q in range(q_lo, q_hi):
                weight = nweight[local[q]] if e < 0 else 1.0
                for f in range(rg_f0[g], rg_f1[g]):
                    out[i, rf_col[f]] += weight * fe[rf_w[f] - w0, q]
        fg, dfg = np.empty((nr_max, count)), np.empty((nr_max, count))
        theta, cosv, dth, rjk = np.empty(count), np.empty(count), np.empty(count), np.empty(count)
        na_pad = 3 * ((na_max + 2) // 3)  # angle windows in blocks of three (padded with 0)
        qv, qc = np.zeros((na_pad, count)), np.zeros((na_pad, count))
        fk, dfk, fjk = np.empty((nr_max, count)), np.empty((nr_max, count)), np.empty((nr_max, count))
        grid = np.empty(nr_max * na_max)
        for g in range(ag_centre.shape[0]):
            if ag_centre[g] != s:
                continue
            e1, e2, narrow, gcut = ag_e1[g], ag_e2[g], ag_narrow[g], ag_cut[g]
            nr, na = ag_r1[g] - ag_r0[g], ag_a1[g] - ag_a0[g]
            _group_factors(g, table, nweight, local, fe, w0, e1 < 0, fg, dfg, dfe)
            grid[: nr * na] = 0.0
            qv[na:] = 0.0
            a_lo, a_hi = (0, count) if e1 < 0 else (first[e1], first[e1 + 1])
            same = e1 < 0 or e1 == e2
            for ia in range(a_lo, a_hi):
                if ld[ia] >= gcut:
                    continue
                lo, hi = (ia + 1, a_hi) if same else (first[e2], first[e2 + 1])
                m = hi - lo
                if m <= 0:
                    continue
                _pairs(ia, lo, m, xyz, table, g, narrow, fg, dfg, theta, cosv, dth, rjk, qv, qc, fk, dfk, fjk)
                for rho in range(nr):
                    fa = fg[rho, ia]
                    if fa == 0.0:
                        continue
                    fb = fk[rho, :m] if narrow else fg[rho, lo:hi]
                    for al in range(0, na, 3):
                        d0, d1, d2 = _dot3(fb, qv[al, :m], qv[al + 1, :m], qv[al + 2, :m], m)
                        grid[rho * na + al] += fa * d0
                        if al + 1 < na:
                            grid[rho * na + al + 1] += fa * d1
                        if al + 2 < na:
                            grid[rho * na + al + 2] += fa * d2
            g0 = ag_g0[g]
            for cell in range(nr * na):
                for c in range(cell_ptr[g0 + cell], cell_ptr[g0 + cell + 1]):
                    out[i, cell_col[c]] += grid[cell]


@njit(cache=True, parallel=True, fastmath={"contract"})
def compact_backward(
    vec, dist, ptr, species, nspecies, nweight, table, grad, dvec
):  # pragma: no cover - compiled
    """Adds sum_f grad[i, f] dG[i, f]/d(edge vector) of the compact functions to ``dvec`` (E, 3)
    (``grad`` (N, W) float64).  See the module docstring."""
    (
        rw_c,
        rw_s,
        rw_order,
        rw_asym,
        rw_min,
        sp_w0,
        sp_w1,
        sp_cut,
        rg_centre,
        rg_e,
        rg_f0,
        rg_f1,
        rf_w,
        rf_col,
        ag_centre,
        ag_e1,
        ag_e2,
        ag_narrow,
        ag_cut,
        ag_r0,
        ag_r1,
        ag_a0,
        ag_a1,
        ag_g0,
        ar_w,
        aw_c,
        aw_s,
        aw_order,
        cell_ptr,
        cell_col,
    ) = table
    n = ptr.shape[0] - 1
    nsp = sp_cut.shape[0]
    nr_max, na_max = 1, 1
    for g in range(ag_centre.shape[0]):
        nr_max = max(nr_max, ag_r1[g] - ag_r0[g])
        na_max = max(na_max, ag_a1[g] - ag_a0[g])
    for i in prange(n):
        s = species[i]
        if s < 0 or s >= nsp or sp_cut[s] <= 0.0:
            continue
        w0, nw = sp_w0[s], sp_w1[s] - sp_w0[s]
        first, local, xyz, ld, fe, dfe = _centre_edges(
            i, vec, dist, ptr, nspecies, sp_cut[s], nsp, w0, nw, rw_c, rw_s, rw_order, rw_asym
        )
        count = local.shape[0]
        dl = np.zeros((3, count))  # dL/dvec of the local edges
        for g in range(rg_centre.shape[0]):
            if rg_centre[g] != s:
                continue
            e = rg_e[g]
            q_lo, q_hi = (0, count) if e < 0 else (first[e], first[e + 1])
            for q in range(q_lo, q_hi):
                t = 0.0
                for f in range(rg_f0[g], rg_f1[g]):
                    t += grad[i, rf_col[f]] * dfe[rf_w[f] - w0, q]
                t *= (nweight[local[q]] if e < 0 else 1.0) * xyz[3, q]
                dl[0, q] += t * xyz[0, q]
                dl[1, q] += t * xyz[1, q]
                dl[2, q] += t * xyz[2, q]
        fg, dfg = np.empty((nr_max, count)), np.empty((nr_max, count))
        theta, cosv, dth, rjk = np.empty(count), np.empty(count), np.empty(count), np.empty(count)
        na_pad = 3 * ((na_max + 2) // 3)  # angle windows in blocks of three (padded with 0)
        qv, qc = np.zeros((na_pad, count)), np.zeros((na_pad, count))
        fk, dfk, fjk = np.empty((nr_max, count)), np.empty((nr_max, count)), np.empty((nr_max, count))
        u = np.empty((4, count))
        t = np.empty((4, count))  # d term / d(cos, r_ij, r_ik, r_jk) summed over the functions
        grid = np.empty(nr_max * na_max)
        for g in range(ag_centre.shape[0]):
            if ag_centre[g] != s:
                continue
            e1, e2, narrow, gcut = ag_e1[g], ag_e2[g], ag_narrow[g], ag_cut[g]
            nr, na = ag_r1[g] - ag_r0[g], ag_a1[g] - ag_a0[g]
            g0 = ag_g0[g]
            nonzero = False
            for cell in range(nr * na):
                total = 0.0
                for c in range(cell_ptr[g0 + cell], cell_ptr[g0 + cell + 1]):
                    total += grad[i, cell_col[c]]
                grid[cell] = total
                nonzero = nonzero or total != 0.0
            if not nonzero:
                continue
            qv[na:] = 0.0
            qc[na:] = 0.0
            _group_factors(g, table, nweight, local, fe, w0, e1 < 0, fg, dfg, dfe)
            a_lo, a_hi = (0, count) if e1 < 0 else (first[e1], first[e1 + 1])
            same = e1 < 0 or e1 == e2
            for ia in range(a_lo, a_hi):
                if ld[ia] >= gcut:
                    continue
                lo, hi = (ia + 1, a_hi) if same else (first[e2], first[e2 + 1])
                m = hi - lo
                if m <= 0:
                    continue
                _pairs(ia, lo, m, xyz, table, g, narrow, fg, dfg, theta, cosv, dth, rjk, qv, qc, fk, dfk, fjk)
                t0, t1, t2, t3 = t[0, :m], t[1, :m], t[2, :m], t[3, :m]
                t0[:] = 0.0
                t1[:] = 0.0
                t2[:] = 0.0
                t3[:] = 0.0
                v, vc = u[0, :m], u[1, :m]
                for rho in range(nr):
                    fa, da = fg[rho, ia], dfg[rho, ia]
                    if fa == 0.0 and da == 0.0:
                        continue
                    # dL/dG times Q and dQ/dcos, summed over the angle windows
                    for al in range(0, na, 3):
                        x0 = grid[rho * na + al]
                        x1 = grid[rho * na + al + 1] if al + 1 < na else 0.0
                        x2 = grid[rho * na + al + 2] if al + 2 < na else 0.0
                        q0, q1, q2 = qv[al, :m], qv[al + 1, :m], qv[al + 2, :m]
                        c0, c1, c2 = qc[al, :m], qc[al + 1, :m], qc[al + 2, :m]
                        if al == 0:
                            for k in range(m):
                                v[k] = x0 * q0[k] + x1 * q1[k] + x2 * q2[k]
                                vc[k] = x0 * c0[k] + x1 * c1[k] + x2 * c2[k]
                        else:
                            for k in range(m):
                                v[k] += x0 * q0[k] + x1 * q1[k] + x2 * q2[k]
                                vc[k] += x0 * c0[k] + x1 * c1[k] + x2 * c2[k]
                    fb = fk[rho, :m] if narrow else fg[rho, lo:hi]
                    db = dfk[rho, :m] if narrow else dfg[rho, lo:hi]
                    for k in range(m):
                        t0[k] += fa * fb[k] * vc[k]
                        t1[k] += da * fb[k] * v[k]
                        t2[k] += fa * db[k] * v[k]
                    if narrow:
                        ej = fjk[rho, :m]
                        for k in range(m):
                            t3[k] += fa * ej[k] * v[k]
                ax, ay, az, inv_a = xyz[0, ia], xyz[1, ia], xyz[2, ia], xyz[3, ia]
                bx, by, bz, inv_b = xyz[0, lo:hi], xyz[1, lo:hi], xyz[2, lo:hi], xyz[3, lo:hi]
                lx, ly, lz = dl[0, lo:hi], dl[1, lo:hi], dl[2, lo:hi]
                cs, r = cosv[:m], rjk[:m]
                cu, mix = u[2, :m], u[3, :m]
                for k in range(m):
                    jk = 0.0
                    if narrow:
                        jk = t3[k] / r[k] if r[k] > 0.0 else 0.0
                    tc = t0[k] * cs[k]
                    ib = inv_b[k]
                    cu[k] = t1[k] * inv_a - tc * inv_a * inv_a + jk
                    cv = t2[k] * ib - tc * ib * ib + jk
                    mx = t0[k] * inv_a * ib - jk
                    mix[k] = mx
                    lx[k] += cv * bx[k] + mx * ax
                    ly[k] += cv * by[k] + mx * ay
                    lz[k] += cv * bz[k] + mx * az
                total = _sum(cu, m)
                dl[0, ia] += total * ax + _dot(mix, bx, m)
                dl[1, ia] += total * ay + _dot(mix, by, m)
                dl[2, ia] += total * az + _dot(mix, bz, m)
        for q in range(count):
            a = local[q]
            dvec[a, 0] += dl[0, q]
            dvec[a, 1] += dl[1, q]
            dvec[a, 2] += dl[2, q]
