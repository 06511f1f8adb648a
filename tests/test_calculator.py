"""The ASE calculator and MD: ASE's own finite differences, n2p2's numbers in eV, energy conservation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from ase.io import read
from ase.units import Bohr, Hartree
from small_potentials import TRICLINIC, small_hdnnp

from mpnn.data.atoms import read_structures
from mpnn.errors import DataError
from mpnn.potentials.calculator import MpnnCalculator
from mpnn.potentials.md import run_md

CLUSTER = Atoms(
    "OH2OH2",
    positions=[[0.0, 0.0, 0.12], [0.0, 0.76, -0.47], [0.0, -0.76, -0.47],
               [2.9, 0.1, 0.0], [3.3, 0.9, 0.3], [3.4, -0.6, 0.4]],
)  # fmt: skip


@pytest.fixture(scope="module")
def model():
    return small_hdnnp(("H", "O"), rc=4.0, cutoff_type=6, seed=5)


def crystal() -> Atoms:
    fractions = [[0.1, 0.1, 0.1], [0.4, 0.2, 0.3], [0.2, 0.6, 0.5], [0.7, 0.7, 0.8]]
    return Atoms("OHHO", scaled_positions=fractions, cell=np.array(TRICLINIC) * 1.3, pbc=True)


def test_forces_and_stress_equal_ases_finite_differences(model) -> None:
    atoms = crystal()
    atoms.calc = MpnnCalculator(model)
    forces, stress = atoms.get_forces(), atoms.get_stress()
    np.testing.assert_allclose(forces, calculate_numerical_forces(atoms, eps=1e-4), atol=1e-7, rtol=0)
    np.testing.assert_allclose(stress, calculate_numerical_stress(atoms, eps=1e-5), atol=1e-8, rtol=0)
    assert np.abs(stress).max() > 1e-4 and np.abs(forces).max() > 1e-3
    results = atoms.calc.results
    assert results["free_energy"] == results["energy"]
    assert results["energies"].sum() == pytest.approx(results["energy"], abs=1e-12)
    assert results["forces"].dtype == np.float64 and results["stress"].shape == (6,)


def test_results_follow_the_atoms_and_stress_needs_a_cell(model) -> None:
    atoms = CLUSTER.copy()
    atoms.calc = MpnnCalculator(model)
    energy = atoms.get_potential_energy()
    with pytest.raises(PropertyNotImplementedError):
        atoms.get_stress()
    atoms.positions[0, 0] += 0.05
    assert atoms.get_potential_energy() != energy
    assert abs(atoms.get_forces().sum(axis=0)).max() < 1e-12
    boxed = CLUSTER.copy()
    boxed.cell = np.eye(3) * 10.0  # a molecule in a box (pbc False): stress from the strain of the box
    boxed.calc = MpnnCalculator(model)
    np.testing.assert_allclose(boxed.get_stress(), calculate_numerical_stress(boxed, eps=1e-5), atol=1e-9)
    foreign = Atoms("NH3", positions=np.eye(4, 3) * 1.1)
    foreign.calc = MpnnCalculator(model)
    with pytest.raises(DataError, match="atoms: structure 0, atom 0: element N is not one of"):
        foreign.get_potential_energy()
    broken = CLUSTER.copy()
    broken.positions[4] = broken.positions[1]
    broken.calc = MpnnCalculator(model)
    with pytest.raises(DataError, match=r"atoms: structure 0 \(atoms 0:6\): atoms 1 and 4 are at the same"):
        broken.get_forces()


def test_n2p2_water_in_ev_through_the_calculator(n2p2_examples, n2p2_reference) -> None:
    """n2p2's energy (Hartree) and forces (Hartree/Bohr) for its 1080-atom water box, in eV and eV/A."""
    from mpnn.potentials.load import load_potential

    folder = n2p2_examples / "nnp-predict" / "H2O_RPBE-D3"
    units = (0.529177210903, 27.211386245988)  # CODATA 2018, as mpnn.n2p2.convert.parse_units
    atoms = read_structures(folder / "input.data", units=units)[0]
    atoms.calc = MpnnCalculator(load_potential(folder, units=units))
    ref = n2p2_reference["H2O_RPBE-D3"]
    assert atoms.get_potential_energy() == pytest.approx(ref["energy"] * units[1], rel=1e-13)
    expected = np.array(ref["forces"]) * (units[1] / units[0])
    np.testing.assert_allclose(atoms.get_forces(), expected, atol=1e-11, rtol=0)


