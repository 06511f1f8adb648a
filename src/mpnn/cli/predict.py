"""``mpnn predict MODEL STRUCTURES...``: one command for property runs and potentials.

What MODEL is comes from what its folder records (:func:`mpnn.outputs.folder_task`: ``run.json``,
``ensemble.json``, a model's ``config.json`` with ``targets`` -> a property run; a potential run's
``config.json`` with ``run``, an n2p2 ``input.nn`` -> a potential). The command of each task is
given to :func:`register` (by :mod:`mpnn.cli.app`), so this module imports no other command.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mpnn.cli.options import UsageError, add_extrapolation_option, add_out_option, add_units_option

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

Command = Callable[[argparse.Namespace], int]


def register(subparsers: Any, commands: Mapping[str, Command]) -> None:
    """Add ``predict`` to the ``mpnn`` parser; ``commands``: the command of each task of
    :func:`~mpnn.outputs.folder_task` (``"property"``, ``"potential"``)."""
    p = subparsers.add_parser(
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
    add_out_option(p, "CSV (QM9 runs) or extxyz (potentials)", short=True, metavar="OUT")
    add_units_option(
        p, "units of the n2p2 files: angstrom|bohr|nm,ev|hartree|kcal/mol|kj/mol (default: angstrom,ev)"
    )
    add_extrapolation_option(p)
    # PyTorch is imported by the command that needs it (an n2p2 potential may not: mpnn.cli.threads)
    p.set_defaults(func=cmd_predict, predict_commands=dict(commands), torch_free=True)


def cmd_predict(args: argparse.Namespace) -> int:
    """``mpnn predict``: a CSV of QM9 targets (property run) or an extxyz of forces (potential)."""
    from mpnn.cli.threads import use_torch
    from mpnn.outputs import folder_task

    if not Path(args.model).exists():
        raise UsageError(f"{args.model}: no such folder")
    task = folder_task(args.model)
    if task == "property" and args.units is not None:
        raise UsageError("--units applies to potentials, not to `mpnn train` runs")
    if task == "property" and args.max_extrapolation_warnings is not None:
        raise UsageError("--max-extrapolation-warnings applies to potentials, not to `mpnn train` runs")
    if task != "potential":
        use_torch()
    return args.predict_commands[task](args)
