r"""One compiled walk for all the Gaussian functions of a message (types 2, 12, 3, 9, 13).

:mod:`mpnn.symmetry.angular_kernels` walks the triplets of every centre once per *group* (centre
element, neighbour pair), rejecting the pairs of other neighbour elements, and each group costs
a Python call, an autograd node and an (E, F, 3) Jacobian.  Here one call computes every radial
and angular function of every element: each centre's edge pairs are walked once and each pair
feeds the angular groups of its neighbour elements; the radial sums take one pass over the edges.
The products shared within a group are computed once per pair, as in the per-group kernels: one
exponential per distinct (eta, rs), one power per distinct (lambda, zeta), one cutoff product
per distinct rc.  Each first neighbour's partners are processed together, in loops that LLVM
vectorizes (:mod:`mpnn.symmetry.fused_terms`): 1.8 times faster on n2p2's water box than the
same walk one triplet at a time.

:func:`fused_walk` returns G (N, W) (column ``col`` of each function, W the message's width);
given dL/dG (N, W) it walks the same pairs again and adds sum_f dL/dG[i, f] dG[i, f]/d(edge
vector) to (E, 3) instead (for each edge e, i its centre: G_i depends only on the edges that end
at i), the functions' derivatives summed per partner before they are turned into vectors.  Rows
of a centre are written by that centre's iteration only, so the centres are distributed over
threads.

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

import numpy as np
from numba import njit, prange

from mpnn.symmetry.fused_terms import (
    _W,
    centre_edges,
    partner_factors,
    partner_geometry,
    partner_gradient,
    partner_terms,
    radial_gradient,
    radial_terms,
)


@njit(cache=True, parallel=True, error_model="numpy")
def fused_walk(
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
    grad,
    dvec,
):  # pragma: no cover - compiled
    """G (N, width), or, where ``grad`` (N, width) has rows, sum_f grad[i, f] dG[i, f]/dvec[e]
    added to ``dvec`` (E, 3) (and G not computed: (0, width)).  See the module docstring."""
    n = ptr.shape[0] - 1
    backward = grad.shape[0] > 0
    out = np.zeros((0 if backward else n, width))
    inv_rc = 1.0 / rc_all
    nsp = rcmax.shape[0]
    nm_max, nk_max, nc_max = 1, 1, 1
    for g in range(ag_centre.shape[0]):
        nm_max = max(nm_max, ag_m1[g] - ag_m0[g])
        nk_max = max(nk_max, ag_k1[g] - ag_k0[g])
        nc_max = max(nc_max, ag_c1[g] - ag_c0[g])
    gt = (ag_m0, ag_m1, ag_c0, ag_c1, ag_k0, ag_k1, a_eta, a_rs, a_lam, a_zeta, ac_rc)
    ft = (ag_f0, ag_f1, af_m, af_k, af_c, af_norm, af_col)
    rt = (rg_e, rg_f0, rg_f1, rf_eta, rf_rs, rf_c, rf_col)
    for i in prange(n):
        s = species[i]
        start, stop = ptr[i], ptr[i + 1]
        first_all, order, ordered, ofc, odfc = centre_edges(
            start, stop, vec, dist, nspecies, nweight, nsp, rc_all, inv_rc, kind, alpha
        )
        # radial functions: one pass over the edges of the group's neighbour element per function
        dr = np.zeros(stop - start if backward else 0)  # dL/dr of the edges, in that order
        for g in range(rg_centre.shape[0]):
            if rg_centre[g] == s:
                e = rg_e[g]
                lo, hi = (0, stop - start) if e < 0 else (first_all[e], first_all[e + 1])
                if backward:
                    radial_gradient(g, i, lo, hi, ordered, ofc, odfc, rt, grad, dr)
                else:
                    radial_terms(g, i, lo, hi, ordered, ofc, rt, out)
        if backward:
            for q in range(stop - start):
                a, scale = order[q], dr[q] * ordered[4, q]
                dvec[a, 0] += scale * ordered[0, q]
                dvec[a, 1] += scale * ordered[1, q]
                dvec[a, 2] += scale * ordered[2, q]
        if s < 0 or s >= nsp or rcmax[s] <= 0.0:
            continue
        first, local, near = angular_edges(start, stop, rcmax[s], nsp, first_all, order, ordered, ofc, odfc)
        count = local.shape[0]
        cp = count + 8  # the partner loops run to a multiple of 8 (see block_factors)
        keep = np.empty(cp, dtype=np.int64)
        geo = np.empty((9, cp))
        fcp, dfcp = np.empty((nc_max, cp)), np.empty((nc_max, 3, cp))
        gs, ang, dang = np.empty((nm_max, cp)), np.empty((nk_max, cp)), np.empty((nk_max, cp))
        t6, dl = np.empty((6, cp)), np.zeros((3, count if backward else 0))
        for g in range(ag_centre.shape[0]):
            if ag_centre[g] != s:
                continue
            e1 = ag_e1[g]
            a_lo, a_hi = (0, first[nsp]) if e1 < 0 else (first[e1], first[e1 + 1])
            for ia in range(a_lo, a_hi):
                kept = block_factors(
                    g, ia, a_hi, first, near, kind, alpha, rc_all, inv_rc, ag_e1, ag_e2, ag_narrow, gt,
                    keep, geo, fcp, dfcp, gs, ang, dang,
                )  # fmt: skip
                if kept == 0:
                    continue
                if backward:
                    lx, ly, lz, linv = near[0], near[1], near[2], near[4]
                    partner_gradient(
                        0, g, i, ia, kept, ag_narrow[g], near[3, ia], linv[ia], lx[ia], ly[ia], lz[ia],
                        geo, keep, fcp, dfcp, gs, ang, dang, gt, ft, grad, t6, dl,
                    )  # fmt: skip
                else:
                    partner_terms(0, g, i, kept, geo, fcp, gs, ang, ft, out, t6[0])
        for q in range(count if backward else 0):
            a = local[q]
            dvec[a, 0] += dl[0, q]
            dvec[a, 1] += dl[1, q]
            dvec[a, 2] += dl[2, q]
    return out


@njit(cache=True, error_model="numpy")
def angular_edges(start, stop, cut, nsp, first_all, order, ordered, fc, dfc):  # pragma: no cover
    """The centre's edges shorter than ``cut`` (its largest angular rc), still ordered by neighbour
    species (the pairs of one group are then blocks, walked without testing each pair's
    elements), from :func:`~mpnn.symmetry.fused_terms.centre_edges`' results: ``first`` (S+1,)
    block starts, ``local`` (K,) edge indices and ``near`` (6 + 2C, K): rows x, y, z, r, 1/r, Z_j,
    then f_c and f_c' for each rc."""
    first = np.zeros(nsp + 1, dtype=np.int64)
    pick = np.empty(stop - start, dtype=np.int64)
    count = 0
    for t in range(nsp):
        first[t] = count
        for q in range(first_all[t], first_all[t + 1]):
            pick[count] = q
            count += ordered[3, q] < cut
    first[nsp] = count
    pick = pick[:count]
    nc = fc.shape[0]
    near = np.empty((6 + 2 * nc, count))
    for q in range(count):
        p = pick[q]
        for r in range(6):
            near[r, q] = ordered[r, p]
        for c in range(nc):
            near[6 + c, q] = fc[c, p]
            near[6 + nc + c, q] = dfc[c, p]
    return first, order[pick], near


