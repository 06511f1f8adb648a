"""Settings of the wrong type or range are one-line errors naming the field; valid ones pass.

Issue 9, defect class 6: ``epochs: "ten"`` in a ``--config`` file gave a traceback that named no
field, ``epochs: 1.5`` and ``true`` were accepted, and ``--clip -1`` or ``--timestep inf`` were
accepted on the command line. One rule per field (:mod:`mpnn.train.validate`) checks config files,
run descriptions and the specs the command line builds; the argparse types reject inf and NaN.
"""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path

import pytest

from mpnn import cli
from mpnn.cli.options import train_config
from mpnn.errors import DataError
from mpnn.models import build_model
from mpnn.train.config import load_config, normalize_config, spec_from_config
from mpnn.train.data import DataSpec
from mpnn.train.potential_run import PotentialSpec
from mpnn.train.run import RunSpec
from mpnn.train.settings import TrainSettings
from mpnn.train.settings import potential_settings as PotentialSettings


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mpnn: error: "), err
    assert "Traceback" not in err
    return err.strip()


# -- config files ----------------------------------------------------------------------------------
BAD_CONFIGS = [
    ("training:\n  epochs: ten\n", "training.epochs: expected a positive integer, got 'ten'"),
    ("training:\n  epochs: 1.5\n", "training.epochs: expected a positive integer, got 1.5"),
    ("training:\n  epochs: true\n", "training.epochs: expected a positive integer, got True"),
    ("training:\n  epochs: 0\n", "training.epochs: expected a positive integer, got 0"),
    ("training:\n  time_budget: .inf\n", "training.time_budget: expected a positive number, got inf"),
    ("training:\n  lr: fast\n", "training.lr: expected a number in (0, 1], got 'fast'"),
    ("training:\n  lr: .nan\n", "training.lr: expected a number in (0, 1], got nan"),
    # 1e300 overflowed Adam's float32 step (a traceback); 1e30 trained to NaN
    ("training:\n  lr: 1e300\n", "training.lr: expected a number in (0, 1], got 1e+300"),
    ("training:\n  lr: 1.5\n", "training.lr: expected a number in (0, 1], got 1.5"),
    ("training:\n  decay_start: 1.5\n", "training.decay_start: expected a number in [0, 1), got 1.5"),
    ("training:\n  decay_factor: 0\n", "training.decay_factor: expected a number in (0, 1], got 0"),
    ("training:\n  clip: -1\n", "training.clip: expected a number >= 0, got -1"),
    ("training:\n  patience: -2\n", "training.patience: expected an integer >= 0, got -2"),
    ("training:\n  batch_size: 2.5\n", "training.batch_size: expected a positive integer, got 2.5"),
    ("training:\n  seed: -1\n", "training.seed: expected an integer >= 0 (below 2**63), got -1"),
    ("training:\n  ema_decay: 1\n", "training.ema_decay: expected a number in (0, 1), got 1"),
    ("training:\n  amp: fp8\n", "training.amp: expected one of bf16, fp16, got 'fp8'"),
    ("training:\n  tensorboard: 'yes'\n", "training.tensorboard: expected true or false, got 'yes'"),
    ("training:\n  weight_end: 1.5\n", "training.weight_end: expected a number in [0, 1], got 1.5"),
    ("training:\n  force_weight_final: -1\n", "training.force_weight_final: expected a number >= 0, got -1"),
    ("data:\n  subset: many\n", "data.subset: expected a positive integer, got 'many'"),
    ("data:\n  valid: -1\n", "data.valid: expected a positive integer, got -1"),
    ("data:\n  valid: 0\n", "data.valid: expected a positive integer, got 0"),  # early stopping needs it
    ("data:\n  test: 0\n", "data.test: expected a positive integer, got 0"),
    # never read: the bundled subset has its own atomref and drops no molecules
    ("data:\n  atomref: atomref.txt\n", "data.atomref: applies to a QM9 release given as data.source"),
    ("data:\n  uncharacterized: u.txt\n", "data.uncharacterized: applies to a QM9 release"),
    ("data:\n  source: 5\n", "data.source: expected a string, got 5"),
    ("model:\n  model: enn_s2s\n  dim: big\n", "model.dim: expected an integer, got 'big'"),
    ("model:\n  model: enn_s2s\n  tie_weights: 'yes'\n", "model.tie_weights: expected true or false"),
    ("model:\n  model: enn_s2s\n  edge_hidden: [64, x]\n", "model.edge_hidden: expected a list of integers"),
    ("joint: 'false'\n", "joint must be true or false"),
]


