"""The README's workflows end to end, through ``mpnn.cli.main`` in this process, on our own outputs.

Each test runs a chain of README commands where every command reads what the one before wrote,
shrunk to seconds (1 epoch, tiny networks, a few molecules). README command -> test:

Behler-Parrinello potentials (structures labelled here with ASE's EMT):
    mpnn train-potential train.xyz --test test.xyz --epochs 500 --out runs/ethanol
        -> test_potential_train_predict_md_export_chain
    mpnn predict RUN structures -o out.extxyz (extxyz, an ASE database, n2p2 input.data)
        -> test_potential_train_predict_md_export_chain
    mpnn md runs/ethanol start.xyz --steps 2000 --timestep 0.5 --temperature 300 -o traj.extxyz
        -> test_potential_train_predict_md_export_chain
    mpnn export runs/ethanol ethanol-n2p2/  (then predict / md --nve / export that n2p2 folder)
        -> test_potential_train_predict_md_export_chain, test_exported_potential_md_and_reexport
    Python: MpnnCalculator(load_potential("runs/ethanol")) -> test_the_readme_calculator_example
    mpnn relax runs/ethanol start.xyz -o relaxed.extxyz; mpnn mc runs/ethanol start.xyz --temperature
        300 --steps 1000 -o mc.extxyz (and both on the exported n2p2 folder)
        -> test_relax_and_mc_on_a_trained_and_an_exported_potential
QM9 property models (the bundled 4,000-molecule subset, featurised once into a temporary cache):
    scripts/setup.sh && .venv/bin/mpnn train  (the demo: all 13 targets, runs/<date-time>)
        -> test_the_demo_train_writes_its_run_folder
    Python: build_qm9(bundled_release_path()); build_model(...)(collate(...))
        -> test_the_readme_python_example
    mpnn train --target U0 --epochs 50; mpnn evaluate runs/u0 --split test;
    mpnn predict runs/u0 molecules/ water.xyz --out predictions.csv;
    mpnn train --out runs/u0 ...  (again: resumes); mpnn train --config run.json (a run's own)
        -> test_qm9_train_evaluate_predict_resume
    mpnn train --target U0,gap --time-budget 600; mpnn train --data <archive> --target U0 --out ...
        -> test_per_target_models_on_a_time_budget_from_an_archive
    mpnn search paper ...; mpnn ensemble ... --k 5; mpnn predict ENSEMBLE molecules/ -o predictions.csv;
    mpnn report TRIAL ENSEMBLE --paper -o report.md --plot bars.png
        -> test_search_paper_ensemble_predict_report
    mpnn compare table3_topology --out runs/table3 -> test_compare_table3_topology
    mpnn train --model ggnn --target U0; mpnn predict RUN molecules.smi
        -> test_a_topology_model_predicts_from_smiles

Covered elsewhere and not repeated: the SF-MPNN's commands (``train-potential --model sf_mpnn``,
``mpnn train --model sf_mpnn --data``, ``md --nve --init-temperature``, ``export`` refused;
tests/test_sf_mpnn.py), ``--config run.yaml`` and search/ensemble/report on a space
file (tests/test_cli_methods.py), every model and preset by name incl. ``towers=8``
(tests/test_cli_models.py, synthetic molecules), ``--weight-seed`` (tests/test_ensemble_predict.py),
n2p2's own potentials with ``--units`` in predict and md (tests/test_cli_potential.py), ``download_qm9``
(network; tests/test_download.py).
"""

from __future__ import annotations

import csv
import os
import re
import tarfile
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from small_potentials import TINY_POTENTIAL, labelled

from mpnn import cli
from mpnn.data.qm9 import bundled_release_path
from mpnn.n2p2.input_data import write_input_data

TINY = ["--dim", "16", "--steps", "1", "--batch-size", "8", "--quiet"]
POTENTIAL = TINY_POTENTIAL
N2P2_FILES = ("input.nn", "scaling.data", "weights.001.data", "weights.006.data", "weights.008.data")


