r"""The terms of the fused walk (:mod:`mpnn.symmetry.fused_kernels`), in vectorized loops.

For a centre i, an angular group g and a first neighbour j (edge a), the kept partners k are
processed together: their geometry (:func:`partner_geometry`), the group's factors on all of them
(:func:`partner_factors`: cutoff products, one Gaussian per distinct (eta, rs), one power per
distinct (lambda, zeta)), and then either each function's sum (:func:`partner_terms`) or, given
dL/dG, the derivatives of all the group's functions summed per partner and turned into the two
edges' vectors (:func:`partner_gradient`).  Each is a loop over the partners that LLVM vectorizes
(the exponentials of :mod:`mpnn.symmetry.vector_math`).  The radial functions
(:func:`radial_terms`, :func:`radial_gradient`) are loops over the centre's edges, ordered by
neighbour element (:func:`centre_edges`).  The numbers are those of the per-group kernels
(:mod:`mpnn.symmetry.angular_kernels`) up to rounding: sums are reassociated.

Buffers (preallocated by the caller, K columns): ``geo`` (9, K) rows bx, by, bz, r_ik, 1/r_ik,
r_jk, 1/r_jk, cos theta, weight; ``fcp`` (C, K) and ``dfcp`` (C, 3, K) cutoff products and their
derivatives in r_ij, r_ik, r_jk; ``gs`` (M, K); ``ang``, ``dang`` (A, K); ``t`` (6, K).  Group
tables as in :mod:`mpnn.symmetry.fused_kernels`: ``gt`` = (ag_m0, ag_m1, ag_c0, ag_c1, ag_k0,
ag_k1, a_eta, a_rs, a_lam, a_zeta, ac_rc) and ``ft`` = (ag_f0, ag_f1, af_m, af_k, af_c, af_norm,
af_col); the functions of one (eta, rs) and rc are listed together (runs).  ``p``: the block's
first column in these buffers (0 in the fused walk; :mod:`mpnn.symmetry.fused_energy` keeps all
the blocks of a centre one after the other, and reads them back for the gradient); the scratch
``t`` and ``radial`` start at column 0.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from mpnn.symmetry.angular_kernels import _TANH_NORM, _cutoff, _power
from mpnn.symmetry.vector_math import vexp, vexpm1

_BX, _BY, _BZ, _RIK, _INV_IK, _RJK, _INV_JK, _COS, _W = range(9)


@njit(cache=True, inline="always", error_model="numpy")
def vcutoff(kind, r, rc, inv_rc, alpha):  # pragma: no cover - compiled
    """(f_c(r), f_c'(r)) of cutoff type ``kind``, 0 from rc on; branchless (vectorizable) for the
    tanh types 2 and 3, tanh as one expm1."""
    inside = r < rc
    if kind == 2 or kind == 3:
        q = vexpm1(-2.0 * (1.0 - (r if inside else rc) * inv_rc))  # tanh(y) = -expm1(-2y) / (2 + expm1(-2y))
        t = -q / (2.0 + q)
        scale = 1.0 if kind == 2 else _TANH_NORM
        t2 = t * t
        return (scale * t2 * t if inside else 0.0), (
            scale * 3.0 * t2 * (t2 - 1.0) * inv_rc if inside else 0.0
        )
    if not inside:
        return 0.0, 0.0
    return _cutoff(kind, r, rc, alpha)


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def partner_geometry(p, ia, keep, kept, near, weighted, crc, geo, fcp, dfcp):  # pragma: no cover
    """The kept partners' (local indices ``keep[:kept]`` into ``near``, the centre's edges' rows
    x, y, z, r, 1/r, Z_j, then f_c and f_c' of each rc) coordinates, distances r_ik and r_jk,
    their inverses, cos theta_jik and the weights Z_j Z_k (1 unless ``weighted``), into ``geo``;
    f_c(r_ik) and f_c'(r_ik) of the group's cutoffs (``crc``: indices of their rc) into ``fcp[c]``
    and ``dfcp[c, 1]`` (read there by :func:`partner_factors`: its loops then read only
    consecutive elements, which LLVM vectorizes without gathers)."""
    lx, ly, lz, ld, linv, lw = near[0], near[1], near[2], near[3], near[4], near[5]
    ax, ay, az, inv_ij, wa = lx[ia], ly[ia], lz[ia], linv[ia], lw[ia]
    nc, nall = crc.shape[0], (near.shape[0] - 6) // 2
    for q in range(kept):
        ib = keep[p + q]
        x, y, z, iv = lx[ib], ly[ib], lz[ib], linv[ib]
        geo[_BX, p + q], geo[_BY, p + q], geo[_BZ, p + q] = x, y, z
        geo[_RIK, p + q], geo[_INV_IK, p + q] = ld[ib], iv
        dx, dy, dz = x - ax, y - ay, z - az
        s = math.sqrt(dx * dx + dy * dy + dz * dz)
        geo[_RJK, p + q] = s
        geo[_INV_JK, p + q] = 1.0 / s if s > 0.0 else 0.0
        geo[_COS, p + q] = (ax * x + ay * y + az * z) * (inv_ij * iv)
        geo[_W, p + q] = wa * lw[ib] if weighted else 1.0
        for c in range(nc):
            fcp[c, p + q] = near[6 + crc[c], ib]
            dfcp[c, 1, p + q] = near[6 + nall + crc[c], ib]


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def partner_factors(
    p, g, kept, narrow, rij, cut_ij, geo, kind, alpha, rc_all, inv_rc, gt, fcp, dfcp, gs, ang, dang
):  # pragma: no cover - compiled
    """Group ``g``'s factors on the kept partners: for each of its rc, the cutoff products
    f(r_ij) f(r_ik) [f(r_jk)] and their derivatives in r_ij, r_ik, r_jk (``cut_ij`` (2C_all,):
    f_c(r_ij) and f_c'(r_ij) for each rc; f_c(r_ik) and f_c'(r_ik) in ``fcp``, ``dfcp[:, 1]`` from
    :func:`partner_geometry`); for each (eta, rs), exp(-eta sum (r - rs)^2) over the triplet's two
    [three] distances; for each (lambda, zeta), (1 + lambda cos)^zeta and its derivative in cos
    (0 for 1 + lambda cos <= 0)."""
    ag_m0, ag_m1, ag_c0, ag_c1, ag_k0, ag_k1, a_eta, a_rs, a_lam, a_zeta, ac_rc = gt
    rjk, cos = geo[_RJK, p:], geo[_COS, p:]
    nall = rc_all.shape[0]
    for c in range(ag_c1[g] - ag_c0[g]):
        cg = ac_rc[ag_c0[g] + c]
        rc, irc = rc_all[cg], inv_rc[cg]
        fij, dij = cut_ij[cg], cut_ij[nall + cg]
        f, d0, d1, d2 = fcp[c, p:], dfcp[c, 0, p:], dfcp[c, 1, p:], dfcp[c, 2, p:]
        for q in range(kept):
            fjk, djk = 1.0, 0.0
            if narrow:
                fjk, djk = vcutoff(kind, rjk[q], rc, irc, alpha)
            fb = f[q]
            f[q] = fij * fb * fjk
            d0[q] = dij * fb * fjk
            d1[q] = fij * d1[q] * fjk
            d2[q] = fij * fb * djk
    rik = geo[_RIK, p:]
    for m in range(ag_m1[g] - ag_m0[g]):
        eta, rs = a_eta[ag_m0[g] + m], a_rs[ag_m0[g] + m]
        dj = rij - rs
        out = gs[m, p:]
        for q in range(kept):
            s = dj * dj + (rik[q] - rs) * (rik[q] - rs)
            if narrow:
                s += (rjk[q] - rs) * (rjk[q] - rs)
            out[q] = vexp(-eta * s)
    for k in range(ag_k1[g] - ag_k0[g]):
        lam, zeta = a_lam[ag_k0[g] + k], a_zeta[ag_k0[g] + k]
        value, lower = ang[k, p:], dang[k, p:]
        n = int(zeta)
        if n == zeta and 1 <= n <= 64:
            # base^(n-1) by squaring, in one loop (six steps, fully unrolled, cover n <= 64;
            # the bits of n - 1 pick the factors): one pass over the partners instead of n + 1
            e = n - 1
            for q in range(kept):
                base = 1.0 + lam * cos[q]
                power, result = base, 1.0
                for bit in range(6):
                    result = result * power if (e >> bit) & 1 else result
                    power = power * power
                positive = base > 0.0
                value[q] = result * base if positive else 0.0
                lower[q] = zeta * lam * result if positive else 0.0
        else:
            for q in range(kept):
                v, low = _power(1.0 + lam * cos[q], zeta)
                value[q] = v
                lower[q] = zeta * lam * low


@njit(cache=True, error_model="numpy", fastmath={"contract", "reassoc"})
def partner_terms(p, g, i, kept, geo, fcp, gs, ang, ft, out, radial):  # pragma: no cover - compiled
    """Add group ``g``'s functions over the kept partners to G[i]: per run of functions with one
    Gaussian m and cutoff c (the tables list them together), w g_m f_c once into ``radial``
    (K,), then a dot product with each function's angular part."""
    ag_f0, ag_f1, af_m, af_k, af_c, af_norm, af_col = ft
    w = geo[_W, p:]
    m_run, c_run = -1, -1
    for f in range(ag_f0[g], ag_f1[g]):
        m, c = af_m[f], af_c[f]
        if m != m_run or c != c_run:
            gm, fc = gs[m, p:], fcp[c, p:]
            for q in range(kept):
                radial[q] = w[q] * gm[q] * fc[q]
            m_run, c_run = m, c
        am = ang[af_k[f], p:]
        total = 0.0
        for q in range(kept):
            total += am[q] * radial[q]
        out[i, af_col[f]] += af_norm[f] * total


@njit(cache=True, error_model="numpy", fastmath={"contract", "reassoc"})
def partner_gradient(
    p, g, i, ia, kept, narrow, rij, inv_ij, ax, ay, az, geo, keep, fcp, dfcp, gs, ang, dang, gt, ft, grad, t,
    dl,
):  # pragma: no cover - compiled
    """Add sum_f dL/dG[i, f] dG[i, f]/dvec of group ``g``'s functions over the kept partners
    to ``dl`` (3, count), the centre's edges in local order (``ia``: edge i -> j, vector (ax, ay,
    az); ``keep``: the partners' local indices).  Per partner, the functions' derivatives in
    cos theta, r_ij, r_ik and r_jk are summed first (``t`` (6, K), vectorized over the partners;
    the functions of one Gaussian and cutoff through their weighted angular parts),
    then turned into the two edges' vectors once: with u = r_ij, v = r_ik,
    dL/du += c_u u + m v and dL/dv += c_v v + m u (the formulas of
    :func:`~mpnn.symmetry.angular_kernels.angular_forward_jacobian`)."""
    ag_m0, a_eta, a_rs = gt[0], gt[6], gt[7]
    ag_f0, ag_f1, af_m, af_k, af_c, af_norm, af_col = ft
    bx, by, bz, rik, inv_ik = geo[_BX, p:], geo[_BY, p:], geo[_BZ, p:], geo[_RIK, p:], geo[_INV_IK, p:]
    rjk, inv_jk, cos, w = geo[_RJK, p:], geo[_INV_JK, p:], geo[_COS, p:], geo[_W, p:]
    t_cos, t_ij, t_ik, t_jk, sum_a, sum_c = t[0], t[1], t[2], t[3], t[4], t[5]
    for q in range(kept):
        t_cos[q] = t_ij[q] = t_ik[q] = t_jk[q] = sum_a[q] = sum_c[q] = 0.0
    f1 = ag_f1[g]
    for f in range(ag_f0[g], f1):
        # the weighted angular parts of a run of functions with one Gaussian m and cutoff c (the
        # tables list them together), then the run's terms at once
        m, c = af_m[f], af_c[f]
        weight = grad[i, af_col[f]] * af_norm[f]
        am, dm = ang[af_k[f], p:], dang[af_k[f], p:]
        for q in range(kept):
            sum_a[q] += weight * am[q]
            sum_c[q] += weight * dm[q]
        if f + 1 < f1 and af_m[f + 1] == m and af_c[f + 1] == c:
            continue
        gm, fc = gs[m, p:], fcp[c, p:]
        d0, d1, d2 = dfcp[c, 0, p:], dfcp[c, 1, p:], dfcp[c, 2, p:]
        eta, rs = a_eta[ag_m0[g] + m], a_rs[ag_m0[g] + m]
        e_ij = -2.0 * eta * (rij - rs)
        for q in range(kept):
            t_cos[q] += gm[q] * fc[q] * sum_c[q]
            ga = gm[q] * sum_a[q]
            t_ij[q] += ga * (e_ij * fc[q] + d0[q])
            t_ik[q] += ga * (-2.0 * eta * (rik[q] - rs) * fc[q] + d1[q])
            if narrow:
                t_jk[q] += ga * (-2.0 * eta * (rjk[q] - rs) * fc[q] + d2[q])
            sum_a[q] = sum_c[q] = 0.0
    s_cu, sx, sy, sz = 0.0, 0.0, 0.0, 0.0
    inv_ij2 = inv_ij * inv_ij
    for q in range(kept):
        jk = w[q] * t_jk[q] * inv_jk[q]
        tc = w[q] * t_cos[q]
        cu = w[q] * t_ij[q] * inv_ij - tc * cos[q] * inv_ij2 + jk
        cv = w[q] * t_ik[q] * inv_ik[q] - tc * cos[q] * inv_ik[q] * inv_ik[q] + jk
        mix = tc * inv_ij * inv_ik[q] - jk
        s_cu += cu
        sx += mix * bx[q]
        sy += mix * by[q]
        sz += mix * bz[q]
        t_cos[q], t_ij[q] = cv, mix  # reused: the partners' updates below
    dl[0, ia] += s_cu * ax + sx
    dl[1, ia] += s_cu * ay + sy
    dl[2, ia] += s_cu * az + sz
    for q in range(kept):
        b, cv, mix = keep[p + q], t_cos[q], t_ij[q]
        dl[0, b] += cv * bx[q] + mix * ax
        dl[1, b] += cv * by[q] + mix * ay
        dl[2, b] += cv * bz[q] + mix * az


@njit(cache=True, error_model="numpy", fastmath={"contract", "reassoc"})
def radial_terms(g, i, lo, hi, ordered, fc, rt, out):  # pragma: no cover - compiled
    """Add radial group ``g``'s functions to G[i]: the sum of w exp(-eta (r - rs)^2) f_c(r) over
    the centre's edges ``lo:hi`` in the order of :func:`centre_edges` (those of the group's
    neighbour element, or all with w = Z_j for a group of any neighbour), with its ``ordered``
    (6, K) and ``fc`` (C, K); ``rt`` = (rg_e, rg_f0, rg_f1, rf_eta, rf_rs, rf_c, rf_col)."""
    rg_e, rg_f0, rg_f1, rf_eta, rf_rs, rf_c, rf_col = rt
    weighted = rg_e[g] < 0
    dist, weight = ordered[3], ordered[5]
    for f in range(rg_f0[g], rg_f1[g]):
        eta, rs, fcut = rf_eta[f], rf_rs[f], fc[rf_c[f]]
        total = 0.0
        for q in range(lo, hi):
            d = dist[q] - rs
            gauss = vexp(-eta * d * d)
            if weighted:
                gauss *= weight[q]
            total += gauss * fcut[q]
        out[i, rf_col[f]] += total


@njit(cache=True, error_model="numpy", fastmath={"contract", "reassoc"})
def radial_gradient(g, i, lo, hi, ordered, fc, dfc, rt, grad, dr):  # pragma: no cover - compiled
    """Add sum_f dL/dG[i, f] dG[i, f]/dr of radial group ``g``'s functions to ``dr`` (K,), per
    edge in the order of :func:`centre_edges` (arguments as :func:`radial_terms`)."""
    rg_e, rg_f0, rg_f1, rf_eta, rf_rs, rf_c, rf_col = rt
    weighted = rg_e[g] < 0
    dist, weight = ordered[3], ordered[5]
    for f in range(rg_f0[g], rg_f1[g]):
        scale = grad[i, rf_col[f]]
        if scale == 0.0:
            continue
        eta, rs, fcut, dcut = rf_eta[f], rf_rs[f], fc[rf_c[f]], dfc[rf_c[f]]
        for q in range(lo, hi):
            d = dist[q] - rs
            gauss = scale * vexp(-eta * d * d)
            if weighted:
                gauss *= weight[q]
            dr[q] += gauss * (dcut[q] - 2.0 * eta * d * fcut[q])


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def centre_edges(
    start, stop, vec, dist, nspecies, nweight, nsp, rc_all, inv_rc, kind, alpha
):  # pragma: no cover
    """A centre's edges [start, stop) ordered by neighbour species (counting sort): ``first``
    (S+1,) block starts, ``order`` (K,) edge indices, ``ordered`` (6, K) rows x, y, z, r, 1/r,
    Z_j, and f_c, f_c' (C, K) for each rc of ``rc_all``."""
    count = stop - start
    first = np.zeros(nsp + 1, dtype=np.int64)
    for a in range(start, stop):
        first[nspecies[a] + 1] += 1
    for t in range(nsp):
        first[t + 1] += first[t]
    fill = first[:nsp].copy()
    order = np.empty(count, dtype=np.int64)
    for a in range(start, stop):
        order[fill[nspecies[a]]] = a
        fill[nspecies[a]] += 1
    ordered = np.empty((6, count))
    for q in range(count):
        a = order[q]
        ordered[0, q], ordered[1, q], ordered[2, q] = vec[a, 0], vec[a, 1], vec[a, 2]
        ordered[3, q], ordered[5, q] = dist[a], nweight[a]
    r = ordered[3]
    for q in range(count):
        ordered[4, q] = 1.0 / r[q]
    fc, dfc = np.empty((rc_all.shape[0], count)), np.empty((rc_all.shape[0], count))
    for c in range(rc_all.shape[0]):
        for q in range(count):
            fc[c, q], dfc[c, q] = vcutoff(kind, r[q], rc_all[c], inv_rc[c], alpha)
    return first, order, ordered, fc, dfc
