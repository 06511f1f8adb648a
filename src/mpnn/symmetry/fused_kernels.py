r"""One compiled walk for all the Gaussian functions of a message (types 2, 12, 3, 9, 13).

:mod:`mpnn.symmetry.angular_kernels` walks the triplets of every centre once per *group* (centre
element, neighbour pair), rejecting the pairs of other neighbour elements, and each group costs
a Python call, an autograd node and an (E, F, 3) Jacobian.  Here one call computes every radial
and angular function of every element: each centre's edge pairs are walked once and each pair
feeds the angular groups of its neighbour elements; the radial sums take one pass over the edges.
The products shared within a group are computed once per pair, as in the per-group kernels: one
exponential per distinct (eta, rs), one power per distinct (lambda, zeta), one cutoff product
per distinct rc.

:func:`fused_forward` returns G (N, W) (column ``col`` of each function, W the message's width)
and, with ``jacobian``, dG/d(edge vector) D (E, W, 3): row e holds the derivatives of the
functions of e's centre (G_i depends only on the edges that end at i).  Rows of a centre are
written by that centre's iteration only, so the centres are distributed over threads.

Tables (built by :func:`mpnn.symmetry.fused.tables`): radial groups ``rg_*`` (G_r,): centre
species, neighbour species (-1: any, weighted by Z_j), function range [f0, f1) into the radial
function arrays ``rf_*`` (eta, rs, index into ``rc_all``, column).  Angular groups ``ag_*``
(G_a,): centre species, neighbour species e1 <= e2 (-1: any, weighted by Z_j Z_k), narrow,
ranges into the distinct (eta, rs) arrays [m0, m1), (lambda, zeta) [k0, k1), rc [c0, c1) (of
``ac_rc``: indices into ``rc_all``), functions [f0, f1); ``af_m``, ``af_k``, ``af_c`` are each
function's indices relative to its group's ranges, ``af_norm`` its 2^(1-zeta), ``af_col`` its
column.  ``rcmax`` (S,) is the largest angular rc of each centre species (pairs beyond it are
skipped).  Lengths are in the unit of ``vec``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from mpnn.symmetry.angular_kernels import _TANH_NORM, _cutoff, _power


@njit(cache=True, inline="always")
def _fast_cutoff(kind, r, rc, inv_rc, alpha):  # pragma: no cover - compiled
    """:func:`~mpnn.symmetry.angular_kernels._cutoff` with tanh as one expm1 (types 2, 3), no
    division by rc; r < rc is assumed."""
    if kind == 2 or kind == 3:
        q = math.expm1(-2.0 * (1.0 - r * inv_rc))  # tanh(y) = -expm1(-2y) / (2 + expm1(-2y))
        t = -q / (2.0 + q)
        scale = 1.0 if kind == 2 else _TANH_NORM
        t2 = t * t
        return scale * t2 * t, scale * 3.0 * t2 * (t2 - 1.0) * inv_rc
    return _cutoff(kind, r, rc, alpha)


@njit(cache=True, parallel=True)
def fused_forward(
    vec,
    dist,
    ptr,
    species,
    nspecies,
    nweight,
    width,
    rc_all,
    kind,
    alpha,
    rg_centre,
    rg_e,
    rg_f0,
    rg_f1,
    rf_eta,
    rf_rs,
    rf_c,
    rf_col,
    ag_centre,
    ag_e1,
    ag_e2,
    ag_narrow,
    ag_m0,
    ag_m1,
    ag_k0,
    ag_k1,
    ag_c0,
    ag_c1,
    ag_f0,
    ag_f1,
    a_eta,
    a_rs,
    a_lam,
    a_zeta,
    ac_rc,
    af_m,
    af_k,
    af_c,
    af_norm,
    af_col,
    rcmax,
    jacobian,
    jac,
):  # pragma: no cover - compiled
    """G (N, width); with ``jacobian``, D is written into ``jac`` (E, width, 3) (any contents on
    entry: every row is zeroed first).  See the module docstring."""
    n = ptr.shape[0] - 1
    out = np.zeros((n, width))
    nc_all = rc_all.shape[0]
    inv_rc = 1.0 / rc_all
    nm_max, nk_max, nc_max = 1, 1, 1
    for g in range(ag_centre.shape[0]):
        nm_max = max(nm_max, ag_m1[g] - ag_m0[g])
        nk_max = max(nk_max, ag_k1[g] - ag_k0[g])
        nc_max = max(nc_max, ag_c1[g] - ag_c0[g])
    for i in prange(n):
        s = species[i]
        start, stop = ptr[i], ptr[i + 1]
        if jacobian:
            jac[start:stop] = 0.0
        count = stop - start
        fc = np.empty((count, nc_all))
        dfc = np.empty((count, nc_all))
        inv = np.empty(count)
        for a in range(start, stop):
            inv[a - start] = 1.0 / dist[a]
            for c in range(nc_all):
                if dist[a] < rc_all[c]:
                    fc[a - start, c], dfc[a - start, c] = _fast_cutoff(
                        kind, dist[a], rc_all[c], inv_rc[c], alpha
                    )
                else:
                    fc[a - start, c], dfc[a - start, c] = 0.0, 0.0
        # radial functions: one pass over the edges per group of this species
        for g in range(rg_centre.shape[0]):
            if rg_centre[g] != s:
                continue
            e = rg_e[g]
            for a in range(start, stop):
                if e >= 0 and nspecies[a] != e:
                    continue
                r = dist[a]
                w = nweight[a] if e < 0 else 1.0
                for f in range(rg_f0[g], rg_f1[g]):
                    c = rf_c[f]
                    fcut = fc[a - start, c]
                    if fcut == 0.0 and dfc[a - start, c] == 0.0:
                        continue
                    d = r - rf_rs[f]
                    gauss = math.exp(-rf_eta[f] * d * d)
                    col = rf_col[f]
                    out[i, col] += w * gauss * fcut
                    if jacobian:
                        dr = w * gauss * (dfc[a - start, c] - 2.0 * rf_eta[f] * d * fcut) * inv[a - start]
                        for x in range(3):
                            jac[a, col, x] += dr * vec[a, x]
        if s < 0 or s >= rcmax.shape[0] or rcmax[s] <= 0.0:
            continue
        # the edges within the largest angular rc, ordered by neighbour species (counting sort):
        # the pairs of one group are then blocks, walked without testing each pair's elements
        cut = rcmax[s]
        nsp = rcmax.shape[0]
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
        # contiguous copies (coordinates, distances) in that order, and the partners kept
        lx, ly, lz, ld = np.empty(count), np.empty(count), np.empty(count), np.empty(count)
        for q in range(count):
            a = local[q]
            lx[q], ly[q], lz[q], ld[q] = vec[a, 0], vec[a, 1], vec[a, 2], dist[a]
        keep = np.empty(count, dtype=np.int64)
        gs = np.empty(nm_max)
        dgs = np.empty((nm_max, 3))
        ang = np.empty(nk_max)
        dang = np.empty(nk_max)
        fcp = np.empty(nc_max)
        dfcp = np.empty((nc_max, 3))
        for g in range(ag_centre.shape[0]):
            if ag_centre[g] != s:
                continue
            e1, e2 = ag_e1[g], ag_e2[g]
            narrow = ag_narrow[g]
            wide = not narrow
            gcut = 0.0
            for c in range(ag_c0[g], ag_c1[g]):
                gcut = max(gcut, rc_all[ac_rc[c]])
            gcut2 = gcut * gcut
            if e1 < 0:
                a_lo, a_hi = 0, first[nsp]
            else:
                a_lo, a_hi = first[e1], first[e1 + 1]
            for ia in range(a_lo, a_hi):
                a = local[ia]
                rij = dist[a]
                if rij >= gcut:
                    continue
                if e1 < 0 or e1 == e2:
                    b_lo, b_hi = ia + 1, a_hi
                else:
                    b_lo, b_hi = first[e2], first[e2 + 1]
                # the partners within the cutoff first, without branches (half of the pairs of
                # a narrow family fail r_jk < rc: a mispredicted branch each)
                ax, ay, az = lx[ia], ly[ia], lz[ia]
                kept = 0
                for ib in range(b_lo, b_hi):
                    dx, dy, dz = lx[ib] - ax, ly[ib] - ay, lz[ib] - az
                    keep[kept] = ib
                    kept += (ld[ib] < gcut) & (wide | (dx * dx + dy * dy + dz * dz < gcut2))
                for q in range(kept):
                    ib = keep[q]
                    b = local[ib]
                    rik = ld[ib]
                    wx, wy, wz = lx[ib] - ax, ly[ib] - ay, lz[ib] - az
                    rjk2 = wx * wx + wy * wy + wz * wz
                    rjk = math.sqrt(rjk2)
                    inv_ij, inv_ik = inv[a - start], inv[b - start]
                    inv_ij_ik = inv_ij * inv_ik
                    cos = (vec[a, 0] * vec[b, 0] + vec[a, 1] * vec[b, 1] + vec[a, 2] * vec[b, 2]) * inv_ij_ik
                    cos_ij, cos_ik = cos * inv_ij * inv_ij, cos * inv_ik * inv_ik
                    inv_jk = 1.0 / rjk if rjk > 0.0 else 0.0
                    w = nweight[a] * nweight[b] if e1 < 0 else 1.0
                    any_cut = False
                    for c in range(ag_c1[g] - ag_c0[g]):
                        cg = ac_rc[ag_c0[g] + c]
                        rc = rc_all[cg]
                        if rij >= rc or rik >= rc or (narrow and rjk >= rc):
                            fcp[c] = 0.0
                            dfcp[c, 0] = dfcp[c, 1] = dfcp[c, 2] = 0.0
                            continue
                        fij, dij = fc[a - start, cg], dfc[a - start, cg]
                        fik, dik = fc[b - start, cg], dfc[b - start, cg]
                        fjk, djk = 1.0, 0.0
                        if narrow:
                            fjk, djk = _fast_cutoff(kind, rjk, rc, inv_rc[cg], alpha)
                        any_cut = True
                        fcp[c] = fij * fik * fjk
                        dfcp[c, 0] = dij * fik * fjk
                        dfcp[c, 1] = fij * dik * fjk
                        dfcp[c, 2] = fij * fik * djk
                    if not any_cut:
                        continue
                    for m in range(ag_m1[g] - ag_m0[g]):
                        eta, rs = a_eta[ag_m0[g] + m], a_rs[ag_m0[g] + m]
                        sq = (rij - rs) ** 2 + (rik - rs) ** 2
                        if narrow:
                            sq += (rjk - rs) ** 2
                        gv = math.exp(-eta * sq)
                        gs[m] = gv
                        dgs[m, 0] = -2.0 * eta * (rij - rs) * gv
                        dgs[m, 1] = -2.0 * eta * (rik - rs) * gv
                        dgs[m, 2] = -2.0 * eta * (rjk - rs) * gv if narrow else 0.0
                    for k in range(ag_k1[g] - ag_k0[g]):
                        lam = a_lam[ag_k0[g] + k]
                        zeta = a_zeta[ag_k0[g] + k]
                        value, lower = _power(1.0 + lam * cos, zeta)
                        ang[k] = value
                        dang[k] = zeta * lam * lower
                    for f in range(ag_f0[g], ag_f1[g]):
                        m, k, c = af_m[f], af_k[f], af_c[f]
                        col = af_col[f]
                        scale = w * af_norm[f]
                        radial = gs[m] * fcp[c]
                        out[i, col] += scale * ang[k] * radial
                        if not jacobian:
                            continue
                        d_cos = scale * dang[k] * radial
                        angular = scale * ang[k]
                        d_ij = angular * (dgs[m, 0] * fcp[c] + gs[m] * dfcp[c, 0])
                        d_ik = angular * (dgs[m, 1] * fcp[c] + gs[m] * dfcp[c, 1])
                        jk = angular * (dgs[m, 2] * fcp[c] + gs[m] * dfcp[c, 2]) * inv_jk
                        cross = d_cos * inv_ij_ik
                        cu = d_ij * inv_ij - d_cos * cos_ij + jk
                        cv = d_ik * inv_ik - d_cos * cos_ik + jk
                        mix = cross - jk
                        for x in range(3):
                            jac[a, col, x] += cu * vec[a, x] + mix * vec[b, x]
                            jac[b, col, x] += cv * vec[b, x] + mix * vec[a, x]
    return out


@njit(cache=True, parallel=True)
def contract(grad, jac, ptr):  # pragma: no cover - compiled
    """dL/dvec (E, 3): row e is sum_f grad[centre(e), f] jac[e, f] (``grad`` (N, W))."""
    out = np.zeros((jac.shape[0], 3))
    width = jac.shape[1]
    for i in prange(ptr.shape[0] - 1):
        for e in range(ptr[i], ptr[i + 1]):
            x0 = 0.0
            x1 = 0.0
            x2 = 0.0
            for f in range(width):
                g = grad[i, f]
                if g != 0.0:
                    x0 += g * jac[e, f, 0]
                    x1 += g * jac[e, f, 1]
                    x2 += g * jac[e, f, 2]
            out[e, 0] = x0
            out[e, 1] = x1
            out[e, 2] = x2
    return out