@pytest.mark.parametrize(("text", "message"), BAD_CONFIGS, ids=[m.split(":")[0] for _, m in BAD_CONFIGS])
def test_a_config_file_of_the_wrong_types_names_file_and_field(tmp_path, capsys, text, message) -> None:
    config = tmp_path / "u0.yaml"
    config.write_text("targets: U0\n" + text)
    out = tmp_path / "out"
    assert cli.main(["train", "--config", str(config), "--out", str(out)]) == 2
    assert one_line_error(capsys).startswith(f"mpnn: error: {config}: {message}")
    assert not out.exists()


def test_json_configs_are_checked_alike(tmp_path, capsys) -> None:
    config = tmp_path / "u0.json"
    config.write_text(json.dumps({"training": {"epochs": "ten"}}))
    assert cli.main(["train", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    message = f"{config}: training.epochs: expected a positive integer, got 'ten'"
    assert one_line_error(capsys) == f"mpnn: error: {message}"


def test_valid_config_values_are_accepted(tmp_path) -> None:
    config = tmp_path / "ok.yaml"
    config.write_text(
        "targets: [U0, gap]\njoint: true\ndata: {subset: 100, valid: 10, test: 10}\n"
        "model: {model: enn_s2s, dim: 32, edge_hidden: [16], tie_weights: false}\n"
        "training: {epochs: 2, lr: 1e-3, decay_start: 0, decay_factor: 1, clip: 0, patience: null,"
        " seed: 7, weight_seed: 3}\n"
    )
    spec = spec_from_config(normalize_config(load_config(config), str(config)), str(config))
    t = spec.training
    assert (t.epochs, t.lr, t.decay_start, t.decay_factor, t.clip, t.patience) == (2, 1e-3, 0, 1, 0, None)
    assert (t.seed, t.weight_seed, spec.data.subset, spec.model["dim"], spec.joint) == (7, 3, 100, 32, True)
    assert spec.model["tie_weights"] is False and spec.model["edge_hidden"] == [16]


# -- the dataclasses themselves --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: TrainSettings(epochs=True), "training.epochs: expected a positive integer, got True"),
        (lambda: TrainSettings(time_budget=float("inf")), "training.time_budget: expected a positive"),
        (lambda: TrainSettings(epochs=1, weight_seed=-1), "training.weight_seed: expected an integer >= 0"),
        (lambda: TrainSettings(), "training: give epochs or time_budget"),
        (lambda: DataSpec(subset=0), "data.subset: expected a positive integer, got 0"),
        (lambda: DataSpec(atomref="atomref.txt"), "data.atomref: applies to a QM9 release"),
        (lambda: PotentialSettings(epochs=1, lr=1e30), "training.lr: expected a number in (0, 1], got 1e+30"),
        (lambda: PotentialSettings(epochs=1, min_lr=2.0), "training.min_lr: expected a number in (0, 1]"),
        (lambda: PotentialSettings(epochs=1, lr_factor=1.0), "training.lr_factor: expected a number in (0"),
        (lambda: PotentialSettings(epochs=1, float32="no"), "training.float32: expected true or false"),
        (lambda: PotentialSettings(epochs=1, schedule="cosine"), "training.schedule: expected one of"),
        (lambda: PotentialSettings(epochs=1, force_weight=0, energy_weight=0), "training: energy and force"),
        (
            lambda: PotentialSettings(epochs=1, force_weight_final=0, energy_weight_final=0),
            "training: final energy and force weights must not both be 0",
        ),
        (
            lambda: PotentialSettings(epochs=1, weight_start=0.8, weight_end=0.5),
            "training.weight_start: 0.8 is after weight_end 0.5",
        ),
        (
            lambda: PotentialSpec(train="x", training=PotentialSettings(epochs=1, amp="bf16")),
            "training.amp: mixed precision (bf16) needs float32 training (--float32)",
        ),
        (lambda: PotentialSpec(train="x", cutoff=float("nan")), "cutoff: expected a positive number"),
        (lambda: PotentialSpec(train="x", nodes=[8, 0]), "nodes: expected a non-empty list of positive"),
        (lambda: PotentialSpec(train="x", valid=1.0), "valid: expected a fraction in (0, 1) or a file"),
        (lambda: PotentialSpec(train="x", symmetry={"zetas": [0.5]}), "symmetry.zetas: expected"),
        (lambda: PotentialSpec(train="x", symmetry={"radial": 4}), "symmetry.radial: unknown setting"),
        (lambda: RunSpec(["U0"], joint="no"), "joint: expected true or false, got 'no'"),
        (lambda: RunSpec(["U7"]), "targets: expected QM9 target names"),
        (lambda: RunSpec(["U0"], model={"model": "enn_s2s", "steps": 2.5}), "model.steps: expected an int"),
    ],
)
def test_settings_dataclasses_check_every_field(build, message) -> None:
    with pytest.raises(DataError) as info:
        build()
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_valid_settings_are_accepted() -> None:
    assert TrainSettings(epochs=3, clip=None, patience=0).epochs == 3
    assert PotentialSettings(epochs=1, force_weight=0, force_weight_final=1).trains_forces
    assert PotentialSpec(train="x", training=PotentialSettings(epochs=1, amp="fp16", float32=True))
    assert TrainSettings(time_budget=10).time_budget == 10  # an int is a number of seconds
    assert PotentialSettings(epochs=1, energy_weight=0, clip=1).clip == 1
    spec = PotentialSpec(train="x", valid="valid.xyz", symmetry={"angular_types": [3, 9]})
    assert spec.valid == "valid.xyz" and spec.symmetry["angular_types"] == [3, 9]


