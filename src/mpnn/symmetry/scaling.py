"""n2p2's scaling of symmetry functions, in numpy: scaled G = low + factor (G - ref).

:meth:`mpnn.messages.symmetry_functions.SymmetryFunctions.set_scaling` and
:mod:`mpnn.potentials.n2p2_predict` (without PyTorch) both take the numbers from here.
"""

from __future__ import annotations

import numpy as np

from mpnn.errors import DataError

#: n2p2's ``scale_symmetry_functions`` modes
SCALING_MODES = ("none", "scale", "center", "scale_center", "sigma")


def scaling_terms(
    mode: str, statistics: np.ndarray, smin: float = 0.0, smax: float = 1.0, element: int = 0
) -> tuple[np.ndarray, np.ndarray, float]:
    """(factor (n,), ref (n,), low) of one element from its functions' (n, 4) float64 statistics
    (min, max, mean, sigma); ``mode`` one of :data:`SCALING_MODES`. A factor that is not finite
    (min == max or sigma == 0) is a one-line :class:`DataError` naming ``element`` (Z) and the
    function (1-based)."""
    gmin, gmax, mean, sigma = (np.asarray(statistics, dtype=np.float64)[:, k] for k in range(4))
    one = np.ones_like(gmin)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor, ref, low = {
            "none": (one, np.zeros_like(gmin), 0.0),
            "scale": ((smax - smin) / (gmax - gmin), gmin, smin),
            "center": (one, mean, 0.0),
            "scale_center": ((smax - smin) / (gmax - gmin), mean, smin),
            "sigma": ((smax - smin) / sigma, mean, smin),
        }[mode]
    bad = np.flatnonzero(~np.isfinite(np.broadcast_to(factor, gmin.shape)))
    if bad.size:  # max == min or sigma == 0: the scaled function would be inf or NaN
        raise DataError(
            f"scaling of element Z = {element}, symmetry function {int(bad[0]) + 1}: "
            f"mode '{mode}' divides by zero (min == max or sigma == 0)"
        )
    return factor, ref, float(low)
