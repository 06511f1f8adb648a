"""Saved files of the wrong shape end a command with one line naming the file, never a traceback.

Issue 9, defect classes 6 and 8: a ``.pt`` that loads but is not what we wrote (a tensor, a list,
``{}``, indices of the wrong dtype or range), a truncated checkpoint, a foreign or non-numeric
``test_metrics.csv``/``metrics.csv``, a run description with values of the wrong type; stale
temporaries of a killed run, and write errors that would name a temporary. The run folders are
real ones, made once per module by our own ``mpnn train`` (40 molecules of the bundled QM9 subset,
1 epoch) and ``mpnn train-potential`` (EMT-labelled clusters, 1 epoch).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import time
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from test_train_potential import SMALL_OPTIONS, clusters

from mpnn import cli
from mpnn.errors import MpnnError
from mpnn.files import TEMPORARY, atomic_write, remove_stale_temporaries
from mpnn.train.checkpoint import load_split_file

TINY = ["--dim", "16", "--steps", "1", "--batch-size", "8", "--quiet"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def property_run(tmp_path_factory) -> Path:
    """``mpnn train --target U0 --subset 40 --epochs 1`` on the bundled QM9 subset."""
    out = tmp_path_factory.mktemp("property") / "run"
    args = ["train", "--target", "U0", "--subset", "40", "--epochs", "1", *TINY, "--out", str(out)]
    assert cli.main(args) == 0
    return out


@pytest.fixture(scope="module")
def potential_run(tmp_path_factory) -> tuple[Path, Path]:
    """(run folder, training file) of ``mpnn train-potential`` for 1 epoch on 20 EMT clusters."""
    folder = tmp_path_factory.mktemp("potential")
    data = folder / "train.xyz"
    ase.io.write(data, clusters(20, 0), format="extxyz")
    out = folder / "run"
    args = [str(data), "--valid", "0.2", "--epochs", "1", *SMALL_OPTIONS, "--quiet", "--out", str(out)]
    assert cli.main_train_potential(args) == 0
    return out, data


def copy_run(run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    return copy


def one_line_error(capsys, *names: str) -> str:
    """The single stderr line of a failed command; it names every one of ``names``."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mpnn: error: "), err
    assert "Traceback" not in err and ".tmp" not in err
    for name in names:
        assert name in err, (name, err)
    return err


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


WRONG_SHAPES = {
    "a tensor": torch.zeros(3),
    "a list": [torch.zeros(2), 1],
    "an empty dict": {},
    "a dict of numbers": {"weight": 1.0},
}


# -- checkpoints -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(WRONG_SHAPES))
def test_best_pt_of_the_wrong_shape(property_run, tmp_path, capsys, kind) -> None:
    run = copy_run(property_run, tmp_path)
    torch.save(WRONG_SHAPES[kind], run / "best.pt")
    assert cli.main(["evaluate", str(run)]) == 2
    one_line_error(capsys, str(run / "best.pt"), "not a model checkpoint")