# -- the command line ------------------------------------------------------------------------------
BAD_OPTIONS = [
    (["--clip", "-1"], "argument --clip: expected a number >= 0, got '-1'"),
    (["--clip", "inf"], "argument --clip: expected a number >= 0, got 'inf'"),
    (["--lr", "nan"], "argument --lr: expected a number in (0, 1], got 'nan'"),
    (["--lr", "1e300"], "argument --lr: expected a number in (0, 1], got '1e300'"),
    (["--valid", "0"], "argument --valid: expected a positive integer, got '0'"),
    (["--test", "0"], "argument --test: expected a positive integer, got '0'"),
    (["--atomref", "atomref.txt"], "data.atomref: applies to a QM9 release given as data.source (--data)"),
    (["--uncharacterized", "u.txt"], "data.uncharacterized: applies to a QM9 release"),
    (["--time-budget", "inf"], "argument --time-budget: expected a positive number, got 'inf'"),
    (["--decay-start", "1"], "argument --decay-start: expected a number in [0, 1), got '1'"),
    (["--decay-start", "-0.1"], "argument --decay-start: expected a number in [0, 1), got '-0.1'"),
    (["--decay-factor", "0"], "argument --decay-factor: expected a number in (0, 1], got '0'"),
    (["--decay-factor", "1.5"], "argument --decay-factor: expected a number in (0, 1], got '1.5'"),
    (["--seed", "-1"], "argument --seed: expected an integer >= 0"),
    (["--weight-seed", "x"], "argument --weight-seed: expected an integer >= 0"),
    (["--ema", "1"], "argument --ema: expected a number in (0, 1), got '1'"),
    (["--ema", "nan"], "argument --ema: expected a number in (0, 1), got 'nan'"),
    (["--amp", "fp8"], "argument --amp: invalid choice: 'fp8'"),
]


