"""``mpnn evaluate`` and ``mpnn predict`` for QM9 property runs (``mpnn train`` outputs) and
ensembles of them (``mpnn ensemble`` outputs).

A run folder holds ``run.json`` and one model folder per target group (``config.json``,
``best.pt``); an ensemble folder holds ``ensemble.json`` naming its member runs
(:mod:`mpnn.train.ensemble`). Predictions are in the targets' units
(:data:`mpnn.data.qm9.UNITS`); an ensemble's are the members' mean :math:`\\bar y_m` with the
spread :math:`s_m` (population std over members) in a ``target std [unit]`` column.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from mpnn.cli import UsageError
from mpnn.errors import DataError
from mpnn.outputs import check_outputs, check_suffix


def run_dirs(folder: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """The model folders of a ``mpnn train`` output and their ``config.json``."""
    from mpnn.train.checkpoint import CONFIG, is_run_dir
    from mpnn.train.run import RUN, read_spec
    from mpnn.train.settings_files import load_json

    folder = Path(folder)
    if (folder / RUN).is_file():
        spec = read_spec(folder / RUN)
        dirs = [folder / sub if sub else folder for sub, _ in spec.groups()]
    elif is_run_dir(folder):
        dirs = [folder]
    elif folder.is_dir():
        raise UsageError(f"{folder}: not a `mpnn train` output (no run.json or config.json)")
    else:
        raise UsageError(f"{folder}: no such folder")
    runs = []
    for d in dirs:
        if not (d / "best.pt").is_file():
            raise UsageError(f"{d}: no best.pt yet (train it first)")
        config = load_json(d / CONFIG)
        if not isinstance(config, dict) or not {"targets", "data", "model"} <= set(config):
            raise DataError(f"{d / CONFIG}: not a model configuration of `mpnn train`")
        runs.append((d, config))
    return runs


def _data_for(args: argparse.Namespace, config: dict[str, Any]) -> Any:
    from mpnn.train.data import DataSpec

    stored = {k: v for k, v in config["data"].items() if k != "num_molecules"}
    if args.data is None:
        return DataSpec(**stored)
    return DataSpec(args.data, args.uncharacterized, args.atomref, stored.get("subset"))


def _evaluate_ensemble(args: argparse.Namespace) -> int:
    """``mpnn evaluate ENSEMBLE``: the ensemble's table (:func:`~mpnn.train.ensemble.format_ensemble`)."""
    from mpnn.train.ensemble import ensemble_members, evaluate_members, format_ensemble
    from mpnn.train.run import RUN
    from mpnn.train.settings_files import load_json

    runs = ensemble_members(args.checkpoint_dir)
    data = _data_for(args, {"data": load_json(runs[0] / RUN)["data"]})
    errors, _, count = evaluate_members(runs, args.split, data, workers=args.workers)
    title = f"{args.split} set ({count} molecules, ensemble of {len(runs)}, {args.checkpoint_dir}):"
    print(format_ensemble(errors, title=title), end="")
    return 0


def cmd_evaluate_property(args: argparse.Namespace) -> int:
    """``mpnn evaluate``: the error table of a run (or of an ensemble) on one split."""
    from mpnn.train.checkpoint import load_model
    from mpnn.train.ensemble import is_ensemble

    if is_ensemble(args.checkpoint_dir):
        return _evaluate_ensemble(args)
    from mpnn.train.data import load_molecules, load_split
    from mpnn.train.metrics import format_table
    from mpnn.train.run import evaluate_model

    errors, cache, count = [], {}, 0
    for run_dir, config in run_dirs(args.checkpoint_dir):
        data = _data_for(args, config).resolved()
        key = repr(data)
        if key not in cache:
            cache[key] = load_molecules(data, workers=args.workers)
        dataset = cache[key]
        indices = load_split(run_dir / "split.pt", len(dataset))[args.split]
        model, _ = load_model(run_dir)
        errors += evaluate_model(model, config["targets"], dataset, indices, None)
        count = len(indices)
    title = f"{args.split} set ({count} molecules, {args.checkpoint_dir}):"
    print(format_table(errors, title=title), end="")
    return 0


def cmd_predict_property(args: argparse.Namespace) -> int:
    """``mpnn predict RUN FILES... -o CSV``: a CSV of predicted targets for xyz or SMILES files.

    For an ensemble folder (``ensemble.json``) every member predicts (members must share their
    targets) and the CSV holds per target the mean and the spread (``U0 [eV]``, ``U0 std [eV]``).
    Files ending in ``.smi`` or ``.smiles`` are SMILES files (:mod:`mpnn.data.smiles`): they
    have no positions, so every model of the run must be topology-only (``positions`` False);
    otherwise nothing is read or written and the error names the first model that reads them.
    """
    from mpnn.data.smiles import is_smiles_file
    from mpnn.files import write_text
    from mpnn.train.checkpoint import load_model
    from mpnn.train.ensemble import ensemble_members, is_ensemble, mean_and_spread
    from mpnn.train.predict import (
        predict_table,
        predictions_csv,
        read_inputs,
        require_topology_only,
        xyz_files,
    )

    ensemble = is_ensemble(args.model)
    folders = ensemble_members(args.model) if ensemble else [args.model]
    out = args.out or "predictions.csv"
    check_suffix(out, (".csv",), "a CSV table")
    check_outputs(files=[out], inputs=args.inputs, read_dirs=[args.model, *folders])
    members = [[(d, load_model(d)[0], c["targets"]) for d, c in run_dirs(f)] for f in folders]
    files = xyz_files(args.inputs)
    smiles_files = [f for f in files if is_smiles_file(f)]
    if smiles_files:
        models = [(d, model) for runs in members for d, model, _ in runs]
        require_topology_only(models, smiles_files[0])
    names, molecules = read_inputs(files)
    tables = [predict_table([(model, t) for _, model, t in runs], molecules) for runs in members]
    targets = tables[0][0]
    if ensemble:
        values, spread = mean_and_spread(np.stack([v for _, v in tables]))
    else:
        values, spread = tables[0][1], None
    write_text(predictions_csv(names, targets, values, spread), out)
    of = f" of an ensemble of {len(members)}" if ensemble else ""
    print(f"wrote {len(names)} predictions of {', '.join(targets)}{of} to {out}")
    return 0
