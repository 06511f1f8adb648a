"""The ``mpnn`` command: ``train``, ``evaluate``, ``predict`` and ``md``.

QM9 property runs: :mod:`mpnn.cli_property`; potentials (``predict``, ``md``): :mod:`mpnn.cli_potential`;
``search``, ``ensemble``, ``report`` and ``compare``: :mod:`mpnn.cli_methods`.

Every :class:`~mpnn.errors.MpnnError`, unreadable file and bad argument ends the command with
one line ``mpnn: error: <message>`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import torch

from mpnn.cli_potential import add_export_parser, add_md_parser, parse_units
from mpnn.errors import MpnnError
from mpnn.train.validate import MAX_LR

EXIT_ERROR, EXIT_INTERRUPTED = 2, 130
DEFAULT_TIME_BUDGET = 180.0


class UsageError(MpnnError):
    """A bad command line."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are :class:`UsageError` (one line, exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _number(
    convert: Callable[[str], Any], valid: Callable[[Any], bool], expected: str
) -> Callable[[str], Any]:
    """An argparse type: ``convert(text)`` if it is ``valid``, else a one-line error."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not _finite(value) or not valid(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


def _finite(value: Any) -> bool:
    """No inf or NaN in a parsed number (or list of numbers)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return all(math.isfinite(v) for v in values if isinstance(v, float))


_positive_int = _number(int, lambda v: v >= 1, "a positive integer")
_count = _number(int, lambda v: v >= 0, "an integer >= 0")
_seed = _number(int, lambda v: 0 <= v < 2**63, "an integer >= 0 (below 2**63)")
_positive_float = _number(float, lambda v: v > 0, "a positive number")
_nonnegative_float = _number(float, lambda v: v >= 0, "a number >= 0")
_decay_start = _number(float, lambda v: 0 <= v < 1, "a number in [0, 1)")
_decay_factor = _number(float, lambda v: 0 < v <= 1, "a number in (0, 1]")
_learning_rate = _number(float, lambda v: 0 < v <= MAX_LR, f"a number in (0, {MAX_LR:g}]")


def model_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> (key, value parsed as JSON, else the plain string)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


TRAIN_EPILOG = """\
With no options, `mpnn train` trains one enn-s2s model on all 13 QM9 targets jointly on the
bundled subset (4,000 molecules: 3,200 train, 400 valid, 400 test) for 180 s, then prints
the test errors (about 3-4 minutes on 2 CPU cores). Running it again with the same --out
resumes the run from last.pt (options given again must match, except the training length and
--patience).

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
"""


def add_length_options(parser: argparse.ArgumentParser) -> None:
    """``--epochs`` or ``--time-budget``: how long each model trains."""
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=_positive_int, metavar="N", help="epochs per model")
    length.add_argument(
        "--time-budget",
        type=_positive_float,
        metavar="S",
        help=f"seconds of training per model (default: {DEFAULT_TIME_BUDGET:g})",
    )


def _add_data_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--data",
        metavar="PATH",
        help=f"QM9 release archive (.tar.xz, .tar.bz2, ...) or folder of its xyz files {what}",
    )
    parser.add_argument(
        "--uncharacterized",
        metavar="PATH",
        help="QM9 uncharacterized.txt (molecules to drop); default: found beside --data",
    )
    parser.add_argument(
        "--atomref",
        metavar="PATH",
        help="QM9 atomref.txt; default: found beside --data, else the bundled copy",
    )
    parser.add_argument("--workers", type=_positive_int, metavar="N", help="processes for featurisation")


def _train_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (default enn-s2s) on QM9 and report test errors",
        description="Train a model on QM9 targets and report the test MAE: enn-s2s by default, or any\n"
        "model of Gilmer et al.'s catalogue with --model.",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_data_options(p, "(default: the bundled 4,000-molecule subset)")
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
    p.add_argument("--dim", type=_positive_int, metavar="D", help="node state width (default: 64)")
    p.add_argument("--steps", type=_positive_int, metavar="T", help="message passing steps (default: 3)")
    add_model_options(p)
    p.add_argument("--config", metavar="FILE", help="JSON or YAML file of run settings (see below)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: runs/<date-time>)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or epoch lines")
    p.set_defaults(func=cmd_train)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """``--model NAME`` and repeatable ``--model-option KEY=VALUE``."""
    parser.add_argument("--model", metavar="NAME", help="a registered model or preset (default: enn_s2s)")
    parser.add_argument(
        "--model-option",
        type=model_option,
        action="append",
        metavar="KEY=VALUE",
        help="a model hyperparameter, JSON value (repeatable): dim=128, edge_hidden=[64]",
    )


