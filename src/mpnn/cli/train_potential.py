"""``mpnn train-potential``: train an HDNNP or an SF-MPNN on energies and forces
(:mod:`mpnn.train.potential_run`).

``register(subparsers)`` adds the subcommand to the ``mpnn`` parser
(:func:`mpnn.cli.main_train_potential` runs it alone). Errors end the command with one line
``mpnn: error: <message>`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from mpnn.cli.options import (
    UsageError,
    _count,
    _fraction,
    _learning_rate,
    _number,
    _positive_float,
    _positive_int,
    _seed,
    add_length_options,
    add_out_option,
    add_quiet_option,
    add_training_options,
    add_units_option,
    add_workers_option,
)
from mpnn.errors import MpnnError

EPILOG = """\
The data are structures with energies (eV) and forces (eV/A): extended XYZ, ASE databases, n2p2
input.data, anything ASE reads; --units converts n2p2 input.data in other units (bohr,hartree).
--input-nn FILE trains with an n2p2 input.nn's symmetry functions (all of them, in the data's
units as in n2p2: --units for input.data), cutoff function, networks and scaling; `mpnn export
RUN OUT` writes the trained potential back in those units. Without it, symmetry functions: element-resolved
radial (type 2, --radial per neighbour element) and angular ones (type 9 and/or 3,
(--angular + --angular-shifts) x --zetas x lambda +-1 per neighbour pair), computed once with
their derivatives; functions constant on the training set are dropped. Running again with the
same --out resumes from last.pt (only --epochs, --time-budget, --patience and --tensorboard may
change).

