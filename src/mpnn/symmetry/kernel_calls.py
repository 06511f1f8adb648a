"""Calling the compiled kernels without PyTorch: their per-batch edge arrays and thread count.

:mod:`mpnn.symmetry.compiled` calls them on PyTorch's thread count from autograd functions;
:mod:`mpnn.potentials.n2p2_predict` calls them from a process that never imports PyTorch.
numba itself is imported at the first call (or :func:`available`), not with this module.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@functools.cache
def available() -> bool:
    """Whether the compiled kernels can run here (numba is optional: without it the PyTorch
    path runs); asked once per process."""
    try:
        import numba  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the environment
        return False
    return True


@dataclass
class EdgeArrays:
    """Per-batch arrays shared by all groups: edge ranges per centre and neighbour data."""

    ptr: np.ndarray  # (N+1,) int64
    species: np.ndarray  # (N,) int64
    neighbor_species: np.ndarray  # (E,) int64
    neighbor_weight: np.ndarray  # (E,) float64 atomic numbers
    vectors: np.ndarray  # (E, 3) float64 edge vectors (the kernels compute in float64)
    distances: np.ndarray  # (E,) float64

    def kernel_args(self) -> tuple:
        """The leading arguments of every kernel: vec, dist, ptr, species, nspecies, nweight."""
        return (
            self.vectors,
            self.distances,
            self.ptr,
            self.species,
            self.neighbor_species,
            self.neighbor_weight,
        )


def numpy_edge_arrays(
    centre: np.ndarray,
    species: np.ndarray,
    neighbor_species: np.ndarray,
    weights: np.ndarray,
    vectors: np.ndarray,
) -> EdgeArrays:
    """The arrays of a batch's edges, sorted by centre: ``centre`` (E,), ``species`` (N,),
    ``neighbor_species`` (E,) int64, ``weights`` (E,) and ``vectors`` (E, 3) float64."""
    n = species.shape[0]
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(centre, minlength=n), out=ptr[1:])
    vec = np.ascontiguousarray(vectors, dtype=np.float64)
    return EdgeArrays(ptr, species, neighbor_species, weights, vec, np.sqrt((vec * vec).sum(1)))


def thread_count() -> int:
    """``OMP_NUM_THREADS`` if it is a positive integer, else the number of cores: the ``mpnn``
    command's number of threads (PyTorch's and the kernels')."""
    text = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else os.cpu_count() or 1


#: Set by the ``mpnn`` command: numba's CPU target starts without importing scipy.linalg
#: (:func:`_start_lean`).  A library user's process keeps numba's own start.
LEAN_START = False
_started: list[bool] = []


def _start_lean() -> None:
    """Start numba's CPU target with ``scipy.linalg`` unimportable for that moment.

    At its first compiled call numba imports ``scipy.linalg`` only to learn whether BLAS is
    there for ``np.dot`` and ``np.linalg`` in compiled code; the kernels here use neither, and
    that import (numpy's f2py with it) is 0.2-0.3 s of a 2.8 s ``mpnn predict``.  The import
    fails at once here, so compiled code in this process has no BLAS; ``scipy.linalg`` itself
    imports as usual afterwards.
    """
    _started.append(True)
    if "scipy.linalg" in sys.modules:  # already paid for
        return
    sys.modules["scipy.linalg"] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        from numba.core.registry import cpu_target

        cpu_target.target_context.refresh()
    finally:
        del sys.modules["scipy.linalg"]


def call(kernel: Callable, args: tuple, threads: int):
    """``kernel(*args)`` on ``threads`` threads (at most numba's ``NUMBA_NUM_THREADS``), after
    checking that numba's cached machine code was compiled from the kernels' sources.

    numba's OpenMP threading layer shares the OpenMP thread count with PyTorch: starting its
    threads (its first parallel call) sets that count to numba's own. Where PyTorch is loaded,
    its count is restored afterwards, or PyTorch would run its small operations on numba's.
    """
    import numba

    from mpnn.symmetry import kernel_cache

    if LEAN_START and not _started:
        _start_lean()
    kernel_cache.check(kernel)  # before numba loads a cache made from other sources
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    wanted = max(1, min(threads, numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() != wanted:
        numba.set_num_threads(wanted)
    try:
        return kernel(*args)
    finally:
        if before is not None and torch.get_num_threads() != before:
            torch.set_num_threads(before)
