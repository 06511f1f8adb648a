"""Autograd wrapper of the compiled angular kernels (:mod:`mpnn.symmetry.angular_kernels`).

Used on CPU when numba is installed; :class:`mpnn.symmetry.triplets.TripletSum` is the PyTorch
path (any device, and double backward).  Both give the same numbers (tested to 1e-12).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

try:  # numba is optional: without it the PyTorch path runs
    import numba

    from mpnn.symmetry import angular_kernels, kernel_cache
except ImportError:  # pragma: no cover - depends on the environment
    numba = None
    angular_kernels = kernel_cache = None


def available() -> bool:
    """Whether the compiled kernels can run here."""
    return angular_kernels is not None


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


def edge_arrays(
    centre: Tensor, species: Tensor, neighbor_species: Tensor, weights: Tensor, vectors: Tensor
) -> EdgeArrays:
    """The arrays of a batch's edges sorted by centre: ``centre`` (E,), ``species`` (N,),
    ``neighbor_species`` (E,), ``weights`` (E,) and ``vectors`` (E, 3) as tensors."""
    return numpy_edge_arrays(
        centre.cpu().numpy(),
        species.cpu().numpy(),
        neighbor_species.cpu().numpy(),
        weights.detach().cpu().double().numpy(),
        vectors.detach().cpu().double().numpy(),
    )


def numpy_edge_arrays(
    centre: np.ndarray,
    species: np.ndarray,
    neighbor_species: np.ndarray,
    weights: np.ndarray,
    vectors: np.ndarray,
) -> EdgeArrays:
    """:func:`edge_arrays` from numpy arrays (int64, float64)."""
    n = species.shape[0]
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(centre, minlength=n), out=ptr[1:])
    vec = np.ascontiguousarray(vectors, dtype=np.float64)
    return EdgeArrays(ptr, species, neighbor_species, weights, vec, np.sqrt((vec * vec).sum(1)))


class CompiledAngularSum(torch.autograd.Function):
    """``apply(vectors, edges, centre_species, e1, e2, params, fallback) -> (N, F)``.

    ``params`` is :meth:`GaussianAngular.kernel_parameters`; ``fallback(grad)`` computes the
    vector gradient with the PyTorch path, used when a differentiable backward is needed.
    """

    @staticmethod
    def forward(
        ctx,
        vectors: Tensor,
        edges: EdgeArrays,
        centre_species: int,
        e1: int,
        e2: int,
        params: tuple,
        fallback: Callable[[Tensor], Tensor],
    ) -> Tensor:
        args = (
            *edges.kernel_args(),
            centre_species,
            e1,
            e2,
            *params,
        )
        ctx.args, ctx.fallback, ctx.jacobian = args, fallback, None
        if vectors.requires_grad:  # forces will follow: one walk gives G and dG/dvec
            out, jacobian = _run(angular_kernels.angular_forward_jacobian, args)
            ctx.jacobian = torch.from_numpy(jacobian)
            ctx.centre = torch.from_numpy(np.repeat(np.arange(len(edges.ptr) - 1), np.diff(edges.ptr)))
        else:
            out = _run(angular_kernels.angular_forward, args)
        return torch.from_numpy(out).to(device=vectors.device, dtype=vectors.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):  # noqa: D102
        if torch.is_grad_enabled():
            grad_vectors = ctx.fallback(grad)
        else:  # forward saw vectors.requires_grad, so it kept dG/dvec
            g = grad.detach().cpu().double()[ctx.centre]  # (E, F)
            grad_vectors = torch.einsum("ef,efx->ex", g, ctx.jacobian).to(
                device=grad.device, dtype=grad.dtype
            )
        return grad_vectors, None, None, None, None, None, None


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


def _run(kernel: Callable, args: tuple):
    """``kernel(*args)`` on PyTorch's number of threads, leaving that number as it was.

    numba's OpenMP threading layer shares the OpenMP thread count with PyTorch; without the
    restore, PyTorch would afterwards run its small operations on numba's count.
    """
    if LEAN_START and not _started:
        _start_lean()
    kernel_cache.check(kernel)  # before numba loads a cache made from other sources
    threads = torch.get_num_threads()
    wanted = max(1, min(threads, numba.config.NUMBA_NUM_THREADS))
    if numba.get_num_threads() == wanted:  # nothing to set (tens of microseconds)
        out = kernel(*args)
        # numba starting its threads (its first parallel call) sets the OpenMP count to its own
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        return out
    numba.set_num_threads(wanted)
    try:
        return kernel(*args)
    finally:
        torch.set_num_threads(threads)
