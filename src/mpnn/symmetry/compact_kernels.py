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
vectorizes, to m rounded up to a multiple of 8 (Q = 0 on the extra lanes: no scalar remainder
loop, which cost twice the vector part where m < 32; a quarter of the blocks have m <= 12).  The
forward walk evaluates three angle windows per loop.  Floating point: products and sums may be
fused (``fastmath={"contract"}``), and sums may be reassociated (``"reassoc"``) in the forward
walk's dot products (functions of their own) and in the whole backward walk, whose last loop
sums over the partners (the flag reaches the functions inlined there too, the arc cosine
included: moving that loop into a function of its own cost 14 %); nothing else is relaxed (NaN
and infinity keep their meaning).  The results equal the PyTorch path's to about 1e-15
relative (tested to 1e-12).

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

import numpy as np
from numba import njit, prange

from mpnn.symmetry.compact_kernel_parts import (
    _centre_edges,
    _dot3,
    _group_factors,
    _pairs,
)


@njit(cache=True, parallel=True, error_model="numpy", fastmath={"contract"})
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
        cp = count + 8  # partner loops run to a multiple of 8 (lanes after the last partner 0)
        fg, dfg = np.zeros((nr_max, cp)), np.zeros((nr_max, cp))
        theta, cosv, dth, rjk = np.empty(cp), np.empty(cp), np.empty(cp), np.empty(cp)
        na_pad = 3 * ((na_max + 2) // 3)  # angle windows in blocks of three (padded with 0)
        qv, qc = np.zeros((na_pad, cp)), np.zeros((na_pad, cp))
        fk, dfk, fjk = np.empty((nr_max, cp)), np.empty((nr_max, cp)), np.empty((nr_max, cp))
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
                _pairs(
                    ia, lo, m, xyz, table, g, narrow, fg, dfg, theta, cosv, dth, rjk, qv, qc, fk, dfk, fjk,
                    False,
                )  # fmt: skip
                mp = (m + 7) // 8 * 8
                for rho in range(nr):
                    fa = fg[rho, ia]
                    if fa == 0.0:
                        continue
                    fb = fk[rho, :mp] if narrow else fg[rho, lo : lo + mp]
                    for al in range(0, na, 3):
                        d0, d1, d2 = _dot3(fb, qv[al, :mp], qv[al + 1, :mp], qv[al + 2, :mp], mp)
                        grid[rho * na + al] += fa * d0
                        if al + 1 < na:
                            grid[rho * na + al + 1] += fa * d1
                        if al + 2 < na:
                            grid[rho * na + al + 2] += fa * d2
            g0 = ag_g0[g]
            for cell in range(nr * na):
                for c in range(cell_ptr[g0 + cell], cell_ptr[g0 + cell + 1]):
                    out[i, cell_col[c]] += grid[cell]


@njit(cache=True, parallel=True, error_model="numpy", fastmath={"contract", "reassoc"})
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
        cp = count + 8  # partner loops run to a multiple of 8 (lanes after the last partner 0)
        dl = np.zeros((3, cp))  # dL/dvec of the local edges
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
        fg, dfg = np.zeros((nr_max, cp)), np.zeros((nr_max, cp))
        theta, cosv, dth, rjk = np.empty(cp), np.empty(cp), np.empty(cp), np.empty(cp)
        na_pad = 3 * ((na_max + 2) // 3)  # angle windows in blocks of three (padded with 0)
        qv, qc = np.zeros((na_pad, cp)), np.zeros((na_pad, cp))
        fk, dfk, fjk = np.empty((nr_max, cp)), np.empty((nr_max, cp)), np.empty((nr_max, cp))
        u = np.empty((2, cp))
        t = np.empty((4, cp))  # d term / d(cos, r_ij, r_ik, r_jk) summed over the functions
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
                _pairs(
                    ia, lo, m, xyz, table, g, narrow, fg, dfg, theta, cosv, dth, rjk, qv, qc, fk, dfk, fjk,
                    True,
                )  # fmt: skip
                m = (m + 7) // 8 * 8  # the lanes from the old m on hold Q = 0: they add 0
                t0, t1, t2, t3 = t[0, :m], t[1, :m], t[2, :m], t[3, :m]
                t0[:] = 0.0
                t1[:] = 0.0
                t2[:] = 0.0
                if narrow:
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
                    fb = fk[rho, :m] if narrow else fg[rho, lo : lo + m]
                    db = dfk[rho, :m] if narrow else dfg[rho, lo : lo + m]
                    for k in range(m):
                        t0[k] += fa * fb[k] * vc[k]
                        t1[k] += da * fb[k] * v[k]
                        t2[k] += fa * db[k] * v[k]
                    if narrow:
                        ej = fjk[rho, :m]
                        for k in range(m):
                            t3[k] += fa * ej[k] * v[k]
                ax, ay, az, inv_a = xyz[0, ia], xyz[1, ia], xyz[2, ia], xyz[3, ia]
                hi = lo + m
                bx, by, bz, inv_b = xyz[0, lo:hi], xyz[1, lo:hi], xyz[2, lo:hi], xyz[3, lo:hi]
                lx, ly, lz = dl[0, lo:hi], dl[1, lo:hi], dl[2, lo:hi]
                cs, r = cosv[:m], rjk[:m]
                total, sx, sy, sz = 0.0, 0.0, 0.0, 0.0
                for k in range(m):
                    jk = 0.0
                    if narrow:
                        jk = t3[k] / r[k] if r[k] > 0.0 else 0.0
                    tc = t0[k] * cs[k]
                    ib = inv_b[k]
                    total += t1[k] * inv_a - tc * inv_a * inv_a + jk
                    cv = t2[k] * ib - tc * ib * ib + jk
                    mx = t0[k] * inv_a * ib - jk
                    sx += mx * bx[k]
                    sy += mx * by[k]
                    sz += mx * bz[k]
                    lx[k] += cv * bx[k] + mx * ax
                    ly[k] += cv * by[k] + mx * ay
                    lz[k] += cv * bz[k] + mx * az
                dl[0, ia] += total * ax + sx
                dl[1, ia] += total * ay + sy
                dl[2, ia] += total * az + sz
        for q in range(count):
            a = local[q]
            dvec[a, 0] += dl[0, q]
            dvec[a, 1] += dl[1, q]
            dvec[a, 2] += dl[2, q]
