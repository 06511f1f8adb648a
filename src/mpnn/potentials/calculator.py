"""An ASE calculator for any `mpnn` energy model: energy, atomic energies, forces and stress.

Units are ASE's: energy and ``energies`` (n,) in eV, forces (n, 3) in eV/Angstrom, stress (6,) in
eV/Angstrom^3, Voigt order (xx, yy, zz, yz, xz, xy), ``stress = (1/V) dE/d(strain)``
(:mod:`mpnn.potentials.forces`). Stress needs a cell spanning 3-D space (``atoms.cell.rank == 3``);
for other structures asking for it raises ``PropertyNotImplementedError`` as ASE's own calculators do.

Every calculation rebuilds the neighbour list (cell list, O(n): vesin or ASE) from scratch and runs
one forward and one backward pass; no skin / Verlet buffer is kept between calls, so a call costs
the neighbour search plus the model. ``free_energy`` equals ``energy`` (no electronic entropy).
An energy request computes the forces (and stress) too, cached for the ``get_forces`` that usually
follows, as ASE's own calculators do; with ``forces_with_energy=False`` it runs the forward pass
alone (Monte Carlo needs only energies; a call then costs 1/2 to 1/3 as much,
``benchmarks/mc_energy_only.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from torch import nn

from mpnn.data.atoms import atoms_to_molecule, check_elements, collate_structures
from mpnn.errors import DataError
from mpnn.potentials.forces import evaluate

__all__ = ["MpnnCalculator"]


class MpnnCalculator(Calculator):
    """``MpnnCalculator(model, device=None, dtype=torch.float64)``.

    Args:
        model: a :class:`~mpnn.models.PotentialModel` (or any model with a ``cutoff`` in Angstrom
            whose ``model(batch)`` gives (B,) or (B, 1) energies in eV from positions and atomic
            numbers alone). It is moved to ``device`` and ``dtype`` and put in eval mode, in place.
        device: torch device of the computation (default: the model's).
        dtype: floating type of the computation (float64: forces exact to rounding).
        cutoff: neighbour-list radius in Angstrom; default ``model.cutoff``.
        forces_with_energy: whether a request of energies alone (``energy``, ``free_energy``,
            ``energies``) also computes forces and stress; ``False``: only the forward pass.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(
        self,
        model: nn.Module,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float64,
        cutoff: float | None = None,
        forces_with_energy: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if cutoff is None:
            cutoff = getattr(model, "cutoff", None)
        if cutoff is None:
            raise ValueError("MpnnCalculator: the model has no 'cutoff'; pass cutoff= (Angstrom)")
        self.cutoff = float(cutoff)
        if device is None:
            first = next(iter(model.parameters()), None)
            device = first.device if first is not None else torch.device("cpu")
        self.device, self.dtype = torch.device(device), dtype
        self.model = model.to(device=self.device, dtype=dtype).eval()
        self.elements = list(getattr(model, "elements", []))
        self.forces_with_energy = forces_with_energy

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: list[str] | None = None,
        system_changes: list[str] = all_changes,
    ) -> None:
        properties = properties or ["energy"]
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        if self.elements:
            check_elements([atoms], self.elements, "atoms")
        has_volume = atoms.cell.rank == 3
        if "stress" in properties and not has_volume:
            raise PropertyNotImplementedError("stress needs a cell of three independent vectors")
        if "energies" in properties and not hasattr(self.model, "atomic_energies"):
            raise PropertyNotImplementedError("the model has no atomic energies")
        try:  # the neighbour search also rejects NaN positions, atoms on top of each other, bad cells
            batch = collate_structures([atoms_to_molecule(atoms, targets=False)], self.cutoff)
        except DataError as error:
            raise DataError(f"atoms: {error}") from None
        if has_volume and batch.cell is None:  # a molecule in a box: the volume of its cell
            batch.cell = torch.tensor(np.asarray(atoms.cell.array), dtype=torch.float64).unsqueeze(0)
            batch.pbc = torch.zeros(1, 3, dtype=torch.bool)
        batch = batch.to(device=self.device, dtype=self.dtype)
        derivatives = self.forces_with_energy or not {"forces", "stress"}.isdisjoint(properties)
        out = evaluate(
            self.model,
            batch,
            forces=derivatives,
            stress=bool(has_volume and derivatives),
            atomic=True,
            names=["atoms"],
        )
        energy = float(out["energy"][0])
        self.results = {"energy": energy, "free_energy": energy}
        if derivatives:
            self.results["forces"] = out["forces"].cpu().numpy().astype(np.float64)
        if "energies" in out:
            self.results["energies"] = out["energies"].cpu().numpy().astype(np.float64)
        if has_volume and derivatives:
            self.results["stress"] = out["stress"][0].cpu().numpy().astype(np.float64)
