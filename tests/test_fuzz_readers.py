"""Fuzz test of every reader (issue 9): a malformed input file either loads or ends the command
with exit status 2 and one line ``mpnn: error: ...``; never a traceback, a hang, more than 1 GiB
or a non-finite number in an output.

Each test starts from valid seed files (written here, by our own writers or by hand, or taken from
a tiny run trained here) and mutates one of them (tests/fuzz_mutations.py: byte flips, lines
deleted, duplicated or swapped, truncation, numbers replaced by huge, negative, nan, inf or
non-numeric tokens, garbage lines, invalid UTF-8; for JSON, YAML and checkpoints also edits of the
tree: values of another type, tensors of another shape or dtype or with NaN, keys deleted or
added), then runs the command that reads it through ``mpnn.cli.main`` in-process: xyz, QM9 xyz and
SMILES files (``predict`` with a property run), extxyz and n2p2 ``input.data`` (``predict`` and
``md`` with a potential, ``train-potential``), ``input.nn``, ``scaling.data`` and
``weights.ZZZ.data`` (``predict``), run configurations (``train --config``), checkpoints and run
JSON files (``predict``, ``evaluate``, resuming ``train`` and ``train-potential``, ``export``)
and metrics CSVs (``report``).

Examples are deterministic (``derandomize``, no database) and sized to run in well under a minute;
``MPNN_FUZZ_EXAMPLES=N`` runs N examples per test instead (e.g. 2000 to hunt for bugs locally).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
import yaml
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from fuzz_mutations import check_outcome, mutated_bytes, mutated_tree, run_mpnn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from test_train import synthetic_set
from test_train_potential import SMALL_OPTIONS, clusters

from mpnn.n2p2.input_data import write_input_data
from mpnn.train import plots
from mpnn.train import run as run_module

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = int(os.environ.get("MPNN_FUZZ_EXAMPLES", "0"))


def fuzz(examples: int, seconds: float = 5.0):
    """Hypothesis settings: ``examples`` (or $MPNN_FUZZ_EXAMPLES), deterministic, ``seconds`` each."""
    return settings(
        max_examples=EXAMPLES or examples,
        derandomize=True,
        database=None,
        deadline=timedelta(seconds=seconds),
        phases=(Phase.explicit, Phase.generate),  # no shrinking: a failure is reported as found, at once
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def synthetic_data(patch: pytest.MonkeyPatch) -> None:
    """Make ``train``, ``evaluate`` and resuming load 40 synthetic molecules instead of QM9, and
    skip the plots (they read nothing and take most of a tiny run's time)."""
    data = synthetic_set(40)
    patch.setattr(run_module, "load_molecules", lambda *a, **k: data)
    patch.setattr("mpnn.train.data.load_molecules", lambda *a, **k: data)
    no_plots(patch)


def no_plots(patch: pytest.MonkeyPatch) -> None:
    for name in ("parity", "learning_curve"):
        patch.setattr(plots, name, lambda *a, **k: None)


TINY_RUN = {"targets": "mu,U0", "joint": True, "model": {"model": "ggnn", "dim": 16, "steps": 1},
            "training": {"epochs": 1, "batch_size": 8}}  # fmt: skip


@pytest.fixture(scope="module")
def property_run(tmp_path_factory) -> Path:
    """A topology-only (GG-NN) mu+U0 run of 1 epoch on synthetic molecules: reads xyz and SMILES."""
    out = tmp_path_factory.mktemp("fuzz") / "run"
    config = out.parent / "run.json"
    config.write_text(json.dumps(TINY_RUN))
    with pytest.MonkeyPatch.context() as patch:
        synthetic_data(patch)
        assert run_mpnn(["train", "--config", str(config), "--out", str(out), "--quiet"])[0] == 0
    return out


def labelled(atoms: Atoms, seed: int) -> Atoms:
    rng = np.random.default_rng(seed)
    atoms.calc = SinglePointCalculator(atoms, energy=-rng.random(), forces=rng.normal(size=(len(atoms), 3)))
    return atoms


WATER = [[0.0, 0.0, 0.117], [0.0, 0.757, -0.467], [0.0, -0.757, -0.467]]


@pytest.fixture(scope="module")
def seeds(tmp_path_factory) -> Path:
    """Valid seed files and a potential training run (Cu/Al clusters, 1 epoch)."""
    folder = tmp_path_factory.mktemp("seeds")
    (folder / "two.xyz").write_text("3\nwater\nO 0 0 0.117\nH 0 0.757 -0.467\nH 0 -0.757 -0.467\n\n"
                                    "5\nmethane\nC 0 0 0\nH 0.63 0.63 0.63\nH -0.63 -0.63 0.63\n"
                                    "H -0.63 0.63 -0.63\nH 0.63 -0.63 -0.63\n")  # fmt: skip
    (folder / "mols.smi").write_text("# molecules\nCCO ethanol\nc1ccccc1\n\nC#N hydrogen cyanide\nOC(=O)C\n")
    box = Atoms("OHHOHH", positions=WATER + [[x + 2.8, y, z] for x, y, z in WATER], cell=[7.0, 7.5, 8.0],
                pbc=True)  # fmt: skip
    waters = [labelled(Atoms("OHH", positions=WATER), 0), labelled(box, 1)]
    ase.io.write(folder / "water.extxyz", waters, format="extxyz")
    write_input_data(folder / "input.data", waters)
    ase.io.write(folder / "train.extxyz", clusters(12, 0), format="extxyz")
    write_input_data(folder / "train.data", clusters(12, 0))
    args = ["train-potential", str(folder / "train.extxyz"), "--epochs", "1", "--quiet", *SMALL_OPTIONS]
    with pytest.MonkeyPatch.context() as patch:
        no_plots(patch)
        assert run_mpnn([*args, "--out", str(folder / "potential")])[0] == 0
    return folder


def assert_finite_outputs(path: Path) -> None:
    """Every number of a predictions CSV or extxyz written by a command is finite."""
    if not path.is_file():
        return
    if path.suffix == ".csv":
        rows = list(csv.reader(path.open()))
        values = np.array([[float(v) for v in row[1:]] for row in rows[1:]], dtype=np.float64)
        assert np.isfinite(values).all(), f"{path}: non-finite predictions"
    elif path.suffix == ".extxyz":
        for frame in ase.io.read(path, ":"):
            assert np.isfinite(frame.get_potential_energy()), f"{path}: non-finite energy"
            assert np.isfinite(frame.get_forces()).all(), f"{path}: non-finite forces"


def run_checked(argv: list[str], outputs: tuple[Path, ...] = ()) -> int:
    status, _, err = run_mpnn(argv)
    check_outcome(status, err, argv)
    if status == 0:
        for path in outputs:
            assert_finite_outputs(path)
    return status


def write_mutant(data: st.DataObject, seed: Path, target: Path) -> Path:
    """``target``: the bytes of ``seed`` mutated."""
    target.write_bytes(data.draw(mutated_bytes(seed.read_bytes()), label=seed.name))
    return target


def copy_run(run: Path, to: Path) -> Path:
    return Path(shutil.copytree(run, to, ignore=shutil.ignore_patterns("*.png")))


def mutate_file(data: st.DataObject, path: Path) -> None:
    """Mutate ``path`` in place: bytes, or (JSON, YAML, ``.pt``) one edit of its tree."""
    if path.suffix in (".json", ".yaml", ".pt") and data.draw(st.booleans(), label="edit the tree"):
        if path.suffix == ".pt":
            tree = data.draw(mutated_tree(torch.load(path, weights_only=True)), label=path.name)
            torch.save(tree, path)
        else:
            tree = data.draw(mutated_tree(yaml.safe_load(path.read_text())), label=path.name)
            text = json.dumps(tree) if path.suffix == ".json" else yaml.safe_dump(tree)
            path.write_text(text)
    else:
        write_mutant(data, path, path)


# -- structure files ---------------------------------------------------------------------------
@fuzz(150)
@given(data=st.data())
def test_xyz_qm9_and_smiles_files_for_property_runs(property_run, seeds, data) -> None:
    qm9 = [FIXTURES / "qm9" / f"dsgdb9nsd_{k:06d}.xyz" for k in (23, 212)]
    seed = data.draw(st.sampled_from([seeds / "two.xyz", seeds / "mols.smi", *qm9]))
    with tempfile.TemporaryDirectory() as tmp:
        path = write_mutant(data, seed, Path(tmp) / f"in{seed.suffix}")
        out = Path(tmp) / "out.csv"
        run_checked(["predict", str(property_run), str(path), "-o", str(out)], (out,))


@fuzz(150)
@given(data=st.data())
def test_extxyz_and_input_data_for_potentials(seeds, data) -> None:
    seed = data.draw(st.sampled_from([seeds / "water.extxyz", seeds / "input.data"]))
    with tempfile.TemporaryDirectory() as tmp:
        path = write_mutant(data, seed, Path(tmp) / seed.name)
        out = Path(tmp) / "out.extxyz"
        if data.draw(st.booleans(), label="md"):
            args = ["md", str(FIXTURES / "n2p2" / "tiny"), str(path), "--steps", "2", "--timestep", "0.5"]
            run_checked([*args, "--nve", "--quiet", "-o", str(out)], (out,))
        else:
            run_checked(["predict", str(FIXTURES / "n2p2" / "tiny"), str(path), "-o", str(out)], (out,))


@fuzz(50, seconds=15)
@given(data=st.data())
def test_training_data_for_train_potential(seeds, data) -> None:
    seed = data.draw(st.sampled_from([seeds / "train.extxyz", seeds / "train.data"]))
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        no_plots(patch)
        path = write_mutant(data, seed, Path(tmp) / seed.name)
        args = ["train-potential", str(path), "--epochs", "1", "--quiet", *SMALL_OPTIONS]
        run_checked([*args, "--out", str(Path(tmp) / "run")])


# -- n2p2 potential files ------------------------------------------------------------------------
def fuzz_potential_folder(data: st.DataObject, folder: Path, structure: Path, units: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(shutil.copytree(folder, Path(tmp) / "potential"))
        names = sorted(p.name for p in copy.iterdir() if p.name == "input.nn" or p.suffix == ".data")
        mutate_file(data, copy / data.draw(st.sampled_from(names), label="file"))
        out = Path(tmp) / "out.extxyz"
        run_checked(["predict", str(copy), str(structure), "--units", units, "-o", str(out)], (out,))


@fuzz(150)
@given(data=st.data())
def test_input_nn_scaling_and_weights(seeds, data) -> None:
    fuzz_potential_folder(data, FIXTURES / "n2p2" / "tiny", seeds / "water.extxyz", "angstrom,ev")


@fuzz(30)
@given(data=st.data())
def test_n2p2_example_potential_files(n2p2_examples, seeds, data) -> None:
    """The same on n2p2's water potential (GPL-3.0: read in place from ../shared/data, not bundled)."""
    water = n2p2_examples / "nnp-predict" / "H2O_RPBE-D3"
    folder = Path(tempfile.mkdtemp())
    try:
        for name in ("input.nn", "scaling.data", "weights.001.data", "weights.008.data"):
            shutil.copy(water / name, folder / name)
        fuzz_potential_folder(data, folder, seeds / "water.extxyz", "bohr,hartree")
    finally:
        shutil.rmtree(folder)


# -- run configurations, checkpoints, metrics -------------------------------------------------------
@fuzz(40, seconds=15)
@given(data=st.data())
def test_run_configs(data) -> None:
    suffix = data.draw(st.sampled_from([".json", ".yaml"]))
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        synthetic_data(patch)
        path = Path(tmp) / f"run{suffix}"
        path.write_text(json.dumps(TINY_RUN) if suffix == ".json" else yaml.safe_dump(TINY_RUN))
        mutate_file(data, path)
        run_checked(["train", "--config", str(path), "--out", str(Path(tmp) / "run"), "--quiet"])


@fuzz(50, seconds=15)
@given(data=st.data())
def test_property_run_checkpoints_and_json(property_run, seeds, data) -> None:
    name = data.draw(st.sampled_from(["best.pt", "last.pt", "split.pt", "config.json", "run.json"]))
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        synthetic_data(patch)
        run = copy_run(property_run, Path(tmp) / "run")
        mutate_file(data, run / name)
        out = Path(tmp) / "out.csv"
        commands = {
            "predict": ["predict", str(run), str(seeds / "two.xyz"), "-o", str(out)],
            "evaluate": ["evaluate", str(run)],
            "resume": ["train", "--out", str(run), "--epochs", "2", "--quiet"],
        }
        readers = {"best.pt": ["predict", "evaluate"], "last.pt": ["resume"], "split.pt": ["evaluate"]}
        command = data.draw(st.sampled_from(readers.get(name, ["predict", "evaluate", "resume"])))
        run_checked(commands[command], (out,))


@fuzz(40, seconds=15)
@given(data=st.data())
def test_potential_run_checkpoints_and_json(seeds, data) -> None:
    name = data.draw(st.sampled_from(["best.pt", "last.pt", "split.pt", "config.json"]))
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        no_plots(patch)
        run = copy_run(seeds / "potential", Path(tmp) / "run")
        mutate_file(data, run / name)
        out = Path(tmp) / "out.extxyz"
        commands = {
            "predict": ["predict", str(run), str(seeds / "train.extxyz"), "-o", str(out)],
            "export": ["export", str(run), str(Path(tmp) / "n2p2")],
            "resume": ["train-potential", str(seeds / "train.extxyz"), "--out", str(run), "--epochs", "2",
                       "--quiet"],
        }  # fmt: skip
        readers = {"best.pt": ["predict", "export"], "last.pt": ["resume"], "split.pt": ["resume"]}
        command = data.draw(st.sampled_from(readers.get(name, ["predict", "export", "resume"])))
        run_checked(commands[command], (out,))


@fuzz(100)
@given(data=st.data())
def test_metrics_csv_for_report(property_run, data) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        run.mkdir()
        for name in ("run.json", "test_metrics.csv"):
            shutil.copy(property_run / name, run / name)
        mutate_file(data, run / "test_metrics.csv")
        run_checked(["report", str(run), "-o", str(Path(tmp) / "report.md")])


# -- what fuzzing found, as plain regression tests ------------------------------------------------
def test_an_extxyz_energy_that_is_no_number_is_one_line_naming_the_structure(seeds, tmp_path) -> None:
    """ASE keeps ``energy=-0.63A4`` as a string; ``predict`` crashed on float() of it."""
    text = (seeds / "water.extxyz").read_text()
    energy = text.split("energy=")[1].split()[0]
    (tmp_path / "s.extxyz").write_text(text.replace(energy, "-0.63A4", 1))
    out = tmp_path / "o.extxyz"
    status, _, err = run_mpnn(["predict", str(FIXTURES / "n2p2" / "tiny"), str(tmp_path / "s.extxyz"),
                               "-o", str(out)])
    assert status == 2 and err.startswith("mpnn: error: ") and err.count("\n") == 1, err
    assert "s.extxyz: structure 0: the energy '-0.63A4' is not one number" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("global_hidden_layers_short 1",
         "global_hidden_layers_short 1\nelement_hidden_layers_short H 10000000000",
         "input.nn:10: hidden layers must be at most 100, found 10000000000"),
        ("global_nodes_short 2", "global_nodes_short 100000000000",
         "input.nn:10: global_nodes_short must be at most"),
        ("symfunction_short H 2 H 0.5 0.0 6.0", "symfunction_short H 2 H -1e308 0.0 6.0",
         "input.nn:12: eta must be >= 0, found -1e+308"),
        ("symfunction_short H 3 H O 0.1 1.0 1.0 6.0", "symfunction_short H 3 H O 0.1 3.0 1.0 6.0",
         "input.nn:13: lambda must be in [-1, 1]"),
        ("symfunction_short H 3 H O 0.1 1.0 1.0 6.0", "symfunction_short H 3 H O 0.1 1.0 -2 6.0",
         "input.nn:13: zeta must be positive"),
    ],
)  # fmt: skip
def test_input_nn_sizes_and_parameters_are_bounded(seeds, tmp_path, old, new, message) -> None:
    """A declared network size is bounded before allocating; parameters that make a symmetry
    function infinite (n2p2 would return NaN) are refused with file:line."""
    folder = Path(shutil.copytree(FIXTURES / "n2p2" / "tiny", tmp_path / "potential"))
    text = (folder / "input.nn").read_text()
    assert old in text
    (folder / "input.nn").write_text(text.replace(old, new))
    out = tmp_path / "o.extxyz"
    status, _, err = run_mpnn(["predict", str(folder), str(seeds / "water.extxyz"), "-o", str(out)])
    assert status == 2 and err.count("\n") == 1 and message in err, err