def run(*args: str | Path) -> None:
    """``mpnn ARGS`` in this process; it must succeed."""
    assert cli.main([str(a) for a in args]) == 0, args


@pytest.fixture(autouse=True)
def threads(monkeypatch):
    """One torch thread: ``mpnn`` takes every core (``torch.set_num_threads(os.cpu_count())``), which
    makes these tiny runs several times slower while other processes share the cores."""
    torch.set_num_threads(1)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)


# -- potentials --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def potential(tmp_path_factory) -> dict[str, Path]:
    """``mpnn train-potential train.xyz --test test.xyz --epochs 1 --out run`` and its files."""
    root = tmp_path_factory.mktemp("potential")
    paths = {"root": root, "train": root / "train.xyz", "test": root / "test.xyz", "run": root / "run"}
    ase.io.write(paths["train"], labelled(12, 0), format="extxyz")
    ase.io.write(paths["test"], labelled(4, 1), format="extxyz")
    run("train-potential", paths["train"], "--test", paths["test"], "--out", paths["run"], *POTENTIAL)
    return paths


def results(path: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """Energies (B,) and forces [(n, 3)] of an extxyz that ``predict`` or ``md`` wrote."""
    frames = ase.io.read(path, ":")
    return np.array([a.get_potential_energy() for a in frames]), [a.get_forces() for a in frames]


def assert_same(a: Path, b: Path, atol: float = 1e-7) -> None:
    """Two extxyz outputs hold the same energies and forces (to the 8 decimals extxyz writes)."""
    (ea, fa), (eb, fb) = results(a), results(b)
    assert len(ea) == len(eb) and np.allclose(ea, eb, rtol=0, atol=atol)
    assert all(np.allclose(x, y, rtol=0, atol=atol) for x, y in zip(fa, fb, strict=True))


def test_potential_train_predict_md_export_chain(potential, tmp_path) -> None:
    runs = potential["run"]
    for name in ("config.json", "best.pt", "last.pt", "metrics.csv", "test_metrics.csv"):
        assert (runs / name).is_file(), name
    test = potential["test"]
    run("predict", runs, test, "-o", tmp_path / "run.extxyz")
    energies, forces = results(tmp_path / "run.extxyz")
    assert len(energies) == 4 and np.isfinite(energies).all()
    # the same structures as an ASE database and as n2p2 input.data give the same numbers
    ase.io.write(tmp_path / "test.db", ase.io.read(test, ":"))
    write_input_data(tmp_path / "input.data", ase.io.read(test, ":"))
    for other in ("test.db", "input.data"):
        run("predict", runs, tmp_path / other, "-o", tmp_path / f"{other}.extxyz")
        assert_same(tmp_path / "run.extxyz", tmp_path / f"{other}.extxyz")

    run("md", runs, test, "--steps", "4", "--timestep", "0.5", "--temperature", "300", "--quiet",
        "-o", tmp_path / "traj.extxyz")  # fmt: skip
    trajectory, _ = results(tmp_path / "traj.extxyz")
    assert len(trajectory) == 5 and np.isfinite(trajectory).all()
    assert trajectory[0] == pytest.approx(energies[0], abs=1e-7)  # frame 0 is the start structure

    exported = tmp_path / "n2p2"
    run("export", runs, exported)
    assert sorted(p.name for p in exported.iterdir()) == sorted(N2P2_FILES)
    run("predict", exported, test, "-o", tmp_path / "exported.extxyz")
    assert_same(tmp_path / "run.extxyz", tmp_path / "exported.extxyz")

    # the model read from the n2p2 files equals the run's to 1e-10 in float64
    from mpnn.data.atoms import collate_structures
    from mpnn.potentials.forces import evaluate
    from mpnn.potentials.load import load_potential

    mine, theirs = load_potential(runs), load_potential(exported)
    batch = collate_structures(ase.io.read(test, ":"), mine.cutoff).to(dtype=torch.float64)
    a, b = evaluate(mine, batch), evaluate(theirs, batch)
    assert (a["energy"] - b["energy"]).abs().max() < 1e-10
    assert (a["forces"] - b["forces"]).abs().max() < 1e-10


def test_exported_potential_md_and_reexport(potential, tmp_path, capsys) -> None:
    runs, start = potential["run"], potential["test"]
    run("export", runs, tmp_path / "n2p2")
    # NVE from the file's (zero) velocities is deterministic: the same trajectory from both folders
    for name, model in (("run", runs), ("n2p2", tmp_path / "n2p2")):
        run("md", model, start, "--steps", "5", "--timestep", "0.5", "--nve", "--quiet",
            "-o", tmp_path / f"{name}.traj.extxyz")  # fmt: skip
    assert_same(tmp_path / "run.traj.extxyz", tmp_path / "n2p2.traj.extxyz")
    positions = [ase.io.read(tmp_path / f"{n}.traj.extxyz", ":") for n in ("run", "n2p2")]
    assert all(np.allclose(x.positions, y.positions, atol=1e-7) for x, y in zip(*positions, strict=True))
    assert not np.allclose(positions[0][0].positions, positions[0][-1].positions)  # the atoms moved

    # an exported n2p2 folder exports again, byte for byte
    run("export", tmp_path / "n2p2", tmp_path / "again")
    for name in N2P2_FILES:
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "n2p2" / name).read_bytes(), name

    # export never writes into its own source or into a training run (one line, nothing changed)
    before = {p.name: p.read_bytes() for p in runs.iterdir()}
    capsys.readouterr()
    for source, target in ((tmp_path / "n2p2", tmp_path / "n2p2"), (tmp_path / "n2p2", runs)):
        assert cli.main(["export", str(source), str(target)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"mpnn: error: {target}") and err.count("\n") == 1, err
    assert {p.name: p.read_bytes() for p in runs.iterdir()} == before
    for name in N2P2_FILES:
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "n2p2" / name).read_bytes()


