"""Nothing a user types destroys data (issue 9, classes 2 and 3).

Class 2: an output that is one of the command's inputs, or lies inside a folder the command reads,
is refused with one line and exit status 2 before anything is computed (:mod:`mpnn.outputs`).
Class 3: a failed or mistaken command leaves every existing file as it was: all checks and all
loading of the state a run resumes from come before its first write.

Every test snapshots the whole working tree (path -> SHA-256 of the bytes and mtime) before and
after the command and requires them equal. The runs are real ones made with our own commands: a
tiny ``mpnn train`` on the bundled QM9 subset and a tiny ``mpnn train-potential`` on Cu/Al clusters
labelled with ASE's EMT calculator, each made once per module and copied for each test.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from mpnn import cli

TINY_MODEL = ["--dim", "16", "--steps", "1", "--model-option", "edge_hidden=[8]",
              "--model-option", "set2set_steps=1", "--batch-size", "8"]  # fmt: skip
TRAIN = ["train", "--target", "U0", "--subset", "40", "--valid", "8", "--test", "8", "--quiet", *TINY_MODEL]
POTENTIAL = (
    "--radial 4 --r-min 1.5 --angular 1 --angular-shifts 1 --zetas 1,4 --angular-type 3,9 --nodes 8,8 "
    "--cutoff 4.0 --batch-size 4 --valid 0.2 --quiet"
).split()
METHANE = "5\nmethane\nC 0 0 0\nH 0.629 0.629 0.629\nH -0.629 -0.629 0.629\nH -0.629 0.629 -0.629\n" \
    "H 0.629 -0.629 -0.629\n"  # fmt: skip


def clusters(count: int, seed: int) -> list[Atoms]:
    """Cu3Al clusters about 2.5 Angstrom apart, randomly distorted, with EMT energies and forces."""
    rng = np.random.default_rng(seed)
    base = np.array([[0, 0, 0], [2.5, 0, 0], [0, 2.5, 0], [0, 0, 2.5]], dtype=float)
    out = []
    for _ in range(count):
        atoms = Atoms("Cu3Al", positions=base + rng.normal(0, 0.1, base.shape))
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        out.append(atoms)
    return out


def mpnn(capsys, *args: str | Path) -> tuple[int, str]:
    """``mpnn ARGS`` in this process: (exit status, stderr)."""
    capsys.readouterr()
    status = cli.main([str(a) for a in args])
    return status, capsys.readouterr().err


def refused(capsys, *args: str | Path) -> str:
    """Run a command that must fail with one line on stderr and exit status 2; returns the line."""
    status, err = mpnn(capsys, *args)
    assert status == 2, err
    assert err.count("\n") == 1 and err.startswith("mpnn: error: ") and "Traceback" not in err, err
    return err


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file, link and folder under ``root``: its bytes' SHA-256 and mtime, link target, or 'dir'."""
    state: dict[str, tuple] = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_symlink():
            state[name] = ("link", os.readlink(path))
        elif path.is_dir():
            state[name] = ("dir",)
        else:
            state[name] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
    return state


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A property run (``run``), a potential run (``pot``), its n2p2 export (``n2p2``) and their data."""
    root = tmp_path_factory.mktemp("made")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch, "set_num_threads", lambda n: None)  # keep the test's thread setting
        assert cli.main([*TRAIN, "--epochs", "1", "--out", str(root / "run")]) == 0
        data = clusters(12, 0)
        ase.io.write(root / "train.xyz", data[:10], format="extxyz")
        ase.io.write(root / "test.xyz", data[10:], format="extxyz")
        potential = ["train-potential", str(root / "train.xyz"), "--test", str(root / "test.xyz"), *POTENTIAL]
        assert cli.main([*potential, "--epochs", "1", "--out", str(root / "pot")]) == 0
        assert cli.main(["export", str(root / "pot"), str(root / "n2p2")]) == 0
    (root / "methane.xyz").write_text(METHANE)
    return root


@pytest.fixture
def work(made, tmp_path, monkeypatch) -> Path:
    """A fresh copy of :func:`made`, the current folder while the test runs."""
    work = tmp_path / "work"
    shutil.copytree(made, work, symlinks=True)
    monkeypatch.chdir(work)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    return work


def potential_args(made: Path) -> list[str]:
    """``mpnn train-potential`` with the settings and data files of the potential run (a copy of
    which resumes with them: its ``config.json`` names the files of ``made``)."""
    return ["train-potential", str(made / "train.xyz"), "--test", str(made / "test.xyz"), *POTENTIAL]


# -- class 2: an output never overwrites an input -------------------------------------------------
def _hard_link(work: Path) -> str:
    os.link(work / "test.xyz", work / "same.xyz")
    return "same.xyz"


def _symlink(work: Path) -> str:
    os.symlink("test.xyz", work / "alias.xyz")
    return "alias.xyz"


def _folder_link(work: Path) -> str:
    os.symlink("run", work / "latest")
    return "latest"


def _space_folder(work: Path) -> str:
    (work / "notes").mkdir()
    space = {"space": {"training.lr": {"uniform": [1e-4, 1e-3]}}}
    (work / "notes" / "space.json").write_text(json.dumps(space))
    return "notes"


#: (command line, what the refusal names); {w} is the working copy. Each output is an input or
#: lies in a folder the command reads; each command would otherwise succeed and write it.
OVERWRITES: list[tuple[list[str], str]] = [
    (["predict", "run", "methane.xyz", "-o", "methane.xyz"], "methane.xyz"),
    (["predict", "run", "methane.xyz", "-o", "run/predictions.csv"], "run/predictions.csv"),
    (["predict", "run", "methane.xyz", "-o", "elsewhere/../run/test_metrics.csv"], "test_metrics.csv"),
    (["predict", "pot", "test.xyz", "-o", "test.xyz"], "test.xyz"),
    (["predict", "pot", "test.xyz", "-o", "{hard}"], "same.xyz"),
    (["predict", "pot", "test.xyz", "-o", "{link}"], "alias.xyz"),
    (["predict", "n2p2", "test.xyz", "-o", "n2p2/input.nn"], "n2p2/input.nn"),
    (["predict", "pot", "test.xyz", "-o", "pot"], "pot"),
    (["md", "pot", "test.xyz", "--steps", "1", "--timestep", "1", "--nve", "-o", "test.xyz"], "test.xyz"),
    (["md", "pot", "test.xyz", "--steps", "1", "--timestep", "1", "--nve", "-o", "pot/t.extxyz"], "pot"),
    (["export", "pot", "pot"], "pot"),
    (["export", "n2p2", "./n2p2/"], "n2p2"),
    (["export", "pot", "pot/n2p2"], "pot/n2p2"),
    (["prune", "sensitivity", "1", "test.xyz", "--potential", "n2p2", "--out", "n2p2/p.nn"], "n2p2/p.nn"),
    (["prune", "sensitivity", "1", "test.xyz", "--potential", "pot", "--out", "test.xyz"], "test.xyz"),
    (["prune", "range", "1", "test.xyz", "--input-nn", "n2p2/input.nn", "--report", "{hard}"], "same.xyz"),
    (["report", "run", "-o", "run/test_metrics.csv"], "run/test_metrics.csv"),
    (["report", "run", "-o", "report.md", "--plot", "run/parity.png"], "run/parity.png"),
    (["report", "run", "-o", "{folder}/report.md"], "latest/report.md"),
    (["ensemble", "run", "--k", "1", "--out", "run"], "run"),
    (["ensemble", "run", "--k", "1", "--out", "run/ens"], "run/ens"),
    (["train", "--out", "pot", "--epochs", "1"], "pot"),
    (["train", "--out", "n2p2", "--epochs", "1"], "n2p2"),
    (["train", "--out", ".", "--epochs", "1"], "."),
    (["train-potential", "train.xyz", "--out", ".", "--epochs", "1"], "."),
    (["train-potential", "train.xyz", "--test", "test.xyz", "--out", "run", "--epochs", "1"], "run"),
    (["search", "{space}/space.json", "--out", "{space}", "--epochs", "1", "--trials", "1"], "notes"),
    (["compare", "example", "--out", "run", "--epochs", "1"], "run"),
]


@pytest.mark.parametrize(("args", "named"), OVERWRITES, ids=[" ".join(a[:1] + a[-4:]) for a, _ in OVERWRITES])
def test_an_output_that_is_an_input_is_refused_and_nothing_changes(work, capsys, args, named) -> None:
    marks: dict[str, Callable[[Path], str]] = {
        "hard": _hard_link, "link": _symlink, "folder": _folder_link, "space": _space_folder
    }  # fmt: skip
    given = {key: make(work) for key, make in marks.items() if any("{" + key + "}" in a for a in args)}
    args = [a.format(**given) for a in args]
    before = snapshot(work)
    error = refused(capsys, *args)
    assert named in error
    assert snapshot(work) == before


def test_two_outputs_in_one_file_are_refused(work, capsys) -> None:
    before = snapshot(work)
    assert "report.md" in refused(capsys, "report", "run", "-o", "report.md", "--plot", "report.md")
    assert snapshot(work) == before


def test_md_never_stages_its_frames_over_an_input(work, capsys) -> None:
    """``md -o T`` writes its frames to ``T.partial`` until it ends: that file is an output too."""
    (work / "start.extxyz.partial").write_bytes((work / "test.xyz").read_bytes())
    before = snapshot(work)
    args = ["md", "pot", "start.extxyz.partial", "--steps", "1", "--timestep", "1", "--nve"]
    assert "start.extxyz.partial" in refused(capsys, *args, "-o", "start.extxyz")
    assert snapshot(work) == before


def test_outputs_beside_the_inputs_are_written(work, capsys) -> None:
    """The guard refuses only what overlaps: the same commands with other outputs succeed."""
    assert mpnn(capsys, "predict", "pot", "test.xyz", "-o", "p.extxyz")[0] == 0
    assert len(ase.io.read(work / "p.extxyz", ":")) == 2
    assert mpnn(capsys, "predict", "run", "methane.xyz", "-o", "p.csv")[0] == 0
    assert mpnn(capsys, "export", "pot", "n2p2")[0] == 0  # an n2p2 folder is replaced
    assert mpnn(capsys, "report", "run", "-o", "report.md")[0] == 0


# -- class 3: a failed or mistaken command changes nothing ----------------------------------------
def test_train_into_a_potential_run_changes_nothing_and_the_potential_still_predicts(work, capsys) -> None:
    before = snapshot(work)
    error = refused(capsys, *TRAIN, "--epochs", "1", "--out", "pot")
    assert "pot: holds a `mpnn train-potential` run" in error
    assert snapshot(work) == before
    assert not (work / "pot" / "run.json").exists()
    assert mpnn(capsys, "predict", "pot", "test.xyz", "-o", "out.extxyz")[0] == 0


def test_train_into_a_foreign_folder_changes_nothing(made, work, capsys) -> None:
    (work / "mine").mkdir()
    (work / "mine" / "config.json").write_text('{"colour": "blue"}\n')
    before = snapshot(work)
    error = refused(capsys, *TRAIN, "--epochs", "1", "--out", "mine")
    assert "mine: not empty (it holds config.json)" in error
    assert "mine: not empty" in refused(capsys, *potential_args(made), "--epochs", "1", "--out", "mine")
    assert snapshot(work) == before


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:200])


def _reshape_last(path: Path) -> None:
    """``last.pt`` of another model: one weight matrix with an extra row."""
    saved = torch.load(path, weights_only=True)
    name = next(k for k, v in saved["model"].items() if v.dim() == 2)
    saved["model"][name] = torch.cat([saved["model"][name], saved["model"][name][:1]])
    torch.save(saved, path)


DAMAGE = [("last.pt", _truncate), ("last.pt", _reshape_last), ("best.pt", _truncate), ("split.pt", _truncate)]


@pytest.mark.parametrize(("name", "damage"), DAMAGE, ids=[f"{n}-{d.__name__}" for n, d in DAMAGE])
def test_resuming_from_a_damaged_file_changes_nothing_then_resumes(work, capsys, name, damage) -> None:
    run = work / "run"
    good = (run / name).read_bytes()
    damage(run / name)
    before = snapshot(work)
    assert f"{run / name}" in refused(capsys, "train", "--out", run, "--epochs", "2", "--quiet")
    assert snapshot(work) == before  # run.json, test_metrics.csv and config.json as they were
    (run / name).write_bytes(good)
    assert mpnn(capsys, "train", "--out", run, "--epochs", "2", "--quiet")[0] == 0
    with open(run / "metrics.csv", newline="") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1", "2"]
    assert (run / "test_metrics.csv").is_file()


@pytest.mark.parametrize(("name", "damage"), DAMAGE[:3], ids=[f"{n}-{d.__name__}" for n, d in DAMAGE[:3]])
def test_resuming_a_potential_from_a_damaged_file_changes_nothing(made, work, capsys, name, damage) -> None:
    run = work / "pot"
    good = (run / name).read_bytes()
    damage(run / name)
    before = snapshot(work)
    assert f"{run / name}" in refused(capsys, *potential_args(made), "--epochs", "2", "--out", run)
    assert snapshot(work) == before
    (run / name).write_bytes(good)
    assert mpnn(capsys, *potential_args(made), "--epochs", "2", "--out", run)[0] == 0
    with open(run / "metrics.csv", newline="") as handle:
        assert [int(row["epoch"]) for row in csv.DictReader(handle)] == [1, 2]


@pytest.mark.parametrize("setting", ["batch_size: 0", "lr: -1"])
def test_a_bad_setting_writes_nothing_and_the_corrected_rerun_works(work, capsys, setting) -> None:
    (work / "bad.yaml").write_text(f"training:\n  {setting}\n")
    (work / "good.yaml").write_text("training:\n  lr: 0.001\n")
    before = snapshot(work)
    error = refused(capsys, *TRAIN, "--config", "bad.yaml", "--epochs", "1", "--out", "new")
    assert setting.split(":")[0] in error
    assert snapshot(work) == before and not (work / "new").exists()
    assert mpnn(capsys, *TRAIN, "--config", "good.yaml", "--epochs", "1", "--out", "new")[0] == 0
    assert (work / "new" / "test_metrics.csv").is_file()


def _bad_trial_seed() -> int:
    """A search seed whose trial 0 draws dim 16 (would train) and a later trial dim 8 (cannot build:
    13 node features exceed it)."""
    from mpnn.experiments.search import SearchSpace, sample

    space = SearchSpace({}, {"model.dim": ("choice", [16, 8])}, "test")
    return next(
        s for s in range(100)
        if sample(space, s, 0)["model.dim"] == 16 and 8 in [sample(space, s, i)["model.dim"] for i in (1, 2)]
    )  # fmt: skip


def test_a_search_or_comparison_with_a_bad_run_writes_nothing(work, capsys) -> None:
    base = {"targets": ["U0"], "data": {"subset": 40, "valid": 8, "test": 8},
            "model": {"model": "enn_s2s", "edge_hidden": [8], "steps": 1, "set2set_steps": 1},
            "training": {"epochs": 1, "batch_size": 8}}  # fmt: skip
    (work / "space.json").write_text(json.dumps({"base": base, "space": {"model.dim": {"choice": [16, 8]}}}))
    runs = {"good": {"dim": 16}, "bad": {"dim": 8}}
    (work / "ablation.json").write_text(json.dumps({"base": base, "runs": runs}))
    seed = str(_bad_trial_seed())
    before = snapshot(work)
    error = refused(capsys, "search", "space.json", "--trials", "3", "--seed", seed, "--out", "s", "--quiet")
    assert "dim 8" in error
    assert "dim 8" in refused(capsys, "compare", "ablation.json", "--out", "c", "--quiet")
    assert snapshot(work) == before and not (work / "s").exists() and not (work / "c").exists()


def test_resuming_on_changed_data_is_refused_and_old_runs_still_resume(made, work, capsys) -> None:
    ase.io.write(work / "d.xyz", clusters(10, 5), format="extxyz")
    args = ["train-potential", work / "d.xyz", *POTENTIAL, "--out", work / "p6"]
    assert mpnn(capsys, *args, "--epochs", "1")[0] == 0
    stored = json.loads((work / "p6" / "config.json").read_text())["data"]["sha256"]
    assert stored == {"train": hashlib.sha256((work / "d.xyz").read_bytes()).hexdigest()}
    ase.io.write(work / "d.xyz", clusters(40, 6), format="extxyz")  # other structures, same name
    before = snapshot(work)
    line = refused(capsys, *args, "--epochs", "2")
    assert line.startswith(f"mpnn: error: {work / 'd.xyz'}: the train data changed since the run")
    assert snapshot(work) == before
    config = json.loads((work / "pot" / "config.json").read_text())  # a run recorded before the hashes
    del config["data"]["sha256"]
    (work / "pot" / "config.json").write_text(json.dumps(config))
    assert mpnn(capsys, *potential_args(made), "--epochs", "2", "--out", work / "pot")[0] == 0


@pytest.mark.parametrize(
    ("model", "data", "out"),
    [("pot", "test.xyz", "pp.png"), ("pot", "test.xyz", "pp.csv"), ("run", "methane.xyz", "pp.extxyz")],
)
def test_an_output_named_for_another_format_is_refused(work, capsys, model, data, out) -> None:
    before = snapshot(work)
    line = refused(capsys, "predict", model, data, "-o", out)
    assert line.startswith(f"mpnn: error: {out}: this command writes ")
    assert snapshot(work) == before


def test_export_into_a_folder_of_another_potential_is_refused(work, capsys) -> None:
    other = work / "other"
    shutil.copytree(work / "n2p2", other)
    (other / "weights.001.data").write_text("1.0\n")  # hydrogen weights of another potential
    before = snapshot(work)
    assert "weights.001.data of another n2p2 potential" in refused(capsys, "export", "pot", other)
    assert snapshot(work) == before
    assert mpnn(capsys, "export", "pot", "n2p2")[0] == 0  # our own previous export: replaced


def test_a_property_model_refuses_a_huge_molecule_naming_the_file(work, capsys) -> None:
    rows = "".join(f"H {0.74 * (k % 2)} {2.0 * (k // 2)} 0\n" for k in range(1024))
    (work / "h2_1k.xyz").write_text(f"1024\nhydrogen molecules\n{rows}")
    before = snapshot(work)
    line = refused(capsys, "predict", "run", "h2_1k.xyz")
    assert "h2_1k.xyz:1: 1024 atoms; property models take at most" in line
    assert snapshot(work) == before


def test_a_run_resumes_on_its_data_moved_elsewhere_but_not_on_other_data(work, capsys) -> None:
    """The recorded SHA-256 lets a run resume from a moved copy of its data file; a file of the
    same name with other content is refused, and nothing is written."""
    ase.io.write(work / "e.xyz", clusters(10, 7), format="extxyz")
    args = [*POTENTIAL, "--out", work / "p7"]
    assert mpnn(capsys, "train-potential", work / "e.xyz", *args, "--epochs", "1")[0] == 0
    (work / "moved").mkdir()
    (work / "e.xyz").rename(work / "moved" / "e.xyz")
    assert mpnn(capsys, "train-potential", work / "moved" / "e.xyz", *args, "--epochs", "2")[0] == 0
    saved = torch.load(work / "p7" / "last.pt", weights_only=True)
    assert saved["state"]["epoch"] == 2
    ase.io.write(work / "other.xyz", clusters(10, 8), format="extxyz")
    before = snapshot(work)
    line = refused(capsys, "train-potential", work / "other.xyz", *args, "--epochs", "3")
    assert line.startswith(f"mpnn: error: {work / 'other.xyz'}: the train data changed since the run")
    assert snapshot(work) == before
