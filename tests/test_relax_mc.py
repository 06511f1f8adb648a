"""Geometry optimisation and Metropolis Monte Carlo: minima against independent references (EMT's
lattice constant by a scan of E(a), n2p2's water potential), acceptance against the Boltzmann factor
of energies evaluated directly, and stationary distributions with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms
from ase.io import read
from ase.units import Bohr, Hartree
from scipy.optimize import minimize_scalar
from small_potentials import TRICLINIC, small_hdnnp

from mpnn.data.atoms import read_structures
from mpnn.errors import DataError
from mpnn.potentials.calculator import MpnnCalculator
from mpnn.potentials.montecarlo import run_mc
from mpnn.potentials.relax import relax

pytestmark = pytest.mark.usefixtures("one_thread")

#: An O-H-H triangle with three different distances: the three places of O have three energies.
TRIANGLE = Atoms("OHH", positions=[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.3, 1.5, 0.0]])


@pytest.fixture(scope="module")
def model():
    return small_hdnnp(("H", "O"), rc=4.0, cutoff_type=6, seed=5)


def fresh_energy(model, atoms: Atoms) -> float:
    """The potential's energy of ``atoms`` by a calculator of its own (energy, forces, stress)."""
    copy = atoms.copy()
    copy.calc = MpnnCalculator(model)
    return copy.get_potential_energy()


def largest_force(forces: np.ndarray) -> float:
    return float(np.linalg.norm(forces, axis=1).max())


# -- relax ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def water_potential(n2p2_examples):
    from mpnn.potentials.load import load_potential

    folder = n2p2_examples / "nnp-predict" / "H2O_RPBE-D3"
    box = read_structures(folder / "input.data", units=(Bohr, Hartree))[0]
    molecule = Atoms(box.numbers[:3], positions=box.positions[:3])  # one molecule of the box
    return load_potential(folder, units=(Bohr, Hartree)), molecule


def test_relax_finds_the_water_potentials_minimum(water_potential, tmp_path) -> None:
    """A distorted water molecule with n2p2's RPBE-D3 water potential: both optimizers reach fmax,
    lower the energy and find the same symmetric minimum (two equal O-H bonds; checked with a
    calculator of their own, not the optimizer's numbers)."""
    model, molecule = water_potential
    start = molecule.copy()
    start.rattle(0.1, seed=3)
    found = {}
    for name in ("FIRE", "BFGS"):
        atoms = start.copy()
        path = tmp_path / f"{name}.extxyz"
        result = relax(model, atoms, fmax=0.005, steps=300, optimizer=name, trajectory_path=path)
        assert result.converged and result.steps < 300
        check = atoms.copy()
        check.calc = MpnnCalculator(model)
        assert largest_force(check.get_forces()) < 0.005
        assert check.get_potential_energy() == pytest.approx(result.final_energy, abs=1e-9)
        assert result.final_energy < fresh_energy(model, start) - 0.5  # the distortion cost eV
        frames = read(path, ":")
        assert [f.info["step"] for f in frames] == list(range(result.steps + 1))
        np.testing.assert_allclose([f.get_potential_energy() for f in frames], result.energies, atol=1e-7)
        np.testing.assert_allclose(frames[0].positions, start.positions, atol=1e-8)
        found[name] = (result.final_energy, atoms.get_distance(0, 1), atoms.get_distance(0, 2))
    (e1, *bonds1), (e2, *bonds2) = found.values()
    assert e1 == pytest.approx(e2, abs=1e-4)
    np.testing.assert_allclose(sorted(bonds1), sorted(bonds2), atol=2e-3)
    assert bonds1[0] == pytest.approx(bonds1[1], abs=2e-3) and 0.9 < bonds1[0] < 1.05


def test_cell_relax_finds_emts_lattice_constant() -> None:
    """fcc Cu, its cubic cell strained and sheared, relaxes (cell and positions) to the lattice
    constant minimising EMT's E(a), found here by a scalar minimisation of the perfect crystal."""

    def energy(a: float) -> float:
        atoms = bulk("Cu", "fcc", a=a, cubic=True)
        atoms.calc = EMT()
        return atoms.get_potential_energy()

    a0 = minimize_scalar(energy, bracket=(3.4, 3.6, 3.8), tol=1e-10).x
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True)
    strain = np.array([[1.03, 0.02, 0.0], [0.0, 0.98, 0.0], [0.0, 0.0, 1.0]])
    atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
    atoms.rattle(0.01, seed=1)
    result = relax(EMT(), atoms, fmax=1e-4, steps=200, cell=True, optimizer="BFGS")
    assert result.converged
    # |V sigma / N| < 1e-4 eV: a strain below 1e-5 (bulk modulus 0.84 eV/A^3), 4e-5 A
    np.testing.assert_allclose(atoms.cell.cellpar(), [a0, a0, a0, 90, 90, 90], atol=2e-4)
    assert abs(a0 - 3.7) > 0.05  # the cell did move
    assert np.abs(atoms.get_stress()).max() < 2e-4 * len(atoms) / atoms.get_volume()
    assert np.abs(atoms.get_forces()).max() < 1e-4