@pytest.mark.parametrize(
    "saved",
    [
        torch.zeros(3),
        [1, 2],
        {},
        {"model": {}, "optimizer": {}, "torch_rng": torch.zeros(4), "state": {}},
        "wrong rng",
        "wrong counters",
    ],
    ids=["tensor", "list", "empty", "empty-parts", "rng", "counters"],
)
def test_last_pt_of_the_wrong_shape_stops_a_resume_before_any_write(
    property_run, tmp_path, capsys, saved
) -> None:
    run = copy_run(property_run, tmp_path)
    if isinstance(saved, str):  # the real last.pt with one part replaced
        real = torch.load(run / "last.pt", weights_only=True)
        if saved == "wrong rng":
            real["torch_rng"] = torch.zeros(5, dtype=torch.float64)
        else:
            real["state"]["epoch"] = "one"
        saved = real
    torch.save(saved, run / "last.pt")
    before = snapshot(run)
    assert cli.main(["train", "--out", str(run), "--epochs", "2", "--quiet"]) == 2
    one_line_error(capsys, str(run / "last.pt"))
    assert snapshot(run) == before


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: torch.zeros(3), "not a split file"),
        (lambda s: [s["train"]], "not a split file"),
        (lambda s: {}, "not a split file"),
        (lambda s: {**s, "test": s["test"].double()}, "test: expected a 1-D int64 tensor"),
        (lambda s: {**s, "test": s["test"].reshape(1, -1)}, "test: expected a 1-D int64 tensor"),
        (lambda s: {**s, "test": s["test"] + 10**6}, "test: indices outside [0, "),
        (lambda s: {**s, "test": s["test"] - 10**6}, "test: indices outside [0, "),
        (lambda s: {**s, "test": s["train"][:4]}, "test: repeated indices, or indices of another part"),
        (lambda s: {**s, "num_molecules": "many"}, "num_molecules: expected a positive integer"),
        (lambda s: {**s, "valid": s["valid"][:0]}, "valid: no molecules"),
    ],
    ids=[
        *["tensor", "list", "empty", "float64", "2-D", "too-large", "negative", "overlap", "count"],
        "no-valid",
    ],
)
def test_split_pt_of_the_wrong_shape(property_run, tmp_path, capsys, change, message) -> None:
    run = copy_run(property_run, tmp_path)
    torch.save(change(torch.load(run / "split.pt", weights_only=True)), run / "split.pt")
    assert cli.main(["evaluate", str(run)]) == 2
    one_line_error(capsys, str(run / "split.pt"), message)


def test_the_split_file_check_accepts_what_we_wrote_and_bounds_the_indices(property_run, tmp_path) -> None:
    parts = ("train", "valid", "test")
    split = load_split_file(property_run / "split.pt", parts, None)
    assert sum(len(v) for v in split.values()) == 40
    assert all(v.dtype == np.int64 and v.ndim == 1 for v in split.values())
    with pytest.raises(MpnnError, match="drawn from 4000 molecules, this data set has 3999"):
        load_split_file(property_run / "split.pt", parts, 3999)
    torch.save({k: torch.from_numpy(v) for k, v in split.items()}, tmp_path / "split.pt")  # no count
    largest = max(int(v.max()) for v in split.values())
    reloaded = load_split_file(tmp_path / "split.pt", parts, largest + 1)
    assert all(reloaded[k].tolist() == split[k].tolist() for k in parts)
    with pytest.raises(MpnnError, match=f"indices outside \\[0, {largest}\\)"):
        load_split_file(tmp_path / "split.pt", parts, largest)


@pytest.mark.parametrize("cut", [0, 100, 0.5, -10], ids=["empty", "header", "half", "end"])
def test_a_truncated_checkpoint_says_so(property_run, tmp_path, capsys, cut) -> None:
    run = copy_run(property_run, tmp_path)
    data = (run / "best.pt").read_bytes()
    (run / "best.pt").write_bytes(data[: int(cut * len(data)) if isinstance(cut, float) else cut])
    assert cli.main(["evaluate", str(run)]) == 2
    err = one_line_error(capsys, f"{run / 'best.pt'}: truncated or corrupt checkpoint")
    assert "Errno" not in err


def test_a_checkpoint_holding_python_objects_is_refused(property_run, tmp_path, capsys) -> None:
    run = copy_run(property_run, tmp_path)
    torch.save({"weight": np.zeros(3)}, run / "best.pt")  # needs unpickling code: refused
    assert cli.main(["evaluate", str(run)]) == 2
    one_line_error(capsys, str(run / "best.pt"), "not a checkpoint of mpnn")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: {**c, "model": {**c["model"], "dim": "big"}}, "model.dim: expected an integer, got 'big'"),
        (lambda c: {**c, "model": {**c["model"], "tie_weights": "yes"}}, "model.tie_weights: expected"),
        (lambda c: [c], "config.json: not a "),
    ],
    ids=["dim", "bool", "list"],
)
def test_config_json_of_the_wrong_types(property_run, tmp_path, capsys, change, message) -> None:
    run = copy_run(property_run, tmp_path)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(change(config)))
    assert cli.main(["evaluate", str(run)]) == 2
    one_line_error(capsys, str(run / "config.json"), message)