Loss weights: constant (n2p2) by default; with --energy-weight-final and/or --force-weight-final
they move linearly from --energy-weight/--force-weight to those between the fractions
--weight-start and --weight-end of training (default 0 and 1), a step change where the two are
equal (MACE's second stage: --weight-start 0.75 --weight-end 0.75 --energy-weight-final 1000).
The validation loss that picks best.pt weighs with the final weights.

--model sf_mpnn adds --steps - 1 learned message-passing steps over the same radius graph
(width --features, radial filters of --radial-basis Gaussians within --message-cutoff) to the
symmetry functions; --nodes and --activation are then those of the energy networks on the last
states. It trains, predicts and runs MD as an HDNNP does, but has no n2p2 form.

examples:
  mpnn train-potential train.xyz --test test.xyz --epochs 500 --out runs/ethanol
  mpnn train-potential train.xyz --model sf_mpnn --steps 3 --features 64 --epochs 500
  mpnn train-potential input.data --valid 0.1 --cutoff 6 --nodes 32,32 --time-budget 600
  mpnn train-potential input.data --units bohr,hartree --epochs 100   # n2p2 data in atomic units
  mpnn train-potential input.data --input-nn input.nn --units bohr,hartree --epochs 100
  mpnn train-potential train.xyz --epochs 400 --ema 0.99 --energy-weight-final 1000 \
      --weight-start 0.75 --weight-end 0.75 --tensorboard   # MACE-like: averaged, energies late
"""


def _int_list(text: str) -> list[int]:
    return [int(word) for word in text.split(",") if word.strip()]


def _float_list(text: str) -> list[float]:
    return [float(word) for word in text.split(",") if word.strip()]


def _fraction_or_file(text: str) -> float | str:
    try:
        value = float(text)
    except ValueError:
        return str(Path(text).expanduser().resolve())
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1) or a file, got {text!r}")
    return value


_weight = _number(float, lambda v: v >= 0, "a number >= 0")
_nodes = _number(_int_list, lambda v: bool(v) and min(v) >= 1, "sizes like 64,64")
_zetas = _number(_float_list, lambda v: bool(v) and min(v) >= 1, "zetas >= 1 like 1,2,4,8,16")
_types = _number(_int_list, lambda v: bool(v) and set(v) <= {3, 9}, "3, 9 or 3,9")
#: The most CPU threads: 4 per core (at least 64); beyond that PyTorch's thread pool only
#: costs memory, and 1e5 threads crash OpenMP (a segmentation fault, not an error).
MAX_THREADS = max(64, 4 * (os.cpu_count() or 1))
_threads = _number(int, lambda v: 1 <= v <= MAX_THREADS, f"an integer in [1, {MAX_THREADS}]")
#: The loss weights and their schedule: option, type, metavar, help.
_WEIGHT_OPTIONS = (
    ("--force-weight", _weight, "W", "w_F of the loss (its start value; default 10)"),
    ("--energy-weight", _weight, "W", "w_E of the loss (its start value; default 1)"),
    ("--force-weight-final", _weight, "W", "w_F at the end (default: --force-weight)"),
    ("--energy-weight-final", _weight, "W", "w_E at the end (default: --energy-weight)"),
    ("--weight-start", _fraction, "F", "fraction of training where the weights start to change (0)"),
    ("--weight-end", _fraction, "F", "fraction of training where they reach the final ones (1)"),
)

#: The potentials (:data:`mpnn.models.POTENTIALS`, not imported: importing the models costs start-up time).
POTENTIALS = ("hdnnp", "sf_mpnn")
_steps = _number(int, lambda v: 1 <= v <= 16, "an integer in [1, 16]")
_features = _number(int, lambda v: 1 <= v <= 4096, "an integer in [1, 4096]")
_basis = _number(int, lambda v: 2 <= v <= 1024, "an integer in [2, 1024]")
#: The options of an SF-MPNN's learned steps: option, type, metavar, help.
_MESSAGE_OPTIONS = (
    ("--steps", _steps, "T", "steps T, 1 = HDNNP (2)"),
    ("--features", _features, "D", "state width (64)"),
    ("--embedding", _nodes, "N,N", "hidden sizes of the element networks G -> h (64)"),
    ("--message-cutoff", _positive_float, "A", "cutoff of the learned messages (--cutoff)"),
    ("--radial-basis", _basis, "K", "Gaussians of the radial filters (16)"),
)
_MESSAGE_NAMES = ("steps", "features", "embedding", "message_cutoff", "radial_basis", "message", "update")


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``train-potential`` to ``subparsers`` (of the ``mpnn`` parser); returns its parser."""
    p = subparsers.add_parser(
        "train-potential",
        help="train a Behler-Parrinello potential on energies and forces",
        description="Train an HDNNP (Behler-Parrinello neural network potential), or an SF-MPNN "
        "(symmetry functions, then learned message passing), on energies and forces.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data", metavar="DATA", help="training structures with energies and forces")
    p.add_argument("--test", metavar="FILE", help="test structures (errors of best.pt at the end)")
    p.add_argument(
        "--lazy",
        action="store_true",
        help="DATA is a structure store (*.lmdb) read per batch, without caching the symmetry "
        "functions: for sets too large for memory (slower per step)",
    )
    add_workers_option(p, "with --lazy: processes reading the store's batches (default 2)")
    add_units_option(
        p,
        "units of n2p2 input.data files: angstrom|bohr|nm,ev|hartree|kcal/mol|kj/mol "
        "(default: angstrom,ev); the potential is trained and saved in Angstrom and eV",
    )
    p.add_argument(
        "--valid",
        type=_fraction_or_file,
        metavar="FRACTION|FILE",
        help="validation structures: a fraction of DATA (default 0.1) or a file",
    )
    p.add_argument(
        "--input-nn",
        metavar="FILE",
        help="an n2p2 input.nn: its symmetry functions, cutoff function, networks and scaling "
        "(lengths in the data's units, --units); replaces --cutoff, --nodes, --activation, --scaling and the "
        "symmetry-function options",
    )
    p.add_argument(
        "--model", choices=POTENTIALS, help="hdnnp (default) or sf_mpnn (symmetry functions, message passing)"
    )
    p.add_argument("--cutoff", type=_positive_float, metavar="A", help="cutoff radius, Angstrom (default 6)")
    p.add_argument("--nodes", type=_nodes, metavar="N,N", help="hidden layer sizes (default 64,64)")
    p.add_argument("--activation", choices=list("tspgcr"), help="hidden activation, n2p2 letter (default t)")
    p.add_argument("--radial", type=_count, metavar="N", help="radial functions per neighbour element (16)")
    p.add_argument("--r-min", type=_weight, metavar="A", help="first radial shift, Angstrom (0.5)")
    p.add_argument("--angular", type=_count, metavar="N", help="angular widths per neighbour pair (4)")
    p.add_argument("--angular-shifts", type=_count, metavar="N", help="shifted angular functions (8)")
    p.add_argument("--zetas", type=_zetas, metavar="Z,Z", help="angular zetas (1,2,4,8,16)")
    p.add_argument("--angular-type", type=_types, metavar="T", help="3 (narrow), 9 (wide) or 3,9 (default 9)")
    p.add_argument(
        "--scaling",
        choices=("scale_center", "scale", "center", "sigma", "none"),
        help="n2p2 scaling of the symmetry functions (default scale_center)",
    )
    for option, kind, metavar, what in _MESSAGE_OPTIONS:
        p.add_argument(option, type=kind, metavar=metavar, help=f"--model sf_mpnn: {what}")
    p.add_argument("--message", choices=("filter", "pair"), help="--model sf_mpnn: learned message (filter)")
    p.add_argument("--update", choices=("residual", "gru"), help="--model sf_mpnn: update (residual)")
    add_length_options(p, epochs_help="epochs (default 300)", budget_help="seconds of training")
    p.add_argument(
        "--lr", type=_learning_rate, help="initial learning rate of Adam, at most 1 (default 1e-3)"
    )
    p.add_argument(
        "--schedule", choices=("plateau", "linear"), help="learning-rate schedule (default linear)"
    )
    for option, kind, metavar, what in _WEIGHT_OPTIONS:
        p.add_argument(option, type=kind, metavar=metavar, help=what)
    p.add_argument("--batch-size", type=_positive_int, metavar="N", help="structures per step (default 16)")
    p.add_argument("--clip", type=_weight, metavar="G", help="gradient-norm clip, 0: none (default: none)")
    p.add_argument(
        "--patience",
        type=_count,
        metavar="N",
        help="stop after N epochs without a better validation loss, 0: never (default 200)",
    )
    p.add_argument("--seed", type=_seed, help="seed of weights, split and order (default 0)")
    add_out_option(p, "output folder (default runs/potential-<date-time>)")
    p.add_argument("--float32", action="store_true", default=None, help="train in float32 (faster)")
    add_training_options(p)
    p.add_argument(
        "--threads",
        type=_threads,
        default=1,
        metavar="N",
        help="CPU threads, at most 4 per core (default 1: the networks are small, and more "
        "threads lose time when the cores are shared)",
    )
    add_quiet_option(p, "no progress bars or messages")
    p.set_defaults(func=cmd_train_potential)
    return p


#: command-line option -> dotted name in the run description
_OPTIONS = {
    "test": "test",
    "input_nn": "input_nn",
    "model": "model",
    **{name: f"message_passing.{name}" for name in _MESSAGE_NAMES},
    "valid": "valid",
    "cutoff": "cutoff",
    "nodes": "nodes",
    "activation": "activation",
    "scaling": "scaling",
    "radial": "symmetry.n_radial",
    "r_min": "symmetry.r_min",
    "angular": "symmetry.n_angular",
    "angular_shifts": "symmetry.angular_shifts",
    "zetas": "symmetry.zetas",
    "angular_type": "symmetry.angular_types",
    "lr": "training.lr",
    "schedule": "training.schedule",
    "force_weight": "training.force_weight",
    "energy_weight": "training.energy_weight",
    "force_weight_final": "training.force_weight_final",
    "energy_weight_final": "training.energy_weight_final",
    "weight_start": "training.weight_start",
    "weight_end": "training.weight_end",
    "ema_decay": "training.ema_decay",
    "amp": "training.amp",
    "tensorboard": "training.tensorboard",
    "batch_size": "training.batch_size",
    "clip": "training.clip",
    "seed": "training.seed",
    "float32": "training.float32",
    "units": "units",
}


#: The options an ``--input-nn`` file replaces.
_REPLACED_BY_INPUT_NN = (
    "cutoff nodes activation scaling radial r_min angular angular_shifts zetas angular_type".split()
)


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line, by dotted name of :class:`PotentialSpec`."""
    given: dict[str, Any] = {"train": str(Path(args.data).expanduser().resolve())}
    for option, name in _OPTIONS.items():
        value = getattr(args, option)
        if value is not None:
            if option in ("test", "input_nn"):
                value = str(Path(value).expanduser().resolve())
            given[name] = list(value) if option == "units" else value
    if args.epochs is not None:
        given.update({"training.epochs": args.epochs, "training.time_budget": None})
    if args.time_budget is not None:
        given.update({"training.time_budget": args.time_budget, "training.epochs": None})
    if args.patience is not None:
        given["training.patience"] = args.patience or None
    return given


def cmd_train_potential(args: argparse.Namespace) -> int:
    """``mpnn train-potential``: train (or resume), then print the error table."""
    import torch

    from mpnn.train.distributed import context
    from mpnn.train.metrics import potential_errors_table
    from mpnn.train.potential_run import PotentialSpec, resume_spec, train_potential
    from mpnn.train.run import apply_overrides

    torch.set_num_threads(args.threads)
    ctx = context()  # several processes under torchrun; one otherwise
    started = time.localtime(ctx.agree(time.time()))  # one default folder for all processes
    out = Path(args.out) if args.out else Path("runs") / time.strftime("potential-%Y%m%d-%H%M%S", started)
    given = overrides(args)
    try:
        spec = resume_spec(out, given)
        if spec is None:
            spec = PotentialSpec.from_json(
                apply_overrides(PotentialSpec(train=given["train"]).to_json(), given)
            )
    except (TypeError, ValueError) as error:
        if isinstance(error, MpnnError):
            raise
        raise UsageError(str(error)) from None
    if args.input_nn is not None:
        replaced = [name for name in _REPLACED_BY_INPUT_NN if getattr(args, name) is not None]
        if replaced:
            flag = "--" + replaced[0].replace("_", "-")
            raise UsageError(f"{flag}: the --input-nn file sets this (edit the file instead)")
    if spec.input_nn is not None:
        from mpnn.n2p2.input_nn import read_input_nn

        read_input_nn(spec.input_nn)  # its errors before the data are read
    given_steps = [name for name in _MESSAGE_NAMES if getattr(args, name) is not None]
    if spec.model == "hdnnp" and given_steps:
        flag = "--" + given_steps[0].replace("_", "-")
        raise UsageError(f"{flag}: an option of --model sf_mpnn (an HDNNP has one step, no learned messages)")
    quiet = args.quiet or not ctx.main
    echo = (lambda _: None) if quiet else print
    if args.workers is not None and not args.lazy:
        raise UsageError("--workers: reader processes of --lazy; without it the structures are read once")
    readers = 2 if args.workers is None else args.workers
    rows = train_potential(
        spec, out, show_progress=not quiet, echo=echo, ctx=ctx, lazy=args.lazy, readers=readers
    )
    if ctx.main:
        print(potential_errors_table(rows, title=f"errors of {out / 'best.pt'}:"), end="")
    return 0


#: ``mpnn train`` options that mean the same for a potential: (attribute, flag).
SHARED_WITH_TRAIN = (
    ("model", "--model"),
    ("steps", "--steps"),
    ("epochs", "--epochs"),
    ("time_budget", "--time-budget"),
    ("batch_size", "--batch-size"),
    ("lr", "--lr"),
    ("patience", "--patience"),
    ("seed", "--seed"),
    ("out", "--out"),
)


def is_structure_file(path: str | None) -> bool:
    """Whether ``path`` is a file of structures with energies (extxyz, ASE db, n2p2 input.data, a
    structure store of them, ...), not a QM9 release (an archive or a folder of its xyz files) nor
    a structure store of one."""
    if path is None or not Path(path).is_file():
        return False
    from mpnn.data.store import StructureStore, is_store_path

    if is_store_path(path):
        return "energy" in StructureStore(path).target_names
    name = Path(path).name.lower()
    return not any(name.endswith(s) for s in (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip"))


def train_args(args: argparse.Namespace) -> list[str]:
    """The ``train-potential`` command line of an ``mpnn train`` call on structures (a potential):
    the options both commands share are passed on; any other is a usage error naming the command
    that has it (the potential's own options, such as --cutoff, belong to ``train-potential``)."""
    shared = {name for name, _ in SHARED_WITH_TRAIN} | {"data", "quiet", "command", "func"}
    given = [name for name, value in vars(args).items() if value not in (None, False) and name not in shared]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise UsageError(
            f"{flag}: not an option of a potential; `mpnn train --model hdnnp|sf_mpnn DATA` takes "
            f"{', '.join(f for _, f in SHARED_WITH_TRAIN)} and --quiet, `mpnn train-potential` all the others"
        )
    argv = [args.data]
    for name, flag in SHARED_WITH_TRAIN:
        value = getattr(args, name)
        if value is not None:
            argv += [flag, str(value)]
    return argv + (["--quiet"] if args.quiet else [])