def _evaluate_parser(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="test errors of a trained run",
        description="Print MAE and MAE / chemical accuracy of a trained run on one split.",
    )
    p.add_argument("checkpoint_dir", metavar="CHECKPOINT_DIR", help="a `mpnn train` output folder")
    _add_data_options(p, "(default: the data the run was trained on)")
    p.add_argument("--split", choices=("test", "valid", "train"), default="test")
    p.set_defaults(func=cmd_evaluate)


PREDICT_EPILOG = """\
MODEL is a `mpnn train` output (QM9 targets: OUT is a CSV, default predictions.csv) or a
potential: an n2p2 potential folder (input.nn, scaling.data, weights.ZZZ.data) or a potential
run folder. For a potential, STRUCTURES are any files ASE reads (extxyz, ...) or n2p2 input.data;
OUT (default predictions.extxyz) holds each structure with its energy (eV), per-atom energies
(eV), forces (eV/A) and, for periodic structures, stress (eV/A^3).

examples:
  mpnn predict runs/qm9 molecule.xyz -o predictions.csv
  mpnn predict H2O_RPBE-D3/ H2O_RPBE-D3/input.data --units bohr,hartree -o water.extxyz
"""


def _predict_parser(sub: Any) -> None:
    p = sub.add_parser(
        "predict",
        help="predict targets (QM9 run) or energies and forces (potential) for structure files",
        description="Predict a run's targets for QM9-format or plain xyz files (bonds from their\n"
        "SMILES or geometry), or a potential's energies, forces and stress for structure files.",
        epilog=PREDICT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL", help="a `mpnn train` output folder or a potential")
    p.add_argument(
        "inputs", nargs="+", metavar="STRUCTURES", help="structure files (or folders of xyz files)"
    )
    p.add_argument("-o", "--out", metavar="OUT", help="CSV (QM9 runs) or extxyz (potentials)")
    p.add_argument(
        "--units",
        type=parse_units,
        metavar="LENGTH,ENERGY",
        help="units of the n2p2 files: angstrom|bohr|nm,ev|hartree|kcal/mol|kj/mol (default: angstrom,ev)",
    )
    p.set_defaults(func=cmd_predict)


def build_parser() -> argparse.ArgumentParser:
    """The ``mpnn`` argument parser."""
    parser = _Parser(
        prog="mpnn",
        description="Neural message passing for quantum chemistry: QM9 models and interatomic potentials.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    _train_parser(sub)
    _evaluate_parser(sub)
    _predict_parser(sub)
    add_md_parser(sub, _positive_int, _count, _positive_float, _seed)
    add_export_parser(sub)
    from mpnn.cli_train_potential import register as register_train_potential  # imports this module

    register_train_potential(sub)
    from mpnn.cli_methods import register as register_methods  # imports this module

    register_methods(sub)
    return parser


# -- train ----------------------------------------------------------------------------------------
def _resolve(path: str | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().resolve())


#: ``mpnn train`` options that are :class:`~mpnn.train.loop.TrainSettings` of the same name.
_TRAINING_OPTIONS = "epochs time_budget batch_size lr decay_start decay_factor clip seed weight_seed".split()


def train_config(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line as a normalised RunSpec-like configuration
    (see :mod:`mpnn.train.run`)."""
    from mpnn.train.config import resolve_model
    from mpnn.train.run import parse_targets

    config: dict[str, Any] = {}
    if getattr(args, "target", None) is not None:
        config["targets"] = parse_targets(args.target)
        config["joint"] = bool(args.joint)
    elif getattr(args, "joint", None):
        config["joint"] = True
    data = {key: getattr(args, key, None) for key in ("subset", "valid", "test")}
    for key in ("data", "uncharacterized", "atomref"):
        data["source" if key == "data" else key] = _resolve(getattr(args, key, None))
    training = {key: getattr(args, key, None) for key in _TRAINING_OPTIONS}
    if getattr(args, "patience", None) is not None:
        training["patience"] = args.patience or None
    model = resolve_model(args.model, "--model") if getattr(args, "model", None) else {}
    model.update(getattr(args, "model_option", None) or [])
    model.update(
        {key: getattr(args, key) for key in ("dim", "steps") if getattr(args, key, None) is not None}
    )
    for section, values in (("data", data), ("training", training), ("model", model)):
        given = {k: v for k, v in values.items() if v is not None or k == "patience"}
        if given:
            config[section] = given
    return config


def read_config_option(path: str | None) -> dict[str, Any]:
    """The normalised configuration of a ``--config`` file ({} for None); paths in it are
    relative to the file's folder."""
    from mpnn.train.config import load_config, normalize_config

    if path is None:
        return {}
    return normalize_config(load_config(path), path, base_dir=Path(path).expanduser().resolve().parent)


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
    """``mpnn train``: train (or resume), then print the test table."""
    from mpnn.outputs import RUN, check_output_folder, check_outputs
    from mpnn.train.metrics import format_table
    from mpnn.train.run import train_run

    out = Path(args.out) if args.out else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    data = [getattr(args, key) for key in ("config", "data", "uncharacterized", "atomref")]
    check_outputs(folders=[out], inputs=data)
    check_output_folder(out, RUN)  # a potential, an n2p2 folder, other files: refused before reading
    spec, resumed = _train_spec(args, out)
    echo = (lambda _: None) if args.quiet else print
    length = f"{spec.training.epochs} epochs" if spec.training.epochs else f"{spec.training.time_budget:g} s"
    jointly = " jointly" if spec.joint and len(spec.targets) > 1 else ""
    what = f"{', '.join(spec.targets)}{jointly}; {length} per model"
    print(f"{'resuming' if resumed else 'new'} run in {out}: {what}")
    errors = train_run(spec, out, workers=args.workers, show_progress=not args.quiet, echo=echo)
    print(format_table(errors, title=f"test set ({out}):"), end="")
    return 0


# -- evaluate and predict -------------------------------------------------------------------------
def cmd_evaluate(args: argparse.Namespace) -> int:
    """``mpnn evaluate``: the error table of a run on one split."""
    from mpnn.cli_property import cmd_evaluate_property

    if args.data is None and (args.uncharacterized or args.atomref):  # else the run's data is used
        raise UsageError("--uncharacterized and --atomref apply to --data, not to the run's own data")
    return cmd_evaluate_property(args)


def cmd_predict(args: argparse.Namespace) -> int:
    """``mpnn predict``: a CSV of QM9 targets (property run) or an extxyz of forces (potential)."""
    from mpnn.cli_potential import cmd_predict_potential, is_property_run
    from mpnn.cli_property import cmd_predict_property

    if not Path(args.model).exists():
        raise UsageError(f"{args.model}: no such folder")
    if is_property_run(args.model):
        if args.units is not None:
            raise UsageError("--units applies to potentials, not to `mpnn train` runs")
        return cmd_predict_property(args)
    return cmd_predict_potential(args)


# -- entry point ----------------------------------------------------------------------------------
def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    """Print a warning as one line ``mpnn: warning: <message>`` (no source line) on stderr."""
    print(f"mpnn: warning: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mpnn``; returns the exit status (0, 2 on errors, 130 when interrupted).

    Warnings are printed as one line each, ``mpnn: warning: <message>``. PyTorch's CPU threads:
    ``OMP_NUM_THREADS`` when set, else one per core; the caller's setting is restored on return.
    """
    threads = torch.get_num_threads()
    with warnings.catch_warnings():  # the previous warning display is restored on return
        warnings.showwarning = _show_warning
        try:
            torch.set_num_threads(_thread_count())
            return _main(argv)
        finally:
            torch.set_num_threads(threads)


def _thread_count() -> int:
    """``OMP_NUM_THREADS`` if it is a positive integer, else the number of cores."""
    text = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else os.cpu_count() or 1


def _main(argv: Sequence[str] | None) -> int:
    command = None
    try:
        args = build_parser().parse_args(argv)
        command = args.command
        return args.func(args)
    except (MpnnError, OSError) as error:
        message = " ".join(str(error).split("\n"))
        print(f"mpnn: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except MemoryError as error:  # a size no check foresaw: still one line
        detail = " ".join(str(error).split())
        print(f"mpnn: error: out of memory{': ' + detail if detail else ''}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        resumable = {"train": "train resumes from last.pt", "search": "the search resumes"}
        resumable["compare"] = "the comparison resumes"
        hint = f" ({resumable[command]} when run again)" if command in resumable else ""
        print(f"mpnn: interrupted{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