def test_run_json_of_the_wrong_types_names_the_field(property_run, tmp_path, capsys) -> None:
    run = copy_run(property_run, tmp_path)
    spec = json.loads((run / "run.json").read_text())
    spec["training"]["epochs"] = "ten"
    (run / "run.json").write_text(json.dumps(spec))
    before = snapshot(run)
    assert cli.main(["train", "--out", str(run), "--quiet"]) == 2
    one_line_error(capsys, str(run / "run.json"), "training.epochs: expected a positive integer, got 'ten'")
    assert snapshot(run) == before


# -- potentials ------------------------------------------------------------------------------------
def test_a_truncated_potential_checkpoint_says_so(potential_run, tmp_path, capsys) -> None:
    run = copy_run(potential_run[0], tmp_path)
    data = (run / "best.pt").read_bytes()
    (run / "best.pt").write_bytes(data[: len(data) - 10])  # torch.load: "[Errno 22] Invalid argument"
    out = tmp_path / "predictions.extxyz"
    assert cli.main(["predict", str(run), str(potential_run[1]), "-o", str(out)]) == 2
    err = one_line_error(capsys, f"{run / 'best.pt'}: truncated or corrupt checkpoint")
    assert "Errno" not in err and not out.exists()


@pytest.mark.parametrize("kind", list(WRONG_SHAPES))
def test_potential_best_pt_of_the_wrong_shape(potential_run, tmp_path, capsys, kind) -> None:
    run = copy_run(potential_run[0], tmp_path)
    torch.save(WRONG_SHAPES[kind], run / "best.pt")
    assert cli.main(["predict", str(run), str(potential_run[1]), "-o", str(tmp_path / "p.extxyz")]) == 2
    one_line_error(capsys, str(run / "best.pt"), "not a model checkpoint")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: torch.zeros(3), "not a split file"),
        (lambda s: {"train": s["train"]}, "not a split file"),
        (lambda s: {**s, "valid": s["valid"].float()}, "valid: expected a 1-D int64 tensor"),
        (lambda s: {**s, "valid": s["valid"] + 1000}, "valid: indices outside [0, 20)"),
    ],
    ids=["tensor", "missing", "float", "range"],
)
def test_potential_split_pt_of_the_wrong_shape(potential_run, tmp_path, capsys, change, message) -> None:
    run = copy_run(potential_run[0], tmp_path)
    torch.save(change(torch.load(run / "split.pt", weights_only=True)), run / "split.pt")
    before = snapshot(run)
    args = [str(potential_run[1]), "--out", str(run), "--epochs", "2", *SMALL_OPTIONS, "--quiet"]
    assert cli.main_train_potential(args) == 2
    one_line_error(capsys, str(run / "split.pt"), message)
    assert snapshot(run) == before


def test_potential_config_json_of_the_wrong_types(potential_run, tmp_path, capsys) -> None:
    run = copy_run(potential_run[0], tmp_path)
    config = json.loads((run / "config.json").read_text())
    config["run"]["training"]["lr_factor"] = "half"
    (run / "config.json").write_text(json.dumps(config))
    args = [str(potential_run[1]), "--out", str(run), "--epochs", "2", *SMALL_OPTIONS, "--quiet"]
    assert cli.main_train_potential(args) == 2
    one_line_error(capsys, str(run / "config.json"), "training.lr_factor: expected a number in (0, 1)")