@pytest.mark.parametrize(("args", "message"), BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_train_options_out_of_range_are_one_line_errors(tmp_path, capsys, args, message) -> None:
    assert cli.main(["train", *args, "--out", str(tmp_path / "out")]) == 2
    assert message in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


BAD_POTENTIAL_OPTIONS = [
    (["--cutoff", "inf"], "argument --cutoff: expected a positive number, got 'inf'"),
    (["--r-min", "nan"], "argument --r-min: expected a number >= 0, got 'nan'"),
    (["--zetas", "1,inf"], "argument --zetas: expected zetas >= 1"),
    (["--force-weight", "inf"], "argument --force-weight: expected a number >= 0, got 'inf'"),
    (["--valid", "nan"], "argument --valid: expected a fraction in (0, 1) or a file, got 'nan'"),
    (["--seed", "-3"], "argument --seed: expected an integer >= 0"),
    (["--float32", "--lr", "1e300"], "argument --lr: expected a number in (0, 1], got '1e300'"),
    (["--lr", "1e30"], "argument --lr: expected a number in (0, 1], got '1e30'"),
    (["--threads", "100000"], "argument --threads: expected an integer in [1, "),  # segfaulted in OpenMP
    (["--threads", "0"], "argument --threads: expected an integer in [1, "),
    (["--weight-start", "2"], "argument --weight-start: expected a number in [0, 1], got '2'"),
    (["--energy-weight-final", "-1"], "argument --energy-weight-final: expected a number >= 0, got '-1'"),
    (["--weight-start", "0.9", "--weight-end", "0.1"], "training.weight_start: 0.9 is after weight_end 0.1"),
    (["--amp", "bf16"], "training.amp: mixed precision (bf16) needs float32 training (--float32)"),
    (["--ema", "0"], "argument --ema: expected a number in (0, 1), got '0'"),
]


@pytest.mark.parametrize(
    ("args", "message"), BAD_POTENTIAL_OPTIONS, ids=[" ".join(a) for a, _ in BAD_POTENTIAL_OPTIONS]
)
def test_train_potential_options_out_of_range(tmp_path, capsys, args, message) -> None:
    out = tmp_path / "out"
    assert cli.main(["train-potential", str(tmp_path / "data.xyz"), *args, "--out", str(out)]) == 2
    assert message in one_line_error(capsys)
    assert not out.exists()


def test_md_timestep_must_be_finite(tmp_path, capsys) -> None:
    args = ["md", str(tmp_path), str(tmp_path / "s.xyz"), "--steps", "1", "--timestep", "inf", "--nve"]
    assert cli.main(args) == 2
    assert "argument --timestep: expected a positive number, got 'inf'" in one_line_error(capsys)


def test_valid_options_build_the_spec(tmp_path) -> None:
    args = cli.build_parser().parse_args(
        ["train", "--target", "U0", "--epochs", "2", "--clip", "0", "--decay-start", "0",
         "--decay-factor", "1", "--seed", "5", "--lr", "2e-3"]
    )  # fmt: skip
    spec = spec_from_config(train_config(args))
    t = spec.training
    assert (t.epochs, t.clip, t.decay_start, t.decay_factor, t.seed, t.lr) == (2, 0.0, 0.0, 1.0, 5, 2e-3)
    assert (t.ema_decay, t.amp, t.tensorboard) == (None, None, False)
    args = cli.build_parser().parse_args(["train", "--ema", "0.99", "--amp", "bf16", "--tensorboard"])
    t = spec_from_config(train_config(args)).training
    assert (t.ema_decay, t.amp, t.tensorboard) == (0.99, "bf16", True)


#: The training settings a run wrote before EMA, loss-weight schedules, TensorBoard and amp.
EARLIER_FIELDS = (
    "epochs time_budget batch_size lr schedule decay_start decay_factor lr_factor lr_patience min_lr "
    "clip patience seed energy_weight force_weight float32"
).split()


def test_settings_write_new_fields_only_when_set_and_earlier_ones_load() -> None:
    plain = TrainSettings(epochs=2)
    assert sorted(plain.to_json()) == sorted(EARLIER_FIELDS)
    assert TrainSettings(**{k: v for k, v in plain.to_json().items() if k in EARLIER_FIELDS}) == plain
    new = {"ema_decay": 0.99, "energy_weight_final": 10.0, "force_weight_final": 1.0, "weight_start": 0.5,
           "weight_end": 0.75, "tensorboard": True, "amp": "bf16", "weight_seed": 2}  # fmt: skip
    full = TrainSettings(epochs=2, **new)
    assert full.to_json() == {**plain.to_json(), **new}
    assert TrainSettings(**full.to_json()) == full


def test_a_run_description_of_the_wrong_types_names_the_file(tmp_path: Path, capsys) -> None:
    spec = RunSpec(["U0"], training=TrainSettings(epochs=1)).to_json()
    spec["data"]["subset"] = 1.5
    (tmp_path / "run.json").write_text(json.dumps(spec))
    assert cli.main(["train", "--out", str(tmp_path), "--quiet"]) == 2
    err = one_line_error(capsys)
    assert str(tmp_path / "run.json") in err and "data.subset: expected a positive integer, got 1.5" in err


# -- sizes are bounded before anything is allocated ------------------------------------------------
@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("dim=1000000000000", "dim: 1000000000000 is beyond the largest size allowed"),
        ("dim=100000", "parameters, more than the 200,000,000 allowed"),
        ("edge_hidden=[100000000]", "edge_hidden: 100000000 is beyond the largest size allowed"),
    ],
    ids=["huge-dim", "too-many-parameters", "huge-hidden"],
)
def test_model_sizes_are_bounded_before_allocating(tmp_path, capsys, option, message) -> None:
    """An enn-s2s of d = 1e5 would hold 1.5e13 parameters: refused from its shapes alone (PyTorch's
    meta device), with nothing written (the message is the bound's own: nothing was allocated)."""
    out = tmp_path / "out"
    args = ["train", "--target", "U0", "--subset", "20", "--epochs", "1", "--model-option", option]
    assert cli.main([*args, "--out", str(out)]) == 2
    assert message in one_line_error(capsys)
    assert not out.exists()


