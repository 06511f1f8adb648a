"""The branchless exponentials of the compiled walks against the C library's, to 1 ulp."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mpnn.symmetry import compiled

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")


def _arguments() -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.concatenate(
        [
            -rng.random(20000) * 708.0,  # what the kernels pass: exp(-eta r^2), tanh cutoffs
            -rng.random(5000) * 0.35,  # |x| < ln 2 / 2: expm1 with no reduction
            -(10.0 ** rng.uniform(-300, 0, 5000)),  # tiny arguments: expm1(x) = x
            rng.random(2000) * 700.0,
            [0.0, -0.0, 1e-300, -1e-300, -708.0, 709.0, math.log(2.0), -math.log(2.0) / 2],
        ]
    )


def _ulps(values: np.ndarray, reference: np.ndarray) -> float:
    return float(np.max(np.abs(values - reference) / np.abs(reference)) / np.finfo(np.float64).eps)


def test_exp_and_expm1_are_within_one_ulp_of_the_c_library() -> None:
    from numba import njit

    from mpnn.symmetry.vector_math import vexp, vexpm1

    @njit(error_model="numpy")
    def both(x, e, m):
        for k in range(x.shape[0]):
            e[k] = vexp(x[k])
            m[k] = vexpm1(x[k])

    x = _arguments()
    e, m = np.empty_like(x), np.empty_like(x)
    both(x, e, m)
    expected_e = np.array([math.exp(v) for v in x])
    expected_m = np.array([math.expm1(v) for v in x])
    assert _ulps(e, expected_e) <= 1.0
    nonzero = expected_m != 0.0
    assert _ulps(m[nonzero], expected_m[nonzero]) <= 1.0
    assert np.array_equal(m[~nonzero], expected_m[~nonzero])  # expm1(+-0) = +-0


def test_arguments_below_the_float_range_give_zero_and_minus_one() -> None:
    from numba import njit

    from mpnn.symmetry.vector_math import vexp, vexpm1

    @njit(error_model="numpy")
    def pair(x):
        return vexp(x), vexpm1(x)

    for x in (-708.5, -745.2, -1e4, -np.inf):
        assert pair(x) == (0.0, -1.0)
    assert pair(-707.0) == pytest.approx((math.exp(-707.0), -1.0), rel=1e-15)