# -- tables ----------------------------------------------------------------------------------------
BAD_TABLES = {
    "non-numeric": ("target,unit,mae,chemical_accuracy,ratio\nU0,eV,abc,0.043,1\n", ":2: mae: expected"),
    "nan": ("target,unit,mae,chemical_accuracy,ratio\nU0,eV,nan,0.043,1\n", ":2: mae: expected"),
    "zero accuracy": ("target,unit,mae,chemical_accuracy,ratio\nU0,eV,0.1,0,1\n", "chemical_accuracy"),
    "foreign": ("split,structures,atoms,energy_mae\ntest,8,30,1.5\n", "no column 'target'"),
    "empty": ("", "no column 'target'"),
    "no rows": ("target,unit,mae,chemical_accuracy,ratio\nmean,,,,1\n", "no targets"),
    "unknown target": ("target,unit,mae,chemical_accuracy,ratio\nU7,eV,1,1,1\n", ":2: unknown target 'U7'"),
    "binary": (b"\xff\xfe\x00garbage", "cannot read"),
    # U0 in kcal/mol would be shown in the eV column as if eV (QM9's unit of U0 is eV)
    "other unit": (
        "target,unit,mae,chemical_accuracy,ratio\nU0,kcal/mol,1,0.043,1\n",
        ":2: unit: U0 is in eV, got 'kcal/mol'",
    ),
    "no unit": ("target,unit,mae,chemical_accuracy,ratio\nU0,,1,0.043,1\n", ":2: unit: U0 is in eV, got ''"),
}


@pytest.mark.parametrize("kind", list(BAD_TABLES))
def test_report_of_a_bad_test_metrics_csv(property_run, tmp_path, capsys, kind) -> None:
    run = copy_run(property_run, tmp_path)
    content, message = BAD_TABLES[kind]
    path = run / "test_metrics.csv"
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    assert cli.main(["report", str(run)]) == 2
    one_line_error(capsys, str(path), message)


def test_report_still_reads_the_real_table(property_run, capsys) -> None:
    assert cli.main(["report", str(property_run)]) == 0
    assert "| U0 | eV |" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("epoch,valid_ratio\n1,0.5\n", "no column 'valid_mae_U0'"),
        ("epoch,valid_mae_U0,valid_ratio\n1,0.1,lots\n", ":2: valid_ratio: expected a number, got 'lots'"),
        ("epoch,valid_mae_U0,valid_ratio\n1,x,2.0\n", ":2: valid_mae_U0: expected a finite number"),
        ("epoch,valid_mae_U0,valid_ratio\n1,0.1,nan\n", "no finite validation error"),
    ],
    ids=["foreign", "ratio", "mae", "diverged"],
)
def test_ensemble_of_a_bad_metrics_csv(property_run, tmp_path, capsys, table, message) -> None:
    run = copy_run(property_run, tmp_path)
    (run / "metrics.csv").write_text(table)
    out = tmp_path / "ensemble"
    assert cli.main(["ensemble", str(run), "--k", "1", "--out", str(out)]) == 2
    one_line_error(capsys, str(run / "metrics.csv"), message)
    assert not out.exists()


# -- temporaries -----------------------------------------------------------------------------------
def test_a_resumed_run_removes_only_stale_temporaries_of_ours(property_run, tmp_path, capsys) -> None:
    run = copy_run(property_run, tmp_path)
    old = time.time() - 3600
    stale = [run / ".last.pt.k2j_x9a1.tmp", run / ".metrics.csv.abcdefgh.tmp"]  # mkstemp's names
    kept = [
        run / ".last.pt.ABCDEFGH.tmp",  # not mkstemp's alphabet
        run / ".last.pt.k2j_x9.tmp",  # not 8 characters
        run / "last.pt.k2j_x9a1.tmp",  # no leading dot
        run / "notes.tmp",
    ]
    for path in stale + kept:
        path.write_bytes(b"partial")
        os.utime(path, (old, old))
    young = run / ".best.pt.zzzzzzzz.tmp"  # a live writer's: younger than this process
    young.write_bytes(b"being written")
    assert TEMPORARY.match(young.name) and all(TEMPORARY.match(p.name) for p in stale)
    assert cli.main(["train", "--out", str(run), "--epochs", "2", "--quiet"]) == 0
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept) and young.exists()
    assert remove_stale_temporaries(run) == []  # nothing of ours left that is old


