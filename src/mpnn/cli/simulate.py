"""``mpnn relax`` and ``mpnn mc``: geometry optimisation and Metropolis Monte Carlo with a potential.

MODEL and STRUCTURE as for ``mpnn md`` (:mod:`mpnn.cli.potential`): an n2p2 potential folder or a
potential run folder; any structure file ASE reads or n2p2 ``input.data`` (``--index`` picks one,
``--units`` states the units of n2p2 files). Both commands evaluate the potential through one
:class:`~mpnn.potentials.calculator.MpnnCalculator` made by :func:`make_calculator` (float64).

``relax`` writes the relaxed structure (energy, forces, stress) to ``-o`` and the trajectory to
``--trajectory``; a relaxation that does not reach ``--fmax`` within ``--steps`` still writes both
(the last structure), prints why, and exits with status 1 (:data:`EXIT_NOT_CONVERGED`), so scripts
can tell it from a converged run (0) and from an error (2). ``mc`` writes its trajectory to ``-o``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpnn.cli.options import (
    _count,
    _fraction,
    _positive_float,
    _positive_int,
    _seed,
    add_out_option,
    add_quiet_option,
)
from mpnn.cli.potential import (
    EXTXYZ_SUFFIXES,
    OUTPUT_UNITS,
    add_structure_arguments,
    load_potential_model,
    read_structure_argument,
    report_calculator,
    write_extxyz,
)
from mpnn.errors import DataError
from mpnn.outputs import check_outputs, check_suffix

if TYPE_CHECKING:
    import torch

#: Exit status of a relaxation that did not reach ``--fmax`` (its outputs are written).
EXIT_NOT_CONVERGED = 1


def make_calculator(model: torch.nn.Module, args: argparse.Namespace, energy_only: bool = False) -> Any:
    """The calculator of both commands: ``model`` in float64, stopping past
    ``--max-extrapolation-warnings``; ``energy_only`` for Monte Carlo."""
    from mpnn.potentials.calculator import MpnnCalculator

    limit = args.max_extrapolation_warnings
    return MpnnCalculator(model, forces_with_energy=not energy_only, max_extrapolation_warnings=limit)


def register(subparsers: Any) -> None:
    """Add ``relax`` and ``mc`` to the ``mpnn`` parser."""
    _relax_parser(subparsers)
    _mc_parser(subparsers)


def _relax_parser(sub: Any) -> None:
    from mpnn.potentials.relax import OPTIMIZERS

    p = sub.add_parser(
        "relax",
        help="minimise the energy of a structure with a potential",
        description="Move the atoms (and with --cell the cell) downhill with one of ASE's optimizers "
        "until every force is below --fmax; writes the relaxed structure and the trajectory as "
        "extended XYZ. Exit status 1 when --fmax is not reached within --steps (the outputs hold "
        "the last structure), 2 on errors.",
    )
    add_structure_arguments(p)
    add_out_option(
        p, "the relaxed structure (default: %(default)s)", short=True, metavar="OUT", default="relaxed.extxyz"
    )
    p.add_argument(
        "--trajectory",
        metavar="TRAJ",
        help="extended-XYZ trajectory (default: OUT with _trajectory before its suffix)",
    )
    p.add_argument(
        "--fmax",
        type=_positive_float,
        default=0.05,
        metavar="F",
        help="converged when every force is below F eV/Angstrom (default: %(default)s)",
    )
    p.add_argument(
        "--steps", type=_count, default=500, metavar="N", help="most optimizer steps (default: %(default)s)"
    )
    p.add_argument(
        "--optimizer", choices=OPTIMIZERS, default="FIRE", help="ASE's optimizer (default: %(default)s)"
    )
    p.add_argument(
        "--cell",
        action="store_true",
        help="relax the cell too (ASE's UnitCellFilter, zero pressure; periodic structures)",
    )
    p.add_argument(
        "--interval", type=_positive_int, default=1, metavar="K", help="write every K steps (default: 1)"
    )
    add_quiet_option(p, "no progress bar")
    p.set_defaults(func=cmd_relax)


def default_trajectory(out: str) -> str:
    """``relaxed.extxyz`` -> ``relaxed_trajectory.extxyz``."""
    path = Path(out)
    return str(path.with_name(f"{path.stem}_trajectory{path.suffix}"))


def cmd_relax(args: argparse.Namespace) -> int:
    """``mpnn relax``: relax, write, print a one-line summary."""
    from mpnn.potentials.committee import potential_folders
    from mpnn.potentials.relax import relax

    trajectory = args.trajectory or default_trajectory(args.out)
    check_suffix(args.out, EXTXYZ_SUFFIXES, "extended XYZ")
    check_suffix(trajectory, EXTXYZ_SUFFIXES, "an extended-XYZ trajectory")
    partial = f"{trajectory}.partial"
    check_outputs(
        files=[args.out, trajectory, partial],
        inputs=[args.structure],
        read_dirs=potential_folders(args.model),
    )
    model = load_potential_model(args.model, args.units or (1.0, 1.0))
    atoms = read_structure_argument(args, model)
    if args.cell and (atoms.cell.rank < 3 or not atoms.pbc.any()):
        raise DataError(f"--cell: {args.structure}: the structure is not periodic with a 3-D cell")
    calc = make_calculator(model, args)
    result = relax(
        calc,
        atoms,
        fmax=args.fmax,
        steps=args.steps,
        optimizer=args.optimizer,
        cell=args.cell,
        trajectory_path=trajectory,
        interval=args.interval,
        progress=not args.quiet,
    )
    write_extxyz([_final(atoms, result)], args.out)
    change = result.final_energy - result.initial_energy
    state = (
        f"converged in {result.steps} steps (fmax {result.fmax[-1]:.3g} < {args.fmax:g} eV/A)"
        if result.converged
        else f"NOT converged in {result.steps} steps (fmax {result.fmax[-1]:.3g} > {args.fmax:g} eV/A)"
    )
    what = f"{args.optimizer}{' with the cell' if args.cell else ''}"
    print(
        f"{what}: {state}; energy {result.initial_energy:.6f}"
        f" -> {result.final_energy:.6f} eV ({change:+.4g} eV); wrote {args.out} and {trajectory}"
    )
    report_calculator(calc, "steps")
    if result.converged:
        return 0
    print(
        f"mpnn: the relaxation stopped at --steps {args.steps} before reaching --fmax {args.fmax:g}; "
        f"{args.out} holds the last structure (run again from it, or raise --steps)",
        file=sys.stderr,
    )
    return EXIT_NOT_CONVERGED


def _final(atoms: Any, result: Any) -> Any:
    """The relaxed structure with its energy, forces and stress, and what the relaxation did."""
    from ase.calculators.calculator import PropertyNotImplementedError

    from mpnn.potentials.frames import frame

    results = {"energy": result.final_energy, "forces": atoms.get_forces()}
    results["free_energy"] = results["energy"]
    if atoms.cell.rank == 3:
        try:
            results["stress"] = atoms.get_stress()
        except PropertyNotImplementedError:
            pass
    info = {"converged": result.converged, "steps": result.steps, "fmax": result.fmax[-1]}
    return frame(atoms, results, {**info, "units": OUTPUT_UNITS})


def _mc_parser(sub: Any) -> None:
    p = sub.add_parser(
        "mc",
        help="Metropolis Monte Carlo (NVT) with a potential",
        description="Canonical Metropolis Monte Carlo: each move displaces one random atom uniformly "
        "in a cube of half-edge --step, or (a fraction --swap-fraction of the moves, two or more "
        "elements) swaps the positions of two atoms of different elements; accepted with probability "
        "min(1, exp(-dE/kT)). Writes an extended-XYZ trajectory and prints the acceptance ratios.",
    )
    add_structure_arguments(p)
    p.add_argument("--temperature", type=_positive_float, required=True, metavar="K", help="temperature, K")
    p.add_argument("--steps", type=_count, required=True, metavar="N", help="number of moves")
    p.add_argument(
        "--step",
        type=_positive_float,
        default=0.1,
        metavar="A",
        help="half-edge of the cube of displacements, Angstrom (default: %(default)s)",
    )
    p.add_argument(
        "--swap-fraction",
        type=_fraction,
        metavar="F",
        help="fraction of moves that swap two atoms of different elements (default: 0.1 with two "
        "or more elements, else 0)",
    )
    p.add_argument("--seed", type=_seed, default=0, metavar="S", help="seed of the moves (default: 0)")
    p.add_argument(
        "--interval", type=_positive_int, default=100, metavar="K", help="write every K moves (default: 100)"
    )
    add_out_option(
        p, "extended-XYZ trajectory (default: %(default)s)", short=True, metavar="TRAJ", default="mc.extxyz"
    )
    add_quiet_option(p, "no progress bar")
    p.set_defaults(func=cmd_mc)


def cmd_mc(args: argparse.Namespace) -> int:
    """``mpnn mc``: run the moves, print the acceptance ratios and energies."""
    from mpnn.potentials.committee import potential_folders
    from mpnn.potentials.montecarlo import run_mc

    check_suffix(args.out, EXTXYZ_SUFFIXES, "an extended-XYZ trajectory")
    check_outputs(
        files=[args.out, f"{args.out}.partial"],
        inputs=[args.structure],
        read_dirs=potential_folders(args.model),
    )
    model = load_potential_model(args.model, args.units or (1.0, 1.0))
    atoms = read_structure_argument(args, model)
    calc = make_calculator(model, args, energy_only=True)
    log = run_mc(
        calc,
        atoms,
        args.steps,
        args.temperature,
        step=args.step,
        swap_fraction=args.swap_fraction,
        seed=args.seed,
        trajectory_path=args.out,
        interval=args.interval,
        progress=not args.quiet,
    )
    ratios = ", ".join(
        f"{kind} {log.accepted[kind]}/{log.attempted[kind]} ({log.acceptance(kind):.3f})"
        for kind in log.attempted
        if log.attempted[kind]
    )
    print(
        f"NVT MC {args.temperature:g} K: {args.steps} moves, {len(atoms)} atoms; "
        f"{'accepted ' + ratios if ratios else 'no moves'}; {len(log.step)} frames in {args.out}"
    )
    print(
        f"energy mean {log.mean_energy:.6f} eV (std {log.std_energy:.4g}) over the moves, "
        f"final {log.final_energy:.6f} eV"
    )
    report_calculator(calc, "energy evaluations (trial moves included)")
    return 0