def test_the_readme_calculator_example(potential, tmp_path) -> None:
    from mpnn.potentials.calculator import MpnnCalculator
    from mpnn.potentials.load import load_potential

    run("predict", potential["run"], potential["test"], "-o", tmp_path / "p.extxyz")
    energies, forces = results(tmp_path / "p.extxyz")
    atoms = ase.io.read(potential["test"])  # the README's read("start.xyz"): ASE reads the last one
    atoms.calc = MpnnCalculator(load_potential(potential["run"]))
    assert atoms.get_potential_energy() == pytest.approx(energies[-1], abs=1e-7)
    assert np.allclose(atoms.get_forces(), forces[-1], rtol=0, atol=1e-7)


def test_relax_and_mc_on_a_trained_and_an_exported_potential(potential, tmp_path, capsys) -> None:
    runs, start = potential["run"], potential["test"]
    run("export", runs, tmp_path / "n2p2")
    for name, model in (("run", runs), ("n2p2", tmp_path / "n2p2")):
        status = cli.main([str(a) for a in ("relax", model, start, "-o", tmp_path / f"{name}.relaxed.extxyz",
                                            "--steps", "20", "--quiet")])  # fmt: skip
        relaxed = ase.io.read(tmp_path / f"{name}.relaxed.extxyz")
        fmax = np.linalg.norm(relaxed.get_forces(), axis=1).max()
        assert relaxed.info["fmax"] == pytest.approx(fmax, abs=1e-6)
        assert status == (0 if fmax < 0.05 else 1) and relaxed.info["converged"] == (status == 0)
        frames = ase.io.read(tmp_path / f"{name}.relaxed_trajectory.extxyz", ":")
        assert relaxed.get_potential_energy() < frames[0].get_potential_energy()
        run("mc", model, start, "--temperature", "300", "--steps", "40", "--interval", "10", "--quiet",
            "-o", tmp_path / f"{name}.mc.extxyz")  # fmt: skip
    # the run and its n2p2 export relax along the same path and make the same moves
    assert_same(tmp_path / "run.relaxed_trajectory.extxyz", tmp_path / "n2p2.relaxed_trajectory.extxyz", 1e-6)
    paths = [ase.io.read(tmp_path / f"{n}.mc.extxyz", ":") for n in ("run", "n2p2")]
    assert len(paths[0]) == 5
    assert all(np.allclose(a.positions, b.positions, atol=1e-7) for a, b in zip(*paths, strict=True))
    assert not np.allclose(paths[0][0].positions, paths[0][-1].positions)


