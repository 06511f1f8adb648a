"""``mpnn train``, ``mpnn evaluate`` and ``mpnn predict`` for QM9 property runs (``mpnn train``
outputs) and ensembles of them (``mpnn ensemble`` outputs).

A run folder holds ``run.json`` and one model folder per target group (``config.json``,
``best.pt``); an ensemble folder holds ``ensemble.json`` naming its member runs
(:mod:`mpnn.experiments.ensemble`). Predictions are in the targets' units
(:data:`mpnn.data.qm9.UNITS`); an ensemble's are the members' mean :math:`\\bar y_m` with the
spread :math:`s_m` (population std over members) in a ``target std [unit]`` column.
``register(subparsers)`` adds ``train`` and ``evaluate``; ``predict`` (:mod:`mpnn.cli.predict`)
calls :func:`cmd_predict_property` for property runs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from mpnn.cli.options import (
    Parser,
    UsageError,
    _count,
    _decay_factor,
    _decay_start,
    _learning_rate,
    _nonnegative_float,
    _positive_int,
    _seed,
    add_data_options,
    add_length_options,
    add_model_options,
    add_out_option,
    add_quiet_option,
    add_training_options,
    read_config_option,
    train_config,
)
from mpnn.errors import DataError
from mpnn.outputs import check_outputs, check_suffix

TRAIN_EPILOG = """\
With no options, `mpnn train` trains one enn-s2s model on all 13 QM9 targets jointly on the
bundled subset (4,000 molecules: 3,200 train, 400 valid, 400 test) for 180 s, then prints
the test errors (about 3-4 minutes on 2 CPU cores). Running it again with the same --out
resumes the run from last.pt (options given again must match, except the training length,
--patience and --tensorboard).

