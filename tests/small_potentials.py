"""Small potentials with random weights and random structures for the potential tests."""

from __future__ import annotations

from dataclasses import replace
from itertools import combinations_with_replacement

import numpy as np
import torch
from ase import Atoms
from ase.build import molecule
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from mpnn.batch import Molecule
from mpnn.data.atoms import atoms_to_molecule
from mpnn.models.hdnnp import HDNNPConfig, hdnnp
from mpnn.neighbors import neighbor_list

#: ``mpnn train-potential`` options of a potential trained in seconds (tiny functions, networks, 1 epoch)
TINY_POTENTIAL = (
    "--radial 3 --r-min 0.8 --angular 1 --angular-shifts 1 --zetas 1,4 --nodes 6,6 --cutoff 4.0 "
    "--batch-size 4 --epochs 1 --quiet"
).split()


def small_hdnnp(elements: tuple[str, ...], rc: float, cutoff_type: int, seed: int, weighted: bool = False):
    """Radial (2) and angular (3) functions for every neighbour combination, one wide angular function (9),
    optionally the weighted ones (12, 13); random tanh networks."""
    torch.manual_seed(seed)
    specs = []
    for _ in elements:
        mine = [dict(type=2, neighbors=[n], eta=eta, rs=rs, rc=rc) for n in elements for eta, rs in
                ((0.3, 0.0), (1.0, 1.5))]  # fmt: skip
        for pair in combinations_with_replacement(elements, 2):
            mine.append(dict(type=3, neighbors=list(pair), eta=0.05, lambda_=1.0, zeta=2.0, rc=rc))
        mine.append(
            dict(type=9, neighbors=[elements[0], elements[-1]], eta=0.1, lambda_=-1.0, zeta=1.0, rc=rc)
        )
        if weighted:
            mine += [
                dict(type=12, eta=0.5, rs=1.0, rc=rc),
                dict(type=13, eta=0.1, rs=0.0, lambda_=1.0, zeta=4.0, rc=rc),
            ]
        specs.append(mine)
    count = len(elements)
    config = HDNNPConfig(list(elements), specs, cutoff_type=cutoff_type, nodes=[[8, 6]] * count,
                         activations=["ttl"] * count, scaling="none")  # fmt: skip
    model = hdnnp(config)
    with torch.no_grad():
        model.update.offsets.copy_(torch.randn(count, dtype=torch.float64))
    return model


def spread(n: int, box: np.ndarray, generator: np.random.Generator, pbc, min_dist: float = 0.9) -> np.ndarray:
    """n random positions in the box whose pairs (and images) are at least ``min_dist`` apart."""
    pos = np.zeros((0, 3))
    while len(pos) < n:
        trial = np.vstack([pos, generator.random(3) @ box])
        if len(neighbor_list(trial, min_dist, box if any(pbc) else None, pbc)[0]) == 0:
            pos = trial
    return pos


def structure(symbols: str, box, pbc, seed: int, features: int = 0) -> Molecule:
    generator = np.random.default_rng(seed)
    box = np.asarray(box, dtype=np.float64)
    atoms = Atoms(symbols, positions=spread(len(symbols), box, generator, pbc), cell=box, pbc=pbc)
    mol = atoms_to_molecule(atoms)
    if features:
        mol = replace(mol, x=torch.tensor(generator.random((len(symbols), features))))
    return mol


TRICLINIC = [[3.1, 0.0, 0.0], [0.6, 2.9, 0.0], [-0.4, 0.5, 3.3]]


def mixed_structures() -> list[Molecule]:
    """A slab (periodic in a, b), a wire (periodic in a) and a molecule of H and O."""
    slab_cell = [[3.0, 0.0, 0.0], [0.8, 3.2, 0.0], [0.0, 0.0, 6.0]]
    wire_cell = [[2.8, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 0.0, 5.0]]
    return [
        structure("OHHO", slab_cell, [True, True, False], 6),
        structure("OHH", wire_cell, [True, False, False], 7),
        structure("OHHOH", np.eye(3) * 4.0, [False] * 3, 8),
    ]


def labelled(count: int, seed: int) -> list[Atoms]:
    """Distorted water, methane and methanol with EMT energies (eV) and forces (eV/Angstrom)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        atoms = molecule(("H2O", "CH4", "CH3OH")[k % 3])
        atoms.positions += rng.normal(scale=0.08, size=atoms.positions.shape)
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        out.append(atoms)
    return out


def water_dimers(count: int, seed: int = 0, scale: float = 0.08, emt: bool = True) -> list[Atoms]:
    """Two water molecules, positions (Angstrom) distorted by N(0, ``scale``); EMT energies and
    forces frozen in, or (``emt=False``) zero energy and forces, where no label is needed."""
    rng = np.random.default_rng(seed)
    base = np.array(
        [[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0],
         [2.9, 0.0, 0.2], [3.3, 0.8, 0.5], [3.3, -0.7, 0.6]]
    )  # fmt: skip
    out = []
    for _ in range(count):
        atoms = Atoms("OHHOHH", positions=base + rng.normal(scale=scale, size=base.shape))
        energy, forces = 0.0, np.zeros((6, 3))
        if emt:
            atoms.calc = EMT()
            energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        out.append(atoms)
    return out
