r"""One compiled walk for n2p2's compact functions (types 20-25, :mod:`mpnn.symmetry.compact`).

:func:`compact_forward` adds the values G (N, W) of every compact function and, with
``jacobian``, their derivatives dG/d(edge vector) (E, W, 3) to the arrays it is given (those of
:func:`mpnn.symmetry.fused_kernels.fused_forward`, which zeroes them), in n2p2's manner: each
centre's edges are walked once for the radial functions and each pair of its edges once for the
angular ones, and the derivatives are kept from the same walk.

What is shared: a centre's distinct radial windows (rl, rc, core) are evaluated once per edge,
f(r) and f'(r); per pair, the radial factor :math:`P_\rho = f_\rho(r_{ij}) f_\rho(r_{ik})
[f_\rho(r_{jk})]` of each of the group's windows and the angular factor :math:`Q_\alpha(\theta)`
of each of its angle windows are computed once, and only the windows that contain the pair are
kept: a function (rho, alpha) is visited only when both of its windows contain the pair (its
term, value and derivatives, is 0 otherwise).  The functions of a group are therefore stored
as a grid of cells (rho, alpha), each with its columns (usually one).

With u = r_ij, v = r_ik (edge vectors), the term t = w P Q(theta) (w: 1, or Z_j Z_k for the
weighted types) has
:math:`\partial t/\partial u = c_u u + m v`, :math:`\partial t/\partial v = c_v v + m u` with
:math:`c_u = t_{r_{ij}}/r_{ij} - t_{\cos}\cos/r_{ij}^2 + t_{r_{jk}}/r_{jk}`,
:math:`m = t_{\cos}/(r_{ij} r_{ik}) - t_{r_{jk}}/r_{jk}` (and c_v likewise), where
:math:`t_{\cos} = w P\, dQ/d\theta \cdot (-1/\sin\theta)`.

Tables (built by :func:`mpnn.symmetry.compact_tables.tables`): the radial windows ``rw_*`` (all
centre species: centre c, inverse half-width s, core order 1-4 or 0 for the exponential core,
asymmetric flag, lower bound max(rl, 0) applied to r_jk); the windows of centre species s are
``[sp_w0[s], sp_w1[s])`` and ``sp_cut[s]`` is the largest rc of its functions (0: none).  Radial
groups ``rg_*`` (centre species, neighbour species or -1 for "any, weighted by Z_j", function
range) with functions ``rf_w`` (window) and ``rf_col`` (column).  Angular groups ``ag_*``
(centre species, neighbour species e1 <= e2 or -1, narrow, largest rc, radial windows
``ar_w[ag_r0:ag_r1]``, angle windows ``aw_*[ag_a0:ag_a1]`` (radians), and the grid: cell
(rho, alpha) of group g holds the columns ``cell_col[cell_ptr[k]:cell_ptr[k + 1]]`` with
k = ag_g0[g] + rho * A + alpha).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def _core(order, asym, x):  # pragma: no cover - compiled
    """(C(x), dC/dx) of a core on 0 <= x < 1: polynomial ``order`` 1-4 or 0 (exponential);
    ``asym``: the polynomial of (2 - x) x."""
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


@njit(cache=True, inline="always")
def _window(a, centre, scale, order, asym):  # pragma: no cover - compiled
    """(f(a), f'(a)) of the compact function on the window (centre, 1 / half-width): 0 outside.

    The polynomial cores are evaluated at x clamped to 1, where they and their slopes are
    exactly 0 (no branch: which windows hold a pair is unpredictable); the exponential one is
    set to 0 there."""
    d = a - centre
    x = abs(d * scale)
    if order == 0 and not x < 1.0:
        return 0.0, 0.0
    value, slope = _core(order, asym, min(x, 1.0))
    return value, (slope * scale if d >= 0.0 else -slope * scale)


@njit(cache=True, inline="always")
def _centre_edges(
    i, vec, dist, ptr, nspecies, cut, nsp, w0, nw, rw_c, rw_s, rw_order, rw_asym
):  # pragma: no cover - compiled
    """Centre i's edges within ``cut``, ordered by neighbour species (counting sort; a group's
    partners are then blocks): ``first`` (S+1,) block starts, ``local`` (K,) edge indices, their
    coordinates, lengths and inverse lengths (K,), and f, f' (K, nw) of the centre's radial
    windows [w0, w0 + nw)."""
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
    xyz = np.empty((count, 3))
    ld, linv = np.empty(count), np.empty(count)
    fe, dfe = np.empty((count, nw)), np.empty((count, nw))
    for q in range(count):
        a = local[q]
        r = dist[a]
        xyz[q, 0], xyz[q, 1], xyz[q, 2] = vec[a, 0], vec[a, 1], vec[a, 2]
        ld[q], linv[q] = r, 1.0 / r
        for w in range(nw):
            fe[q, w], dfe[q, w] = _window(r, rw_c[w0 + w], rw_s[w0 + w], rw_order[w0 + w], rw_asym[w0 + w])
    return first, local, xyz, ld, linv, fe, dfe


@njit(cache=True, inline="always")
def _partners(ia, a_hi, b_lo, b_hi, same, xyz, ld, gcut, wide, keep):  # pragma: no cover - compiled
    """The number of partners of local edge ``ia`` written to ``keep``: within the cutoff and,
    for a narrow group, r_jk < cutoff (selected without branches)."""
    if same:
        b_lo, b_hi = ia + 1, a_hi
    ax, ay, az = xyz[ia, 0], xyz[ia, 1], xyz[ia, 2]
    gcut2 = gcut * gcut
    kept = 0
    for ib in range(b_lo, b_hi):
        dx, dy, dz = xyz[ib, 0] - ax, xyz[ib, 1] - ay, xyz[ib, 2] - az
        keep[kept] = ib
        kept += (ld[ib] < gcut) & (wide | (dx * dx + dy * dy + dz * dz < gcut2))
    return kept


@njit(cache=True, inline="always")
def _angles(cos, na, a0, aw_c, aw_s, aw_order, qv, qd):  # pragma: no cover - compiled
    """Q and dQ/dcos of the group's angle windows at theta = acos(cos), |cos| < 1."""
    theta = math.acos(cos)
    dtheta = -1.0 / math.sqrt(1.0 - cos * cos)
    for al in range(na):
        value, slope = _window(theta, aw_c[a0 + al], aw_s[a0 + al], aw_order[a0 + al], False)
        qv[al] = value
        qd[al] = slope * dtheta


