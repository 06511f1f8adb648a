"""What the ``mpnn`` commands share: argument types, the options several commands take (declared
here once), the parser class whose errors are one line, and the command line as run settings.

Every command module imports this one (and library code); nothing here imports a command module.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from mpnn.errors import DataError, MpnnError
from mpnn.train.validate import MAX_LR

EXIT_ERROR, EXIT_INTERRUPTED = 2, 130
DEFAULT_TIME_BUDGET = 180.0


class UsageError(MpnnError):
    """A bad command line."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are :class:`UsageError` (one line, exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


# -- argument types -------------------------------------------------------------------------------
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
_fraction = _number(float, lambda v: 0 <= v <= 1, "a number in [0, 1]")
_decay = _number(float, lambda v: 0 < v < 1, "a number in (0, 1)")


def model_option(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` -> (key, value parsed as JSON, else the plain string)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def parse_units(text: str) -> tuple[float, float]:
    """``"bohr,hartree"`` -> (Angstrom per length unit, eV per energy unit); an argparse type."""
    from mpnn.n2p2.units import parse_units as parse

    try:
        return parse(text)
    except DataError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("--units: ")) from None


# -- options of several commands ------------------------------------------------------------------
def add_length_options(
    parser: argparse.ArgumentParser,
    epochs_help: str = "epochs per model",
    budget_help: str = f"seconds of training per model (default: {DEFAULT_TIME_BUDGET:g})",
) -> None:
    """``--epochs`` or ``--time-budget``: how long each model trains."""
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=_positive_int, metavar="N", help=epochs_help)
    length.add_argument("--time-budget", type=_positive_float, metavar="S", help=budget_help)


def add_data_options(parser: argparse.ArgumentParser, what: str) -> None:
    """``--data``, ``--uncharacterized``, ``--atomref`` and ``--workers`` (QM9 data)."""
    parser.add_argument(
        "--data",
        metavar="PATH",
        help=f"QM9 release archive (.tar.xz, .tar.bz2, ...), folder of its xyz files, or a structure "
        f"store of one (*.lmdb, from `mpnn data convert`, read lazily) {what}",
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
    add_workers_option(
        parser,
        "processes featurising a QM9 release (default: one per core), or reading batches of a "
        "structure store (*.lmdb; default 2)",
    )


def add_workers_option(parser: argparse.ArgumentParser, help: str = "processes for featurisation") -> None:
    """``--workers N``: processes for featurisation (or as ``help`` says)."""
    parser.add_argument("--workers", type=_positive_int, metavar="N", help=help)


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


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """``--ema DECAY``, ``--amp bf16|fp16`` and ``--tensorboard``: the weight average, mixed
    precision and TensorBoard logging of :class:`~mpnn.train.settings.TrainSettings`."""
    parser.add_argument(
        "--ema",
        dest="ema_decay",
        type=_decay,
        metavar="DECAY",
        help="validate and save an exponential moving average of the weights, DECAY per step "
        "(MACE, NequIP: 0.99; default: none)",
    )
    parser.add_argument(
        "--amp",
        choices=("bf16", "fp16"),
        help="mixed precision (autocast) for float32 training on CUDA GPUs; on a CPU it runs, "
        "slowly, with a warning (default: off)",
    )
    parser.add_argument(
        "--tensorboard",
        action="store_true",
        default=None,
        help="also write metrics.csv's columns as TensorBoard scalars in OUT/tensorboard "
        "(pip install tensorboard)",
    )


def add_quiet_option(parser: argparse.ArgumentParser, what: str = "no progress bars or epoch lines") -> None:
    """``--quiet``: less output."""
    parser.add_argument("--quiet", action="store_true", help=what)


def add_out_option(
    parser: argparse.ArgumentParser,
    what: str,
    *,
    short: bool = False,
    metavar: str = "DIR",
    required: bool = False,
    default: str | None = None,
) -> None:
    """``--out`` (and ``-o`` when ``short``): where a command writes."""
    names = ("-o", "--out") if short else ("--out",)
    parser.add_argument(*names, metavar=metavar, required=required, default=default, help=what)


def add_extrapolation_option(parser: argparse.ArgumentParser) -> None:
    """``--max-extrapolation-warnings N`` (:mod:`mpnn.potentials.extrapolation`, n2p2's ``maxew``)."""
    parser.add_argument(
        "--max-extrapolation-warnings",
        type=_count,
        metavar="N",
        help="stop once more than N symmetry-function values (atom, function) lie outside the "
        "potential's training range (n2p2's maxew; 0: stop at the first); default: only report them",
    )


def add_units_option(parser: argparse.ArgumentParser, what: str, metavar: str = "LENGTH,ENERGY") -> None:
    """``--units LENGTH,ENERGY`` of n2p2 files (:func:`parse_units`)."""
    parser.add_argument("--units", type=parse_units, metavar=metavar, help=what)


# -- the command line as run settings -------------------------------------------------------------
def _resolve(path: str | None) -> str | None:
    return None if path is None else str(Path(path).expanduser().resolve())


#: ``mpnn train`` options that are :class:`~mpnn.train.settings.TrainSettings` of the same name.
_TRAINING_OPTIONS = (
    "epochs time_budget batch_size lr decay_start decay_factor clip seed weight_seed "
    "ema_decay amp tensorboard"
).split()


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
