"""Test errors of runs side by side, in the layout of Gilmer et al. (2017), Table 2.

One row per QM9 target (unit, chemical accuracy :math:`\\mathrm{CA}_t`), one column per run with
its test MAE and error ratio, then the average error ratio and the number of targets within
chemical accuracy (ratio below 1) of each column:

.. math::
    r_t = \\frac{\\mathrm{MAE}_t}{\\mathrm{CA}_t}, \\qquad
    \\bar r = \\frac{1}{|T|} \\sum_{t \\in T} r_t, \\qquad
    n_{\\mathrm{CA}} = |\\{t \\in T : r_t < 1\\}|,

with :math:`T` the targets the column has. A run is any folder with a ``test_metrics.csv``: a
``mpnn train`` output (joint or one model per target), one model's folder, or an ensemble
(:mod:`mpnn.experiments.ensemble`). The paper's columns (:data:`PAPER_RATIOS`) hold its published error
ratios; their MAE is ratio x chemical accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mpnn.data.qm9 import CHEMICAL_ACCURACY, TARGETS, UNITS
from mpnn.errors import DataError
from mpnn.files import atomic_write
from mpnn.train.metrics import TargetError, read_errors_csv
from mpnn.train.run import RUN, TEST_METRICS, read_spec
from mpnn.train.settings_files import load_json

#: Where :data:`PAPER_RATIOS` come from.
PAPER_SOURCE = (
    "Gilmer et al. 2017, Neural Message Passing for Quantum Chemistry (ICML), Table 2, arXiv:1704.01212"
)
#: Error ratios (MAE / chemical accuracy) of the paper's best single model and its 5-model
#: ensemble on the QM9 test set, by target (:data:`~mpnn.data.qm9.TARGETS`).
PAPER_RATIOS: dict[str, dict[str, float]] = {
    "enn-s2s": {
        "mu": 0.30, "alpha": 0.92, "homo": 0.99, "lumo": 0.87, "gap": 1.60, "r2": 0.15, "zpve": 1.27,
        "U0": 0.45, "U": 0.45, "H": 0.39, "G": 0.44, "Cv": 0.80, "omega1": 0.19,
    },
    "ens5": {
        "mu": 0.20, "alpha": 0.68, "homo": 0.74, "lumo": 0.65, "gap": 1.23, "r2": 0.14, "zpve": 1.10,
        "U0": 0.33, "U": 0.34, "H": 0.30, "G": 0.34, "Cv": 0.62, "omega1": 0.15,
    },
}  # fmt: skip


@dataclass
class ReportRun:
    """One column of a report.

    Attributes:
        label: column heading.
        errors: test errors by target name.
        description: one line on what the run is (model, targets, training), or "".
        path: the run's folder; None for a paper column.
    """

    label: str
    errors: dict[str, TargetError]
    description: str = ""
    path: Path | None = None

    def ratios(self) -> list[float]:
        return [e.ratio for e in self.errors.values()]

    def average(self, targets: Sequence[str] | None = None) -> float:
        """Mean error ratio over ``targets`` (default: all of this run's)."""
        names = list(self.errors) if targets is None else [t for t in targets if t in self.errors]
        return float(np.mean([self.errors[t].ratio for t in names]))

    def within(self, targets: Sequence[str] | None = None) -> tuple[int, int]:
        """(targets with error ratio < 1, targets counted)."""
        names = list(self.errors) if targets is None else [t for t in targets if t in self.errors]
        return sum(self.errors[t].ratio < 1.0 for t in names), len(names)


def load_run(path: str | Path, label: str | None = None) -> ReportRun:
    """The column of the run in ``path`` (its ``test_metrics.csv``)."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: no such folder")
    if not (path / TEST_METRICS).exists():  # one that is not a regular file: refused by the reader
        raise DataError(f"{path}: no {TEST_METRICS} (not a finished run, ensemble or model folder)")
    errors = read_errors_csv(path / TEST_METRICS)
    unknown = [e.target for e in errors if e.target not in TARGETS]
    if unknown:
        raise DataError(f"{path / TEST_METRICS}: unknown target {unknown[0]!r}")
    return ReportRun(label or path.name, {e.target: e for e in errors}, describe(path), path)


def paper_run(name: str) -> ReportRun:
    """A column of the paper's Table 2 (``"enn-s2s"`` or ``"ens5"``)."""
    columns = {t: TARGETS.index(t) for t in PAPER_RATIOS[name]}
    errors = {
        t: TargetError(t, UNITS[c], PAPER_RATIOS[name][t] * CHEMICAL_ACCURACY[c], CHEMICAL_ACCURACY[c])
        for t, c in columns.items()
    }
    return ReportRun(f"{name} (paper)", errors, f"error ratios published in {PAPER_SOURCE}")


def describe(path: Path) -> str:
    """What the run in ``path`` is, from its ``run.json`` or ``ensemble.json``."""
    if (path / "ensemble.json").exists():  # read by load_json, which refuses all but regular files
        record = load_json(path / "ensemble.json")
        k = record.get("k") if isinstance(record, dict) else None
        return f"ensemble: mean of the {k} runs of best validation error"
    if not (path / RUN).exists():
        return ""
    spec = read_spec(path / RUN)  # checked: a foreign run.json is an error naming it
    options = ", ".join(f"{k}={v}" for k, v in spec.model.items() if k != "model")
    training, data = spec.training, spec.data
    epochs = training.epochs
    length = f"{epochs} epoch{'s' * (epochs != 1)}" if epochs else f"{training.time_budget:g} s"
    targets = spec.targets
    how = "jointly" if spec.joint else "one model per target"
    what = f"target {targets[0]}" if len(targets) == 1 else f"{len(targets)} targets {how}"
    source = Path(data.source).name if data.source else "bundled subset"
    subset = f", {data.subset} molecules" if data.subset else ""
    return (
        f"{spec.model['model']}{f' ({options})' if options else ''}; {what}; "
        f"{length}, lr {training.lr:.3g}; {source}{subset}, seed {training.seed}"
    )


def unique_labels(paths: Sequence[str | Path]) -> list[str]:
    """Column labels: folder names, with the parent folder's name where names repeat."""
    paths = [Path(p).resolve() for p in paths]
    names = [p.name for p in paths]
    labels = [f"{p.parent.name}/{p.name}" if names.count(p.name) > 1 else p.name for p in paths]
    return [label if labels.count(label) == 1 else f"{label}#{k + 1}" for k, label in enumerate(labels)]


def report_targets(runs: Sequence[ReportRun]) -> list[str]:
    """The targets of the runs that are not paper columns (all if none), in TARGETS order."""
    own = [r for r in runs if r.path is not None] or list(runs)
    return [t for t in TARGETS if any(t in r.errors for r in own)]


def markdown_table(runs: Sequence[ReportRun]) -> str:
    """The Table 2 layout as Markdown; cells "MAE (ratio)", ratios below 1 in bold."""
    targets = report_targets(runs)
    header = ["target", "unit", "chem. acc.", *[r.label for r in runs]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---:|" * (1 + len(runs))]
    for t in targets:
        c = TARGETS.index(t)
        cells = [t, UNITS[c], f"{CHEMICAL_ACCURACY[c]:g}"]
        for run in runs:
            e = run.errors.get(t)
            ratio = "" if e is None else f"**{e.ratio:.2f}**" if e.ratio < 1 else f"{e.ratio:.2f}"
            cells.append("–" if e is None else f"{e.mae:.4g} ({ratio})")
        lines.append("| " + " | ".join(cells) + " |")
    average = [f"{r.average(targets):.2f}" for r in runs]
    within = ["{} / {}".format(*r.within(targets)) for r in runs]
    lines.append("| " + " | ".join(["**average error ratio**", "", "", *average]) + " |")
    lines.append("| " + " | ".join(["**within chemical accuracy**", "", "", *within]) + " |")
    return "\n".join(lines) + "\n"


def report_markdown(runs: Sequence[ReportRun], title: str = "Test errors", plot: str | None = None) -> str:
    """A Markdown document: heading, table, what each column is, notes (and the chart's file)."""
    parts = [f"# {title}\n", markdown_table(runs)]
    parts.append("Columns:\n\n" + "".join(f"- **{r.label}**: {r.description or r.path}\n" for r in runs))
    notes = (
        "Cells: test MAE in the target's unit (error ratio = MAE / chemical accuracy; below 1, in bold, "
        "is chemical accuracy). Averages and counts are over the rows each column has."
    )
    if any(r.path is None for r in runs):
        notes += " Paper columns: published error ratios; their MAE is ratio x chemical accuracy."
    parts.append(notes + "\n")
    if plot:
        parts.append(f"![error ratios per target]({plot})\n")
    return "\n".join(parts)


def bar_chart(runs: Sequence[ReportRun], path: str | Path) -> None:
    """A PNG of the error ratio per target (groups) and run (bars), with a line at 1."""
    targets = report_targets(runs)
    figure = Figure(figsize=(max(6.0, 0.7 * len(targets) * max(1, len(runs)) ** 0.5 + 2), 4.5))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    width = 0.8 / len(runs)
    x = np.arange(len(targets))
    for k, run in enumerate(runs):
        heights = [run.errors[t].ratio if t in run.errors else np.nan for t in targets]
        axes.bar(x - 0.4 + width * (k + 0.5), heights, width, label=run.label)
    axes.axhline(1.0, color="black", linestyle="--", linewidth=0.9, label="chemical accuracy")
    ratios = [r for run in runs for r in run.ratios() if r > 0]
    if ratios and max(ratios) / min(ratios) > 30:
        axes.set_yscale("log")
    axes.set_xticks(x, targets, rotation=45, ha="right")
    axes.set_ylabel("MAE / chemical accuracy")
    axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    atomic_write(Path(path), lambda tmp: figure.savefig(tmp, dpi=110, format="png"))