def test_nve_conserves_the_energy_of_n2p2_water(n2p2_examples) -> None:
    """20 steps of 0.5 fs from 300 K on n2p2's 1080-atom water box (an MD snapshot), velocity Verlet.

    Velocity Verlet conserves a shadow energy: E_pot + E_kin fluctuates by O((omega dt)^2) of the
    kinetic energy of the fastest modes (O-H stretch, period ~9 fs) without drift. Measured: max
    |E(t) - E(0)| = 1.3e-5 eV/atom while E_pot and E_kin exchange 0.93 eV. The bounds: 2e-4 eV/atom
    (0.5% of 3/2 k_B T per atom), and 5% of the range of E_pot over the run (measured 1.5%):
    forces that are not -dE/dr (a wrong sign, unit or scale of one term, 10% off) break it.
    """
    from mpnn.potentials.load import load_potential

    folder = n2p2_examples / "nnp-predict" / "H2O_RPBE-D3"
    atoms = read_structures(folder / "input.data", units=(Bohr, Hartree))[0]
    model = load_potential(folder, units=(Bohr, Hartree))
    log = run_md(model, atoms, steps=20, timestep_fs=0.5, initial_temperature_K=300.0, seed=1)
    total, potential = log.total, np.asarray(log.potential)
    change = np.abs(total - total[0]).max()
    assert change / len(atoms) < 2e-4
    assert change < 0.05 * np.ptp(potential)
    assert np.ptp(potential) > 0.5  # energy did flow between E_pot and E_kin


def test_md_trajectory_frames_and_nvt(model, tmp_path) -> None:
    path = tmp_path / "traj.extxyz"
    atoms = CLUSTER.copy()
    log = run_md(model, atoms, steps=6, timestep_fs=0.5, initial_temperature_K=200.0, trajectory_path=path,
                 interval=2, seed=3)  # fmt: skip
    frames = read(path, ":")
    assert [f.info["step"] for f in frames] == log.step == [0, 2, 4, 6]
    np.testing.assert_allclose([f.get_potential_energy() for f in frames], log.potential, rtol=1e-12)
    np.testing.assert_allclose(frames[-1].get_velocities(), atoms.get_velocities(), atol=1e-6)
    np.testing.assert_allclose(frames[-1].get_forces(), atoms.get_forces(), atol=1e-7)
    assert abs(frames[0].get_momenta().sum(axis=0)).max() < 1e-6  # no centre-of-mass motion
    again = CLUSTER.copy()
    run_md(model, again, steps=6, timestep_fs=0.5, temperature_K=200.0, seed=3)
    other = CLUSTER.copy()
    run_md(model, other, steps=6, timestep_fs=0.5, temperature_K=200.0, seed=3)
    np.testing.assert_array_equal(again.positions, other.positions)  # the seed fixes the Langevin noise
    assert not np.allclose(again.positions, atoms.positions)


def test_a_crash_leaves_the_frames_written_so_far(model, tmp_path) -> None:
    calc = MpnnCalculator(model)
    calls = {"n": 0}
    original = calc.calculate

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("boom")
        return original(*args, **kwargs)

    calc.calculate = failing
    path = tmp_path / "traj.extxyz"
    with pytest.raises(RuntimeError, match="boom"):
        run_md(calc, CLUSTER.copy(), steps=10, timestep_fs=0.5, trajectory_path=path)
    assert not path.exists()  # the trajectory appears only when the run ends
    frames = read(tmp_path / "traj.extxyz.partial", ":", format="extxyz")
    assert [f.info["step"] for f in frames] == [0, 1, 2]
    with pytest.raises(DataError, match="interval"):
        run_md(model, CLUSTER.copy(), steps=1, timestep_fs=0.5, interval=0, trajectory_path=tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_calculator_takes_dtype_and_needs_a_cutoff(model) -> None:
    with pytest.raises(ValueError, match="cutoff"):
        MpnnCalculator(torch.nn.Linear(1, 1))
    atoms = CLUSTER.copy()
    atoms.calc = MpnnCalculator(small_hdnnp(("H", "O"), rc=4.0, cutoff_type=6, seed=5), dtype=torch.float32)
    single = atoms.get_potential_energy()
    atoms.calc = MpnnCalculator(model)
    assert single == pytest.approx(atoms.get_potential_energy(), rel=1e-5)


def test_a_change_of_what_the_model_reads_recomputes_and_nothing_else_does(model) -> None:
    atoms = crystal()
    calc = MpnnCalculator(model)
    atoms.calc = calc
    atoms.get_forces()
    calls = calc.calls
    atoms.get_forces(), atoms.get_potential_energy()
    atoms.set_initial_charges([0.1, 0.0, 0.0, 0.0])  # not an input of the model: the results stand
    atoms.get_forces()
    assert calc.calls == calls
    for change in (
        lambda a: a.positions.__setitem__((0, 0), a.positions[0, 0] + 1e-9),
        lambda a: a.set_cell(a.cell.array * 1.001, scale_atoms=False),
        lambda a: a.set_pbc([True, True, False]),
        lambda a: a.numbers.__setitem__(1, 8),
    ):
        before = calc.results["energy"]
        change(atoms)
        fresh = atoms.copy()  # the same structure, evaluated by a new calculator
        fresh.calc = MpnnCalculator(model)
        assert atoms.get_potential_energy() == pytest.approx(fresh.get_potential_energy(), abs=1e-12)
        assert calc.calls == calls + 1 and atoms.get_potential_energy() != before
        calls = calc.calls
