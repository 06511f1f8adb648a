"""Training with an n2p2 ``input.nn`` (``train-potential --input-nn``) and exporting the result.

A small ``input.nn`` in Bohr and Hartree (radial and angular functions of types 2, 3 and 9, a
polynomial cutoff with alpha, per-element networks, scaling to [-1, 1], n2p2 training keywords)
and water dimers labelled by ASE's EMT, written as ``input.data`` in Bohr and Hartree, are
trained for two epochs through the command line; ``mpnn export`` writes the run as n2p2 files.
References come from outside the code under test: the input file itself (its functions, networks,
scaling and cutoff must come back unchanged), the run's own model (the files read back by the n2p2
reader, a new model built from the files alone, must give its energies and forces in eV and
Angstrom), and the unit conversion done here by hand (the files read in their own units on Bohr
positions give Hartree and Hartree/Bohr).
"""

from __future__ import annotations

from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from small_potentials import water_dimers

from mpnn.cli import main
from mpnn.data.atoms import collate_structures, read_structures
from mpnn.n2p2.convert import ENERGY_UNITS, LENGTH_UNITS, read_n2p2
from mpnn.n2p2.input_data import write_input_data
from mpnn.n2p2.input_nn import read_input_nn
from mpnn.n2p2.prune import sensitivities
from mpnn.potentials.forces import evaluate
from mpnn.potentials.load import load_potential
from mpnn.train.potential_inputs import read_set

BOHR, HARTREE = LENGTH_UNITS["bohr"], ENERGY_UNITS["hartree"]

#: An input.nn in Bohr (lengths) and Hartree; line numbers matter to the refusals below.
INPUT_NN = """\
# a small water potential (Bohr, Hartree)
number_of_elements 2
elements O H
atom_energy H -0.45
cutoff_type 6 0.1
scale_symmetry_functions
center_symmetry_functions
scale_min_short -1.0
scale_max_short 1.0
global_hidden_layers_short 2
global_nodes_short 6 5
global_activation_short t s l
element_nodes_short O 4 5
use_short_forces
epochs 10
updater_type 1
random_seed 12345
symfunction_short H 2 H 0.01 0.0 9.0
symfunction_short H 2 O 0.01 0.0 9.0
symfunction_short H 2 O 0.2 1.8 9.0
symfunction_short H 2 H 0.1 2.9 9.0
symfunction_short O 2 H 0.01 0.0 9.0
symfunction_short O 2 O 0.01 0.0 9.0
symfunction_short O 2 H 0.2 1.8 9.0
symfunction_short H 3 O H 0.01 1.0 1.0 9.0
symfunction_short H 9 O O 0.01 -1.0 2.0 9.0
symfunction_short O 3 H H 0.01 1.0 1.0 9.0
symfunction_short O 9 H O 0.01 -1.0 4.0 9.0 0.5
"""
#: The line of the first ``symfunction_short`` (1-based).
FIRST_FUNCTION_LINE = 18


def dimers(count: int, seed: int = 0) -> list[Atoms]:
    """Distorted water dimers (Angstrom) with EMT energies and forces frozen."""
    return water_dimers(count, seed, scale=0.08)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """input.nn and input.data in Bohr/Hartree, a two-epoch run on them, and its export."""
    folder = tmp_path_factory.mktemp("input_nn")
    (folder / "input.nn").write_text(INPUT_NN)
    write_input_data(folder / "input.data", dimers(8), length=BOHR, energy=HARTREE)
    run, out = folder / "run", folder / "exported"
    args = ["--input-nn", str(folder / "input.nn"), "--units", "bohr,hartree", "--epochs", "2"]
    command = ["train-potential", str(folder / "input.data"), *args, "--batch-size", "3"]
    assert main([*command, "--out", str(run), "--quiet", "--valid", "0.25"]) == 0
    assert main(["export", str(run), str(out)]) == 0
    return {"folder": folder, "run": run, "out": out}