# -- QM9 -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def qm9_cache(tmp_path_factory):
    """A fresh QM9 cache for this module (the bundled subset is featurised once, here)."""
    old = os.environ.get("MPNN_CACHE")
    os.environ["MPNN_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("MPNN_CACHE", None)
    else:
        os.environ["MPNN_CACHE"] = old


@pytest.fixture(scope="module")
def molecules(tmp_path_factory) -> Path:
    """A folder of three QM9 xyz files of the bundled subset, and a plain water.xyz beside it."""
    pytest.importorskip("rdkit")
    root = tmp_path_factory.mktemp("molecules")
    (root / "molecules").mkdir()
    with tarfile.open(bundled_release_path()) as archive:
        members = [m for m in archive if m.name.endswith(".xyz")][:3]
        for member in members:
            (root / "molecules" / Path(member.name).name).write_bytes(archive.extractfile(member).read())
    (root / "water.xyz").write_text("3\nwater\nO 0 0 0.1178\nH 0 0.7555 -0.4712\nH 0 -0.7555 -0.4712\n")
    return root


@pytest.fixture
def no_figures(monkeypatch):
    """Runs draw no per-run figures (the demo's test checks that they are drawn)."""
    from mpnn.train import run as run_module

    monkeypatch.setattr(run_module.plots, "parity", lambda *a, **k: None)
    monkeypatch.setattr(run_module.plots, "learning_curve", lambda *a, **k: None)


def table(text: str) -> dict[str, float]:
    """target -> MAE of a printed error table."""
    rows = {}
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 5 and re.fullmatch(r"[-+.0-9e]+", words[-3]) and words[0] != "mean":
            rows[words[0]] = float(words[-3])
    return rows


def test_the_demo_train_writes_its_run_folder(molecules, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    run("train", "--subset", "60", "--epochs", "1", *TINY)
    printed = capsys.readouterr().out
    (folder,) = (tmp_path / "runs").iterdir()  # runs/<date-time>
    assert re.fullmatch(r"\d{8}-\d{6}", folder.name)
    for name in ("best.pt", "last.pt", "metrics.csv", "test_metrics.csv", "learning_curve.png", "parity.png"):
        assert (folder / name).is_file(), name
    maes = table(printed)
    assert len(maes) == 13 and all(np.isfinite(v) and v > 0 for v in maes.values())


def test_the_readme_python_example(molecules) -> None:
    from mpnn.batch import collate
    from mpnn.data.qm9_build import build_qm9
    from mpnn.models import build_model

    data = build_qm9(bundled_release_path())
    model = build_model({"model": "enn_s2s", "num_targets": 13, "dim": 64})
    prediction = model(collate([data[i] for i in range(8)]))
    assert prediction.shape == (8, 13) and torch.isfinite(prediction).all()


def test_qm9_train_evaluate_predict_resume(molecules, tmp_path, capsys) -> None:
    out = tmp_path / "u0"
    run("train", "--target", "U0", "--epochs", "1", "--subset", "60", "--out", out, *TINY)
    trained = table(capsys.readouterr().out)
    assert set(trained) == {"U0"}
    run("evaluate", out, "--split", "test")
    assert table(capsys.readouterr().out) == trained  # the same test error as after training
    # a run's own run.json is a --config file that retrains the same run (same seed, same numbers)
    run("train", "--config", out / "run.json", "--out", tmp_path / "again", "--quiet")
    assert table(capsys.readouterr().out) == trained

    predictions = tmp_path / "predictions.csv"
    run("predict", out, molecules / "molecules", molecules / "water.xyz", "--out", predictions)
    rows = list(csv.reader(open(predictions)))
    names = sorted(p.stem for p in (molecules / "molecules").iterdir())
    assert rows[0] == ["name", "U0 [eV]"] and [r[0] for r in rows[1:]] == [*names, "water"]
    assert all(np.isfinite(float(r[1])) for r in rows[1:])

    first = (out / "metrics.csv").read_text().splitlines()
    capsys.readouterr()
    run("train", "--out", out, "--epochs", "2", "--quiet")  # again: resumes from last.pt
    assert capsys.readouterr().out.startswith("resuming run")
    again = (out / "metrics.csv").read_text().splitlines()
    assert again[: len(first)] == first and len(again) == len(first) + 1  # one more epoch, none redone


def test_per_target_models_on_a_time_budget_from_an_archive(molecules, no_figures, tmp_path, capsys) -> None:
    out = tmp_path / "two"
    run("train", "--data", bundled_release_path(), "--target", "U0,gap", "--time-budget", "1",
        "--subset", "40", "--out", out, *TINY)  # fmt: skip
    assert (out / "U0" / "best.pt").is_file() and (out / "gap" / "best.pt").is_file()
    assert set(table(capsys.readouterr().out)) == {"U0", "gap"}
    run("predict", out, molecules / "water.xyz", "--out", tmp_path / "p.csv")
    rows = list(csv.reader(open(tmp_path / "p.csv")))
    assert rows[0][1:] == ["U0 [eV]", "gap [eV]"] or rows[0][1:] == ["gap [eV]", "U0 [eV]"]


def test_search_paper_ensemble_predict_report(molecules, no_figures, tmp_path, capsys) -> None:
    search = tmp_path / "search-U0"
    run("search", "paper", "--target", "U0", "--trials", "2", "--epochs", "1", "--subset", "40",
        "--model-option", "dim=16", "--model-option", "edge_hidden=[8]", "--out", search,
        "--quiet")  # fmt: skip
    assert (search / "search.csv").is_file() and (search / "trial-001" / "best.pt").is_file()
    ensemble = tmp_path / "ens2-U0"
    run("ensemble", search, "--k", "2", "--out", ensemble)
    predictions = tmp_path / "predictions.csv"
    run("predict", ensemble, molecules / "molecules", "-o", predictions)
    rows = list(csv.reader(open(predictions)))
    assert len(rows) == 4 and "U0" in rows[0][1] and all(np.isfinite(float(x)) for x in rows[1][1:])
    report = tmp_path / "report.md"
    run("report", search / "trial-000", ensemble, "--paper", "-o", report, "--plot", tmp_path / "bars.png")
    text = report.read_text()
    assert "| trial-000 | ens2-U0 |" in text and (tmp_path / "bars.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_table3_topology(molecules, no_figures, tmp_path, capsys) -> None:
    out = tmp_path / "table3"
    run("compare", "table3_topology", "--target", "U0", "--subset", "30", "--epochs", "1", "--out", out,
        "--quiet")  # fmt: skip
    text = (out / "report.md").read_text()
    for label in ("ggnn", "ggnn+virtual-edges", "ggnn+master-node", "ggnn+set2set"):
        assert f" {label} |" in text and (out / label / "best.pt").is_file(), label
    assert (out / "report.png").is_file()


def test_a_topology_model_predicts_from_smiles(molecules, no_figures, tmp_path, capsys) -> None:
    ggnn = tmp_path / "ggnn"
    run("train", "--model", "ggnn", "--target", "U0", "--epochs", "1", "--subset", "40", "--out", ggnn,
        "--model-option", "dim=16", "--quiet")  # fmt: skip
    smiles = tmp_path / "molecules.smi"
    smiles.write_text("CCO ethanol\nc1ccccc1 benzene\n")
    run("predict", ggnn, smiles, "-o", tmp_path / "smiles.csv")
    rows = list(csv.reader(open(tmp_path / "smiles.csv")))
    assert [r[0] for r in rows[1:]] == ["ethanol", "benzene"]
    assert all(np.isfinite(float(r[1])) for r in rows[1:])
