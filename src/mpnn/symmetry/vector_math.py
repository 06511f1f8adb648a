r"""exp and expm1 that the compiler can vectorize: branchless, within about 1 ulp.

numba calls the C library's ``exp`` for ``math.exp``, one element at a time (about 5 ns here);
LLVM vectorizes a loop of these (about 0.8 ns an element with AVX-512).  The algorithm is
fdlibm's ``e_exp.c`` (as in musl): x = k ln 2 + r with |r| <= ln 2 / 2, exp(r) = 1 + R from a
degree-5 Remez polynomial, and 2^k put into the exponent bits.  The same R gives expm1:
2^k R + (2^k - 1), exact for k = 0 (|x| < 0.35), where exp(x) - 1 would cancel.

Arguments below -708 give 0 (exp(-708) = 3e-308: the subnormal results below it are dropped, an
absolute error under 1e-307); the kernels pass only non-positive arguments.  Loops calling these must be
compiled with ``error_model="numpy"`` (numba's default tests every division for zero, which
keeps a loop scalar).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 in two parts: k * _LN2_HI is exact for |k| < 2^11
_LN2_LO = 1.90821492927058770002e-10
_P1 = 1.66666666666666019037e-01
_P2 = -2.77777777770155933842e-03
_P3 = 6.61375632143793436117e-05
_P4 = -1.65339022054652515390e-06
_P5 = 4.13813679705723846039e-08
_ROUND = 6755399441055744.0  # 1.5 * 2^52: (y + _ROUND) - _ROUND rounds y to an integer
_LOWEST = -708.0


@intrinsic
def _bits_to_float(typingctx, bits):  # pragma: no cover - compiled
    """The float64 whose bits are the int64 ``bits``."""
    signature = types.float64(types.int64)

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return signature, codegen


@njit(cache=True, inline="always", error_model="numpy")
def _reduced(x):  # pragma: no cover - compiled
    """(R, 2^k) with exp(x) = 2^k (1 + R), for -708 <= x <= 709."""
    k = (x * _LOG2E + _ROUND) - _ROUND
    hi = x - k * _LN2_HI
    lo = k * _LN2_LO
    r = hi - lo
    t = r * r
    c = r - t * (_P1 + t * (_P2 + t * (_P3 + t * (_P4 + t * _P5))))
    big = (r * c) / (2.0 - c)
    return hi - (lo - big), _bits_to_float((np.int64(k) + 1023) << 52)


@njit(cache=True, inline="always", error_model="numpy")
def vexp(x):  # pragma: no cover - compiled
    """exp(x) for x <= 709; 0 below -708."""
    low = x < _LOWEST
    rest, scale = _reduced(x if not low else 0.0)
    return 0.0 if low else scale + scale * rest


@njit(cache=True, inline="always", error_model="numpy")
def vexpm1(x):  # pragma: no cover - compiled
    """exp(x) - 1 for x <= 709; -1 below -708."""
    low = x < _LOWEST
    rest, scale = _reduced(x if not low else 0.0)
    return -1.0 if low else scale * rest + (scale - 1.0)