def test_the_exported_input_nn_has_the_files_settings(exported: dict[str, Path]) -> None:
    given = read_input_nn(exported["folder"] / "input.nn")
    back = read_input_nn(exported["out"] / "input.nn")
    assert back.elements == ("H", "O")
    assert back.symmetry_functions == given.symmetry_functions  # all of them, in Bohr as written
    assert back.nodes == {"H": (6, 5), "O": (4, 5)} == given.nodes
    assert back.activations == given.activations
    assert (back.cutoff_type, back.cutoff_alpha) == (6, 0.1)
    assert (back.scaling, back.scale_min, back.scale_max) == ("scale_center", -1.0, 1.0)
    rows = np.loadtxt(exported["out"] / "scaling.data", comments="#")  # statistics of every function
    assert len(rows) == sum(len(f) for f in given.symmetry_functions.values())
    assert np.all(rows[:, 3] > rows[:, 2])  # max > min: each varies on the training set


def test_the_export_reloads_to_the_runs_energies_and_forces(exported: dict[str, Path]) -> None:
    run = load_potential(exported["run"]).double().eval()
    back = read_n2p2(exported["out"], units=(BOHR, HARTREE))
    structures = dimers(5, seed=7)  # not trained on
    batch = collate_structures(structures, run.cutoff).to(dtype=torch.float64)
    want, got = evaluate(run, batch), evaluate(back, batch)
    assert torch.allclose(got["energy"], want["energy"], rtol=0, atol=1e-10)
    assert torch.allclose(got["forces"], want["forces"], rtol=0, atol=1e-10)
    assert float(want["forces"].abs().max()) > 1e-3  # the comparison is not of zeros
    # in the files' own units: Bohr positions give Hartree and Hartree/Bohr
    native = read_n2p2(exported["out"])
    for atoms in structures:
        atoms.positions /= BOHR
    in_bohr = collate_structures(structures, native.cutoff).to(dtype=torch.float64)
    raw = evaluate(native, in_bohr)
    assert torch.allclose(raw["energy"] * HARTREE, want["energy"], rtol=1e-12, atol=0)
    assert torch.allclose(raw["forces"] * HARTREE / BOHR, want["forces"], rtol=0, atol=1e-10)


def refused(tmp_path: Path, text: str, *extra: str) -> str:
    """The one-line error of training on the water dimers with ``text`` as input.nn."""
    (tmp_path / "input.nn").write_text(text)
    write_input_data(tmp_path / "input.data", dimers(4), length=BOHR, energy=HARTREE)
    args = [str(tmp_path / "input.data"), "--input-nn", str(tmp_path / "input.nn"), "--units", "bohr,hartree"]
    return args + ["--epochs", "1", "--valid", "0.25", "--out", str(tmp_path / "run"), "--quiet", *extra]


