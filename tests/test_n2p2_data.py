"""n2p2 input.data: reading into ASE, writing back, every error case.

Reference values: the numbers typed into the hand-written fixture, the structure and atom counts of
n2p2's example data sets as documented in ../shared/data/SOURCES.md, the atom counts of n2p2's own
reference predictions, and the raw file columns (parsed here with plain ``str.split``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator

from mpnn.errors import DataError
from mpnn.n2p2.input_data import read_input_data, write_input_data

FIXTURE = Path(__file__).parent / "fixtures" / "n2p2" / "input.data"
#: name -> (structures, atoms), from SOURCES.md.
SETS = {"H2O_RPBE-D3": (20, 2064), "Cu2S_PBE": (20, 2880), "Anisole": (20, 5120),
        "Ethylbenzene": (21, 6048), "DMABN": (21, 441), "LJ": (101, 202)}


def test_fixture_values() -> None:
    water, copper = read_input_data(FIXTURE)
    assert water.get_chemical_symbols() == ["O", "H", "H"] and copper.get_chemical_symbols() == ["Cu"]
    assert water.pbc.all() and not copper.pbc.any() and copper.cell.rank == 0
    np.testing.assert_array_equal(water.cell.array, [[10.0, 0, 0], [0, 11.0, 0], [1.0, 0, 12.0]])
    np.testing.assert_array_equal(water.positions[2], [-0.24, 0.927, 0.0])
    np.testing.assert_array_equal(water.get_initial_charges(), [-0.8, 0.4, 0.4])
    np.testing.assert_array_equal(water.get_forces()[0], [0.1, 0.2, 0.3])
    assert water.get_potential_energy() == -76.5 and copper.get_potential_energy() == 2.5
    np.testing.assert_array_equal(copper.get_forces(), [[0.0, 0.0, 0.15]])
    assert water.info["comment"] == " periodic water pair, hand-written (mpnn test fixture)"
    assert copper.info == {"comment": "", "charge": 0.0, "n2p2_set": "test"}


def test_units_are_converted(tmp_path: Path) -> None:
    water = read_input_data(FIXTURE, length=units.Bohr, energy=units.Hartree)[0]
    np.testing.assert_allclose(water.positions[1], [0.9572 * units.Bohr, 0, 0], rtol=1e-15)
    np.testing.assert_allclose(water.cell.array[2], [units.Bohr, 0, 12.0 * units.Bohr], rtol=1e-15)
    assert water.get_potential_energy() == pytest.approx(-76.5 * units.Hartree, rel=1e-15)
    np.testing.assert_allclose(water.get_forces()[2], np.array([0, -0.2, -0.3]) * units.Hartree / units.Bohr,
                               rtol=1e-15)
    write_input_data(tmp_path / "input.data", [water], length=units.Bohr, energy=units.Hartree)
    raw = [line.split() for line in (tmp_path / "input.data").read_text().splitlines()]
    atom = [r for r in raw if r[0] == "atom"][1]
    assert float(atom[1]) == pytest.approx(0.9572, rel=1e-15)
    assert float(atom[7]) == pytest.approx(-0.1, rel=1e-15)
    assert [float(r[1]) for r in raw if r[0] == "energy"] == [pytest.approx(-76.5, rel=1e-15)]


def test_fixture_round_trip_is_exact(tmp_path: Path) -> None:
    first = read_input_data(FIXTURE)
    write_input_data(tmp_path / "out.data", first)
    second = read_input_data(tmp_path / "out.data")
    write_input_data(tmp_path / "again.data", second)
    assert (tmp_path / "out.data").read_text() == (tmp_path / "again.data").read_text()
    for a, b in zip(first, second, strict=True):
        _assert_same(a, b)
    assert not list(tmp_path.glob(".*tmp"))


def _assert_same(a: Atoms, b: Atoms) -> None:
    assert a.get_chemical_symbols() == b.get_chemical_symbols() and a.info == b.info
    assert np.array_equal(a.positions, b.positions) and np.array_equal(a.cell.array, b.cell.array)
    assert np.array_equal(a.pbc, b.pbc) and np.array_equal(a.get_initial_charges(), b.get_initial_charges())
    assert np.array_equal(a.get_forces(), b.get_forces())
    assert a.get_potential_energy() == b.get_potential_energy()


def test_configuration_sets(n2p2_examples: Path, tmp_path: Path) -> None:
    for name, (n_structures, n_atoms) in SETS.items():
        path = n2p2_examples / "configuration-sets" / f"input.data.{name}"
        structures = read_input_data(path)
        assert (len(structures), sum(len(s) for s in structures)) == (n_structures, n_atoms), name
        lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
        atom_lines = [w for w in lines if w[0] == "atom"]
        positions = np.concatenate([s.positions for s in structures])
        forces = np.concatenate([s.get_forces() for s in structures])
        np.testing.assert_array_equal(positions, [[float(x) for x in w[1:4]] for w in atom_lines])
        np.testing.assert_array_equal(forces, [[float(x) for x in w[7:10]] for w in atom_lines])
        energies = [float(w[1]) for w in lines if w[0] == "energy"]
        assert [s.get_potential_energy() for s in structures] == energies
        assert all(s.pbc.all() == (name not in ("DMABN", "LJ")) for s in structures)
        write_input_data(tmp_path / name, structures)
        for a, b in zip(structures, read_input_data(tmp_path / name), strict=True):
            _assert_same(a, b)


def test_prediction_structures_match_n2p2_reference(n2p2_examples: Path, n2p2_reference: dict) -> None:
    for name, ref in n2p2_reference.items():
        if name.startswith("_"):
            continue
        (atoms,) = read_input_data(n2p2_examples / "nnp-predict" / name / "input.data")
        assert len(atoms) == ref["n_atoms"] == len(ref["forces"]), name


def test_write_without_results_and_from_plain_atoms(tmp_path: Path) -> None:
    plain = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    solid = Atoms("Cu", positions=[[0.5, 0.5, 0.5]], cell=np.eye(3) * 3.6, pbc=True)
    solid.calc = SinglePointCalculator(solid, energy=-3.5, forces=[[0.0, 0.0, 0.0]])
    write_input_data(tmp_path / "input.data", [plain, solid])
    a, b = read_input_data(tmp_path / "input.data")
    assert a.get_potential_energy() == 0.0 and np.array_equal(a.get_forces(), np.zeros((2, 3)))
    assert not a.pbc.any() and b.pbc.all() and b.get_potential_energy() == -3.5
    with pytest.raises(DataError, match="fully periodic or non-periodic"):
        write_input_data(tmp_path / "x.data", [Atoms("H", cell=np.eye(3), pbc=[True, True, False])])
    with pytest.raises(DataError, match="no structures to write"):
        write_input_data(tmp_path / "x.data", [])


GOOD_ATOM = "atom 0.0 0.0 0.0 H 0.0 0.0 0.0 0.0 0.0"
BAD_DATA = [
    ("begin\n" + GOOD_ATOM + "\nenergy 1.0\n", ":1: structure has no 'end'"),
    ("begin\n" + GOOD_ATOM + "\nbegin\n", ":3: 'begin' inside the structure of line 1"),
    ("begin\nforce 1 2 3\nend\n", ":2: unknown line type 'force'"),
    ("energy 1.0\n", ":1: expected 'begin', found 'energy'"),
    ("begin\natom 0.0 0.0 0.0 H 0.0 0.0 0.0 0.0\nend\n", ":2: 'atom' line needs 10 fields, found 9"),
    ("begin\n" + GOOD_ATOM + "\nenergy\nend\n", ":3: 'energy' line needs 2 fields, found 1"),
    ("begin\natom 0.0 x 0.0 H 0.0 0.0 0.0 0.0 0.0\nend\n", ":2: not a number: 'x'"),
    ("begin\natom 0.0 nan 0.0 H 0.0 0.0 0.0 0.0 0.0\nend\n", ":2: not a finite number: 'nan'"),
    ("begin\natom inf 0.0 0.0 H 0.0 0.0 0.0 0.0 0.0\nend\n", ":2: not a finite number: 'inf'"),
    ("begin\natom 0.0 0.0 0.0 Xy 0.0 0.0 0.0 0.0 0.0\nend\n", ":2: unknown element symbol 'Xy'"),
    ("begin\ncomment empty\nenergy 1.0\nend\n", ":1: structure has no atoms"),
    ("begin\nlattice 1 0 0\nlattice 0 1 0\n" + GOOD_ATOM + "\nend\n", ":1: structure has 2 lattice lines"),
    ("begin\n" + "lattice 1 0 0\n" * 4 + GOOD_ATOM + "\nend\n", ":5: more than three lattice lines"),
    ("begin set=valid\n" + GOOD_ATOM + "\nend\n", ":1: unknown 'begin' argument 'set=valid'"),
    ("\n\n", ": no structure in file"),
]


@pytest.mark.parametrize(("text", "message"), BAD_DATA)
def test_errors_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "input.data"
    path.write_text(text)
    with pytest.raises(DataError) as error:
        read_input_data(path)
    assert f"input.data{message}" in str(error.value) and "\n" not in str(error.value)
