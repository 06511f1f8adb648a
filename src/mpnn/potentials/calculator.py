"""An ASE calculator for any `mpnn` energy model: energy, atomic energies, forces and stress.

Units are ASE's: energy and ``energies`` (n,) in eV, forces (n, 3) in eV/Angstrom, stress (6,) in
eV/Angstrom^3, Voigt order (xx, yy, zz, yz, xz, xy), ``stress = (1/V) dE/d(strain)``
(:mod:`mpnn.potentials.forces`). Stress needs a cell spanning 3-D space (``atoms.cell.rank == 3``);
for other structures asking for it raises ``PropertyNotImplementedError`` as ASE's own calculators do.

Every calculation rebuilds the neighbour list (cell list, O(n): vesin or ASE) from scratch and runs
one forward and one backward pass; no skin / Verlet buffer is kept between calls, so a call costs
the neighbour search plus the model. ``free_energy`` equals ``energy`` (no electronic entropy).

Beyond ASE's properties, ``results`` holds what users of potentials watch
(:mod:`mpnn.potentials.extrapolation`, :mod:`mpnn.potentials.committee`):

* ``extrapolation_warnings`` (int) and ``extrapolation`` (n,): how many symmetry functions of the
  structure, and of each atom, lie outside the potential's training range (potentials that record
  the range); ``extrapolation_total`` counts them over every call of this calculator, and past
  ``max_extrapolation_warnings`` a call raises :class:`ExtrapolationError` (n2p2's ``maxew``).
* ``close_pairs`` (int): pairs of atoms closer than :data:`mpnn.sanity.CLOSE_FRACTION` x the
  sum of their covalent radii; the first later call that finds some (a run that brought atoms
  together) issues one :class:`~mpnn.sanity.UnphysicalWarning` (the structure of the first call is
  the one given, checked where it was read).
* for a :class:`~mpnn.potentials.committee.Committee`: ``energy_std`` (eV), ``forces_std`` (n,)
  eV/Angstrom per atom, ``max_force_std`` and, with a 3-D cell, ``stress_std`` (6,).

An energy request computes the forces (and stress) too, cached for the ``get_forces`` that usually
follows, as ASE's own calculators do; with ``forces_with_energy=False`` it runs the forward pass
alone (Monte Carlo needs only energies; a call then costs 1/2 to 1/3 as much,
``benchmarks/mc_energy_only.py``).
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from torch import nn

from mpnn.data.atoms import atoms_to_molecule, check_elements, collate_structures
from mpnn.errors import DataError
from mpnn.inputs import numpy_edge_vectors
from mpnn.potentials.committee import evaluate_potential
from mpnn.potentials.extrapolation import ExtrapolationError, limit_message
from mpnn.potentials.frames import FRAME_ARRAYS, FRAME_INFO, clear_extras, frame_extras  # noqa: F401
from mpnn.sanity import CLOSE_FRACTION, close_pair_count, warn

__all__ = ["MpnnCalculator", "clear_extras", "frame_extras"]

class MpnnCalculator(Calculator):
    """``MpnnCalculator(model, device=None, dtype=torch.float64)``.

    Args:
        model: a :class:`~mpnn.models.PotentialModel` (or any model with a ``cutoff`` in Angstrom
            whose ``model(batch)`` gives (B,) or (B, 1) energies in eV from positions and atomic
            numbers alone). It is moved to ``device`` and ``dtype`` and put in eval mode, in place.
        device: torch device of the computation (default: the model's).
        dtype: floating type of the computation (float64: forces exact to rounding).
        cutoff: neighbour-list radius in Angstrom; default ``model.cutoff``.
        max_extrapolation_warnings: stop (raise :class:`ExtrapolationError`) once the
            extrapolation warnings of all calls exceed this many; None: never.
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
        max_extrapolation_warnings: int | None = None,
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
        limit = max_extrapolation_warnings
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, Integral) or limit < 0):
            raise ValueError(f"max_extrapolation_warnings: expected None or an integer >= 0, got {limit!r}")
        self.max_extrapolation_warnings = None if limit is None else int(limit)
        #: extrapolation warnings of all calls so far, and the calls that had any
        self.extrapolation_total = 0
        self.extrapolated_calls = 0
        self.calls = 0
        #: a committee's largest per-atom force deviation over all calls (eV/Angstrom), else None
        self.max_force_std_seen: float | None = None
        self._warned_close = False
        self.forces_with_energy = forces_with_energy

    def check_state(self, atoms: Atoms, tol: float = 1e-15) -> list[str]:
        """What changed since the last calculation among what the model reads: ``positions``,
        ``numbers``, ``cell``, ``pbc`` (compared exactly). ASE's own comparison also walks charges,
        magnetic moments and every other array, which costs as much as a small molecule's forces."""
        old = self.atoms
        if old is None or len(old) != len(atoms):
            return list(all_changes)
        pairs = (
            ("positions", old.positions, atoms.positions),
            ("numbers", old.numbers, atoms.numbers),
            ("cell", old.cell.array, atoms.cell.array),
            ("pbc", old.pbc, atoms.pbc),
        )
        return [name for name, a, b in pairs if not np.array_equal(a, b)]

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
        stress = bool(has_volume and derivatives)
        out = evaluate_potential(self.model, batch, forces=derivatives, stress=stress, names=["atoms"])
        energy = float(out["energy"][0])
        results: dict[str, Any] = {"energy": energy, "free_energy": energy}
        if derivatives:
            results["forces"] = out["forces"]
        if "energies" in out:
            results["energies"] = out["energies"]
        if stress:
            results["stress"] = out["stress"][0]
        if "energy_std" in out:
            results["energy_std"] = float(out["energy_std"][0])
        if "forces_std" in out:
            results["forces_std"] = out["forces_std"]
            results["max_force_std"] = float(out["forces_std"].max(initial=0.0))
            self.max_force_std_seen = max(self.max_force_std_seen or 0.0, results["max_force_std"])
        if "stress_std" in out and stress:
            results["stress_std"] = out["stress_std"][0]
        results["close_pairs"] = self._close_pairs(atoms, batch)
        self.calls += 1
        if "extrapolation" in out:
            count = int(out["extrapolation"].sum())
            results["extrapolation"] = out["extrapolation"]
            results["extrapolation_warnings"] = count
            self.extrapolation_total += count
            self.extrapolated_calls += count > 0
            limit = self.max_extrapolation_warnings
            if limit is not None and self.extrapolation_total > limit:
                total, first = self.extrapolation_total, out["extrapolation_first"]
                over = f" over {self.calls} calculations" if self.calls > 1 else ""
                raise ExtrapolationError(limit_message(total, limit, first, over=over))
        self.results = results

    def _close_pairs(self, atoms: Atoms, batch: Any) -> int:
        """Pairs of atoms closer than the sanity bound (from the neighbour list just built)."""
        source, centre = batch.edge_index.cpu().numpy()
        shift = None if batch.shift is None else batch.shift.cpu().numpy()
        cell = None if batch.cell is None else atoms.cell.array[None]
        vectors = numpy_edge_vectors(atoms.positions, source, centre, shift, cell)
        distance = np.sqrt(np.einsum("ex,ex->e", vectors, vectors))
        count = close_pair_count(atoms.numbers, source, centre, distance)
        # the structure as given was checked where it was read; warn once when a run brings atoms closer
        if count and self.calls > 0 and not self._warned_close:
            self._warned_close = True
            warn(
                f"calculation {self.calls + 1}: {count} pairs of atoms came closer than {CLOSE_FRACTION} x "
                "the sum of their covalent radii; no real structure has them, and the energy there means "
                "nothing"
            )
        return count