@pytest.mark.parametrize(
    ("change", "extra", "message"),
    [
        (("", "nnp_generation 4\n"), (), "input.nn:1: unsupported: 4th-generation"),
        (("global_activation_short t s l", "global_activation_short t x l"), (), "input.nn:12:"),
        (("", ""), ("--nodes", "8,8"), "--nodes: the --input-nn file sets this"),
        (
            (
                "global_nodes_short 6 5\nglobal_activation_short t s l\nelement_nodes_short O 4 5",
                "global_nodes_short 3000 100000\nglobal_activation_short t s l\n"
                "element_nodes_short O 4 100000",
            ),
            (),
            "input.nn: hdnnp: networks of 300,",  # checked before allocating 2.4 GB
        ),
        (("", ""), ("--model", "sf_mpnn"), "an input.nn describes an HDNNP"),
        (
            ("elements O H", "elements O H C\nsymfunction_short C 2 H 0.01 0.0 9.0"),
            (),
            "element(s) C of this input.nn are in no training",
        ),
        (
            ("symfunction_short H 2 H 0.01 0.0 9.0", "symfunction_short H 2 H 0.01 0.0 9.0\n"
             "symfunction_short O 3 O O 0.01 1.0 1.0 9.0"),
            (),
            f"input.nn:{FIRST_FUNCTION_LINE + 1}: symmetry function",
        ),
    ],
)  # fmt: skip
def test_what_cannot_be_trained_is_one_line_naming_file_and_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    change: tuple[str, str],
    extra: tuple[str, ...],
    message: str,
) -> None:
    old, new = change
    text = new + INPUT_NN if not old else INPUT_NN.replace(old, new)
    if old.startswith("elements"):
        text = text.replace("number_of_elements 2", "number_of_elements 3")
    assert main(["train-potential", *refused(tmp_path, text, *extra)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mpnn: error: ") and "\n" not in err and message in err, err
    assert not (tmp_path / "run").exists()


def test_predict_and_prune_work_on_the_run_and_its_export(
    exported: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The README's workflow: ``predict`` on the export with the file's units gives the run's
    energies; ``prune sensitivity`` on the run comments out the lines of the user's input.nn
    whose functions are below the threshold on the export (read back on its own)."""

    data = exported["folder"] / "input.data"
    out = tmp_path / "check.extxyz"
    assert main(["predict", str(exported["out"]), str(data), "--units", "bohr,hartree", "-o", str(out)]) == 0
    run = load_potential(exported["run"]).double().eval()
    structures = read_structures(str(data), units=(BOHR, HARTREE))  # as predict read them
    batch = collate_structures(structures, run.cutoff).to(dtype=torch.float64)
    want = evaluate(run, batch)["energy"].numpy()
    got = np.array([a.get_potential_energy() for a in ase.io.read(out, index=":")])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    molecules = read_set(str(data), forces=False, units=(BOHR, HARTREE))
    back = read_n2p2(exported["out"], units=(BOHR, HARTREE))
    table = dict(zip(back.config["elements"], sensitivities(back, molecules), strict=True))
    given = read_input_nn(exported["folder"] / "input.nn")
    percent = sorted(float(p) for t in table.values() for p in t[:, 2])
    threshold = (percent[1] + percent[2]) / 2
    lines = {
        spec.line
        for e, t in table.items()
        for spec, p in zip(given.symmetry_functions[e], t[:, 2].tolist(), strict=True)
        if p < threshold
    }
    pruned = tmp_path / "pruned.nn"
    args = ["--potential", str(exported["run"]), "--input-nn", str(exported["folder"] / "input.nn")]
    command = ["prune", "sensitivity", str(threshold), str(data), *args, "--units", "bohr,hartree"]
    assert main([*command, "--out", str(pruned)]) == 0
    assert "dropped 2 of 11" in capsys.readouterr().out
    rows = INPUT_NN.splitlines(keepends=True)
    assert pruned.read_text() == "".join(f"# {r}" if k + 1 in lines else r for k, r in enumerate(rows))


def test_a_run_resumes_and_refuses_a_changed_input_nn(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "input.nn").write_text(INPUT_NN)
    write_input_data(tmp_path / "input.data", dimers(4), length=BOHR, energy=HARTREE)
    args = [str(tmp_path / "input.data"), "--input-nn", str(tmp_path / "input.nn"), "--units", "bohr,hartree"]
    args += ["--valid", "0.25", "--out", str(tmp_path / "run"), "--quiet"]
    assert main(["train-potential", *args, "--epochs", "1"]) == 0
    assert main(["train-potential", *args, "--epochs", "2"]) == 0  # resumes
    lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert len(lines) == 3  # header and two epochs
    (tmp_path / "input.nn").write_text(INPUT_NN.replace("0.2 1.8 9.0", "0.3 1.8 9.0"))
    capsys.readouterr()
    assert main(["train-potential", *args, "--epochs", "3"]) == 2
    err = capsys.readouterr().err
    assert "this input.nn changed since the run" in err and err.count("\n") == 1
    assert (tmp_path / "run" / "metrics.csv").read_text().splitlines() == lines