--model names a registered model or a preset; --model-option sets one hyperparameter (a JSON
value). --config reads a JSON or YAML file with any of the sections targets, joint, data,
model, training (as in a run's run.json); options on the command line override it.

examples:
  mpnn train                                  # the demo
  mpnn train --target U0 --epochs 50          # one model
  mpnn train --target U0,gap --time-budget 600   # one model per target, 600 s each
  mpnn train --target all --joint --data qm9_dsgdb9nsd.xyz.tar.xz --epochs 300
  mpnn train --model enn_s2s --model-option dim=128 --model-option edge_hidden=[64]
  mpnn train --config u0.yaml --epochs 20
  mpnn train --target U0 --weight-seed 2 --out runs/m2   # another initialisation, same split
  mpnn train --target U0 --epochs 100 --ema 0.99 --tensorboard   # averaged weights; tensorboard --logdir runs
"""


def _train_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (default enn-s2s) on QM9 and report test errors",
        description="Train a model on QM9 targets and report the test MAE: enn-s2s by default, or any\n"
        "model of Gilmer et al.'s catalogue with --model.",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_options(p, "(default: the bundled 4,000-molecule subset)")
    p.add_argument(
        "--target",
        metavar="NAMES",
        help="'U0', 'U0,gap' or 'all' (one model per target unless --joint); default: all 13 targets jointly",
    )
    p.add_argument("--joint", action="store_true", default=None, help="one model for all the targets")
    p.add_argument("--subset", type=_positive_int, metavar="N", help="use N random molecules")
    p.add_argument(
        "--valid",
        type=_positive_int,
        metavar="N",
        help="validation molecules, at least 1 (default: 10%% bundled; 10,000, at most 10%%, with --data)",
    )
    p.add_argument(
        "--test", type=_positive_int, metavar="N", help="test molecules, at least 1 (default as --valid)"
    )
    add_length_options(p)
    p.add_argument("--batch-size", type=_positive_int, metavar="N", help="default: 32")
    p.add_argument("--lr", type=_learning_rate, help="initial learning rate, at most 1 (default: 1e-3)")
    p.add_argument(
        "--decay-start",
        type=_decay_start,
        metavar="F",
        help="fraction of training after which the learning rate decays linearly (default: 0.5)",
    )
    p.add_argument(
        "--decay-factor", type=_decay_factor, metavar="F", help="final lr = lr * F (default: 0.05)"
    )
    p.add_argument(
        "--clip", type=_nonnegative_float, metavar="G", help="gradient-norm clip, 0: none (default: 4.0)"
    )
    p.add_argument(
        "--patience",
        type=_count,
        metavar="N",
        help="stop after N epochs without a better validation error, 0: never (default: 30)",
    )
    p.add_argument("--seed", type=_seed, help="seed of weights, subset, split and order (default: 0)")
    p.add_argument(
        "--weight-seed",
        type=_seed,
        metavar="N",
        help="seed of the weights and the epoch order only; the split keeps --seed (default: --seed)",
    )
    add_training_options(p)
    p.add_argument("--dim", type=_positive_int, metavar="D", help="node state width (default: 64)")
    p.add_argument("--steps", type=_positive_int, metavar="T", help="message passing steps (default: 3)")
    add_model_options(p)
    p.add_argument("--config", metavar="FILE", help="JSON or YAML file of run settings (see below)")
    add_out_option(p, "output folder (default: runs/<date-time>)")
    add_quiet_option(p)
    p.set_defaults(func=cmd_train)


def _evaluate_parser(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="test errors of a trained run",
        description="Print MAE and MAE / chemical accuracy of a trained run on one split.",
    )
    p.add_argument("checkpoint_dir", metavar="CHECKPOINT_DIR", help="a `mpnn train` output folder")
    add_data_options(p, "(default: the data the run was trained on)")
    p.add_argument("--split", choices=("test", "valid", "train"), default="test")
    p.set_defaults(func=cmd_evaluate)


def register(subparsers: Any) -> None:
    """Add ``train`` and ``evaluate`` to the ``mpnn`` parser."""
    _train_parser(subparsers)
    _evaluate_parser(subparsers)


# -- train -----------------------------------------------------------------------------------------
def _train_spec(args: argparse.Namespace, out: Path) -> tuple[Any, bool]:
    """The run to do and whether it resumes one in ``out``."""
    from mpnn.train.config import flatten_config, merge_configs, spec_from_config
    from mpnn.train.run import resume_spec

    try:
        given = merge_configs(read_config_option(args.config), train_config(args))
        spec = resume_spec(out, flatten_config(given))
        if spec is not None:
            return spec, True
        return spec_from_config(given, args.config), False
    except ValueError as error:
        raise UsageError(str(error)) from None


def cmd_train(args: argparse.Namespace) -> int:
    """``mpnn train``: train (or resume), then print the test table. Structures with energies
    (``--data`` an extxyz, ASE db or n2p2 input.data file) or ``--model hdnnp|sf_mpnn`` train a potential:
    the same loop, through ``train-potential``'s code."""
    from mpnn.cli.train_potential import POTENTIALS, is_structure_file

    if args.model in POTENTIALS or is_structure_file(args.data):
        return _train_a_potential(args)
    from mpnn.outputs import RUN, check_output_folder, check_outputs
    from mpnn.train.distributed import context
    from mpnn.train.metrics import format_table
    from mpnn.train.run import train_run

    ctx = context()  # several processes under torchrun; one otherwise
    started = time.localtime(ctx.agree(time.time()))  # one default folder for all processes
    out = Path(args.out) if args.out else Path("runs") / time.strftime("%Y%m%d-%H%M%S", started)
    data = [getattr(args, key) for key in ("config", "data", "uncharacterized", "atomref")]
    check_outputs(folders=[out], inputs=data)
    check_output_folder(out, RUN)  # a potential, an n2p2 folder, other files: refused before reading
    spec, resumed = _train_spec(args, out)
    quiet = args.quiet or not ctx.main
    echo = (lambda _: None) if quiet else print
    length = f"{spec.training.epochs} epochs" if spec.training.epochs else f"{spec.training.time_budget:g} s"
    jointly = " jointly" if spec.joint and len(spec.targets) > 1 else ""
    what = f"{', '.join(spec.targets)}{jointly}; {length} per model"
    processes = f" on {ctx.world} processes" if ctx.distributed else ""
    if ctx.main:
        print(f"{'resuming' if resumed else 'new'} run in {out}{processes}: {what}")
    errors = train_run(spec, out, workers=args.workers, show_progress=not quiet, echo=echo, ctx=ctx)
    if ctx.main:
        print(format_table(errors, title=f"test set ({out}):"), end="")
    return 0


def _train_a_potential(args: argparse.Namespace) -> int:
    """``mpnn train --model hdnnp|sf_mpnn DATA``: ``mpnn train-potential DATA`` with the shared options."""
    from mpnn.cli.train_potential import POTENTIALS, cmd_train_potential, register, train_args

    if args.model not in (None, *POTENTIALS):
        raise UsageError(
            f"--model {args.model}: a property model; structures with energies and forces train a "
            "potential (--model hdnnp or sf_mpnn, or `mpnn train-potential`)"
        )
    if not args.data:
        raise UsageError(f"--model {args.model}: give the structures with energies and forces as --data FILE")
    parser = register(Parser(prog="mpnn").add_subparsers())  # errors: one line
    return cmd_train_potential(parser.parse_args(train_args(args)))


# -- evaluate and predict -------------------------------------------------------------------------
def cmd_evaluate(args: argparse.Namespace) -> int:
    """``mpnn evaluate``: the error table of a run on one split."""
    if args.data is None and (args.uncharacterized or args.atomref):  # else the run's data is used
        raise UsageError("--uncharacterized and --atomref apply to --data, not to the run's own data")
    return cmd_evaluate_property(args)


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
    """``mpnn evaluate ENSEMBLE``: the ensemble's table.

    See :func:`~mpnn.experiments.ensemble.format_ensemble`.
    """
    from mpnn.experiments.ensemble import ensemble_members, evaluate_members, format_ensemble
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
    from mpnn.experiments.ensemble import is_ensemble
    from mpnn.train.checkpoint import load_model

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
    from mpnn.experiments.ensemble import ensemble_members, is_ensemble, mean_and_spread
    from mpnn.files import write_text
    from mpnn.train.checkpoint import load_model
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