TINY_POTENTIAL = Path(__file__).parent / "fixtures" / "n2p2" / "tiny"  # H, O; cutoff 6 Angstrom


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--seed", "-1"], "argument --seed: expected an integer >= 0"),
        (["--index", "2"], "no structure 2 (the file holds 2)"),
        (["--index", "-3"], "no structure -3 (the file holds 2)"),  # ASE itself wraps -3 to a frame
    ],
    ids=["negative-seed", "index-past-the-end", "index-before-the-start"],
)
def test_md_seed_and_index_are_checked(tmp_path, capsys, extra, message) -> None:
    water = "3\nwater\nO 0 0 0.117\nH 0 0.757 -0.467\nH 0 -0.757 -0.467\n"
    (tmp_path / "two.xyz").write_text(water * 2)
    args = ["md", str(TINY_POTENTIAL), str(tmp_path / "two.xyz"), "--steps", "1", "--timestep", "0.5"]
    out = tmp_path / "t.extxyz"
    assert cli.main([*args, "--nve", "-o", str(out), *extra]) == 2
    assert message in one_line_error(capsys)
    assert not out.exists()
    assert cli.main([*args, "--nve", "-o", str(out), "--index", "-2", "--quiet"]) == 0


# -- settings files: one reader, bounded nesting, regular files only -------------------------------
def _deep_json(path: Path) -> Path:
    path.with_suffix(".json").write_text("[" * 100_000)  # json.loads alone: RecursionError
    return path.with_suffix(".json")


def _deep_yaml(path: Path) -> Path:
    path.with_suffix(".yaml").write_text("[" * 100_000)
    return path.with_suffix(".yaml")


def _fifo(path: Path) -> Path:
    os.mkfifo(path)  # opening it to read would wait for a writer forever
    return path


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


SETTINGS_FILE_FAULTS = {
    "deep-json": (_deep_json, "nested too deeply"),
    "deep-yaml": (_deep_yaml, "nested too deeply"),
    "fifo": (_fifo, "not a regular file"),
    "folder": (_folder, "is a folder"),
}


@pytest.mark.parametrize("command", ["train --config", "search", "compare"])
@pytest.mark.parametrize("fault", list(SETTINGS_FILE_FAULTS))
def test_a_settings_file_that_cannot_be_read_is_one_line(tmp_path, capsys, command, fault) -> None:
    """--config, a search space and an ablation file share one reader: no RecursionError, no hang."""
    make, message = SETTINGS_FILE_FAULTS[fault]
    path = make(tmp_path / "settings")
    out = tmp_path / "out"
    signal.alarm(60)  # a reader blocked on the FIFO fails the test instead of hanging it
    try:
        assert cli.main([*command.split(), str(path), "--out", str(out)]) == 2
    finally:
        signal.alarm(0)
    err = one_line_error(capsys)
    assert str(path) in err and message in err
    assert not out.exists()


def test_search_bounds_must_be_finite_and_ordered(tmp_path, capsys) -> None:
    expected = "space.training.lr: uniform needs finite [low, high] with low <= high"
    for bounds in ("[1e-4, Infinity]", "[NaN, 1e-3]", "[-1e308, 1e308]", "[1e-3, 1e-4]"):
        space = tmp_path / "space.json"
        space.write_text('{"space": {"training.lr": {"uniform": ' + bounds + "}}}")
        assert cli.main(["search", str(space), "--trials", "1", "--out", str(tmp_path / "out")]) == 2
        assert expected in one_line_error(capsys)
        assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("label", ["report.md", "report.png", "REPORT.md"])