def test_cell_relax_with_a_potential_lowers_energy_and_stress(model) -> None:
    fractions = [[0.1, 0.1, 0.1], [0.4, 0.2, 0.3], [0.2, 0.6, 0.5], [0.7, 0.7, 0.8]]
    atoms = Atoms("OHHO", scaled_positions=fractions, cell=np.array(TRICLINIC) * 1.3, pbc=True)
    start = atoms.copy()
    start.calc = MpnnCalculator(model)
    result = relax(model, atoms, fmax=0.05, steps=100, cell=True, optimizer="BFGS")
    assert result.converged
    check = atoms.copy()
    check.calc = MpnnCalculator(model)
    # the cell's "forces": the virial per atom in the frame of the deformation from the start cell
    deformation = np.linalg.solve(start.cell.array, check.cell.array).T
    virial = -check.get_volume() * check.get_stress(voigt=False) / len(check)
    virial = np.linalg.solve(deformation, virial.T).T
    assert largest_force(check.get_forces()) < 0.05 and largest_force(virial) < 0.05
    assert result.final_energy < start.get_potential_energy()
    assert np.abs(check.get_stress()).max() < np.abs(start.get_stress()).max()
    assert not np.allclose(check.cell.array, start.cell.array, atol=1e-3)


def test_relax_that_runs_out_of_steps_and_bad_settings(model, tmp_path) -> None:
    cluster = Atoms("OHHO", positions=[[0, 0, 0.1], [0, 0.8, -0.5], [0, -0.8, -0.5], [2.9, 0.1, 0]])
    path = tmp_path / "t.extxyz"
    atoms = cluster.copy()
    result = relax(model, atoms, fmax=1e-6, steps=3, trajectory_path=path, interval=2)
    assert not result.converged and result.steps == 3 and len(result.energies) == 4
    frames = read(path, ":")
    assert [f.info["step"] for f in frames] == [0, 2, 3]  # every 2 steps and the last
    np.testing.assert_allclose(frames[-1].positions, atoms.positions, atol=1e-8)
    assert frames[-1].info["fmax"] == pytest.approx(largest_force(atoms.get_forces()), rel=1e-6)
    assert not (tmp_path / "t.extxyz.partial").exists()
    bad = [({"fmax": 0.0}, "fmax must be > 0"), ({"optimizer": "CG"}, "unknown optimizer 'CG'"),
           ({"cell": True}, "relaxing the cell needs a periodic structure")]  # fmt: skip
    for kwargs, message in bad:
        with pytest.raises(DataError, match=message):
            relax(model, cluster.copy(), trajectory_path=tmp_path / "no.extxyz", **kwargs)
    assert not (tmp_path / "no.extxyz").exists() and not (tmp_path / "no.extxyz.partial").exists()


# -- Monte Carlo ---------------------------------------------------------------------------------------
class Harmonic(Calculator):
    """E = k/2 sum_i |r_i - r0_i|^2 (eV, k in eV/A^2): a known canonical average, <E> = 3N kT/2."""

    implemented_properties = ["energy"]

    def __init__(self, k: float, origin: np.ndarray) -> None:
        super().__init__()
        self.k, self.origin = k, origin

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        self.results = {"energy": 0.5 * self.k * float(((self.atoms.positions - self.origin) ** 2).sum())}


class Cached(Calculator):
    """The energies of ``model`` through an MpnnCalculator, each configuration evaluated once."""

    implemented_properties = ["energy"]

    def __init__(self, model) -> None:
        super().__init__()
        self.inner, self.seen = MpnnCalculator(model), {}

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        key = np.round(self.atoms.positions, 9).tobytes() + self.atoms.numbers.tobytes()
        if key not in self.seen:
            self.seen[key] = self.inner.get_potential_energy(self.atoms.copy())
        self.results = {"energy": self.seen[key]}