@njit(cache=True, error_model="numpy", inline="always")
def block_factors(
    g, ia, a_hi, first, near, kind, alpha, rc_all, inv_rc, ag_e1, ag_e2, ag_narrow, gt, keep, geo, fcp, dfcp,
    gs, ang, dang,
):  # pragma: no cover - compiled
    """Angular group ``g``'s partners of the first neighbour ``ia`` (local index; ``a_hi`` the end
    of its species' block): their local indices into ``keep`` (:func:`select_partners`), their
    geometry and factors into ``geo``, ``fcp``, ... (:func:`fill_block`); returns their number
    (padded), 0 where there are none."""
    kept, padded = select_partners(g, ia, a_hi, first, near, rc_all, ag_e1, ag_e2, ag_narrow, gt, keep)
    if kept > 0:
        fill_block(0, g, ia, kept, padded, keep, near, kind, alpha, rc_all, inv_rc, ag_e1, ag_narrow, gt,
                   geo, fcp, dfcp, gs, ang, dang)  # fmt: skip
    return padded


@njit(cache=True, error_model="numpy", inline="always")
def select_partners(g, ia, a_hi, first, near, rc_all, ag_e1, ag_e2, ag_narrow, gt, keep):  # pragma: no cover
    """(kept, padded): the number of angular group ``g``'s partners of the first neighbour ``ia``
    (local index into ``near``, the centre's edges of :func:`angular_edges`; ``a_hi`` the end of
    its species' block), their local indices in ``keep[:kept]``, and that number padded: from 8
    on, to a multiple of 8 with copies of the first (given weight 0 by :func:`fill_block`: finite,
    adding 0), so that the partner loops have no scalar remainder loops, which cost twice the
    vector part where there are fewer than 32 (fewer than 8 run faster as they are: a
    molecule's).  (0, 0) where there are none."""
    ag_c0, ag_c1, ac_rc = gt[2], gt[3], gt[10]
    lx, ly, lz, ld = near[0], near[1], near[2], near[3]
    gcut = 0.0
    for c in range(ag_c0[g], ag_c1[g]):
        gcut = max(gcut, rc_all[ac_rc[c]])
    if ld[ia] >= gcut:
        return 0, 0
    e1, e2 = ag_e1[g], ag_e2[g]
    wide, gcut2 = not ag_narrow[g], gcut * gcut
    b_lo, b_hi = (ia + 1, a_hi) if e1 < 0 or e1 == e2 else (first[e2], first[e2 + 1])
    # the partners within the cutoff first, without branches (half of the pairs of a narrow
    # family fail r_jk < rc: a mispredicted branch each)
    ax, ay, az = lx[ia], ly[ia], lz[ia]
    kept = 0
    for ib in range(b_lo, b_hi):
        dx, dy, dz = lx[ib] - ax, ly[ib] - ay, lz[ib] - az
        keep[kept] = ib
        kept += (ld[ib] < gcut) & (wide | (dx * dx + dy * dy + dz * dz < gcut2))
    padded = kept if kept < 8 else (kept + 7) // 8 * 8
    for q in range(kept, padded):
        keep[q] = keep[0]
    return kept, padded


@njit(cache=True, error_model="numpy", inline="always")
def fill_block(
    p, g, ia, kept, padded, keep, near, kind, alpha, rc_all, inv_rc, ag_e1, ag_narrow, gt, geo, fcp, dfcp, gs,
    ang, dang,
):  # pragma: no cover - compiled
    """The geometry (weight 0 from ``kept`` on) and factors of the ``padded`` partners ``keep``
    of the first neighbour ``ia`` in angular group ``g``, into the columns from ``p`` on
    (:func:`~mpnn.symmetry.fused_terms.partner_geometry`,
    :func:`~mpnn.symmetry.fused_terms.partner_factors`)."""
    ac_rc = gt[10]
    crc = ac_rc[gt[2][g] : gt[3][g]]
    partner_geometry(p, ia, keep, padded, near, ag_e1[g] < 0, crc, geo, fcp, dfcp)
    for q in range(kept, padded):
        geo[_W, p + q] = 0.0
    partner_factors(
        p, g, padded, ag_narrow[g], near[3, ia], near[6:, ia], geo, kind, alpha, rc_all, inv_rc, gt, fcp,
        dfcp, gs, ang, dang,
    )  # fmt: skip
