"""Reports in the layout of Gilmer et al.'s Table 2, from hand-written test_metrics.csv files."""

from __future__ import annotations

import json

import pytest

from mpnn.errors import DataError
from mpnn.experiments.report import (
    PAPER_RATIOS,
    bar_chart,
    load_run,
    markdown_table,
    paper_run,
    report_markdown,
    unique_labels,
)

HEADER = "target,unit,mae,chemical_accuracy,ratio\n"


def write_run(folder, rows: str, run_json: dict | None = None):
    """A run folder with a hand-written test_metrics.csv (the ratio column is ignored when read)."""
    folder.mkdir(parents=True)
    (folder / "test_metrics.csv").write_text(HEADER + rows + "mean,,,,0\n")
    if run_json is not None:
        (folder / "run.json").write_text(json.dumps(run_json))
    return folder


@pytest.fixture
def two_runs(tmp_path):
    # a: mu 0.05 D (ratio 0.5), U0 0.086 eV (ratio 2)
    # b: mu 0.2 D (2), gap 0.0043 eV (0.1), U0 0.0215 eV (0.5)
    a = write_run(tmp_path / "a", "mu,D,0.05,0.1,0\nU0,eV,0.086,0.043,0\n")
    b = write_run(tmp_path / "b", "mu,D,0.2,0.1,0\ngap,eV,0.0043,0.043,0\nU0,eV,0.0215,0.043,0\n")
    return load_run(a), load_run(b)


def cells(table: str) -> dict[str, list[str]]:
    """Markdown rows by their first cell -> the other cells."""
    rows = [line.strip("|").split("|") for line in table.splitlines()]
    return {row[0].strip(): [c.strip() for c in row[1:]] for row in rows}


def test_the_table_has_mae_and_ratio_per_target_then_averages_and_counts(two_runs) -> None:
    table = cells(markdown_table(two_runs))
    assert table["target"] == ["unit", "chem. acc.", "a", "b"]
    assert list(table)[2:5] == ["mu", "gap", "U0"]  # QM9 order, rows any run has
    assert table["mu"] == ["D", "0.1", "0.05 (**0.50**)", "0.2 (2.00)"]
    assert table["gap"] == ["eV", "0.043", "–", "0.0043 (**0.10**)"]
    assert table["U0"] == ["eV", "0.043", "0.086 (2.00)", "0.0215 (**0.50**)"]
    # averages over each column's own targets: a (0.5 + 2) / 2; b (2 + 0.1 + 0.5) / 3
    assert table["**average error ratio**"] == ["", "", "1.25", "0.87"]
    assert table["**within chemical accuracy**"] == ["", "", "1 / 2", "2 / 3"]


def test_paper_columns_follow_the_rows_of_the_runs(two_runs) -> None:
    table = cells(markdown_table([*two_runs, paper_run("enn-s2s")]))
    assert table["target"][-1] == "enn-s2s (paper)"
    assert table["U0"][-1] == "0.01935 (**0.45**)"  # 0.45 x 43 meV = 19.35 meV
    assert table["gap"][-1] == "0.0688 (1.60)"
    assert table["**average error ratio**"][-1] == "0.78"  # (0.30 + 1.60 + 0.45) / 3
    assert table["**within chemical accuracy**"][-1] == "2 / 3"


def test_the_paper_columns_reproduce_the_papers_average_row() -> None:
    # Table 2's own last row: average error ratio 0.68 (enn-s2s) and 0.52 (ens5); 11 of 13 targets
    # within chemical accuracy for both
    table = cells(markdown_table([paper_run("enn-s2s"), paper_run("ens5")]))
    names = "mu alpha homo lumo gap r2 zpve U0 U H G Cv omega1".split()
    assert list(table)[2:15] == names
    assert table["**average error ratio**"][-2:] == ["0.68", "0.52"]
    assert table["**within chemical accuracy**"][-2:] == ["11 / 13", "11 / 13"]
    assert set(PAPER_RATIOS["ens5"]) == set(PAPER_RATIOS["enn-s2s"])


def test_the_document_names_each_column_and_the_chart(tmp_path, two_runs) -> None:
    spec = {
        "targets": ["mu", "U0"], "joint": True, "model": {"model": "enn_s2s", "dim": 16},
        "data": {"source": None, "subset": 60}, "training": {"epochs": 3, "lr": 0.001, "seed": 2},
    }  # fmt: skip
    run = load_run(write_run(tmp_path / "c", "mu,D,0.1,0.1,0\n", spec))
    text = report_markdown([*two_runs, run, paper_run("ens5")], title="Ablation", plot="bars.png")
    assert text.startswith("# Ablation\n")
    line = "- **c**: enn_s2s (dim=16); 2 targets jointly; 3 epochs, lr 0.001; bundled subset, 60 molecules"
    assert f"{line}, seed 2\n" in text
    assert "- **ens5 (paper)**: error ratios published in Gilmer et al. 2017" in text
    assert "![error ratios per target](bars.png)" in text


def test_the_bar_chart_is_a_png(tmp_path, two_runs) -> None:
    bar_chart([*two_runs, paper_run("enn-s2s")], tmp_path / "plots" / "bars.png")
    assert (tmp_path / "plots" / "bars.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in (tmp_path / "plots").iterdir()] == ["bars.png"]  # no temporary file left


def test_labels_are_folder_names_made_unique(tmp_path) -> None:
    paths = [tmp_path / "x" / "run", tmp_path / "y" / "run", tmp_path / "z"]
    assert unique_labels(paths) == ["x/run", "y/run", "z"]


def test_unfinished_runs_and_unknown_targets_are_errors(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: no test_metrics.csv"):
        load_run(tmp_path / "empty")
    with pytest.raises(DataError, match="no such folder"):
        load_run(tmp_path / "missing")
    write_run(tmp_path / "odd", "U7,eV,0.1,0.043,0\n")
    with pytest.raises(DataError, match="unknown target 'U7'"):
        load_run(tmp_path / "odd")
