"""Ablations: labelled runs from one base configuration, trained side by side (``mpnn compare``).

An *ablation* file (``mpnn compare``; built in: ``example``) holds a base and labelled runs,
``{"base": {...}, "runs": {"label": {"model": "<model or preset>", "dim": 32, "training.lr": 1e-4}}}``:
plain keys are model options, dotted keys RunSpec settings; data, targets, seed and training length
come from the base (and the command line) only, so every run sees the same molecules, split and budget.

Built-in ablation files are in ``mpnn/experiments/ablations/``
(:func:`~mpnn.experiments.search.builtin_names`); the runs are trained (or resumed, or skipped when
finished) by :func:`~mpnn.experiments.search.ensure_run`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpnn import outputs
from mpnn.errors import DataError
from mpnn.experiments.search import (
    _base,
    _quiet,
    check_all,
    ensure_run,
    nest,
    read_file_or_builtin,
)
from mpnn.outputs import check_output_folder
from mpnn.train.config import merge_configs, normalize_config, resolve_model, spec_from_config
from mpnn.train.metrics import mean_ratio

#: What ``mpnn compare`` writes into its folder besides one run folder per label.
COMPARE_FILES = ("report.md", "report.png")
_SAME_FOR_ALL = ("targets", "data.", "training.seed", "training.epochs", "training.time_budget")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


# -- ablations -------------------------------------------------------------------------------------
@dataclass
class Ablation:
    """A base configuration and labelled runs (each a normalised configuration layer)."""

    base: dict[str, Any]
    runs: dict[str, dict[str, Any]]
    source: str


def load_ablation(text: str) -> Ablation:
    """The ablation of a JSON/YAML file or a built-in name (:func:`builtin_names` ``("ablations")``)."""
    mapping, where, base_dir = read_file_or_builtin(text, "ablations", "ablation")
    base = _base(mapping, where, base_dir, ("description", "base", "runs"))
    runs = mapping.get("runs")
    if not isinstance(runs, dict) or not runs:
        raise DataError(f"{where}: runs must map labels to run settings")
    return Ablation(base, {label: _ablation_run(label, entry, where) for label, entry in runs.items()}, where)


def _ablation_run(label: str, entry: Any, where: str) -> dict[str, Any]:
    where = f"{where}: runs.{label}"
    if not isinstance(label, str) or not _LABEL.match(label):
        raise DataError(f"{where}: a label must be letters, digits and ._+- (it names a folder)")
    if label.lower() in COMPARE_FILES:
        names = " or ".join(COMPARE_FILES)
        raise DataError(f"{where}: a label may not be {names} (the comparison writes that file)")
    if isinstance(entry, str):
        entry = {"model": entry}
    if not isinstance(entry, dict):
        raise DataError(f"{where}: expected a model name or a mapping of settings")
    dotted = {k: v for k, v in entry.items() if "." in k or k in ("joint", "targets")}
    fixed = [k for k in dotted if k.startswith(_SAME_FOR_ALL)]
    if fixed:
        raise DataError(f"{where}: {fixed[0]} must be the same for every run; set it in base")
    model = {k: v for k, v in entry.items() if k not in dotted}
    layer = nest(dotted)
    if model:
        layer["model"] = {**resolve_model(model, f"{where}: model"), **layer.get("model", {})}
    return normalize_config(layer, where)


def run_ablation(
    ablation: Ablation,
    out: str | Path,
    *,
    overrides: dict[str, Any] | None = None,
    workers: int | None = None,
    show_progress: bool = True,
    echo: Callable[[str], None] = print,
) -> list[tuple[str, Path]]:
    """Train (or resume, or skip) every run in ``out/<label>``; returns (label, folder) in file order."""
    out, overrides = Path(out), overrides or {}
    specs = {
        label: spec_from_config(merge_configs(ablation.base, overrides, layer), f"{ablation.source}: {label}")
        for label, layer in ablation.runs.items()
    }
    runs = [p.name for p in out.iterdir() if outputs.folder_kind(p) == outputs.RUN] if out.is_dir() else []
    check_output_folder(out, outputs.COMPARISON, allowed={*specs, *COMPARE_FILES, *runs})  # no other files
    check_all(list(specs.values()), [out / label for label in specs], out, workers, show_progress)
    done = []
    for k, (label, spec) in enumerate(specs.items()):
        echo(f"run {k + 1}/{len(specs)}: {label} ({spec.model['model']}) -> {out / label}")
        errors, trained = ensure_run(
            spec, out / label, workers=workers, show_progress=show_progress, echo=_quiet(echo, show_progress)
        )
        echo(
            f"run {k + 1}/{len(specs)}: {label}{'' if trained else ' (finished before)'}: "
            f"test ratio {mean_ratio(errors):.3f}"
        )
        done.append((label, out / label))
    return done
