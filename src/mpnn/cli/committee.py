"""``mpnn select``: the frames of trajectories where a committee of potentials disagrees.

COMMITTEE is a folder of two or more potential folders (:mod:`mpnn.potentials.committee`); every
frame of the TRAJECTORY files (any format ASE reads, or n2p2 input.data) is evaluated by each
member; the frames picked by :func:`mpnn.potentials.select.select_frames` are written as bare
structures (positions, cell, elements; no energies or forces, which the reference method will
give) with ``frame`` (its index among all frames of the files, in order), ``energy_std`` (eV),
``max_force_std`` (eV/A) and ``extrapolation_warnings`` in each frame's info.
"""

from __future__ import annotations

import argparse
from typing import Any

from ase import Atoms

from mpnn.cli.options import _nonnegative_float, _positive_int, add_out_option, add_units_option
from mpnn.errors import DataError

SELECT_EPILOG = """\
examples:
  mpnn select committee/ md.extxyz --force-deviation 0.05,0.3 -o to_label.extxyz
  mpnn select committee/ md.extxyz --force-deviation 0.05 --extrapolating --max-frames 50
"""


def register(subparsers: Any) -> None:
    """Add ``select`` to the ``mpnn`` parser."""
    p = subparsers.add_parser(
        "select",
        help="pick the frames where a committee of potentials disagrees, for relabelling",
        description="Evaluate every frame of the trajectories with a committee (a folder of two or more "
        "potentials) and write those whose largest per-atom force deviation is in [LOW, HIGH) "
        "(DP-GEN's max_devi_f), or whose energy deviation per atom or extrapolation warnings ask for it.",
        epilog=SELECT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="COMMITTEE", help="a folder of two or more potential folders")
    p.add_argument(
        "inputs", nargs="+", metavar="TRAJECTORY", help="structure files (extxyz, input.data, ...)"
    )
    p.add_argument(
        "--force-deviation",
        type=_bounds,
        metavar="LOW[,HIGH]",
        help="pick frames whose largest per-atom force deviation (eV/A) is >= LOW and < HIGH",
    )
    p.add_argument(
        "--energy-deviation",
        type=_nonnegative_float,
        metavar="E",
        help="also pick frames whose energy deviation per atom is >= E eV/atom",
    )
    p.add_argument(
        "--extrapolating", action="store_true", help="also pick frames with extrapolation warnings"
    )
    p.add_argument(
        "--max-frames", type=_positive_int, metavar="N", help="at most N frames (largest deviations)"
    )
    p.add_argument("--every", type=_positive_int, default=1, metavar="K", help="look at every K-th frame")
    add_out_option(
        p, "extended XYZ of the frames picked (default: %(default)s)", short=True, default="selected.extxyz"
    )
    add_units_option(p, "units of n2p2 files: LENGTH,ENERGY (default: angstrom,ev)")
    p.set_defaults(func=cmd_select)


def _bounds(text: str) -> tuple[float, float | None]:
    parts = text.split(",")
    if len(parts) > 2:
        raise argparse.ArgumentTypeError(f"expected LOW or LOW,HIGH, got {text!r}")
    values = [_nonnegative_float(part) for part in parts]
    if len(values) == 2 and not values[0] < values[1]:
        raise argparse.ArgumentTypeError(f"LOW must be below HIGH, got {text!r}")
    return values[0], values[1] if len(values) == 2 else None


def cmd_select(args: argparse.Namespace) -> int:
    """``mpnn select COMMITTEE TRAJECTORY... -o OUT``."""
    from mpnn.cli.potential import (
        EXTXYZ_SUFFIXES,
        load_potential_model,
        predict_structures,
        read_all,
        write_extxyz,
    )
    from mpnn.outputs import check_outputs, check_suffix
    from mpnn.potentials.committee import Committee, potential_folders
    from mpnn.potentials.select import select_frames

    if args.force_deviation is None and args.energy_deviation is None and not args.extrapolating:
        raise DataError("say what to pick: --force-deviation, --energy-deviation and/or --extrapolating")
    check_suffix(args.out, EXTXYZ_SUFFIXES, "extended XYZ")
    check_outputs(files=[args.out], inputs=args.inputs, read_dirs=potential_folders(args.model))
    unit = args.units or (1.0, 1.0)
    model = load_potential_model(args.model, unit)
    if not isinstance(model, Committee):
        raise DataError(f"{args.model}: one potential, not a committee (a folder of two or more potentials)")
    frames = read_all(args.inputs, unit, model.elements, float(model.cutoff))[:: args.every]
    predicted = predict_structures(model, frames)
    low, high = args.force_deviation or (None, None)
    chosen = select_frames(predicted, low, high, args.energy_deviation, args.extrapolating, args.max_frames)
    write_extxyz([_bare(predicted[k], k * args.every) for k in chosen.picked], args.out)
    print(
        f"picked {len(chosen.picked)} of {len(predicted)} frames -> {args.out} "
        f"({chosen.candidates} candidates, "
        f"{chosen.dropped} beyond --max-frames; {chosen.agreed} where the committee agrees; "
        f"{chosen.too_far} at or above the upper force deviation, left out)"
    )
    return 0


def _bare(atoms: Atoms, frame: int) -> Atoms:
    """The structure alone (no results), with where it came from and the committee's deviations."""
    out = Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    out.info["frame"] = frame
    for key in ("energy_std", "max_force_std", "extrapolation_warnings"):
        if key in atoms.info:
            out.info[key] = atoms.info[key]
    out.info["units"] = "length=Angstrom energy_std=eV max_force_std=eV/Angstrom"
    return out
