"""The ``mpnn`` command: its parser, and the entry point that runs one command.

Commands, one module each, each adding its subcommands with ``register(subparsers)``:
:mod:`mpnn.cli.property` (``train``, ``evaluate``), :mod:`mpnn.cli.predict` (``predict``, for
property runs and potentials), :mod:`mpnn.cli.potential` (``md``, ``export``),
:mod:`mpnn.cli.committee` (``select``), :mod:`mpnn.cli.simulate` (``relax``, ``mc``),
:mod:`mpnn.cli.train_potential` (``train-potential``), :mod:`mpnn.cli.prune` (``prune``),
:mod:`mpnn.cli.methods` (``search``, ``ensemble``, ``report``, ``compare``) and
:mod:`mpnn.cli.data` (``data convert``, ``data info``);
what they share is in :mod:`mpnn.cli.options`.

Every :class:`~mpnn.errors.MpnnError`, unreadable file and bad argument ends the command with
one line ``mpnn: error: <message>`` on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from mpnn import neighbors_backends
from mpnn.cli import committee, data, methods, potential, predict, property, prune, simulate, train_potential
from mpnn.cli.options import EXIT_ERROR, EXIT_INTERRUPTED, Parser
from mpnn.cli.threads import command_threads, use_torch
from mpnn.errors import MpnnError
from mpnn.symmetry import kernel_calls


def build_parser() -> argparse.ArgumentParser:
    """The ``mpnn`` argument parser."""
    parser = Parser(
        prog="mpnn",
        description="Neural message passing for quantum chemistry: QM9 models and interatomic potentials.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)
    property.register(sub)
    predict.register(
        sub, {"property": property.cmd_predict_property, "potential": potential.cmd_predict_potential}
    )
    potential.register(sub)
    committee.register(sub)
    simulate.register(sub)
    train_potential.register(sub)
    prune.register(sub)
    methods.register(sub)
    data.register(sub)
    return parser


def _show_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
    """Print a warning as one line ``mpnn: warning: <message>`` (no source line) on stderr."""
    print(f"mpnn: warning: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mpnn``; returns the exit status (0, 2 on errors, 130 when interrupted).

    Warnings are printed as one line each, ``mpnn: warning: <message>``. PyTorch's CPU threads:
    ``OMP_NUM_THREADS`` when set, else one per core (:mod:`mpnn.cli.threads`; a command that
    needs no PyTorch does not import it); the caller's setting is restored on return.
    """
    if argv is None:  # the process's own command line: vesin, if imported here, leaves PyTorch out
        neighbors_backends.VESIN_WITHOUT_TORCH = True
    with warnings.catch_warnings(), command_threads():  # the warning display is restored on return
        warnings.showwarning = _show_warning
        return _main(argv)


def main_train_potential(argv: Sequence[str] | None = None) -> int:
    """``mpnn train-potential ARGV...`` (``argv`` default: ``sys.argv[1:]``)."""
    return main(["train-potential", *(sys.argv[1:] if argv is None else argv)])


def _main(argv: Sequence[str] | None) -> int:
    command = None
    kernel_calls.LEAN_START = True  # this process is ours: numba starts without scipy.linalg
    try:
        args = build_parser().parse_args(argv)
        command = args.command
        if not getattr(args, "torch_free", False):
            use_torch()
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
        resumable["train-potential"] = "train-potential resumes from last.pt"
        hint = f" ({resumable[command]} when run again)" if command in resumable else ""
        print(f"mpnn: interrupted{hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
