r"""The pieces of the compiled compact walks (:mod:`mpnn.symmetry.compact_kernels`), inlined there:
the arc cosine, the window cores and their slopes, the dot products over an edge's partners, a
centre's edges and partners, and the radial factors of a group.

Arrays and conventions are those of :mod:`mpnn.symmetry.compact_kernels`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# FreeBSD msun e_acos.c (via musl): rational approximation of (asin(x) - x) / x^3 on [0, 0.25]
_PIO2_HI = 1.57079632679489655800e00
_PIO2_LO = 6.12323399573676603587e-17
_P0, _P1, _P2 = 1.66666666666666657415e-01, -3.25565818622400915405e-01, 2.01212532134862925881e-01
_P3, _P4, _P5 = -4.00555345006794114027e-02, 7.91534994289814532176e-04, 3.47933107596021167570e-05
_Q1, _Q2, _Q3 = -2.40339491173441421878e00, 2.02094576023350569471e00, -6.88283971605453293030e-01
_Q4 = 7.70381505559019352791e-02


@njit(cache=True, inline="always", error_model="numpy", fastmath={"contract"})
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


@njit(cache=True, inline="always", error_model="numpy", fastmath={"contract"})
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


@njit(cache=True, inline="always", error_model="numpy", fastmath={"contract"})
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


@njit(cache=True, error_model="numpy", fastmath={"contract"})
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


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _window_values(values, n, centre, scale, order, asym, f):  # pragma: no cover - compiled
    """f[k] of one window at values[k], k < n: :func:`_windows` without the slopes (the forward
    walk needs none; the compiler drops their arithmetic)."""
    if order == 0:
        for k in range(n):
            f[k] = _window(values[k], centre, scale, 0, asym)[0]
    elif order == 1:
        for k in range(n):
            f[k] = _window(values[k], centre, scale, 1, asym)[0]
    elif order == 2:
        if asym:
            for k in range(n):
                f[k] = _window(values[k], centre, scale, 2, True)[0]
        else:
            for k in range(n):
                f[k] = _window(values[k], centre, scale, 2, False)[0]
    elif order == 3:
        for k in range(n):
            f[k] = _window(values[k], centre, scale, 3, asym)[0]
    else:
        for k in range(n):
            f[k] = _window(values[k], centre, scale, 4, asym)[0]


@njit(cache=True, inline="always", error_model="numpy", fastmath={"contract"})
def _three_loop(th, dt, n, m, order, c0, s0, c1, s1, c2, s2, q0, q1, q2):  # pragma: no cover - compiled
    """The loop of :func:`_three_values` for one literal core ``order``."""
    for k in range(n):
        ok = dt[k] != 0.0 and k < m
        a = th[k]
        q0[k] = _window(a, c0, s0, order, False)[0] if ok else 0.0
        q1[k] = _window(a, c1, s1, order, False)[0] if ok else 0.0
        q2[k] = _window(a, c2, s2, order, False)[0] if ok else 0.0


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _three_values(th, dt, n, m, order, c0, s0, c1, s1, c2, s2, q0, q1, q2):  # pragma: no cover - compiled
    """Q of three angle windows of one core ``order`` at th[k], k < n, in one loop (one read of
    theta for three windows; one loop per core, each with its literal order, as
    :func:`_windows`): 0 where dt[k] = 0 (|cos| = 1) or k >= m (padding)."""
    if order == 0:
        _three_loop(th, dt, n, m, 0, c0, s0, c1, s1, c2, s2, q0, q1, q2)
    elif order == 1:
        _three_loop(th, dt, n, m, 1, c0, s0, c1, s1, c2, s2, q0, q1, q2)
    elif order == 2:
        _three_loop(th, dt, n, m, 2, c0, s0, c1, s1, c2, s2, q0, q1, q2)
    elif order == 3:
        _three_loop(th, dt, n, m, 3, c0, s0, c1, s1, c2, s2, q0, q1, q2)
    else:
        _three_loop(th, dt, n, m, 4, c0, s0, c1, s1, c2, s2, q0, q1, q2)


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _dot3(x, y0, y1, y2, n):  # pragma: no cover - compiled
    """(x . y0, x . y1, x . y2) over k < n: three dot products sharing the loads of x."""
    t0, t1, t2 = 0.0, 0.0, 0.0
    for k in range(n):
        t0 += x[k] * y0[k]
        t1 += x[k] * y1[k]
        t2 += x[k] * y2[k]
    return t0, t1, t2


@njit(cache=True, inline="always", error_model="numpy", fastmath={"contract"})
def _centre_edges(
    i, vec, dist, ptr, nspecies, cut, nsp, w0, nw, rw_c, rw_s, rw_order, rw_asym
):  # pragma: no cover - compiled
    """Centre i's edges within ``cut``, ordered by neighbour species (counting sort): ``first``
    (S+1,) block starts, ``local`` (K,) edge indices, ``xyz`` (4, K + 8) coordinates and inverse
    lengths (0 after the last edge), ``ld`` (K,) lengths, f and f' (nw, K) of the centre's radial
    windows."""
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
    xyz = np.zeros((4, count + 8))  # x, y, z, 1/r
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


@njit(cache=True, inline="always", error_model="numpy", fastmath={"contract"})
def _pairs(
    ia, lo, m, xyz, table, g, narrow, fg, dfg, theta, cosv, dth, rjk, q, qc, fk, dfk, fjk, slopes
):  # pragma: no cover - compiled
    """Geometry and factors of the pairs (ia, lo + k), k < m: cos, theta, Q and dQ/dcos (A, n);
    narrow: the partners' radial factors times f(r_jk), and f'(r_jk) terms (R, n).  Without
    ``slopes`` (the forward walk) only Q and the radial factors.  The loops run to n, m rounded
    up to a multiple of 8 (no scalar remainder loops: a quarter of the blocks have m <= 12); Q and
    dQ/dcos are 0 on the lanes from m on, so that those lanes add nothing where they meet.  The
    arrays hold n columns from ``lo``."""
    rw_c, rw_s, rw_order, rw_asym, rw_min = table[0], table[1], table[2], table[3], table[4]
    ag_r0, ag_r1, ag_a0, ag_a1 = table[19], table[20], table[21], table[22]
    ar_w, aw_c, aw_s, aw_order = table[24], table[25], table[26], table[27]
    ax, ay, az, inv_a = xyz[0, ia], xyz[1, ia], xyz[2, ia], xyz[3, ia]
    n = (m + 7) // 8 * 8
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
    for al in range(0, na, 3):
        w = a0 + al
        w1, w2 = (w + 1 if al + 1 < na else w), (w + 2 if al + 2 < na else w)  # short: repeat w
        if not slopes and aw_order[w1] == aw_order[w] and aw_order[w2] == aw_order[w]:
            # three windows in one loop (the rows from na on are padding the walks ignore)
            _three_values(
                th, dt, n, m, aw_order[w], aw_c[w], aw_s[w], aw_c[w1], aw_s[w1], aw_c[w2], aw_s[w2],
                q[al, :n], q[al + 1, :n], q[al + 2, :n],
            )  # fmt: skip
            continue
        # one loop per window (with slopes, three in one loop ran slower in the backward walk)
        for b in range(al, min(al + 3, na)):
            qa, qd = q[b, :n], qc[b, :n]
            if not slopes:
                _window_values(th, n, aw_c[a0 + b], aw_s[a0 + b], aw_order[a0 + b], False, qa)
                for k in range(n):
                    qa[k] = qa[k] if dt[k] != 0.0 and k < m else 0.0
                continue
            _windows(th, n, aw_c[a0 + b], aw_s[a0 + b], aw_order[a0 + b], False, qa, qd)
            for k in range(n):
                ok = dt[k] != 0.0 and k < m
                qa[k] = qa[k] if ok else 0.0
                qd[k] = qd[k] * dt[k] if ok else 0.0
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
        low = rw_min[w]
        fb, db = fg[rho, lo:hi], dfg[rho, lo:hi]
        if not slopes:
            _window_values(r, n, rw_c[w], rw_s[w], rw_order[w], rw_asym[w], e)
            for k in range(n):
                f[k] = fb[k] * e[k] if r[k] > low else 0.0
            continue
        _windows(r, n, rw_c[w], rw_s[w], rw_order[w], rw_asym[w], e, d)
        for k in range(n):
            inside = r[k] > low
            fj, dj = e[k], d[k]
            f[k] = fb[k] * fj if inside else 0.0
            d[k] = db[k] * fj if inside else 0.0
            e[k] = fb[k] * dj if inside else 0.0


@njit(cache=True, inline="always", error_model="numpy", fastmath={"contract"})
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
