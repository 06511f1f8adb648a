"""Structures from files (extxyz, n2p2 input.data), their validation, and radius-graph batches."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from ase.units import Bohr, Hartree

from mpnn.data.atoms import (
    atoms_to_molecule,
    check_elements,
    collate_structures,
    is_input_data,
    read_structures,
)
from mpnn.errors import DataError

WATER = Atoms("OH2", positions=[[0.0, 0.0, 0.1178], [0.0, 0.7555, -0.4712], [0.0, -0.7555, -0.4712]])

# an n2p2 input.data written by hand: a periodic H2 and a free H atom pair, atomic units
INPUT_DATA = """begin
comment two hydrogens in a box
lattice 10.0 0.0 0.0
lattice 0.0 11.0 0.0
lattice 1.0 0.0 12.0
atom 1.0 2.0 3.0 H 0.0 0.0 0.01 0.02 -0.03
atom 1.0 2.0 4.4 H 0.0 0.0 -0.01 -0.02 0.03
energy -1.17
charge 0.0
end
begin
comment free
atom 0.0 0.0 0.0 H 0.0 0.0 0.0 0.0 0.5
atom 0.0 0.0 2.0 H 0.0 0.0 0.0 0.0 -0.5
energy -0.9
charge 0.0
end
"""


def with_results(atoms: Atoms, energy: float, seed: int) -> Atoms:
    atoms = atoms.copy()
    forces = np.random.default_rng(seed).normal(size=(len(atoms), 3))
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
    return atoms


def test_extxyz_with_energy_and_forces(tmp_path: Path) -> None:
    moved = WATER.copy()
    moved.positions += 0.01
    frames = [with_results(WATER, -14.2, 0), with_results(moved, -14.1, 1)]
    path = tmp_path / "water.extxyz"
    write(path, frames, format="extxyz")
    read = read_structures(path)
    assert len(read) == 2
    mol = atoms_to_molecule(read[1])
    assert mol.y.tolist() == [-14.1] and mol.y.dtype == torch.float64
    np.testing.assert_allclose(mol.forces.numpy(), frames[1].get_forces(), atol=1e-8)
    np.testing.assert_allclose(mol.pos.numpy(), frames[1].positions, atol=1e-8)
    assert mol.cell is None and mol.pbc is None and mol.z.tolist() == [8, 1, 1]
    assert [a.get_potential_energy() for a in read_structures(path, index=-1)] == [-14.1]
    assert len(read_structures(path, index="1:")) == 1


def test_n2p2_input_data_by_name_and_by_content_with_units(tmp_path: Path) -> None:
    named = tmp_path / "input.data"
    named.write_text(INPUT_DATA)
    other = tmp_path / "water.dat"
    other.write_text("\n  " + INPUT_DATA)
    assert is_input_data(named) and is_input_data(other)
    for path in (named, other):
        first, second = read_structures(path, units=(Bohr, Hartree))
        np.testing.assert_allclose(first.positions[1], np.array([1.0, 2.0, 4.4]) * Bohr, rtol=1e-15)
        np.testing.assert_allclose(first.cell.array[2], np.array([1.0, 0.0, 12.0]) * Bohr, rtol=1e-15)
        assert first.pbc.all() and not second.pbc.any()
        mol = atoms_to_molecule(first)
        assert float(mol.y) == pytest.approx(-1.17 * Hartree, rel=1e-15)
        np.testing.assert_allclose(mol.forces[0].numpy(), np.array([0.01, 0.02, -0.03]) * Hartree / Bohr)
        assert mol.cell.shape == (3, 3) and mol.pbc.tolist() == [True] * 3
    assert len(read_structures(named, index=1)) == 1
    with pytest.raises(DataError, match="no structure 5 .the file holds 2."):
        read_structures(named, index=5)


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("3\n\nO 0 0 0\nH 0 0 1\nH 0 1 nan\n", "structure 0, atom 2: non-finite position"),
        ("3\n\nO 0 0 0\nH 0 0 1\nH 0 0 0\n", "structure 0: atoms 0 and 2 are at the same position"),
        ("2\n\nO 0 0 0\nX 0 0 1\n", "structure 0, atom 1: unknown element (atomic number 0)"),
        ("2\n\nO 0 0 0\nQq 0 0 1\n", "cannot read with ASE"),
        ("this is not a structure\n", "cannot read with ASE"),
        ("0\n\n", "structure 0: no atoms"),
    ],
)
def test_bad_structures_are_one_line_errors_naming_file_structure_and_atom(tmp_path, text, message) -> None:
    path = tmp_path / "bad.xyz"
    path.write_text(text)
    with pytest.raises(DataError) as error:
        read_structures(path)
    assert re.match(rf"{re.escape(str(path))}(:\d+: frame \d+)?: ", one_line(error)), one_line(error)
    assert message in one_line(error)


def test_an_atom_on_its_own_periodic_image_and_a_missing_file(tmp_path: Path) -> None:
    atoms = Atoms("H2", positions=[[0, 0, 0], [3.0, 0, 0]], cell=np.eye(3) * 3.0, pbc=True)
    path = tmp_path / "cell.extxyz"
    write(path, [WATER, atoms], format="extxyz")
    with pytest.raises(DataError) as error:
        read_structures(path)
    assert "structure 1: atoms 0 and 1 are at the same position (periodic image" in one_line(error)
    with pytest.raises(DataError, match="no/such.xyz: no such file"):
        read_structures(tmp_path / "no/such.xyz")
    bad = tmp_path / "input.data"
    bad.write_text(INPUT_DATA.replace("atom 0.0 0.0 0.0 H", "atom 0.0 0.0 0.0 Xy"))
    with pytest.raises(DataError, match=r"input.data:13: unknown element symbol 'Xy'"):
        read_structures(bad)


def test_check_elements_names_the_atom() -> None:
    check_elements([WATER], [1, 8])
    expected = r"f.xyz: structure 1, atom 0: element O is not one of the model's elements \(H, C\)"
    with pytest.raises(DataError, match=expected):
        check_elements([Atoms("H"), WATER], [6, 1], "f.xyz")


# -- collate_structures ---------------------------------------------------------------------------
def brute_force_pairs(pos: np.ndarray, cell: np.ndarray, pbc, cutoff: float) -> set:
    """All (i, j, S) with 0 < |pos[j] - pos[i] + S cell| < cutoff, by trying every shift up to a bound."""
    heights = 1.0 / np.linalg.norm(np.linalg.inv(cell), axis=0)  # distances between lattice planes
    reach = [int(np.ceil(cutoff / h)) + 1 if p else 0 for h, p in zip(heights, pbc, strict=True)]
    found = set()
    for shift in itertools.product(*[range(-r, r + 1) for r in reach]):
        offset = np.array(shift) @ cell
        for i, j in itertools.product(range(len(pos)), repeat=2):
            d = np.linalg.norm(pos[j] - pos[i] + offset)
            if 0 < d < cutoff:
                found.add((i, j, shift))
    return found


def test_collate_structures_edges_are_the_brute_force_neighbour_pairs() -> None:
    cell = np.array([[2.6, 0.0, 0.0], [0.7, 2.4, 0.0], [-0.3, 0.4, 2.9]])
    crystal = Atoms("CHO", positions=[[0.1, 0.2, 0.3], [1.2, 0.9, 1.1], [2.0, 1.8, 2.2]], cell=cell, pbc=True)
    slab = Atoms("HH", positions=[[0.0, 0.0, 0.0], [0.5, 0.6, 1.2]], cell=cell, pbc=[True, False, True])
    water = with_results(WATER, -14.0, 2)
    crystal = with_results(crystal, -3.0, 3)
    slab = with_results(slab, -1.0, 4)
    cutoff = 3.7
    batch = collate_structures([crystal, water, slab], cutoff)
    assert batch.ptr.tolist() == [0, 3, 6, 8] and batch.batch.tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    assert (
        batch.cell.shape == (3, 3, 3)
        and not batch.pbc[1].any()
        and batch.pbc[2].tolist() == [True, False, True]
    )
    assert torch.equal(batch.cell[1], torch.zeros(3, 3))
    assert batch.y.tolist() == [[-3.0], [-14.0], [-1.0]] and batch.forces.shape == (8, 3)
    source, target = batch.edge_index
    assert bool((target[1:] >= target[:-1]).all())
    for b, atoms in enumerate((crystal, water, slab)):
        start = int(batch.ptr[b])
        mine = {
            (int(t) - start, int(s) - start, tuple(int(v) for v in shift))
            for s, t, shift in zip(source, target, batch.shift, strict=True)
            if int(batch.batch[t]) == b
        }
        big = np.eye(3) * 100.0 if not atoms.pbc.any() else atoms.cell.array
        assert mine == brute_force_pairs(atoms.positions, big, atoms.pbc, cutoff)
        assert len(mine) > 0
    images = torch.bmm(batch.shift.unsqueeze(1), batch.cell[batch.batch[target]]).squeeze(1)
    vectors = batch.pos[source] - batch.pos[target] + images
    assert float(vectors.norm(dim=1).max()) < cutoff


def test_collate_of_molecules_has_no_cell_and_keeps_node_features() -> None:
    mol = atoms_to_molecule(WATER)
    batch = collate_structures([mol, mol], 1.0)
    assert batch.cell is None and batch.pbc is None and batch.shift is None and batch.y is None
    assert batch.edge_index.tolist() == [[1, 2, 0, 0, 4, 5, 3, 3], [0, 0, 1, 2, 3, 3, 4, 5]]
    assert batch.x.shape == (6, 0)
    with pytest.raises(DataError, match="no structures"):
        collate_structures([], 1.0)
