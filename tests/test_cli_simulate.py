"""``mpnn relax`` and ``mpnn mc`` on a small n2p2 potential: outputs, exit status, one-line errors,
inputs and earlier outputs left as they were."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import read, write

from mpnn import cli
from mpnn.potentials.calculator import MpnnCalculator
from mpnn.potentials.load import load_potential

TINY = Path(__file__).parent / "fixtures" / "n2p2" / "tiny"  # H, O; cutoff 6 Angstrom
WATER = Atoms("OHH", positions=[[0.04, -0.02, -0.35], [-0.82, 0.1, 0.43], [0.78, -0.08, -0.08]])

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def start(tmp_path) -> Path:
    path = tmp_path / "water.xyz"
    write(path, WATER, format="extxyz")
    return path


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mpnn: error: "), err
    return err


def test_relax_writes_the_relaxed_structure_and_its_trajectory(start, tmp_path, capsys) -> None:
    out = tmp_path / "relaxed.extxyz"
    assert cli.main(["relax", str(TINY), str(start), "-o", str(out), "--fmax", "0.02", "--quiet"]) == 0
    line = capsys.readouterr().out
    assert line.startswith("FIRE: converged in ") and f"wrote {out} and " in line
    (relaxed,) = read(out, ":")
    frames = read(tmp_path / "relaxed_trajectory.extxyz", ":")  # the default name beside OUT
    assert relaxed.info["converged"] and relaxed.info["steps"] == len(frames) - 1
    # the file's energy and forces are the potential's, and below --fmax
    check = relaxed.copy()
    check.calc = MpnnCalculator(load_potential(TINY))
    assert check.get_potential_energy() == pytest.approx(relaxed.get_potential_energy(), abs=1e-6)
    np.testing.assert_allclose(check.get_forces(), relaxed.get_forces(), atol=1e-6)
    assert np.linalg.norm(relaxed.get_forces(), axis=1).max() < 0.02
    assert relaxed.get_potential_energy() < frames[0].get_potential_energy()
    np.testing.assert_allclose(frames[0].positions, WATER.positions, atol=1e-8)
    np.testing.assert_allclose(frames[-1].positions, relaxed.positions, atol=1e-8)
    energies = [f.get_potential_energy() for f in frames]
    assert f"energy {energies[0]:.6f} -> {energies[-1]:.6f} eV" in line


def test_relax_out_of_steps_writes_both_and_exits_1(start, tmp_path, capsys) -> None:
    out, traj = tmp_path / "r.extxyz", tmp_path / "t.extxyz"
    args = ["relax", str(TINY), str(start), "-o", str(out), "--trajectory", str(traj), "--steps", "2"]
    assert cli.main([*args, "--optimizer", "BFGS", "--quiet"]) == 1
    captured = capsys.readouterr()
    assert "BFGS: NOT converged in 2 steps" in captured.out
    lines = captured.err.splitlines()  # the tiny potential's ranges are narrow: warnings come first
    assert all(line.startswith("mpnn: warning: ") for line in lines[:-1])
    assert "stopped at --steps 2 before reaching --fmax 0.05" in lines[-1]
    assert len(read(traj, ":")) == 3 and read(out).info["converged"] is False


@pytest.mark.parametrize(
    ("structure", "extra", "message"),
    [
        (WATER, ["--cell"], "--cell: "),
        (WATER, ["--fmax", "0"], "--fmax: expected a positive number"),
        (WATER, ["--optimizer", "CG"], "--optimizer: invalid choice: 'CG'"),
        (Atoms("OHN", positions=np.eye(3) * 1.5), [], "element N is not one of"),
        (Atoms("OH", positions=[[0, 0, 0], [0, 0, np.nan]]), [], "non-finite position"),
    ],
)
def test_relax_errors_leave_earlier_outputs_as_they_were(tmp_path, capsys, structure, extra, message) -> None:
    path = tmp_path / "s.extxyz"
    write(path, structure, format="extxyz")
    out, traj = tmp_path / "r.extxyz", tmp_path / "r_trajectory.extxyz"
    out.write_text("earlier\n")
    traj.write_text("earlier trajectory\n")
    assert cli.main(["relax", str(TINY), str(path), "-o", str(out), *extra]) == 2
    assert message in error_line(capsys)
    assert out.read_text() == "earlier\n" and traj.read_text() == "earlier trajectory\n"
    assert not (tmp_path / "r_trajectory.extxyz.partial").exists()


def test_outputs_never_overwrite_the_input(start, tmp_path, capsys) -> None:
    before = start.read_bytes()
    for args in (
        ["relax", "-o", str(start)],
        ["relax", "--trajectory", str(start)],
        ["mc", "-o", str(start)],
    ):
        extra = ["--temperature", "300", "--steps", "2"] if args[0] == "mc" else []
        assert cli.main([args[0], str(TINY), str(start), *args[1:], *extra]) == 2
        assert str(start) in error_line(capsys)
    assert start.read_bytes() == before
    out = tmp_path / "same.extxyz"
    assert cli.main(["relax", str(TINY), str(start), "-o", str(out), "--trajectory", str(out)]) == 2
    assert "given for two outputs" in error_line(capsys)


def test_mc_writes_a_trajectory_and_reports_acceptance(start, tmp_path, capsys) -> None:
    traj = tmp_path / "mc.extxyz"
    args = ["mc", str(TINY), str(start), "--temperature", "300", "--steps", "60", "--step", "0.05"]
    assert cli.main([*args, "--swap-fraction", "0.25", "--interval", "25", "--seed", "3", "-o", str(traj),
                     "--quiet"]) == 0  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("NVT MC 300 K: 60 moves, 3 atoms; accepted displacement ")
    assert "swap " in out[0] and "4 frames in" in out[0] and out[1].startswith("energy mean ")
    frames = read(traj, ":")
    assert [f.info["step"] for f in frames] == [0, 25, 50, 60]
    calc = MpnnCalculator(load_potential(TINY))
    for frame in frames:
        check = frame.copy()
        check.calc = calc
        assert check.get_potential_energy() == pytest.approx(frame.get_potential_energy(), abs=1e-6)
    counts = {kind: (int(a), int(n)) for kind, a, n in re.findall(r"(\w+) (\d+)/(\d+) \(", out[0])}
    assert set(counts) == {"displacement", "swap"} and sum(n for _, n in counts.values()) == 60
    assert frames[-1].info["accepted"] == sum(a for a, _ in counts.values())
    # the same seed: the same trajectory
    again = tmp_path / "again.extxyz"
    assert cli.main([*args, "--swap-fraction", "0.25", "--interval", "25", "--seed", "3", "-o", str(again),
                     "--quiet"]) == 0  # fmt: skip
    assert again.read_text() == traj.read_text()


def test_mc_swaps_need_two_elements_and_errors_have_no_traceback(tmp_path, capsys) -> None:
    path = tmp_path / "h2.extxyz"
    write(path, Atoms("HH", positions=[[0, 0, 0], [0.8, 0, 0]]), format="extxyz")
    traj = tmp_path / "mc.extxyz"
    args = ["mc", str(TINY), str(path), "--temperature", "300", "--steps", "5", "-o", str(traj)]
    assert cli.main([*args, "--swap-fraction", "0.5"]) == 2
    assert "swap moves need atoms of two elements" in error_line(capsys)
    assert not traj.exists()
    assert cli.main([*args, "--quiet"]) == 0  # one element: displacements only by default
    line = capsys.readouterr().out.splitlines()[0]
    assert re.search(r"; accepted displacement \d/5 \(\d\.\d{3}\); 2 frames in ", line), line
    result = subprocess.run([sys.executable, "-m", "mpnn.cli", *args[:-4], "--temperature", "-3",
                             "--steps", "5"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "mpnn: error: argument --temperature: expected a positive number, got '-3' (see 'mpnn mc --help')"
    ]


def test_the_readme_commands_on_n2p2_potentials(n2p2_examples, tmp_path, capsys) -> None:
    """The README's examples, shortened: a distorted water molecule of n2p2's water box relaxes to
    O-H 0.968 A and 104.2 degrees (BFGS, --units bohr,hartree); Cu2S's cell moves and its energy falls
    (3 steps: exit status 1); Monte Carlo with swaps on the relaxed cell."""
    from ase.units import Bohr, Hartree

    from mpnn.data.atoms import read_structures

    water = n2p2_examples / "nnp-predict" / "H2O_RPBE-D3"
    molecule = read_structures(water / "input.data", units=(Bohr, Hartree))[0][:3]
    molecule = Atoms(molecule.numbers, positions=molecule.positions)
    molecule.rattle(0.1, seed=3)
    write(tmp_path / "water.xyz", molecule, format="extxyz")
    out = tmp_path / "relaxed.extxyz"
    args = [
        "relax",
        str(water),
        str(tmp_path / "water.xyz"),
        "--units",
        "bohr,hartree",
        "--optimizer",
        "BFGS",
    ]
    assert cli.main([*args, "--fmax", "0.01", "-o", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("BFGS: converged in ")
    relaxed = read(out)
    assert relaxed.get_distance(0, 1) == pytest.approx(0.968, abs=5e-4)
    assert relaxed.get_distance(0, 2) == pytest.approx(0.968, abs=5e-4)
    assert relaxed.get_angle(1, 0, 2) == pytest.approx(104.2, abs=0.05)

    cu2s = n2p2_examples / "nnp-predict" / "Cu2S_PBE"
    out = tmp_path / "cu2s.extxyz"
    args = ["relax", str(cu2s), str(cu2s / "input.data"), "--cell", "--steps", "3", "-o", str(out), "--quiet"]
    assert cli.main(args) == 1
    frames = read(tmp_path / "cu2s_trajectory.extxyz", ":")
    assert len(frames) == 4 and frames[-1].get_potential_energy() < frames[0].get_potential_energy()
    assert not np.allclose(frames[-1].cell.array, frames[0].cell.array, atol=1e-4)
    capsys.readouterr()
    args = ["mc", str(cu2s), str(out), "--temperature", "600", "--steps", "10", "--swap-fraction", "0.5"]
    assert cli.main([*args, "-o", str(tmp_path / "mc.extxyz"), "--quiet"]) == 0
    line = capsys.readouterr().out
    assert re.search(r"accepted displacement \d+/\d+ \([0-9.]+\), swap \d+/\d+ \([0-9.]+\)", line), line
