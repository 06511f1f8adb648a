"""``mpnn predict`` with a potential and ``mpnn md``: n2p2's numbers in the output, units, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.io import read, write
from test_forces import small_cut

from mpnn import cli
from mpnn.data.atoms import read_structures

BOHR, HARTREE = 0.529177210903, 27.211386245988  # CODATA 2018, as mpnn.n2p2.convert.parse_units


@pytest.fixture(scope="module")
def cu2s(n2p2_examples) -> Path:
    return n2p2_examples / "nnp-predict" / "Cu2S_PBE"


@pytest.fixture(scope="module")
def water(n2p2_examples) -> Path:
    return n2p2_examples / "nnp-predict" / "H2O_RPBE-D3"


def error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mpnn: error: "), err
    return err


def test_predict_writes_n2p2s_energy_forces_and_a_stress(cu2s, n2p2_reference, tmp_path, capsys) -> None:
    out = tmp_path / "cu2s.extxyz"
    assert cli.main(["predict", str(cu2s), str(cu2s / "input.data"), "-o", str(out)]) == 0
    assert "1 structures (144 atoms)" in capsys.readouterr().out
    (frame,) = read(out, ":")
    ref = n2p2_reference["Cu2S_PBE"]
    assert frame.get_potential_energy() == pytest.approx(ref["energy"], rel=1e-12)
    np.testing.assert_allclose(frame.get_forces(), ref["forces"], atol=1e-7)  # extxyz keeps 8 decimals
    assert frame.get_potential_energies().sum() == pytest.approx(ref["energy"], rel=1e-10)
    assert frame.get_stress().shape == (6,) and np.isfinite(frame.get_stress()).all()
    np.testing.assert_allclose(frame.positions, read_structures(cu2s / "input.data")[0].positions, atol=1e-8)


def test_units_convert_the_potential_and_its_input_data(water, tmp_path, capsys) -> None:
    """A cut of the water box as n2p2 input.data (Bohr) and as extxyz (A): the same eV, eV/A."""
    from mpnn.n2p2.input_data import write_input_data

    atoms = small_cut(read_structures(water / "input.data", units=(BOHR, HARTREE))[0], target=24)
    write_input_data(tmp_path / "input.data", [atoms], length=BOHR, energy=HARTREE)
    write(tmp_path / "cut.extxyz", atoms, format="extxyz")
    for name in ("input.data", "cut.extxyz"):
        args = ["predict", str(water), str(tmp_path / name), "-o", str(tmp_path / f"{name}.out.extxyz")]
        assert cli.main([*args, "--units", "bohr,hartree"]) == 0
    bohr, angstrom = (read(tmp_path / f"{n}.out.extxyz") for n in ("input.data", "cut.extxyz"))
    # extxyz keeps positions to 1e-8 A: 24 atoms, |F| < 5 eV/A move E by < 1e-6 eV and F by < 1e-6 eV/A
    assert bohr.get_potential_energy() == pytest.approx(angstrom.get_potential_energy(), abs=1e-6)
    np.testing.assert_allclose(bohr.get_forces(), angstrom.get_forces(), atol=1e-6)
    # mean_energy is about -25.5 Hartree per atom: the energy is in eV only with the unit factor
    assert bohr.get_potential_energy() / len(atoms) == pytest.approx(-25.5 * HARTREE, rel=0.05)
    capsys.readouterr()
    assert (
        cli.main(["predict", str(water), str(tmp_path / "cut.extxyz"), "-o", str(tmp_path / "ev.extxyz")])
        == 0
    )
    assert read(tmp_path / "ev.extxyz").get_potential_energy() != pytest.approx(bohr.get_potential_energy())


@pytest.mark.parametrize(
    ("structure", "extra", "message"),
    [
        (Atoms("CuSAu", positions=np.eye(3) * 2.0), [], "structure 0, atom 2: element Au is not one of"),
        (Atoms("CuS", positions=[[0, 0, 0], [0, 0, np.nan]]), [], "structure 0, atom 1: non-finite position"),
        (
            Atoms("CuS", positions=np.eye(2, 3) * 2.0),
            ["--units", "parsec,ev"],
            "--units: expected LENGTH,ENERGY",
        ),
    ],
)
def test_predict_errors_are_one_line_and_write_nothing(
    cu2s, tmp_path, capsys, structure, extra, message
) -> None:
    path = tmp_path / "s.extxyz"
    write(path, structure, format="extxyz")
    out = tmp_path / "out.extxyz"
    assert cli.main(["predict", str(cu2s), str(path), "-o", str(out), *extra]) == 2
    assert message in error_line(capsys)
    assert not out.exists()


def test_predict_with_a_folder_that_is_no_model(tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    assert cli.main(["predict", str(tmp_path / "empty"), str(tmp_path / "s.xyz")]) == 2
    assert "neither an n2p2 potential folder" in error_line(capsys)
    assert cli.main(["predict", str(tmp_path / "nothing"), str(tmp_path / "s.xyz")]) == 2
    assert "nothing: no such folder" in error_line(capsys)


def test_md_nve_and_nvt_write_a_trajectory(cu2s, tmp_path, capsys) -> None:
    start = tmp_path / "start.extxyz"
    write(start, small_cut(read_structures(cu2s / "input.data")[0], target=20), format="extxyz")
    traj = tmp_path / "nve.extxyz"
    args = ["md", str(cu2s), str(start), "--steps", "4", "--timestep", "1", "--nve", "--quiet"]
    assert cli.main([*args, "--init-temperature", "300", "--interval", "2", "-o", str(traj)]) == 0
    out = capsys.readouterr().out
    assert "NVE: 4 steps of 1 fs" in out and "3 frames" in out
    frames = read(traj, ":")
    assert [f.info["step"] for f in frames] == [0, 2, 4]
    total = [f.get_potential_energy() + f.get_kinetic_energy() for f in frames]
    assert np.ptp(total) / len(frames[0]) < 1e-3  # eV/atom over 4 fs
    assert frames[0].get_temperature() > 100 and frames[0].get_stress().shape == (6,)
    nvt = tmp_path / "nvt.extxyz"
    args = ["md", str(cu2s), str(start), "--steps", "2", "--timestep", "1", "--temperature", "500", "--quiet"]
    assert cli.main([*args, "-o", str(nvt), "--seed", "4"]) == 0
    assert "NVT 500 K" in capsys.readouterr().out and len(read(nvt, ":")) == 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--nve", "--temperature", "300"], "not allowed with argument"),
        (["--steps", "-1", "--nve"], "--steps: expected an integer >= 0"),
        (["--temperature", "300", "--init-temperature", "10"], "--init-temperature goes with --nve"),
    ],
)
def test_md_argument_errors(cu2s, tmp_path, capsys, extra, message) -> None:
    path = tmp_path / "s.extxyz"
    write(path, Atoms("CuS", positions=np.eye(2, 3) * 2.2), format="extxyz")
    traj = tmp_path / "t.extxyz"
    base = ["md", str(cu2s), str(path), "--timestep", "1", "-o", str(traj)]
    assert cli.main([*base, *([] if "--steps" in extra else ["--steps", "1"]), *extra]) == 2
    assert message in error_line(capsys)
    assert not traj.exists()


def test_md_error_in_a_subprocess_has_no_traceback_and_no_trajectory(cu2s, tmp_path) -> None:
    path = tmp_path / "bad.extxyz"
    write(path, Atoms("CuS", positions=[[0, 0, 0], [0, 0, 0]]), format="extxyz")
    traj = tmp_path / "t.extxyz"
    result = subprocess.run(
        [sys.executable, "-m", "mpnn.cli", "md", str(cu2s), str(path), "--steps", "2", "--timestep", "1",
         "--nve", "-o", str(traj)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"mpnn: error: {path}: structure 0: atoms 0 and 1 are at the same position"
    ]
    assert not traj.exists()


def test_a_folder_of_xyz_files_predicts_as_its_files(tmp_path) -> None:
    tiny = Path(__file__).parent / "fixtures" / "n2p2" / "tiny"  # H, O; cutoff 6 Angstrom
    folder = tmp_path / "xyzdir"
    folder.mkdir()
    water = Atoms("OH2", [[0, 0, 0.117], [0, 0.757, -0.467], [0, -0.757, -0.467]])
    write(folder / "b.xyz", water, format="extxyz")
    write(folder / "a.extxyz", water[:2], format="extxyz")
    (folder / "notes.txt").write_text("not a structure\n")
    assert cli.main(["predict", str(tiny), str(folder), "-o", str(tmp_path / "dir.extxyz")]) == 0
    files = [str(folder / "a.extxyz"), str(folder / "b.xyz")]
    assert cli.main(["predict", str(tiny), *files, "-o", str(tmp_path / "files.extxyz")]) == 0
    from_dir, from_files = read(tmp_path / "dir.extxyz", ":"), read(tmp_path / "files.extxyz", ":")
    assert [len(a) for a in from_dir] == [2, 3]
    for a, b in zip(from_dir, from_files, strict=True):
        assert a.get_potential_energy() == b.get_potential_energy()
        np.testing.assert_array_equal(a.get_forces(), b.get_forces())
