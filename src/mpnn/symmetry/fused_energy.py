r"""An HDNNP's energies and forces in one compiled walk: functions, networks and gradient per centre.

:func:`mpnn.potentials.hdnnp_forces.evaluate_hdnnp` otherwise walks the triplets twice: once for G
(:func:`~mpnn.symmetry.fused_kernels.fused_walk`), and, after the networks gave dE/dG, once more
to contract dE/dG with dG/d(edge vector).  The second walk recomputes each triplet's partners,
geometry, cutoff products, Gaussians and angular powers: on n2p2's water box these are more than
half of it.  An atom's energy depends only on its own row of G, so :func:`energy_walk` does it
all per centre i: it computes G_i, keeps each block of partners' geometry and factors (about
0.5 MB for an oxygen of n2p2's water box, mostly cached while it is read back), runs i's element network
forwards and backwards on the scaled G_i (n2p2's activations; ``normalize_nodes``), and walks
the kept blocks with dE_i/dG_i, adding dE_i/d(edge vector) for the edges centred on i.

The numbers are those of the two walks and the numpy networks of
:mod:`mpnn.potentials.hdnnp_forces` up to the order of sums.  Centres are distributed over
threads in chunks, each with its own buffers.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from mpnn.symmetry.fused_kernels import angular_edges, fill_block, select_partners
from mpnn.symmetry.fused_terms import (
    centre_edges,
    partner_gradient,
    partner_terms,
    radial_gradient,
    radial_terms,
)

#: n2p2's activation letters (:data:`mpnn.updates.element_mlp.ACTIVATIONS`) as the codes of
#: :func:`activation`
ACTIVATION_CODES = {letter: code for code, letter in enumerate("ltsprgcSeh")}


@njit(cache=True, error_model="numpy")
def _sigmoid(z):  # pragma: no cover - compiled
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@njit(cache=True, error_model="numpy")
def activation(code, z):  # pragma: no cover - compiled
    """(f(z), f'(z)) of the activation ``code`` (:data:`ACTIVATION_CODES`)."""
    if code == 0:
        return z, 1.0
    if code == 1:
        y = math.tanh(z)
        return y, 1.0 - y * y
    if code == 2:
        y = _sigmoid(z)
        return y, y * (1.0 - y)
    if code == 3:  # softplus, log(1 + e^z) without overflow
        return max(z, 0.0) + math.log1p(math.exp(-abs(z))), _sigmoid(z)
    if code == 4:
        return max(z, 0.0), 1.0 if z > 0.0 else 0.0
    if code == 5:
        y = math.exp(-0.5 * z * z)
        return y, -z * y
    if code == 6:
        return math.cos(z), -math.sin(z)
    if code == 7:
        y = 1.0 - _sigmoid(z)
        return y, -y * (1.0 - y)
    if code == 8:
        y = math.exp(-z)
        return y, -y
    return z * z, 2.0 * z


@njit(cache=True, error_model="numpy")
def network_gradient(s, x, nets, dy, ys, back):  # pragma: no cover - compiled
    """(output, d(output)/dx) of element ``s``'s network on ``x`` (its inputs, n_in of its first
    layer); the derivative is a row of ``back``, its first n_in entries.  ``nets`` = (first
    (S+1,) layer ranges, n_in, n_out, weight offsets, bias offsets, activation codes (per
    layer), normalize (S,), weights (flat, each layer's (n_out, n_in) row-major), the same
    transposed ((n_in, n_out) each), biases); ``dy``, ``ys`` (L, H) and ``back`` (2, H)
    scratch.  Each layer y = f((W x + b) [/ n_in]).  Both passes run over rows of the weights
    (W x as a sum of scaled rows of W^T): loops that vectorize without reassociating sums."""
    first, n_in, n_out, w_off, b_off, act, normalize, weights, transposed, biases = nets
    lo, hi = first[s], first[s + 1]
    for layer in range(lo, hi):
        a, b, w, code = n_in[layer], n_out[layer], w_off[layer], act[layer]
        row = layer - lo
        inputs = x if layer == lo else ys[row - 1]
        rows = transposed[w : w + a * b].reshape((a, b))
        z = ys[row]  # the sums first, then the outputs in their place
        for o in range(b):
            z[o] = 0.0
        for j in range(a):
            xj = inputs[j]
            for o in range(b):
                z[o] += rows[j, o] * xj
        divide = float(a) if normalize[s] else 1.0
        for o in range(b):  # the bias last, as numpy's x @ W.T + b (an overflow stays one)
            y, d = activation(code, (z[o] + biases[b_off[layer] + o]) / divide)
            ys[row, o], dy[row, o] = y, d / divide
    output = ys[hi - 1 - lo, 0]
    current = back[0]
    current[0] = 1.0
    for layer in range(hi - 1, lo - 1, -1):
        a, b, w = n_in[layer], n_out[layer], w_off[layer]
        row = layer - lo
        rows = weights[w : w + a * b].reshape((b, a))
        nxt = back[(hi - layer) % 2]
        for j in range(a):
            nxt[j] = 0.0
        for o in range(b):
            t = current[o] * dy[row, o]
            for j in range(a):
                nxt[j] += t * rows[o, j]
        current = nxt
    return output, current


@njit(cache=True, parallel=True, error_model="numpy")
def energy_walk(
    vec, dist, ptr, species, nspecies, nweight, table, scaling, nets, scale, offsets, raw, energies, dvec
):  # pragma: no cover - compiled
    """Raw G (N, W) into ``raw`` (zeros on entry), atomic energies (N,) into ``energies`` (of the
    atoms whose species has a network: every atom of a model's batch) and
    dE/d(edge vector) added to ``dvec`` (E, 3), in the unit of ``vec``.  ``table``: the fused
    walk's Gaussian tables (:func:`mpnn.symmetry.fused.tables`); ``scaling`` = (min, ref,
    factor), each (S, W): g = min + factor (G - ref); ``nets``: the element networks
    (:func:`network_gradient`); the energy is scale * output + offsets[s]."""
    (rc_all, kind, alpha, rg_centre, rg_e, rg_f0, rg_f1, rf_eta, rf_rs, rf_c, rf_col, ag_centre, ag_e1,
     ag_e2, ag_narrow, ag_m0, ag_m1, ag_k0, ag_k1, ag_c0, ag_c1, ag_f0, ag_f1, a_eta, a_rs, a_lam, a_zeta,
     ac_rc, af_m, af_k, af_c, af_norm, af_col, rcmax) = table  # fmt: skip
    smin, sref, sfac = scaling
    n, width = raw.shape
    inv_rc = 1.0 / rc_all
    nsp = rcmax.shape[0]
    gt = (ag_m0, ag_m1, ag_c0, ag_c1, ag_k0, ag_k1, a_eta, a_rs, a_lam, a_zeta, ac_rc)
    ft = (ag_f0, ag_f1, af_m, af_k, af_c, af_norm, af_col)
    rt = (rg_e, rg_f0, rg_f1, rf_eta, rf_rs, rf_c, rf_col)
    hidden = max(width, np.max(nets[2]), 1)
    layers = np.max(nets[0][1:] - nets[0][:-1])
    nm_max, nk_max, nc_max = 1, 1, 1
    for g in range(ag_centre.shape[0]):
        nm_max = max(nm_max, ag_m1[g] - ag_m0[g])
        nk_max = max(nk_max, ag_k1[g] - ag_k0[g])
        nc_max = max(nc_max, ag_c1[g] - ag_c0[g])
    grad = np.zeros((n, width))  # dE_i/dG_i, row i written by centre i
    chunks = min(n, 64)
    for chunk in prange(chunks):
        kept_blocks = _blocks(256 + 40, nc_max, nm_max, nk_max)  # grown as needed
        spans = np.empty((4, 16), dtype=np.int64)  # g, ia, padded partners, first column of each block
        x, back = np.empty(hidden), np.empty((2, hidden))
        dy, ys = np.empty((layers, hidden)), np.empty((layers, hidden))
        for i in range(chunk * n // chunks, (chunk + 1) * n // chunks):
            s = species[i]
            start, stop = ptr[i], ptr[i + 1]
            first_all, order, ordered, ofc, odfc = centre_edges(
                start, stop, vec, dist, nspecies, nweight, nsp, rc_all, inv_rc, kind, alpha
            )
            for g in range(rg_centre.shape[0]):
                if rg_centre[g] == s:
                    e = rg_e[g]
                    lo, hi = (0, stop - start) if e < 0 else (first_all[e], first_all[e + 1])
                    radial_terms(g, i, lo, hi, ordered, ofc, rt, raw)
            cut = rcmax[s] if 0 <= s < nsp else 0.0
            first, local, near = angular_edges(start, stop, cut, nsp, first_all, order, ordered, ofc, odfc)
            count, nb, used = local.shape[0], 0, 0
            select = np.empty(count + 8, dtype=np.int64)
            t6 = np.empty((6, count + 8))
            for g in range(ag_centre.shape[0] if cut > 0.0 else 0):
                if ag_centre[g] != s:
                    continue
                e1 = ag_e1[g]
                a_lo, a_hi = (0, first[nsp]) if e1 < 0 else (first[e1], first[e1 + 1])
                for ia in range(a_lo, a_hi):
                    kept, padded = select_partners(
                        g, ia, a_hi, first, near, rc_all, ag_e1, ag_e2, ag_narrow, gt, select
                    )
                    if kept == 0:
                        continue
                    if kept_blocks[0].shape[0] < used + padded:  # grown, the blocks kept so far copied
                        kept_blocks = _grown(kept_blocks, used, 2 * (used + padded) // 8 * 8 + 40)
                    if spans.shape[1] <= nb:
                        spans = _more_spans(spans, nb)
                    keep, geo, fcp, dfcp, gs, ang, dang = kept_blocks
                    for q in range(padded):  # (loops, not slices: no array analysis in the parallel body)
                        keep[used + q] = select[q]
                    fill_block(
                        used, g, ia, kept, padded, keep, near, kind, alpha, rc_all, inv_rc, ag_e1, ag_narrow,
                        gt, geo, fcp, dfcp, gs, ang, dang,
                    )  # fmt: skip
                    partner_terms(used, g, i, padded, geo, fcp, gs, ang, ft, raw, t6[0])
                    spans[0, nb], spans[1, nb], spans[2, nb], spans[3, nb] = g, ia, padded, used
                    nb += 1
                    used += padded
            # the element network on the scaled functions: energy and dE/dG_i
            if 0 <= s < nets[0].shape[0] - 1:
                size = nets[1][nets[0][s]]
                for f in range(size):
                    x[f] = smin[s, f] + sfac[s, f] * (raw[i, f] - sref[s, f])
                output, dx = network_gradient(s, x, nets, dy, ys, back)
                energies[i] = scale * output + offsets[s]
                for f in range(size):
                    grad[i, f] = scale * dx[f] * sfac[s, f]
            # dE_i/d(edge vector), the radial functions' then the kept blocks'
            dr = np.zeros(stop - start)
            for g in range(rg_centre.shape[0]):
                if rg_centre[g] == s:
                    e = rg_e[g]
                    lo, hi = (0, stop - start) if e < 0 else (first_all[e], first_all[e + 1])
                    radial_gradient(g, i, lo, hi, ordered, ofc, odfc, rt, grad, dr)
            for q in range(stop - start):
                a, d = order[q], dr[q] * ordered[4, q]
                dvec[a, 0] += d * ordered[0, q]
                dvec[a, 1] += d * ordered[1, q]
                dvec[a, 2] += d * ordered[2, q]
            dl = np.zeros((3, count))
            lx, ly, lz, ld, linv = near[0], near[1], near[2], near[3], near[4]
            keep, geo, fcp, dfcp, gs, ang, dang = kept_blocks
            for b in range(nb):
                g, ia, padded, p = spans[0, b], spans[1, b], spans[2, b], spans[3, b]
                partner_gradient(
                    p, g, i, ia, padded, ag_narrow[g], ld[ia], linv[ia], lx[ia], ly[ia], lz[ia], geo, keep,
                    fcp, dfcp, gs, ang, dang, gt, ft, grad, t6, dl,
                )  # fmt: skip
            for q in range(count):
                a = local[q]
                dvec[a, 0] += dl[0, q]
                dvec[a, 1] += dl[1, q]
                dvec[a, 2] += dl[2, q]


@njit(cache=True, error_model="numpy")
def _more_spans(spans, used):  # pragma: no cover - compiled
    """``spans`` (4, B) with room for twice ``used`` blocks, holding the first ``used``."""
    more = np.empty((4, 2 * used), dtype=np.int64)
    more[:, :used] = spans[:, :used]
    return more


@njit(cache=True, error_model="numpy")
def _blocks(columns, nc, nm, nk):  # pragma: no cover - compiled
    """Room for a centre's kept blocks of partners, ``columns`` in all: their local indices
    (K,), geometry (9, K), cutoff products (nc, K) and their derivatives (nc, 3, K), Gaussians
    (nm, K), angular parts and their derivatives (nk, K) (the buffers of
    :func:`~mpnn.symmetry.fused_terms.partner_factors`, one block after the other)."""
    return (
        np.empty(columns, dtype=np.int64),
        np.empty((9, columns)),
        np.empty((nc, columns)),
        np.empty((nc, 3, columns)),
        np.empty((nm, columns)),
        np.empty((nk, columns)),
        np.empty((nk, columns)),
    )


@njit(cache=True, error_model="numpy")
def _grown(blocks, used, columns):  # pragma: no cover - compiled
    """:func:`_blocks` with room for ``columns``, holding the first ``used`` of ``blocks``."""
    keep, geo, fcp, dfcp, gs, ang, dang = blocks
    more = _blocks(columns, fcp.shape[0], gs.shape[0], ang.shape[0])
    more[0][:used] = keep[:used]
    more[1][:, :used] = geo[:, :used]
    more[2][:, :used] = fcp[:, :used]
    more[3][:, :, :used] = dfcp[:, :, :used]
    more[4][:, :used] = gs[:, :used]
    more[5][:, :used] = ang[:, :used]
    more[6][:, :used] = dang[:, :used]
    return more
