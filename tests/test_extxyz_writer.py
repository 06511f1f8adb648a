"""mpnn's extended-XYZ writer against ASE's: the same text, or None (then ASE writes it)."""

from __future__ import annotations

import io

import numpy as np
from ase.build import bulk, molecule
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixAtoms
from ase.io import write

from mpnn.potentials.extxyz import extxyz_text


def _ase_text(structures) -> str:
    buffer = io.StringIO()
    write(buffer, structures, format="extxyz")
    return buffer.getvalue()


def _predicted_molecule():
    atoms = molecule("CH3CH2OH")
    g = np.random.default_rng(0)
    atoms.info.update(name="ethanol 1", index=3, flag=True, vector=np.array([1.5, -2.0]), ref_energy=-1.25)
    atoms.arrays["tag2"] = np.arange(9)
    atoms.arrays["kept"] = np.ones(9, dtype=bool)
    atoms.arrays["ref_forces"] = g.normal(size=(9, 3))
    atoms.calc = SinglePointCalculator(
        atoms, energy=-3.5, free_energy=-3.5, forces=g.normal(size=(9, 3)), energies=g.normal(size=9)
    )
    return atoms


def _predicted_crystal():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
    atoms.rattle(0.05, seed=1)
    g = np.random.default_rng(1)
    atoms.info["units"] = "length=Angstrom energy=eV"
    atoms.calc = SinglePointCalculator(
        atoms,
        energy=-30.25,
        free_energy=-30.25,
        forces=g.normal(size=(8, 3)),
        energies=g.normal(size=8),
        stress=g.normal(size=6),
    )
    return atoms


def test_text_equals_ases_for_molecules_and_crystals():
    structures = [_predicted_molecule(), _predicted_crystal(), _predicted_molecule()]
    for chosen in (structures[:1], structures[1:2], structures):
        assert extxyz_text(chosen) == _ase_text(chosen)


def test_what_it_does_not_write_is_left_to_ase():
    constrained = _predicted_molecule()
    constrained.set_constraint(FixAtoms([0]))
    nested = _predicted_molecule()
    nested.info["matrix"] = np.eye(2)  # ASE writes this as JSON
    for atoms in (constrained, nested):
        assert extxyz_text([atoms]) is None
        assert extxyz_text([_predicted_crystal(), atoms]) is None