def test_a_comparison_label_may_not_be_one_of_its_own_files(tmp_path, capsys, label) -> None:
    ablation = tmp_path / "ab.json"
    ablation.write_text(json.dumps({"runs": {label: {"model": "gcn", "dim": 16}}}))
    assert cli.main(["compare", str(ablation), "--out", str(tmp_path / "out")]) == 2
    assert f"runs.{label}: a label may not be report.md or report.png" in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_evaluate_refuses_side_files_without_data(tmp_path, capsys) -> None:
    """--atomref without --data was silently ignored (the run's own data were used)."""
    assert cli.main(["evaluate", str(tmp_path), "--atomref", str(tmp_path / "water.xyz")]) == 2
    assert "--uncharacterized and --atomref apply to --data" in one_line_error(capsys)


def test_an_unknown_model_option_is_named_with_the_known_ones(tmp_path, capsys) -> None:
    with pytest.raises(ValueError, match=r"model gcn: unknown option 'foo'; known options: .*\bdim\b"):
        build_model({"model": "gcn", "foo": 1})
    out = tmp_path / "out"
    args = ["train", "--target", "U0", "--subset", "40", "--valid", "8", "--test", "8", "--epochs", "1"]
    assert cli.main([*args, "--model", "gcn", "--model-option", "foo=1", "--quiet", "--out", str(out)]) == 2
    err = one_line_error(capsys)
    assert "unknown option 'foo'; known options: " in err and "dim" in err and "__init__" not in err
    assert not out.exists()


def test_a_subset_too_small_for_the_default_split_is_refused(tmp_path, capsys) -> None:
    """10 % of 5 molecules is 0: an empty validation set (torch.cat of nothing) before."""
    out = tmp_path / "out"
    args = ["train", "--target", "U0", "--subset", "5", "--epochs", "1", "--quiet", "--out", str(out)]
    assert cli.main(args) == 2
    assert "5 molecules are too few for the default split" in one_line_error(capsys)
    assert not out.exists()


# -- a diverging run stops with one line, before that epoch's checkpoints --------------------------
DIVERGED = "training diverged at epoch 1: non-finite {} loss; lower the learning rate"


@pytest.mark.parametrize("which", ["training", "validation"])
def test_a_diverging_property_run_stops_with_one_line(tmp_path, capsys, monkeypatch, which) -> None:
    from mpnn.train.targets import Properties
    from mpnn.train.trainer import Trainer

    if which == "training":  # the loss of a real step, made non-finite as by too large a step
        real_loss = Trainer.loss
        monkeypatch.setattr(Trainer, "loss", lambda *a: real_loss(*a) * math.inf)
    else:
        real_metrics = Properties.metrics
        nan_ratio = {"valid_ratio": math.nan}
        monkeypatch.setattr(
            Properties,
            "metrics",
            lambda *a: {**real_metrics(*a), **nan_ratio} if a[-1] == "valid" else real_metrics(*a),
        )
    out = tmp_path / "out"
    args = ["train", "--target", "U0", "--subset", "40", "--valid", "8", "--test", "8", "--epochs", "1"]
    assert cli.main([*args, "--dim", "16", "--steps", "1", "--quiet", "--out", str(out)]) == 2
    assert one_line_error(capsys) == f"mpnn: error: {DIVERGED.format(which)}"  # not "best.pt: no such file"
    assert not (out / "best.pt").exists() and not (out / "last.pt").exists()


def test_a_diverging_potential_stops_with_one_line(tmp_path, capsys, monkeypatch) -> None:
    import ase.io
    from test_train_potential import SMALL_OPTIONS, clusters

    from mpnn.train.trainer import Trainer

    real_loss = Trainer.loss
    monkeypatch.setattr(Trainer, "loss", lambda *a: real_loss(*a) * math.nan)
    data, out = tmp_path / "train.xyz", tmp_path / "out"
    ase.io.write(data, clusters(10, 0), format="extxyz")
    args = ["train-potential", str(data), "--valid", "0.2", "--epochs", "1", *SMALL_OPTIONS]
    assert cli.main([*args, "--float32", "--quiet", "--out", str(out)]) == 2
    assert one_line_error(capsys) == f"mpnn: error: {DIVERGED.format('training')}"
    assert not (out / "best.pt").exists() and not (out / "last.pt").exists()
