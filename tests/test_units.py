"""Units: every file we write is in one unit system and says so; n2p2 data in other units is
converted on reading, for training as for prediction.

References from outside the code under test: the same structures written in Angstrom/eV (extxyz)
and in Bohr/Hartree (n2p2 input.data, CODATA factors of ASE) must train to the same potential; the
positions of a prediction are the file's numbers times CODATA 2018's Bohr (from ASE).
"""

from __future__ import annotations

from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.units import create_units
from test_train_potential import emt

from mpnn import cli
from mpnn.n2p2.input_data import write_input_data
from mpnn.train.checkpoint import BEST, load_tensors

#: ``--units bohr,hartree`` is CODATA 2018 (ASE's default constants are CODATA 2014's)
CODATA_2018 = create_units("2018")
Bohr, Hartree = CODATA_2018["Bohr"], CODATA_2018["Hartree"]

SMALL = (
    "--radial 3 --r-min 1.5 --angular 1 --angular-shifts 1 --zetas 1 --angular-type 9 --nodes 4 "
    "--cutoff 4.0 --batch-size 4 --epochs 2 --quiet --valid 0.25"
).split()


pytestmark = pytest.mark.usefixtures("one_thread")


def labelled_clusters(count: int = 8, seed: int = 3) -> list[Atoms]:
    """Cu/Al clusters of 3 atoms with EMT's energy and forces (eV, eV/Angstrom)."""
    rng = np.random.default_rng(seed)
    base = np.array([[0.0, 0.0, 0.0], [2.5, 0.0, 0.0], [1.25, 2.17, 0.0]])
    out = []
    for _ in range(count):
        atoms = Atoms(list(rng.choice(["Cu", "Al"], 3)), positions=base + rng.normal(scale=0.1, size=(3, 3)))
        out.append(emt(atoms))
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """The same clusters as ``clusters.extxyz`` (Angstrom, eV) and ``input.data`` (Bohr, Hartree)."""
    folder = tmp_path_factory.mktemp("units")
    structures = labelled_clusters()
    ase.io.write(folder / "clusters.extxyz", structures, format="extxyz")
    write_input_data(folder / "input.data", structures, length=Bohr, energy=Hartree)
    return folder


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mpnn: error:"), err
    return err


def test_training_on_atomic_units_equals_training_on_angstrom_and_ev(data, tmp_path) -> None:
    """``--units bohr,hartree`` on input.data trains the very potential that the extxyz trains."""
    ev = ["train-potential", str(data / "clusters.extxyz"), "--out", str(tmp_path / "ev"), *SMALL]
    au = ["train-potential", str(data / "input.data"), "--units", "bohr,hartree", *SMALL]
    assert cli.main(ev) == 0
    assert cli.main([*au, "--out", str(tmp_path / "au")]) == 0
    ev_state, au_state = (load_tensors(tmp_path / run / BEST) for run in ("ev", "au"))
    assert ev_state.keys() == au_state.keys()
    for key, value in ev_state.items():
        torch.testing.assert_close(au_state[key], value, rtol=1e-7, atol=1e-9, msg=key)


def test_data_in_other_units_without_units_is_a_clear_error(data, tmp_path, capsys) -> None:
    """Taken as Angstrom, the clusters' Bohr numbers put the atoms beyond the cutoff: every symmetry
    function is constant, which is said in one line (not a failure deep inside the model)."""
    out = tmp_path / "raw"
    assert cli.main(["train-potential", str(data / "input.data"), *SMALL, "--out", str(out)]) == 2
    assert "constant on the training set" in one_line_error(capsys)
    assert not out.exists()


def test_units_on_a_file_in_ase_units_is_refused(data, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    args = ["train-potential", str(data / "clusters.extxyz"), "--units", "bohr,hartree", *SMALL]
    assert cli.main([*args, "--out", str(out)]) == 2
    assert "--units applies to n2p2 input.data" in one_line_error(capsys)
    assert not out.exists()


def test_a_run_resumes_only_in_its_own_units(data, tmp_path, capsys) -> None:
    out = str(tmp_path / "au")
    au = ["train-potential", str(data / "input.data"), "--units", "bohr,hartree", *SMALL, "--out", out]
    assert cli.main(au) == 0
    capsys.readouterr()
    swapped = [w if w != "bohr,hartree" else "angstrom,hartree" for w in au]
    assert cli.main(swapped) == 2
    assert "units" in one_line_error(capsys)


def test_predictions_and_trajectories_state_their_units(data, tmp_path) -> None:
    """Positions written in Angstrom (the file's Bohr numbers times Bohr), and a ``units`` key."""
    run = tmp_path / "ev"
    assert cli.main(["train-potential", str(data / "clusters.extxyz"), "--out", str(run), *SMALL]) == 0
    out = tmp_path / "pred.extxyz"
    predict = ["predict", str(run), str(data / "input.data"), "--units", "bohr,hartree"]
    assert cli.main([*predict, "-o", str(out)]) == 0
    raw = [line.split() for line in (data / "input.data").read_text().splitlines() if line.startswith("atom")]
    in_bohr = np.array([[float(w) for w in words[1:4]] for words in raw])
    predicted = ase.io.read(out, ":")
    np.testing.assert_allclose(np.concatenate([a.positions for a in predicted]), in_bohr * Bohr, atol=1e-7)
    assert all(a.info["units"].startswith("length=Angstrom energy=eV") for a in predicted)
    # the file's energies converted from Hartree are the references
    np.testing.assert_allclose(
        [a.info["ref_energy"] for a in predicted],
        [a.get_potential_energy() for a in labelled_clusters()],
        rtol=1e-10,  # ASE derives CODATA 2018's Hartree from other constants: 8e-12 apart
    )
    traj = tmp_path / "md.extxyz"
    md = ["md", str(run), str(data / "clusters.extxyz"), "--steps", "2", "--timestep", "0.5", "--nve"]
    assert cli.main([*md, "-o", str(traj), "--quiet"]) == 0
    assert all("length=Angstrom" in frame.info["units"] for frame in ase.io.read(traj, ":"))


def test_placeholder_energies_are_no_reference(data, tmp_path, capsys) -> None:
    """n2p2's ``energy 0`` with zero forces (a file written for prediction) is not compared with."""
    run = tmp_path / "ev"
    assert cli.main(["train-potential", str(data / "clusters.extxyz"), "--out", str(run), *SMALL]) == 0
    unlabelled = []
    for atoms in labelled_clusters():
        atoms.calc = SinglePointCalculator(atoms, energy=0.0, forces=np.zeros((len(atoms), 3)))
        unlabelled.append(atoms)
    write_input_data(tmp_path / "input.data", unlabelled)
    capsys.readouterr()
    out = tmp_path / "pred.extxyz"
    assert cli.main(["predict", str(run), str(tmp_path / "input.data"), "-o", str(out)]) == 0
    assert "MAE" not in capsys.readouterr().out
    assert all("ref_energy" not in a.info and "ref_forces" not in a.arrays for a in ase.io.read(out, ":"))
    assert cli.main(["predict", str(run), str(data / "clusters.extxyz"), "-o", str(out)]) == 0
    assert "energy MAE" in capsys.readouterr().out
