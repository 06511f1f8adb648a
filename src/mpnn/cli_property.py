"""``mpnn evaluate`` and ``mpnn predict`` for QM9 property runs (``mpnn train`` outputs).

A run folder holds ``run.json`` and one model folder per target group (``config.json``,
``best.pt``); predictions are in the targets' units (:data:`mpnn.data.qm9.UNITS`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mpnn.cli import UsageError
from mpnn.errors import DataError


def run_dirs(folder: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """The model folders of a ``mpnn train`` output and their ``config.json``."""
    from mpnn.train.checkpoint import CONFIG, is_run_dir, load_json
    from mpnn.train.run import RUN, read_spec

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


def cmd_evaluate_property(args: argparse.Namespace) -> int:
    """``mpnn evaluate``: the error table of a run on one split."""
    from mpnn.train.checkpoint import load_model
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

    Files ending in ``.smi`` or ``.smiles`` are SMILES files (:mod:`mpnn.data.smiles`): they
    have no positions, so every model of the run must be topology-only (``positions`` False);
    otherwise nothing is read or written and the error names the first model that reads them.
    """
    from mpnn.data.smiles import is_smiles_file
    from mpnn.train.checkpoint import load_model, write_text
    from mpnn.train.predict import (
        predict_table,
        predictions_csv,
        read_inputs,
        require_topology_only,
        xyz_files,
    )

    runs = [(d, load_model(d)[0], c["targets"]) for d, c in run_dirs(args.model)]
    files = xyz_files(args.inputs)
    smiles_files = [f for f in files if is_smiles_file(f)]
    if smiles_files:
        require_topology_only([(d, model) for d, model, _ in runs], smiles_files[0])
    names, molecules = read_inputs(files)
    targets, values = predict_table([(model, t) for _, model, t in runs], molecules)
    out = args.out or "predictions.csv"
    write_text(predictions_csv(names, targets, values), out)
    print(f"wrote {len(names)} predictions of {', '.join(targets)} to {out}")
    return 0
