r"""Energy, forces, stress and atomic energies of any model whose edges come from positions.

For B structures with energies E_b (eV) of a batch with N atoms:

.. math::
    F_i = -\frac{\partial E}{\partial r_i} \quad (N, 3)\ \mathrm{eV/\AA}, \qquad
    \sigma_b = \frac{1}{V_b} \frac{\partial E_b}{\partial \varepsilon_b}\Big|_{\varepsilon = 0}
    \quad (B, 6)\ \mathrm{eV/\AA^3}

where the symmetric strain :math:`\varepsilon_b` (3, 3) deforms the positions and the cell rows of
structure b alike, ``pos' = pos (I + eps)``, ``cell' = cell (I + eps)`` (ASE's convention: a
positive stress means the structure wants to shrink; ``-trace(sigma)/3`` is the pressure). The stress
is returned in Voigt order (xx, yy, zz, yz, xz, xy); V_b = |det cell_b| and rows of structures
without a 3-D cell (molecules, zero-volume cells) are NaN.

Both derivatives come from one backward pass: ``torch.autograd.grad(sum_b E_b, (pos, eps))``.
The energy of a model is ``model(batch)``, shape (B,) or (B, 1) (a
:class:`~mpnn.models.PropertyModel` trained on one energy target); with ``atomic=True`` a model
with ``atomic_energies(batch) -> (N,)`` (a :class:`~mpnn.models.PotentialModel`) is evaluated once
through them and E_b is their sum over the atoms of b.

Outside training (``create_graph=False``) every output is checked: a NaN or inf (a model fed
inputs far outside its training, a broken scaling) is a one-line
:class:`~mpnn.errors.DataError` naming the structure (:func:`mpnn.sanity.require_finite`), so
no caller writes or integrates it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import Tensor, nn

from mpnn.batch import Batch
from mpnn.neighbors import cell_volumes
from mpnn.sanity import require_finite_results
from mpnn.scatter import segment_sum

#: Voigt order of the six independent stress components: (row, column) of the 3x3 tensor.
VOIGT = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))

__all__ = ["VOIGT", "evaluate", "to_voigt"]


def to_voigt(tensor: Tensor) -> Tensor:
    """(..., 3, 3) -> (..., 6) in the order xx, yy, zz, yz, xz, xy."""
    rows = torch.tensor([r for r, _ in VOIGT], device=tensor.device)
    cols = torch.tensor([c for _, c in VOIGT], device=tensor.device)
    return tensor[..., rows, cols]


def _energy(model: nn.Module, batch: Batch, atomic: bool) -> tuple[Tensor, Tensor | None]:
    """(B,) energies and, if asked and available, (N,) atomic energies."""
    if atomic and hasattr(model, "atomic_energies"):
        energies = model.atomic_energies(batch)
        return segment_sum(energies, batch.batch, batch.num_graphs), energies
    energy = model(batch)
    if energy.dim() == 2:
        if energy.shape[1] != 1:
            raise ValueError(
                f"evaluate: the model predicts {energy.shape[1]} values per structure, not one energy"
            )
        energy = energy[:, 0]
    if energy.shape != (batch.num_graphs,):
        raise ValueError(
            f"evaluate: the model returned shape {tuple(energy.shape)}, expected ({batch.num_graphs},)"
        )
    return energy, None


def evaluate(
    model: nn.Module,
    batch: Batch,
    forces: bool = True,
    stress: bool = False,
    atomic: bool = False,
    create_graph: bool = False,
    names: Sequence[str] | None = None,
    check: bool = True,
) -> dict[str, Tensor]:
    """Energy and its derivatives for every structure of ``batch``.

    Args:
        model: ``model(batch)`` -> (B,) or (B, 1) energies in eV; edges must be built from
            ``batch.pos`` (and ``batch.cell`` with ``batch.shift``) inside the forward pass.
        batch: the structures; its floating tensors set the dtype of the derivatives.
        forces: compute ``"forces"`` (N, 3) = -dE/dpos, eV/Angstrom.
        stress: compute ``"stress"`` (B, 6) Voigt, eV/Angstrom^3 (see the module docstring).
        atomic: also return ``"energies"`` (N,) atomic energies, eV, when the model has them.
        create_graph: keep the graph of the derivatives (to train on forces); otherwise every
            output is detached and checked: a NaN or inf in any output (the stress rows of
            structures with a 3-D cell) raises a one-line DataError naming the structure.
        names: (B,) names of the structures for that error (default ``"structure b of the batch"``).
        check: that check; off where the caller handles non-finite values itself (a training
            loop's validation, which stops a diverged run with its own message).

    Returns:
        ``{"energy": (B,), "forces": (N, 3), "stress": (B, 6), "energies": (N,)}``, the keys asked for.
    """
    if not create_graph:  # an HDNNP on CPU: autograd through its networks only
        from mpnn.potentials.hdnnp_forces import evaluate_hdnnp

        fast = evaluate_hdnnp(model, batch, forces, stress, atomic)
        if fast is not None:
            if check:
                _check_finite(fast, batch, names)
            return fast
    need_grad = forces or stress
    # everything from the leaves on is recorded, also when the caller is inside torch.no_grad()
    with torch.set_grad_enabled(need_grad or create_graph):
        pos = batch.pos.detach().requires_grad_(need_grad)
        inputs = [pos]
        cell = batch.cell
        if stress:
            eps = torch.zeros(batch.num_graphs, 3, 3, dtype=pos.dtype, device=pos.device, requires_grad=True)
            inputs.append(eps)
            sym = 0.5 * (eps + eps.transpose(1, 2))
            # pos' = pos (I + eps): r_i + r_i @ eps_b for the structure b of atom i
            pos = pos + torch.bmm(pos.unsqueeze(1), sym[batch.batch]).squeeze(1)
            if cell is not None:
                cell = cell.detach().to(pos.dtype) + torch.bmm(cell.detach().to(pos.dtype), sym)
        energy, energies = _energy(model, replace(batch, pos=pos, cell=cell), atomic)
        out: dict[str, Tensor] = {"energy": energy}
        if energies is not None:
            out["energies"] = energies
        if need_grad:
            # a position no energy depends on (an isolated atom) has a zero force
            grads = torch.autograd.grad(
                energy.sum(), inputs, create_graph=create_graph, allow_unused=True, materialize_grads=True
            )
            if forces:
                out["forces"] = -grads[0]
            if stress:
                out["stress"] = to_voigt(grads[-1]) / _volumes(batch).to(grads[-1].dtype).unsqueeze(1)
    if not create_graph:
        out = {key: value.detach() for key, value in out.items()}
        if check:
            _check_finite(out, batch, names)
    return out


def _check_finite(out: dict[str, Tensor], batch: Batch, names: Sequence[str] | None) -> None:
    """Refuse NaN or inf in the outputs (in the stress only where the structure has a 3-D cell)."""
    values = {key: value.cpu().numpy() for key, value in out.items()}
    has_cell = np.isfinite(_volumes(batch).cpu().numpy()) if "stress" in values else None
    if names is None:
        names = [f"structure {b} of the batch" for b in range(batch.num_graphs)]
    require_finite_results(values, names, batch.batch.cpu().numpy(), has_cell)


def _volumes(batch: Batch) -> Tensor:
    """(B,) |det cell| (:func:`mpnn.neighbors.cell_volumes`), NaN where a structure has no 3-D cell."""
    num = batch.num_graphs
    if batch.cell is None:
        return torch.full((num,), float("nan"), dtype=batch.pos.dtype, device=batch.pos.device)
    cell = batch.cell.detach().to(torch.float64)
    if cell.device.type == "cpu":  # the numbers of every CPU path (the fast ones' included)
        return torch.from_numpy(cell_volumes(cell.numpy())).to(device=batch.pos.device)
    return device_cell_volumes(cell).to(batch.pos.device)  # no copy to the host


def device_cell_volumes(cell: Tensor) -> Tensor:
    """:func:`mpnn.neighbors.cell_volumes` in PyTorch on the cells' (B, 3, 3) device."""
    volumes = (cell[:, 0] * torch.linalg.cross(cell[:, 1], cell[:, 2])).sum(1).abs()
    return torch.where(volumes > 0, volumes, torch.full_like(volumes, float("nan")))
