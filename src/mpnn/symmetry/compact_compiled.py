"""Autograd wrapper of the compiled compact-function kernel (:mod:`mpnn.symmetry.compact_kernels`).

Used on CPU when numba is installed; the PyTorch path (:mod:`mpnn.symmetry.compact`) gives the
same numbers (tested to 1e-12) and is what a differentiable backward pass (training on forces)
runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mpnn.symmetry import compiled
from mpnn.symmetry.compact import CompactAngular, CompactRadial, CompactWindows


def _windows(windows: CompactWindows) -> tuple[np.ndarray, ...]:
    """(centre, scale, core code, asymmetric) of each window, in the windows' buffer order."""
    codes: list[int] = []
    asym: list[bool] = []
    for core, flag, count in windows.kinds:
        codes += [0 if core == "exp" else int(core[-1])] * count
        asym += [bool(flag)] * count
    return (
        windows.centre.detach().cpu().numpy().astype(np.float64),
        windows.scale.detach().cpu().numpy().astype(np.float64),
        np.asarray(codes, dtype=np.int64),
        np.asarray(asym, dtype=np.bool_),
    )


def kernel_parameters(terms: Any) -> tuple | None:
    """The kernel's arguments after the neighbour selection, or None for terms it does not take
    (two functions of the same windows)."""
    cached = getattr(terms, "_compact_kernel", False)
    if cached is not False:
        return cached
    params = None
    if isinstance(terms, CompactRadial):
        centre, scale, core, asym = _windows(terms.windows)
        index = terms.index.cpu().numpy().astype(np.int64)
        none_f, none_i = np.zeros(0), np.zeros(0, dtype=np.int64)
        params = (False, False, terms.weighted, centre, scale, core, asym, np.zeros(len(centre)))
        params += (none_f, none_f, none_i, index, np.full((1, 1), -1, dtype=np.int64))
        params += (terms.cutoff, len(index))
    elif isinstance(terms, CompactAngular):
        centre, scale, core, asym = _windows(terms.radial)
        a_centre, a_scale, a_core, _ = _windows(terms.angular)
        radial_of = terms.radial_index.cpu().numpy()
        angular_of = terms.angular_index.cpu().numpy()
        grid = np.full((len(centre), len(a_centre)), -1, dtype=np.int64)
        for f, (r, a) in enumerate(zip(radial_of, angular_of, strict=True)):
            if grid[r, a] >= 0:
                grid = None
                break
            grid[r, a] = f
        if grid is not None:
            r_min = terms.rjk_min.detach().cpu().numpy().astype(np.float64)
            params = (True, terms.narrow, terms.weighted, centre, scale, core, asym, r_min)
            params += (a_centre, a_scale, a_core, np.zeros(0, dtype=np.int64), grid)
            params += (terms.cutoff, len(radial_of))
    terms._compact_kernel = params
    return params


class CompiledCompactSum(torch.autograd.Function):
    """``apply(vectors, edges, centre_species, e1, e2, params, fallback) -> (N, F)``: one group's
    sums (``params``: :func:`kernel_parameters`; e1, e2 the neighbour species, -1: any).
    ``fallback(grad)`` gives the differentiable vector gradient by the PyTorch path."""

    @staticmethod
    def forward(
        ctx: Any,
        vectors: Tensor,
        edges: compiled.EdgeArrays,
        centre_species: int,
        e1: int,
        e2: int,
        params: tuple,
        fallback: Callable[[Tensor], Tensor],
    ) -> Tensor:
        from mpnn.symmetry.compact_group_kernels import compact_forward

        need = vectors.requires_grad
        # the edges of the group's centres: dG/dvec is kept for them only
        mine = np.repeat(edges.species == centre_species, np.diff(edges.ptr))
        args = (
            *edges.kernel_args(),
            centre_species,
            e1,
            e2,
            *params,
            need,
            int(mine.sum()),
        )
        out, jac = compiled._run(compact_forward, args)
        ctx.fallback, ctx.jacobian = fallback, torch.from_numpy(jac) if need else None
        if need:
            centre = np.repeat(np.arange(len(edges.ptr) - 1), np.diff(edges.ptr))
            ctx.edges = torch.from_numpy(np.flatnonzero(mine))
            ctx.centre = torch.from_numpy(centre[mine])
            ctx.num_edges = len(centre)
        return torch.from_numpy(out).to(device=vectors.device, dtype=vectors.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor):  # noqa: D102
        if torch.is_grad_enabled():
            grad_vectors = ctx.fallback(grad)
        else:
            g = grad.detach().cpu().double()[ctx.centre]  # (E_group, F)
            mine = torch.einsum("ef,efx->ex", g, ctx.jacobian)
            grad_vectors = mine.new_zeros((ctx.num_edges, 3)).index_copy(0, ctx.edges, mine)
            grad_vectors = grad_vectors.to(device=grad.device, dtype=grad.dtype)
        return grad_vectors, None, None, None, None, None, None