def batch_error(series: np.ndarray, batches: int = 20) -> float:
    """Standard error of the mean of a correlated series by batch means."""
    means = series[: len(series) // batches * batches].reshape(batches, -1).mean(axis=1)
    return float(means.std(ddof=1) / math.sqrt(batches))


def test_displacements_sample_the_harmonic_well() -> None:
    """Two atoms in a harmonic well at 300 K: <E> = 3 kT and <x^2> = kT/k per coordinate (exact for
    the canonical distribution; a wrong acceptance rule, exp(-dE/2kT) say, doubles them)."""
    kt = units.kB * 300.0
    origin = np.array([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    atoms = Atoms("CuCu", positions=origin)
    energies = []

    def observe(move) -> None:
        if move.step > 1000:  # after equilibration
            energies.append(move.trial_energy if move.accepted else move.energy)

    log = run_mc(Harmonic(1.0, origin), atoms, 16000, 300.0, step=0.3, seed=1, observer=observe)
    energies = np.asarray(energies)
    error = batch_error(energies)
    assert error < 0.04 * 3 * kt  # the check below is sharp
    assert energies.mean() == pytest.approx(3 * kt, abs=4 * error)
    assert log.attempted == {"displacement": 16000, "swap": 0}  # one element: no swaps
    assert 0.3 < log.acceptance("displacement") < 0.9
    assert log.mean_energy == pytest.approx(3 * kt, rel=0.1)  # all moves, equilibration included


def test_acceptance_of_each_move_is_its_boltzmann_factor(model) -> None:
    """Given a proposal with dE > 0 the move is accepted with probability exp(-dE/kT), dE from
    energies evaluated directly by a calculator of their own: the accepted uphill moves number
    sum_i exp(-dE_i/kT) within 4 standard deviations (sqrt(sum p(1-p)), the decisions being
    independent given the proposals); every downhill move is accepted."""
    atoms = Atoms(
        "OHHOH", positions=[[0, 0, 0], [0.96, 0, 0], [-0.3, 0.9, 0], [2.8, 0.2, 0.1], [3.2, 1.0, 0.4]]
    )
    temperature = 2000.0
    kt = units.kB * temperature
    moves, checked = [], []

    def observe(move) -> None:
        moves.append(move)
        if move.step % 40 == 0:  # the trial configuration is in atoms while the observer runs
            checked.append((move.trial_energy, fresh_energy(model, atoms)))

    log = run_mc(model, atoms, 800, temperature, step=0.15, swap_fraction=0.3, seed=2, observer=observe)
    for trial, direct in checked:
        assert trial == pytest.approx(direct, abs=1e-10)
    assert atoms.get_potential_energy() == pytest.approx(fresh_energy(model, atoms), abs=1e-10)
    assert log.final_energy == pytest.approx(fresh_energy(model, atoms), abs=1e-10)
    delta = np.array([m.trial_energy - m.energy for m in moves])
    accepted = np.array([m.accepted for m in moves])
    assert accepted[delta <= 0].all()
    p = np.exp(-delta[delta > 0] / kt)
    assert len(p) > 200 and 0.1 < p.mean() < 0.9  # enough uphill moves, neither all nor none taken
    assert abs(accepted[delta > 0].sum() - p.sum()) < 4 * math.sqrt((p * (1 - p)).sum())
    for kind in ("displacement", "swap"):
        of_kind = [m.accepted for m in moves if m.kind == kind]
        assert log.attempted[kind] == len(of_kind) > 100 and log.accepted[kind] == sum(of_kind)
    assert all(len(m.atoms) == 2 and atoms.numbers[m.atoms[0]] != atoms.numbers[m.atoms[1]]
               for m in moves if m.kind == "swap")  # fmt: skip


def test_swaps_occupy_arrangements_by_their_boltzmann_weights(model) -> None:
    """Swaps alone on an O-H-H triangle visit three arrangements (O at one of three places), whose
    energies E_k come from the potential directly. The chain's time in each must be
    exp(-E_k/kT) / Z, within 4 standard errors computed exactly from the chain's transition matrix
    (proposals 1/2 each, Metropolis acceptance), through its fundamental matrix."""
    temperature = 150.0
    kt = units.kB * temperature
    energies = []
    for k in range(3):
        arrangement = TRIANGLE.copy()
        arrangement.positions[[0, k]] = arrangement.positions[[k, 0]]
        energies.append(fresh_energy(model, arrangement))
    energies = np.asarray(energies)
    pi = np.exp(-(energies - energies.min()) / kt)
    pi /= pi.sum()
    assert pi.min() > 0.05 and np.ptp(pi) > 0.1  # three distinct, well-visited states
    transition = np.zeros((3, 3))
    for k in range(3):
        for m in range(3):
            if m != k:
                transition[k, m] = 0.5 * min(1.0, math.exp(-(energies[m] - energies[k]) / kt))
        transition[k, k] = 1.0 - transition[k].sum()
    fundamental = np.linalg.inv(np.eye(3) - transition + np.outer(np.ones(3), pi))
    atoms = TRIANGLE.copy()
    places = TRIANGLE.positions
    states = []

    def observe(move) -> None:  # atoms holds the trial configuration; a rejected move keeps the state
        if move.accepted:
            states.append(int(np.argmin(np.linalg.norm(places - atoms.positions[0], axis=1))))
        else:
            states.append(states[-1] if states else 0)  # O starts at place 0

    steps = 6000
    run_mc(Cached(model), atoms, steps, temperature, swap_fraction=1.0, seed=3, observer=observe)
    occupancy = np.bincount(states, minlength=3) / steps
    for k in range(3):
        f = (np.arange(3) == k) - pi[k]
        variance = float(pi @ (f * (2 * fundamental @ f - f)))  # asymptotic variance of the mean
        assert abs(occupancy[k] - pi[k]) < 4 * math.sqrt(variance / steps), (occupancy, pi)


def test_trajectory_seed_and_the_energy_only_calculator(model, tmp_path) -> None:
    start = Atoms(
        "OHHOH", positions=[[0, 0, 0], [0.96, 0, 0], [-0.3, 0.9, 0], [2.8, 0.2, 0.1], [3.2, 1, 0.4]]
    )
    path = tmp_path / "mc.extxyz"
    atoms = start.copy()
    log = run_mc(model, atoms, 25, 500.0, seed=7, trajectory_path=path, interval=10)
    assert log.attempted["swap"] > 0  # two elements: swaps by default (10 %)
    assert sum(log.attempted.values()) == 25
    frames = read(path, ":")
    assert [f.info["step"] for f in frames] == log.step == [0, 10, 20, 25]
    for frame, energy in zip(frames, log.energy, strict=True):
        assert frame.get_potential_energy() == pytest.approx(fresh_energy(model, frame), abs=1e-7)
        assert frame.get_potential_energy() == pytest.approx(energy, abs=1e-7)
    np.testing.assert_allclose(frames[-1].positions, atoms.positions, atol=1e-8)
    assert "forces" not in atoms.calc.results  # Monte Carlo ran the forward pass alone
    again = start.copy()
    run_mc(model, again, 25, 500.0, seed=7)
    np.testing.assert_array_equal(again.positions, atoms.positions)
    other = start.copy()
    run_mc(model, other, 25, 500.0, seed=8)
    assert not np.allclose(other.positions, atoms.positions)
    # the energy-only calculator: the same energy, and forces when asked for them
    lazy, full = start.copy(), start.copy()
    lazy.calc, full.calc = MpnnCalculator(model, forces_with_energy=False), MpnnCalculator(model)
    assert lazy.get_potential_energy() == full.get_potential_energy()
    assert "forces" not in lazy.calc.results and "forces" in full.calc.results
    np.testing.assert_array_equal(lazy.get_forces(), full.get_forces())
    assert lazy.get_potential_energy() == full.get_potential_energy()


def test_mc_refuses_bad_settings_before_writing(model, tmp_path) -> None:
    water = Atoms("OHH", positions=[[0, 0, 0], [0.96, 0, 0], [-0.3, 0.9, 0]])
    path = tmp_path / "mc.extxyz"
    bad = [({"temperature_K": 0.0}, "temperature must be > 0"), ({"step": -1.0}, "step must be > 0"),
           ({"swap_fraction": 1.5}, r"swap fraction must be in \[0, 1\]"),
           ({"interval": 0}, "interval")]  # fmt: skip
    for kwargs, message in bad:
        with pytest.raises(DataError, match=message):
            run_mc(
                model, water.copy(), **{"steps": 5, "temperature_K": 300.0, "trajectory_path": path, **kwargs}
            )
    with pytest.raises(DataError, match="swap moves need atoms of two elements; the structure has only H"):
        run_mc(model, Atoms("HH", positions=[[0, 0, 0], [0.8, 0, 0]]), 5, 300.0, swap_fraction=0.5)
    fixed = water.copy()
    fixed.set_constraint(FixAtoms([0]))
    with pytest.raises(DataError, match=r"constraints \(FixAtoms\), which these moves do not follow"):
        run_mc(model, fixed, 5, 300.0, trajectory_path=path)
    assert not path.exists() and not (tmp_path / "mc.extxyz.partial").exists()


def test_a_failure_midway_keeps_the_earlier_trajectory_and_the_frames_so_far(model, tmp_path) -> None:
    class FailsLater(Harmonic):
        calls = 0

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
            FailsLater.calls += 1
            if FailsLater.calls == 8:
                raise DataError("atoms: the model's energy is not finite")
            super().calculate(atoms, properties, system_changes)

    path = tmp_path / "mc.extxyz"
    path.write_text("earlier\n")
    atoms = Atoms("Cu", positions=[[0.0, 0.0, 0.0]])
    with pytest.raises(DataError, match=r"not finite \(the frames so far are in .*mc\.extxyz\.partial\)"):
        run_mc(FailsLater(1.0, atoms.positions.copy()), atoms, 20, 300.0, trajectory_path=path, interval=3)
    assert path.read_text() == "earlier\n"
    assert [f.info["step"] for f in read(tmp_path / "mc.extxyz.partial", ":", format="extxyz")] == [0, 3, 6]
