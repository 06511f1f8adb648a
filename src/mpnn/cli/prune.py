"""``mpnn prune``: drop symmetry functions as n2p2's ``nnp-prune`` does (:mod:`mpnn.n2p2.prune`).

``mpnn prune range T DATA --input-nn FILE`` comments out the functions of FILE whose range over
DATA is below T; ``mpnn prune sensitivity T DATA --potential MODEL`` those of a trained potential
whose sensitivity (percent of the element's sum, mean square average or ``--max``) is below T.
Both write the pruned ``input.nn`` and print the table of what was dropped.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from mpnn.cli.options import _number, add_units_option
from mpnn.errors import DataError
from mpnn.outputs import check_outputs, check_suffix

_threshold = _number(float, lambda v: v >= 0, "a number >= 0")

EPILOG = """\
range: n2p2's `nnp-prune range T` on the functions of DATA (G_max - G_min < T dropped); the
functions of --input-nn are computed for every atom of DATA (lengths in --units), or read from
the scaling.data that n2p2's nnp-scaling wrote for it (--scaling FILE, as nnp-prune does).
sensitivity: `nnp-prune sensitivity T msa|max` on the sensitivities `nnp-dataset` would write
for MODEL on DATA: the derivative of each element network's output by each scaled input, as
sqrt(mean square) (default) or --max over the atoms, in percent of the element's sum; below T
percent is dropped. The input.nn written is --input-nn (a file with the potential's functions),
else the potential's own input.nn (an n2p2 folder) or the one `mpnn export` would write (a run).
The pruned lines are commented out with "# "; nothing else changes.

examples:
  mpnn prune range 1e-4 input.data --input-nn input.nn --units bohr,hartree
  mpnn prune sensitivity 0.5 input.data --potential runs/water --max --out pruned.nn
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``prune`` to ``subparsers`` (of the ``mpnn`` parser)."""
    p = subparsers.add_parser(
        "prune",
        help="drop symmetry functions of small range or sensitivity (n2p2's nnp-prune)",
        description="Write an input.nn with the symmetry functions of small range (before training) or "
        "small sensitivity (after training) commented out, and report them.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("mode", choices=("range", "sensitivity"), help="what decides")
    p.add_argument("threshold", type=_threshold, metavar="T", help="range, or sensitivity in percent")
    p.add_argument("data", metavar="DATA", nargs="?", help="structures (n2p2 input.data, extended XYZ, ...)")
    p.add_argument("--input-nn", metavar="FILE", help="the input.nn to prune (required for range)")
    p.add_argument(
        "--scaling",
        metavar="FILE",
        help="range: G_min and G_max from n2p2's scaling.data of --input-nn (nnp-scaling's), not DATA",
    )
    p.add_argument("--potential", metavar="MODEL", help="sensitivity: n2p2 folder or potential run")
    p.add_argument("--max", action="store_true", help="sensitivity: the maximum, not the mean square")
    add_units_option(p, "units of DATA, --input-nn and an n2p2 MODEL (default: angstrom,ev)")
    p.add_argument("--out", metavar="FILE", help="pruned input.nn, named *.nn (default output-prune-MODE.nn)")
    p.add_argument("--report", metavar="FILE", help="also write the table of dropped functions here")
    p.set_defaults(func=cmd_prune)
    return p


def cmd_prune(args: argparse.Namespace) -> int:
    """``mpnn prune``: check everything, compute, then write the pruned input.nn (and report)."""
    import torch

    from mpnn.files import read_text, write_text
    from mpnn.n2p2 import prune
    from mpnn.n2p2.input_nn import parse_input_nn

    if args.mode == "range" and (args.input_nn is None or args.potential is not None):
        raise DataError(
            "prune range: needs --input-nn FILE (and no --potential; n2p2 prunes before training)"
        )
    if args.mode == "range" and (args.data is None) == (args.scaling is None):
        raise DataError("prune range: needs DATA or --scaling FILE (one of them)")
    if args.mode == "sensitivity" and (args.data is None or args.scaling is not None):
        raise DataError("prune sensitivity: needs DATA (and no --scaling)")
    if args.mode == "sensitivity" and args.potential is None:
        raise DataError("prune sensitivity: needs --potential MODEL (a trained potential)")
    if args.max and args.mode == "range":
        raise DataError("--max: an option of prune sensitivity")
    units = args.units or (1.0, 1.0)
    out = args.out or f"output-prune-{args.mode}.nn"
    check_suffix(out, (".nn",), "an input.nn")  # never a checkpoint, config.json or structure file
    inputs = [args.data, args.input_nn, args.scaling]
    check_outputs(files=[out, args.report], inputs=inputs, read_dirs=[args.potential])
    if args.mode == "range":
        text = read_text(args.input_nn, "an input.nn file")
        settings = parse_input_nn(text, args.input_nn)
        if args.scaling is not None:
            from mpnn.n2p2.potential_files import read_scaling

            table = read_scaling(args.scaling, settings)
            values = {e: torch.from_numpy(abs(t[:, 1] - t[:, 0])) for e, t in table.items()}
        else:
            model = _model_of(settings, units)
            molecules = _structures(args.data, units, settings.elements)
            values = dict(zip(settings.elements, prune.ranges(model, molecules), strict=True))
        column, specs = "range", settings.symmetry_functions
    else:
        text, specs, model = _potential(args.potential, args.input_nn, units)
        molecules = _structures(args.data, units, tuple(specs))
        table = prune.sensitivities(model, molecules)
        values = {e: t[:, 3 if args.max else 2] for e, t in zip(specs, table, strict=True)}
        column = "max %" if args.max else "msa %"
    items = prune.dropped(specs, values, args.threshold)
    pruned = prune.comment_out(text, [d.line for d in items])
    table = prune.report(items, {e: len(f) for e, f in specs.items()}, column)
    write_text(pruned, out)
    if args.report:
        write_text(table, args.report)
    print(table, end="")
    print(f"wrote {out}" + (f" and {args.report}" if args.report else ""))
    return 0


def _model_of(settings: Any, units: tuple[float, float]) -> Any:
    """An HDNNP with the functions of ``settings`` (its weights and scaling do not matter)."""
    from mpnn.models.hdnnp import hdnnp
    from mpnn.n2p2.convert import hdnnp_config

    try:
        return hdnnp(hdnnp_config(settings, settings.elements, units))
    except ValueError as error:
        raise DataError(f"{settings.path}: {error}") from None


def _structures(path: str, units: tuple[float, float], elements: tuple[str, ...]) -> list:
    """The structures of ``path`` (energies not needed); every element of them in ``elements``."""
    from ase.data import atomic_numbers

    from mpnn.data.atoms import atoms_to_molecule, check_elements, read_structures

    structures = read_structures(path, units=units)
    if not structures:
        raise DataError(f"{path}: no structures")
    check_elements(structures, [atomic_numbers[e] for e in elements], str(path))
    return [atoms_to_molecule(atoms, name=f"{path}:{k}") for k, atoms in enumerate(structures)]


def _potential(path: str, input_nn: str | None, units: tuple[float, float]) -> tuple[str, dict, Any]:
    """The input.nn text to prune, its functions per element (each with its line) in the order
    of the returned model's inputs, and the potential as that model."""
    from mpnn.cli.potential import load_potential_model
    from mpnn.files import read_text
    from mpnn.n2p2.convert import model_from_n2p2, model_to_n2p2
    from mpnn.n2p2.input_nn import format_input_nn, parse_input_nn

    loaded = load_potential_model(path, units)
    potential = model_to_n2p2(loaded, path)
    model = model_from_n2p2(potential, (loaded.config["length_unit"], loaded.config["energy_unit"]))
    own = Path(path) / "input.nn"
    source = input_nn or (str(own) if own.is_file() else None)
    text = read_text(source, "an input.nn file") if source else format_input_nn(potential.settings)
    parsed = parse_input_nn(text, source or f"{path} (as exported)")
    specs = {}
    for e, functions in potential.settings.symmetry_functions.items():
        lines = {}
        for spec in parsed.symmetry_functions.get(e, []):
            lines.setdefault(spec, []).append(spec.line)
        try:
            specs[e] = [dataclasses.replace(spec, line=lines[spec].pop(0)) for spec in functions]
        except (KeyError, IndexError):
            raise DataError(
                f"{source}: its symmetry functions of {e} are not those of the potential {path}"
            ) from None
        if any(lines.values()):
            raise DataError(f"{source}: has symmetry functions of {e} that the potential {path} lacks")
    return text, specs, model