@njit(cache=True, parallel=True)
def compact_forward(
    vec,
    dist,
    ptr,
    species,
    nspecies,
    nweight,
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
    out,
):  # pragma: no cover - compiled
    """Adds the values G of the compact functions to ``out`` (N, W).  See the module docstring."""
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
        first, local, xyz, ld, linv, fe, dfe = _centre_edges(
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
                    out[i, rf_col[f]] += weight * fe[q, rf_w[f] - w0]
        keep = np.empty(count, dtype=np.int64)
        fa = np.empty(nr_max)
        p = np.empty(nr_max)
        qv, qd = np.empty(na_max), np.empty(na_max)
        grid = np.empty(nr_max * na_max)
        for g in range(ag_centre.shape[0]):
            if ag_centre[g] != s:
                continue
            e1, e2, narrow, gcut = ag_e1[g], ag_e2[g], ag_narrow[g], ag_cut[g]
            r0, nr = ag_r0[g], ag_r1[g] - ag_r0[g]
            a0, na = ag_a0[g], ag_a1[g] - ag_a0[g]
            grid[: nr * na] = 0.0
            a_lo, a_hi = (0, count) if e1 < 0 else (first[e1], first[e1 + 1])
            b_lo, b_hi = (0, 0) if e1 < 0 or e1 == e2 else (first[e2], first[e2 + 1])
            for ia in range(a_lo, a_hi):
                if ld[ia] >= gcut:
                    continue
                kept = _partners(ia, a_hi, b_lo, b_hi, e1 < 0 or e1 == e2, xyz, ld, gcut, not narrow, keep)
                wa = nweight[local[ia]] if e1 < 0 else 1.0
                inv_ij = linv[ia]
                for rho in range(nr):
                    fa[rho] = wa * fe[ia, ar_w[r0 + rho] - w0]
                for k in range(kept):
                    ib = keep[k]
                    cos = (xyz[ia, 0] * xyz[ib, 0] + xyz[ia, 1] * xyz[ib, 1] + xyz[ia, 2] * xyz[ib, 2]) * (
                        inv_ij * linv[ib]
                    )
                    if not (cos > -1.0 and cos < 1.0):
                        continue  # n2p2 skips |cos| = 1
                    _angles(cos, na, a0, aw_c, aw_s, aw_order, qv, qd)
                    wb = nweight[local[ib]] if e1 < 0 else 1.0
                    rjk = 0.0
                    if narrow:
                        dx, dy, dz = xyz[ib, 0] - xyz[ia, 0], xyz[ib, 1] - xyz[ia, 1], xyz[ib, 2] - xyz[ia, 2]
                        rjk = math.sqrt(dx * dx + dy * dy + dz * dz)
                    for rho in range(nr):
                        w = ar_w[r0 + rho]
                        value = fa[rho] * wb * fe[ib, w - w0]
                        if narrow:
                            fj, _ = _window(rjk, rw_c[w], rw_s[w], rw_order[w], rw_asym[w])
                            value = value * fj if rjk > rw_min[w] else 0.0
                        p[rho] = value
                    for rho in range(nr):
                        pr = p[rho]
                        if pr == 0.0:
                            continue
                        row = rho * na
                        for al in range(na):
                            grid[row + al] += pr * qv[al]
            g0 = ag_g0[g]
            for cell in range(nr * na):
                for c in range(cell_ptr[g0 + cell], cell_ptr[g0 + cell + 1]):
                    out[i, cell_col[c]] += grid[cell]


@njit(cache=True, parallel=True)
def compact_backward(
    vec,
    dist,
    ptr,
    species,
    nspecies,
    nweight,
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
    grad,
    dvec,
):  # pragma: no cover - compiled
    """Adds sum_f grad[i, f] dG[i, f]/d(edge vector) of the compact functions to ``dvec`` (E, 3)
    (``grad`` (N, W)).  See the module docstring."""
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
        first, local, xyz, ld, linv, fe, dfe = _centre_edges(
            i, vec, dist, ptr, nspecies, sp_cut[s], nsp, w0, nw, rw_c, rw_s, rw_order, rw_asym
        )
        count = local.shape[0]
        for g in range(rg_centre.shape[0]):
            if rg_centre[g] != s:
                continue
            e = rg_e[g]
            q_lo, q_hi = (0, count) if e < 0 else (first[e], first[e + 1])
            for q in range(q_lo, q_hi):
                a = local[q]
                t = 0.0
                for f in range(rg_f0[g], rg_f1[g]):
                    t += grad[i, rf_col[f]] * dfe[q, rf_w[f] - w0]
                t *= (nweight[a] if e < 0 else 1.0) * linv[q]
                dvec[a, 0] += t * xyz[q, 0]
                dvec[a, 1] += t * xyz[q, 1]
                dvec[a, 2] += t * xyz[q, 2]
        keep = np.empty(count, dtype=np.int64)
        fa, da = np.empty(nr_max), np.empty(nr_max)
        h, hc = np.empty(nr_max), np.empty(nr_max)
        qv, qd = np.empty(na_max), np.empty(na_max)
        grid = np.empty(nr_max * na_max)
        for g in range(ag_centre.shape[0]):
            if ag_centre[g] != s:
                continue
            e1, e2, narrow, gcut = ag_e1[g], ag_e2[g], ag_narrow[g], ag_cut[g]
            r0, nr = ag_r0[g], ag_r1[g] - ag_r0[g]
            a0, na = ag_a0[g], ag_a1[g] - ag_a0[g]
            # dL/dG of the group's cells (rho, alpha)
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
            a_lo, a_hi = (0, count) if e1 < 0 else (first[e1], first[e1 + 1])
            b_lo, b_hi = (0, 0) if e1 < 0 or e1 == e2 else (first[e2], first[e2 + 1])
            for ia in range(a_lo, a_hi):
                if ld[ia] >= gcut:
                    continue
                kept = _partners(ia, a_hi, b_lo, b_hi, e1 < 0 or e1 == e2, xyz, ld, gcut, not narrow, keep)
                a = local[ia]
                wa = nweight[a] if e1 < 0 else 1.0
                inv_ij = linv[ia]
                ax, ay, az = xyz[ia, 0], xyz[ia, 1], xyz[ia, 2]
                for rho in range(nr):
                    w = ar_w[r0 + rho] - w0
                    fa[rho], da[rho] = wa * fe[ia, w], wa * dfe[ia, w]
                sx, sy, sz = 0.0, 0.0, 0.0  # this edge's sum over its partners
                for k in range(kept):
                    ib = keep[k]
                    bx, by, bz = xyz[ib, 0], xyz[ib, 1], xyz[ib, 2]
                    inv_ik = linv[ib]
                    inv_ij_ik = inv_ij * inv_ik
                    cos = (ax * bx + ay * by + az * bz) * inv_ij_ik
                    if not (cos > -1.0 and cos < 1.0):
                        continue  # n2p2 skips |cos| = 1
                    _angles(cos, na, a0, aw_c, aw_s, aw_order, qv, qd)
                    # h = g Q, hc = g dQ/dcos per radial window
                    for rho in range(nr):
                        x, y = 0.0, 0.0
                        row = rho * na
                        for al in range(na):
                            x += grid[row + al] * qv[al]
                            y += grid[row + al] * qd[al]
                        h[rho], hc[rho] = x, y
                    wb = nweight[local[ib]] if e1 < 0 else 1.0
                    t_cos, t_ij, t_ik, t_jk = 0.0, 0.0, 0.0, 0.0
                    inv_jk = 0.0
                    if narrow:
                        wx, wy, wz = bx - ax, by - ay, bz - az
                        rjk = math.sqrt(wx * wx + wy * wy + wz * wz)
                        inv_jk = 1.0 / rjk if rjk > 0.0 else 0.0
                        for rho in range(nr):
                            w = ar_w[r0 + rho]
                            if not rjk > rw_min[w]:
                                continue
                            fj, dj = _window(rjk, rw_c[w], rw_s[w], rw_order[w], rw_asym[w])
                            fb, db = wb * fe[ib, w - w0], wb * dfe[ib, w - w0]
                            t_cos += fa[rho] * fb * fj * hc[rho]
                            t_ij += da[rho] * fb * fj * h[rho]
                            t_ik += fa[rho] * db * fj * h[rho]
                            t_jk += fa[rho] * fb * dj * h[rho]
                    else:
                        for rho in range(nr):
                            w = ar_w[r0 + rho] - w0
                            fb, db = wb * fe[ib, w], wb * dfe[ib, w]
                            t_cos += fa[rho] * fb * hc[rho]
                            t_ij += da[rho] * fb * h[rho]
                            t_ik += fa[rho] * db * h[rho]
                    jk = t_jk * inv_jk
                    cu = t_ij * inv_ij - t_cos * cos * inv_ij * inv_ij + jk
                    cv = t_ik * inv_ik - t_cos * cos * inv_ik * inv_ik + jk
                    mix = t_cos * inv_ij_ik - jk
                    sx += cu * ax + mix * bx
                    sy += cu * ay + mix * by
                    sz += cu * az + mix * bz
                    b = local[ib]
                    dvec[b, 0] += cv * bx + mix * ax
                    dvec[b, 1] += cv * by + mix * ay
                    dvec[b, 2] += cv * bz + mix * az
                dvec[a, 0] += sx
                dvec[a, 1] += sy
                dvec[a, 2] += sz
