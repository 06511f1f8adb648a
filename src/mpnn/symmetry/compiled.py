"""Autograd wrapper of the compiled angular kernels (:mod:`mpnn.symmetry.angular_kernels`).

Used on CPU when numba is installed; :class:`mpnn.symmetry.triplets.TripletSum` is the PyTorch
path (any device, and double backward).  Both give the same numbers (tested to 1e-12).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from mpnn.symmetry import kernel_calls
from mpnn.symmetry.kernel_calls import EdgeArrays, available, numpy_edge_arrays

try:  # numba is optional: without it the PyTorch path runs
    from mpnn.symmetry import angular_kernels
except ImportError:  # pragma: no cover - depends on the environment
    angular_kernels = None

__all__ = ["CompiledAngularSum", "EdgeArrays", "available", "edge_arrays", "numpy_edge_arrays"]


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


def _run(kernel: Callable, args: tuple):
    """``kernel(*args)`` on PyTorch's number of threads, leaving that number as it was
    (:func:`mpnn.symmetry.kernel_calls.call`)."""
    return kernel_calls.call(kernel, args, torch.get_num_threads())
