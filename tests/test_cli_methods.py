"""``mpnn train --model/--model-option/--config``, ``search``, ``ensemble``, ``report``, ``compare``."""

from __future__ import annotations

import csv
import json

import pytest
from test_train import synthetic_set

from mpnn import cli
from mpnn.experiments import ensemble as ensemble_module
from mpnn.train import run as run_module

TINY_OPTIONS = ["--model-option", "dim=16", "--model-option", "edge_hidden=[8]", "--model-option", "steps=1"]
TINY = {"model": "enn_s2s", "dim": 16, "edge_hidden": [8], "steps": 1, "set2set_steps": 1}


@pytest.fixture(autouse=True)
def synthetic(monkeypatch):
    """Commands load 40 synthetic molecules instead of QM9 and draw no per-run figures."""
    data = synthetic_set(40)
    monkeypatch.setattr(run_module, "load_molecules", lambda *a, **k: data)
    monkeypatch.setattr(ensemble_module, "load_molecules", lambda *a, **k: data)
    monkeypatch.setattr(run_module.plots, "parity", lambda *a, **k: None)
    monkeypatch.setattr(run_module.plots, "learning_curve", lambda *a, **k: None)


def run_json(folder) -> dict:
    return json.loads((folder / "run.json").read_text())


def one_line_error(capsys, *args: str) -> str:
    assert cli.main(list(args)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mpnn: error: "), err
    return err


# -- train ----------------------------------------------------------------------------------------
def test_train_takes_a_model_and_json_options(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    args = ["train", "--target", "U0", "--epochs", "1", "--quiet", "--model", "enn_s2s", *TINY_OPTIONS]
    assert cli.main([*args, "--model-option", "aggregation=mean", "--out", str(out)]) == 0
    model = run_json(out)["model"]
    assert model == {"model": "enn_s2s", "dim": 16, "edge_hidden": [8], "steps": 1, "aggregation": "mean"}
    assert json.loads((out / "config.json").read_text())["model"]["edge_hidden"] == [8]
    capsys.readouterr()
    # resuming with the same model options works; another value is refused
    assert cli.main(["train", "--out", str(out), "--epochs", "2", "--quiet", *TINY_OPTIONS]) == 0
    assert capsys.readouterr().out.startswith("resuming run")
    err = one_line_error(capsys, "train", "--out", str(out), "--model-option", "dim=32")
    assert "model.dim = 16, not 32" in err


def test_train_reads_a_yaml_config_and_the_command_line_overrides_it(tmp_path, capsys) -> None:
    config = tmp_path / "cfg" / "u0.yaml"
    config.parent.mkdir()
    config.write_text(
        "targets: [gap, U0]\njoint: true\n"
        "model: {model: enn_s2s, dim: 16, edge_hidden: [8], steps: 1, set2set_steps: 1}\n"
        "training:\n  lr: 3e-3\n  time_budget: 60\n  batch_size: 8\n"
    )
    out = tmp_path / "run"
    args = ["train", "--config", str(config), "--epochs", "1", "--quiet", "--out", str(out)]
    assert cli.main([*args, "--model-option", "steps=2"]) == 0
    spec = run_json(out)
    assert spec["targets"] == ["gap", "U0"] and spec["joint"] is True
    assert spec["training"]["lr"] == 0.003  # YAML's 3e-3 is a number here
    assert spec["training"]["epochs"] == 1 and spec["training"]["time_budget"] is None
    assert spec["model"]["steps"] == 2 and spec["model"]["set2set_steps"] == 1
    capsys.readouterr()
    assert cli.main([*args, "--model-option", "steps=2"]) == 0  # the same file and options resume it
    assert capsys.readouterr().out.startswith("resuming run")
    assert "model.steps = 2, not 1" in one_line_error(capsys, *args)  # the file's steps differ


@pytest.mark.parametrize(
    ("extra", "file", "message"),
    [
        (["--model", "nope"], None, "--model: unknown model 'nope'; models: "),
        (["--model-option", "dim"], None, "--model-option: expected KEY=VALUE, got 'dim'"),
        (["--model-option", 'dim="x"'], None, "model settings:"),
        (["--model-option", "colour=1"], None, "model settings: model enn_s2s:"),
        ([], '{"training": {"lr": 1e-3,}}', "cfg.json:1: malformed JSON"),
        ([], '{"trainig": {}}', "cfg.json: unknown setting 'trainig'"),
        ([], '{"training": {"rate": 1}}', "cfg.json: unknown setting training.rate"),
        ([], '{"targets": "U7"}', "cfg.json: unknown target U7"),
        ([], '{"model": "nope"}', "cfg.json: model: unknown model 'nope'"),
        ([], "[1, 2]", "cfg.json: expected a mapping of settings"),
        ([], '{"data": {"source": "qm9"}}', "cfg/qm9: no such file or folder"),  # beside the file
    ],
)
def test_bad_models_options_and_files_are_one_line_errors(tmp_path, capsys, extra, file, message) -> None:
    args = ["train", "--epochs", "1", "--out", str(tmp_path / "out"), *extra]
    if file is not None:
        (tmp_path / "cfg").mkdir()
        (tmp_path / "cfg" / "cfg.json").write_text(file)
        args += ["--config", str(tmp_path / "cfg" / "cfg.json")]
    assert message in one_line_error(capsys, *args)
    assert not (tmp_path / "out").exists()


def test_a_missing_config_file_is_named(tmp_path, capsys) -> None:
    assert "nothing.yaml: no such file" in one_line_error(
        capsys, "train", "--config", str(tmp_path / "nothing.yaml")
    )


# -- search, ensemble, report ---------------------------------------------------------------------
def test_search_ensemble_and_report_from_the_command_line(tmp_path, capsys) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(
        "base:\n  targets: mu,U0\n  joint: true\n"
        f"  model: {json.dumps(TINY)}\n  training: {{batch_size: 8}}\n"
        "space:\n  training.lr: {log_uniform: [1e-4, 1e-2]}\n  model.set2set_steps: {int: [1, 3]}\n"
    )
    out = tmp_path / "search"
    assert (
        cli.main(
            [
                "search",
                str(space),
                "--trials",
                "3",
                "--seed",
                "5",
                "--epochs",
                "1",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    with open(out / "search.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["trial", "model.set2set_steps", "training.lr", "valid_ratio", "test_ratio"]
    assert sorted(r["trial"] for r in rows) == ["0", "1", "2"]
    assert printed.count("trial 3/3") == 2 and "best trials by validation" in printed
    for row in rows:
        spec = run_json(out / f"trial-{int(row['trial']):03d}")
        assert spec["training"]["lr"] == float(row["training.lr"]) and spec["training"]["epochs"] == 1
        assert (
            spec["model"]["set2set_steps"] == int(row["model.set2set_steps"]) and spec["model"]["dim"] == 16
        )

    assert cli.main(["ensemble", str(out), "--k", "2", "--out", str(tmp_path / "ens")]) == 0
    members = json.loads((tmp_path / "ens" / "ensemble.json").read_text())["members"]
    best_two = [str(out / f"trial-{int(r['trial']):03d}") for r in rows[:2]]  # search.csv: best first
    assert [m["run"] for m in members] == best_two
    table = capsys.readouterr().out.splitlines()
    assert table[-1].split()[0] == "mean" and [line.split()[0] for line in table[-4:-2]] == ["mu", "U0"]

    report = tmp_path / "out" / "report.md"
    args = ["report", str(out / "trial-000"), str(tmp_path / "ens"), "--paper", "-o", str(report)]
    assert cli.main([*args, "--plot", str(tmp_path / "bars.png")]) == 0
    text = report.read_text()
    assert "| target | unit | chem. acc. | trial-000 | ens | enn-s2s (paper) | ens5 (paper) |" in text
    assert "![error ratios per target](../bars.png)" in text and (tmp_path / "bars.png").is_file()
    assert cli.main(["report", str(out / "trial-001")]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("![") is False


def test_search_errors_are_one_line(tmp_path, capsys) -> None:
    err = one_line_error(capsys, "search", "nope", "--out", str(tmp_path / "s"))
    assert "nope: no such file, nor a built-in search space (paper)" in err
    assert "required: --out" in one_line_error(capsys, "search", "paper")


# -- compare --------------------------------------------------------------------------------------
def test_compare_trains_every_run_once_and_writes_the_report(tmp_path, capsys) -> None:
    ablation = tmp_path / "ablation.json"
    ablation.write_text(json.dumps({
        "base": {"targets": "U0", "model": TINY, "training": {"epochs": 1, "batch_size": 8}},
        "runs": {"sum": {"aggregation": "sum"}, "fast": {"training.lr": 0.01},
                 "mean": {"model": "enn_s2s", **{**TINY, "aggregation": "mean"}}},
    }))  # fmt: skip
    out = tmp_path / "cmp"
    assert cli.main(["compare", str(ablation), "--out", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "| target | unit | chem. acc. | sum | fast | mean |" in printed
    specs = {label: run_json(out / label) for label in ("sum", "fast", "mean")}
    assert specs["sum"]["model"] == {**TINY, "aggregation": "sum"} and specs["fast"]["model"] == TINY
    assert specs["mean"]["model"] == {**TINY, "aggregation": "mean"}
    assert specs["fast"]["training"]["lr"] == 0.01 and specs["sum"]["training"]["lr"] == 0.001
    assert specs["mean"]["model"]["dim"] == specs["sum"]["model"]["dim"] == 16
    assert len({json.dumps(s["data"]) + str(s["training"]["seed"]) for s in specs.values()}) == 1
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG" and "# Comparison" in (
        out / "report.md"
    ).read_text()
    before = (out / "fast" / "last.pt").stat().st_mtime_ns
    assert cli.main(["compare", str(ablation), "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.count("(finished before)") == 3
    assert (out / "fast" / "last.pt").stat().st_mtime_ns == before


@pytest.mark.parametrize(
    ("runs", "message"),
    [
        ({"a": {"data.subset": 10}}, "runs.a: data.subset must be the same for every run; set it in base"),
        ({"a": {"training.epochs": 3}}, "runs.a: training.epochs must be the same for every run"),
        ({"a/b": {"model": "enn_s2s"}}, "runs.a/b: a label must be letters, digits"),
        ({"a": {"model": "nope"}}, "runs.a: model: unknown model 'nope'"),
    ],
)
def test_bad_ablations_are_one_line_errors(tmp_path, capsys, runs, message) -> None:
    ablation = tmp_path / "ablation.json"
    ablation.write_text(json.dumps({"base": {"targets": "U0"}, "runs": runs}))
    assert message in one_line_error(capsys, "compare", str(ablation), "--out", str(tmp_path / "cmp"))
    assert not (tmp_path / "cmp").exists()


def test_the_builtin_example_ablation_loads(tmp_path, capsys) -> None:
    from mpnn.experiments.ablation import load_ablation
    from mpnn.experiments.search import builtin_names

    assert "example" in builtin_names("ablations") and "paper" in builtin_names("spaces")
    example = load_ablation("example")
    assert list(example.runs) == ["distance", "no-distance"]
    assert example.runs["no-distance"]["model"]["distance"] is False
    error = one_line_error(capsys, "compare", "exampel", "--out", str(tmp_path))
    names = ", ".join(sorted(builtin_names("ablations")))
    assert f"exampel: no such file, nor a built-in ablation ({names})" in error


def test_presets_expand_and_their_absence_leaves_model_names(monkeypatch, tmp_path, capsys) -> None:
    import sys

    import mpnn.models
    from mpnn.train.config import model_presets, resolve_model

    presets = pytest.importorskip("mpnn.models.presets").PRESETS
    name = next(n for n in presets if n not in mpnn.models.MODELS)  # a model name wins over a preset
    config = presets[name]
    assert resolve_model({"model": name, "dim": 7}, "--model") == {**config, "dim": 7}
    err = one_line_error(
        capsys, "train", "--model", name, "--model-option", "colour=1", "--out", str(tmp_path)
    )
    assert f"model settings: model {config['model']}:" in err and "colour" in err  # built as the preset
    monkeypatch.delattr(mpnn.models, "presets", raising=False)
    monkeypatch.setitem(sys.modules, "mpnn.models.presets", None)  # as if the module did not exist
    assert model_presets() == {}
    err = one_line_error(capsys, "train", "--model", name, "--out", str(tmp_path))
    assert f"--model: unknown model '{name}'; models: " in err and "presets" not in err
