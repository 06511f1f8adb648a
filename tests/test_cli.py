"""The ``mpnn`` command: train, evaluate, predict, resume, and one-line errors with exit 2."""

from __future__ import annotations

import csv
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from test_train import synthetic_set

from mpnn import cli
from mpnn.data.qm9 import bundled_release_path
from mpnn.train import run as run_module
from mpnn.train.metrics import read_errors_csv

TINY = ["--dim", "16", "--steps", "1", "--batch-size", "8"]


def mpnn(*args: str, cwd: Path | None = None, env: dict | None = None):
    """Run ``python -m mpnn.cli`` in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "mpnn.cli", *args], capture_output=True, text=True, cwd=cwd,
        env=env, timeout=300,
    )  # fmt: skip


@pytest.fixture
def synthetic(monkeypatch):
    """Make ``mpnn train``/``evaluate`` load 40 synthetic molecules instead of QM9."""
    data = synthetic_set(40)
    monkeypatch.setattr(run_module, "load_molecules", lambda *a, **k: data)
    monkeypatch.setattr("mpnn.train.data.load_molecules", lambda *a, **k: data)
    return data


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A joint mu+U0 run trained for 1 epoch on synthetic molecules."""
    out = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as patch:
        data = synthetic_set(40)
        patch.setattr(run_module, "load_molecules", lambda *a, **k: data)
        args = ["train", "--target", "mu,U0", "--joint", "--epochs", "1", "--quiet", *TINY]
        assert cli.main([*args, "--out", str(out)]) == 0
    return out


def test_train_prints_the_test_table_and_writes_the_run(trained_run, capsys) -> None:
    for name in ("run.json", "config.json", "split.pt", "best.pt", "last.pt", "metrics.csv",
                 "test_metrics.csv", "learning_curve.png", "parity.png"):  # fmt: skip
        assert (trained_run / name).is_file(), name
    assert [e.target for e in read_errors_csv(trained_run / "test_metrics.csv")] == ["mu", "U0"]


def test_train_resumes_and_extends_a_finished_run(tmp_path, synthetic, capsys) -> None:
    args = ["train", "--target", "U0", "--epochs", "1", "--quiet", "--out", str(tmp_path), *TINY]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("new run") and out.splitlines()[-3].split()[:2] == ["U0", "eV"]
    assert cli.main(["train", "--out", str(tmp_path), "--epochs", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("resuming run") and "2 epochs" in out.splitlines()[0]
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert cli.main(["train", "--out", str(tmp_path), "--dim", "32"]) == 2
    assert "model.dim = 16, not 32" in capsys.readouterr().err


def test_evaluate_prints_the_table_of_a_split(trained_run, synthetic, capsys) -> None:
    assert cli.main(["evaluate", str(trained_run), "--split", "valid"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("valid set (4 molecules")
    assert [line.split()[0] for line in lines[3:5]] == ["mu", "U0"]
    assert lines[-1].split()[0] == "mean"


def test_errors_are_one_line_with_exit_status_2(tmp_path, trained_run) -> None:
    bad = tmp_path / "bad.xyz"
    bad.write_text("3\nwater\nO 0 0 0.1\nH 0 0.75 -0.47\nH 0 -0.75 nan\n")
    result = mpnn("predict", str(trained_run), str(bad), "--out", str(tmp_path / "p.csv"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"mpnn: error: {bad}:5: non-finite coordinate in 'H 0 -0.75 nan'"
    ]
    assert not (tmp_path / "p.csv").exists()  # nothing half-written
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--epochs", "0"], "--epochs: expected a positive integer, got '0'"),
        (["train", "--epochs", "2", "--time-budget", "9"], "not allowed with argument"),
        (["train", "--target", "U7"], "unknown target U7"),
        (["train", "--data", "no/such/qm9.tar.xz"], "no/such/qm9.tar.xz: no such file"),
        (["evaluate", "no/such/run"], "no/such/run: no such folder"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, args, message, capsys) -> None:
    assert cli.main([*args, "--out", str(tmp_path / "out")] if args[0] == "train" else args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mpnn: error: ") and message in err
    assert not (tmp_path / "out").exists()


def test_help_describes_the_default_demo(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--help"])
    assert info.value.code == 0
    assert "all 13 QM9 targets jointly" in " ".join(capsys.readouterr().out.split())


# -- with the real featuriser and QM9 files --------------------------------------------------------
@pytest.fixture(scope="module")
def qm9_folder(tmp_path_factory) -> Path:
    """30 QM9 xyz files from the bundled subset, as a release folder."""
    pytest.importorskip("mpnn.data.featurize")
    folder = tmp_path_factory.mktemp("qm9")
    with tarfile.open(bundled_release_path()) as archive:
        for k, member in enumerate(m for m in archive if m.name.endswith(".xyz")):
            if k == 30:
                break
            (folder / Path(member.name).name).write_bytes(archive.extractfile(member).read())
    return folder


def test_train_evaluate_predict_end_to_end_on_qm9_files(qm9_folder, tmp_path) -> None:
    env = {**__import__("os").environ, "MPNN_CACHE": str(tmp_path / "cache")}
    out = tmp_path / "run"
    train = mpnn("train", "--data", str(qm9_folder), "--target", "U0,gap", "--epochs", "1",
                 "--workers", "1", "--out", str(out), *TINY, env=env)  # fmt: skip
    assert train.returncode == 0, train.stderr
    table = train.stdout.splitlines()
    assert "train 24, valid 3, test 3" in train.stdout
    assert [line.split()[:2] for line in table[-4:-2]] == [["gap", "eV"], ["U0", "eV"]]
    assert (out / "U0" / "best.pt").is_file() and (out / "gap" / "best.pt").is_file()

    evaluate = mpnn("evaluate", str(out), env=env)
    assert evaluate.returncode == 0, evaluate.stderr
    assert evaluate.stdout.splitlines()[-6:] == table[-6:]  # same test errors as after training

    water = tmp_path / "water.xyz"
    water.write_text("3\nwater\nO 0 0 0.1178\nH 0 0.7555 -0.4712\nH 0 -0.7555 -0.4712\n" * 2)
    first = sorted(qm9_folder.glob("*.xyz"))[0]
    predictions = tmp_path / "p.csv"
    predict = mpnn("predict", str(out), str(first), str(water), "--out", str(predictions), env=env)
    assert predict.returncode == 0, predict.stderr
    rows = list(csv.reader(open(predictions)))
    assert rows[0] == ["name", "gap [eV]", "U0 [eV]"]
    assert [r[0] for r in rows[1:]] == [first.stem, "water#1", "water#2"]
    assert rows[2][1:] == rows[3][1:]  # the same structure twice