def test_write_errors_name_the_final_file_and_leave_it_as_it_was(tmp_path) -> None:
    target = tmp_path / "last.pt"
    target.write_bytes(b"the old checkpoint")

    def disk_full(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))

    def torch_writer(tmp: Path) -> None:
        raise RuntimeError(f"[enforce fail at inline_container.cc:595] . unexpected pos 64 vs 0 in {tmp}")

    for write in (disk_full, torch_writer):
        with pytest.raises(MpnnError) as info:
            atomic_write(target, write)
        message = str(info.value)
        assert message.startswith(f"{target}: cannot write: ") and ".tmp" not in message
        assert target.read_bytes() == b"the old checkpoint"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary left


def test_errors_that_are_not_write_failures_pass_unchanged(tmp_path) -> None:
    def bug(tmp: Path) -> None:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        atomic_write(tmp_path / "x.json", bug)
    assert list(tmp_path.iterdir()) == []


# -- found by the fuzz test (tests/test_fuzz_readers.py) -------------------------------------------
def test_a_config_json_that_is_not_utf8(property_run, tmp_path, capsys) -> None:
    run = copy_run(property_run, tmp_path)
    (run / "config.json").write_bytes(b'{"model": "\xff"}')
    assert cli.main(["evaluate", str(run)]) == 2
    one_line_error(capsys, str(run / "config.json"), "not UTF-8")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda o: o["param_groups"][0].pop("eps"), "param_groups[0]: expected the keys"),
        (lambda o: o["param_groups"][0].update(lr=float("nan")), "param_groups[0].lr"),
        (lambda o: o["param_groups"][0].update(betas=(0.9,)), "param_groups[0].betas"),
        (lambda o: o["state"][0].update(exp_avg=torch.zeros(7, 3)), "state[0].exp_avg: shape (7, 3)"),
        (lambda o: o["state"][0]["exp_avg_sq"].fill_(float("inf")), "state[0].exp_avg_sq: not finite"),
        (lambda o: o["state"].update({10**6: {}}), "state: entry 1000000 is not one of the"),
        (lambda o: o["state"][0].pop("exp_avg_sq"), "the optimizer cannot step with this state"),
    ],
    ids=["no-eps", "nan-lr", "short-betas", "shape", "inf-moment", "foreign-index", "no-moment"],
)
def test_a_potential_resume_with_a_foreign_optimizer_state(potential_run, tmp_path, capsys, change, message):
    """``optimizer.load_state_dict`` takes all of these; Adam would fail (or turn NaN) at its first
    step. The resume refuses them before anything is written."""
    run = copy_run(potential_run[0], tmp_path)
    last = torch.load(run / "last.pt", weights_only=True)
    change(last["optimizer"])
    torch.save(last, run / "last.pt")
    before = snapshot(run)
    args = [str(potential_run[1]), "--out", str(run), "--epochs", "2", *SMALL_OPTIONS, "--quiet"]
    assert cli.main_train_potential(["--valid", "0.2", *args]) == 2
    one_line_error(capsys, str(run / "last.pt"), message)
    assert snapshot(run) == before


def test_index_tables_of_a_potential_come_from_its_configuration(potential_run, tmp_path, capsys) -> None:
    """An integer buffer (here the cutoff index of an angular group, reaching compiled kernels
    unchecked) edited in best.pt to 2**40: refused, not a segmentation fault."""
    run = copy_run(potential_run[0], tmp_path)
    state = torch.load(run / "best.pt", weights_only=True)
    keys = [k for k, v in state.items() if not v.is_floating_point() and v.numel()]
    assert keys, "the potential has integer index tables"
    for key in keys:
        state[key] = torch.full_like(state[key], 2**40)
    torch.save(state, run / "best.pt")
    assert cli.main(["predict", str(run), str(potential_run[1]), "-o", str(tmp_path / "p.extxyz")]) == 2
    one_line_error(capsys, str(run / "best.pt"), "differs from the structure that the configuration gives")
    assert not (tmp_path / "p.extxyz").exists()


def test_a_symmetry_function_without_its_type(potential_run, tmp_path, capsys) -> None:
    run = copy_run(potential_run[0], tmp_path)
    config = json.loads((run / "config.json").read_text())
    del config["model"]["symmetry_functions"][0][0]["type"]
    (run / "config.json").write_text(json.dumps(config))
    assert cli.main(["predict", str(run), str(potential_run[1]), "-o", str(tmp_path / "p.extxyz")]) == 2
    one_line_error(capsys, str(run / "config.json"), "cannot rebuild the model")


def test_a_symmetry_function_without_its_type_stops_a_resume(potential_run, tmp_path, capsys) -> None:
    """train-potential rebuilds a resumed model through the same checked function as predict."""
    run = copy_run(potential_run[0], tmp_path)
    config = json.loads((run / "config.json").read_text())
    del config["model"]["symmetry_functions"][0][0]["type"]
    (run / "config.json").write_text(json.dumps(config))
    before = snapshot(run)
    args = [str(potential_run[1]), "--out", str(run), "--epochs", "2", *SMALL_OPTIONS, "--quiet"]
    assert cli.main_train_potential(args) == 2
    one_line_error(capsys, str(run / "config.json"), "cannot rebuild the model")
    assert snapshot(run) == before


def _drop_history_column(path: Path, column: str, value: object = None) -> None:
    saved = torch.load(path, weights_only=True)
    row = saved["state"]["history"][0]
    if value is None:
        del row[column]
    else:
        row[column] = value
    torch.save(saved, path)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("elapsed_s", None, "state.history[0].elapsed_s: expected a number, got None"),
        ("valid_mae_U0", None, "state.history[0].valid_mae_U0: expected a number"),
        ("epoch", 1.5, "state.history[0].epoch: expected an integer, got 1.5"),
        ("lr", "fast", "state.history[0].lr: expected a number, got 'fast'"),
    ],
)
def test_history_rows_of_last_pt_are_checked_before_a_resume(
    property_run, tmp_path, capsys, column, value, message
) -> None:
    run = copy_run(property_run, tmp_path)
    _drop_history_column(run / "last.pt", column, value)
    before = snapshot(run)
    assert cli.main(["train", "--out", str(run), "--epochs", "2", "--quiet"]) == 2
    one_line_error(capsys, str(run / "last.pt"), message)
    assert snapshot(run) == before


def test_history_rows_of_a_potential_last_pt_are_checked(potential_run, tmp_path, capsys) -> None:
    run = copy_run(potential_run[0], tmp_path)
    _drop_history_column(run / "last.pt", "valid_force_rmse")
    before = snapshot(run)
    args = [str(potential_run[1]), "--out", str(run), "--epochs", "2", *SMALL_OPTIONS, "--quiet"]
    assert cli.main_train_potential(args) == 2
    one_line_error(capsys, str(run / "last.pt"), "state.history[0].valid_force_rmse: expected a number")
    assert snapshot(run) == before


# -- settings files nested too deeply, and files that are not regular files --------------------------
def test_a_deeply_nested_run_json_is_one_line(property_run, tmp_path, capsys) -> None:
    run = copy_run(property_run, tmp_path)
    (run / "run.json").write_text("[" * 100_000)  # json.loads alone: RecursionError
    before = snapshot(run)
    assert cli.main(["train", "--out", str(run), "--epochs", "2", "--quiet"]) == 2
    one_line_error(capsys, str(run / "run.json"), "nested too deeply")
    assert snapshot(run) == before


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("config.json", "evaluate"),
        ("split.pt", "evaluate"),
        ("test_metrics.csv", "report"),
        ("run.json", "report"),
    ],
)
def test_a_fifo_in_a_run_is_refused_not_waited_on(property_run, tmp_path, capsys, name, command) -> None:
    """A named pipe would block its reader forever: refused before it is opened."""
    run = copy_run(property_run, tmp_path)
    (run / name).unlink()
    os.mkfifo(run / name)
    signal.alarm(60)  # a reader blocked on the FIFO fails the test instead of hanging it
    try:
        assert cli.main([command, str(run)]) == 2
    finally:
        signal.alarm(0)
    one_line_error(capsys, str(run / name), "not a regular file")
