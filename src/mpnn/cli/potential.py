"""``mpnn predict`` for potentials, ``mpnn md`` and ``mpnn export``: energies, forces, dynamics and n2p2
files from the command line.

A MODEL is an n2p2 potential folder (``input.nn``, ``scaling.data``, ``weights.ZZZ.data``) or a
potential training-run folder of ours, read by :func:`mpnn.potentials.load.load_potential`.
``--units LENGTH,ENERGY`` names the units of the n2p2 files (potential and ``input.data``
structures): lengths ``angstrom`` (1), ``bohr`` (0.529177 A), ``nm`` (10 A); energies ``ev`` (1),
``hartree`` (27.2114 eV), ``kcal/mol`` (0.0433641 eV), ``kj/mol`` (0.0103643 eV)
(:func:`mpnn.n2p2.units.parse_units`, CODATA 2018). Every output is in eV and Angstrom:
energy and ``energies`` per atom (eV), forces (eV/Angstrom), stress (eV/Angstrom^3, Voigt xx yy
zz yz xz xy) for periodic structures with a 3-D cell. ``register(subparsers)`` adds ``md`` and
``export``; ``predict`` (:mod:`mpnn.cli.predict`) calls :func:`cmd_predict_potential` for potentials.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mpnn.cli.options import (
    _count,
    _positive_float,
    _positive_int,
    _seed,
    add_extrapolation_option,
    add_out_option,
    add_quiet_option,
    add_units_option,
)
from mpnn.cli.threads import use_torch
from mpnn.errors import DataError
from mpnn.outputs import N2P2, check_output_folder, check_outputs, check_suffix, folder_kind

if TYPE_CHECKING:
    import torch

    from mpnn.potentials.n2p2_predict import N2p2Predictor

#: Structures are evaluated in batches of about this many atoms.
BATCH_ATOMS = 2000
#: Suffixes of the extended-XYZ files that ``predict`` and ``md`` write.
EXTXYZ_SUFFIXES = (".extxyz", ".xyz")
#: The ``units`` key of every structure that ``predict`` and ``md`` write (extended XYZ's own
#: convention, stated in the file).
OUTPUT_UNITS = "length=Angstrom energy=eV forces=eV/Angstrom stress=eV/Angstrom^3"


def is_placeholder(reference: dict[str, Any]) -> bool:
    """Whether a file's energy and forces are n2p2's placeholder for "no reference" (an ``energy
    0`` line and all-zero forces, as in files written for prediction), not values to compare with."""
    energy, forces = reference.get("energy"), reference.get("forces")
    return energy is not None and float(energy) == 0.0 and (forces is None or not np.any(forces))


def load_potential_model(path: str | Path, unit: tuple[float, float]) -> torch.nn.Module:
    """The potential of an n2p2 folder or potential run folder, float64, eval mode."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: no such folder")
    from mpnn.potentials.load import load_potential

    try:
        model = load_potential(path, units=unit)
    except DataError:
        raise
    except (ValueError, KeyError) as error:  # a configuration the model builder refuses
        raise DataError(f"{path}: cannot build the potential: {' '.join(str(error).split())}") from None
    return model.double().eval()


def structure_files(paths: Sequence[str | Path]) -> list[Path]:
    """The files named, and for a folder its ``*.xyz`` and ``*.extxyz`` files (sorted by name)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in (".xyz", ".extxyz") and p.is_file())
            if not found:
                raise DataError(f"{path}: no *.xyz or *.extxyz files in this folder")
            files += found
        else:
            files.append(path)
    return files


def read_all(
    paths: Sequence[str], unit: tuple[float, float], elements: Sequence[int], cutoff: float | None = None
) -> list[Atoms]:
    """Every structure of the files (folders: :func:`structure_files`), checked against the model's
    elements and, with ``cutoff`` (Angstrom), the size of its neighbour lists."""
    from mpnn.data.atoms import check_elements, read_structures

    structures: list[Atoms] = []
    for path in structure_files(paths):
        read = read_structures(path, units=unit, cutoff=cutoff)
        check_elements(read, elements, str(path))
        structures += read
    return structures


def predict_structures(model: torch.nn.Module | N2p2Predictor, structures: Sequence[Atoms]) -> list[Atoms]:
    """Copies of ``structures`` with the model's results in a ``SinglePointCalculator``.

    ``model``: a potential (or committee) of PyTorch, or an n2p2 potential evaluated without it
    (:class:`~mpnn.potentials.n2p2_predict.N2p2Predictor`); structures are evaluated in batches of
    about :data:`BATCH_ATOMS` atoms. A file's own energy and forces are kept as
    ``info["ref_energy"]`` and ``arrays["ref_forces"]``. A potential that records its training
    ranges adds ``info["extrapolation_warnings"]`` and ``arrays["extrapolation"]`` (out-of-range
    functions per atom); a committee adds ``info["energy_std"]`` (eV), ``info["max_force_std"]``
    and ``arrays["forces_std"]`` (eV/A).
    """
    evaluate = getattr(model, "evaluate_structures", None)
    if evaluate is None:  # a model of PyTorch

        def evaluate(chunk: Sequence[Atoms], names: list[str]) -> tuple[dict[str, Any], list[int], bool]:
            return _evaluate(model, chunk, names)

    out: list[Atoms] = []
    chunk: list[Atoms] = []

    def flush() -> None:
        names = [f"input structure {len(out) + b} ({a.get_chemical_formula()})" for b, a in enumerate(chunk)]
        result, ptr, stress = evaluate(chunk, names)
        for b, atoms in enumerate(chunk):
            lo, hi = ptr[b], ptr[b + 1]
            out.append(_with_results(atoms, result, b, lo, hi, stress))
        chunk.clear()

    count = 0
    for atoms in structures:
        if chunk and count + len(atoms) > BATCH_ATOMS:
            flush()
            count = 0
        chunk.append(atoms)
        count += len(atoms)
    if chunk:
        flush()
    return out


def _evaluate(
    model: torch.nn.Module, chunk: Sequence[Atoms], names: list[str]
) -> tuple[dict[str, Any], list[int], bool]:
    """(results of :func:`~mpnn.potentials.committee.evaluate_potential`, the structures' atom
    ranges (B + 1,), whether stress was computed) of one batch of structures."""
    import torch

    from mpnn.data.atoms import atoms_to_molecule, collate_structures
    from mpnn.potentials.committee import evaluate_potential

    batch = collate_structures([atoms_to_molecule(a, targets=False) for a in chunk], model.cutoff)
    stress = batch.cell is not None
    result = evaluate_potential(model, batch.to(dtype=torch.float64), stress=stress, names=names)
    return result, batch.ptr.tolist(), stress


def _with_results(atoms: Atoms, result: dict[str, Any], b: int, lo: int, hi: int, stress: bool) -> Atoms:
    """A copy of ``atoms`` (structure ``b``, atoms ``lo:hi`` of the batch) with its results."""
    from mpnn.potentials.frames import clear_extras

    copy = clear_extras(atoms.copy())
    results: dict[str, Any] = {"energy": float(result["energy"][b]), "forces": result["forces"][lo:hi]}
    results["free_energy"] = results["energy"]
    if "energies" in result:
        results["energies"] = result["energies"][lo:hi]
    if stress and atoms.pbc.any() and atoms.cell.rank == 3:
        results["stress"] = result["stress"][b]
    reference = getattr(atoms.calc, "results", None) or {}
    if not is_placeholder(reference):
        if reference.get("energy") is not None:
            copy.info["ref_energy"] = float(reference["energy"])
        if reference.get("forces") is not None:
            copy.arrays["ref_forces"] = np.asarray(reference["forces"], dtype=np.float64)
    if "extrapolation" in result:
        copy.arrays["extrapolation"] = result["extrapolation"][lo:hi].astype(np.int64)
        copy.info["extrapolation_warnings"] = int(copy.arrays["extrapolation"].sum())
    if "energy_std" in result:
        copy.info["energy_std"] = float(result["energy_std"][b])
        copy.arrays["forces_std"] = result["forces_std"][lo:hi]
        copy.info["max_force_std"] = float(result["forces_std"][lo:hi].max(initial=0.0))
    copy.info["units"] = OUTPUT_UNITS
    copy.calc = SinglePointCalculator(copy, **results)
    return copy


def report_extrapolation(predicted: Sequence[Atoms], limit: int | None, what: str = "structures") -> None:
    """Warn (one line on stderr) about the structures' extrapolation warnings; past ``limit`` raise
    :class:`~mpnn.potentials.extrapolation.ExtrapolationError` instead."""
    import warnings

    from mpnn.potentials.extrapolation import ExtrapolationError, ExtrapolationWarning, limit_message, summary

    counts = [a.arrays["extrapolation"] for a in predicted if "extrapolation" in a.arrays]
    note = summary(counts, what)
    if not note:
        return
    total = sum(int(c.sum()) for c in counts)
    if limit is not None and total > limit:
        raise ExtrapolationError(limit_message(total, limit, note.split("; ")[1], "the structures"))
    warnings.warn(note, ExtrapolationWarning, stacklevel=2)


def write_extxyz(structures: Sequence[Atoms], path: str | Path) -> None:
    """All structures into one extended-XYZ file, written atomically."""
    from mpnn.files import write_text
    from mpnn.potentials.extxyz import extxyz_text

    text = extxyz_text(structures)  # ASE's text without importing ase.io (0.7 s), when it can
    if text is None:
        from ase.io import write

        buffer = io.StringIO()
        write(buffer, list(structures), format="extxyz")
        text = buffer.getvalue()
    write_text(text, path)


def reference_errors(predicted: Sequence[Atoms]) -> str:
    """``energy MAE ... meV/atom, force RMSE ... meV/A`` against the files' values, or ``""`` when
    no structure has a reference energy (n2p2's placeholder ``energy 0`` with zero forces is none)."""
    labelled = [a for a in predicted if "ref_energy" in a.info]
    if not labelled:
        return ""
    per_atom = [abs(a.get_potential_energy() - a.info["ref_energy"]) / len(a) for a in labelled]
    text = f"energy MAE {1000 * np.mean(per_atom):.4g} meV/atom"
    with_forces = [a for a in labelled if "ref_forces" in a.arrays]
    if with_forces:
        diff = np.concatenate([(a.get_forces() - a.arrays["ref_forces"]).ravel() for a in with_forces])
        text += f", force RMSE {1000 * np.sqrt(np.mean(diff**2)):.4g} meV/A"
    which = "" if len(labelled) == len(predicted) else f" ({len(labelled)} of {len(predicted)} structures)"
    return f"{text} against the reference values in the structure files{which}"


def cmd_predict_potential(args: argparse.Namespace) -> int:
    """``mpnn predict POTENTIAL STRUCTURES... -o OUT.extxyz``."""
    from mpnn.potentials.n2p2_predict import n2p2_predictor

    unit = args.units or (1.0, 1.0)
    out = args.out or "predictions.extxyz"
    check_suffix(out, EXTXYZ_SUFFIXES, "extended XYZ")
    model = None
    if folder_kind(args.model) == N2P2:  # one folder, no committee: nothing else to keep apart
        check_outputs(files=[out], inputs=args.inputs, read_dirs=[args.model])
        # Gaussian functions and small networks: the compiled kernels and numpy, without
        # importing PyTorch (1.5-2 s of the command's start)
        model = n2p2_predictor(args.model, unit)
    if model is None:
        use_torch()
        from mpnn.potentials.committee import potential_folders

        check_outputs(files=[out], inputs=args.inputs, read_dirs=potential_folders(args.model))
        model = load_potential_model(args.model, unit)
    structures = read_all(args.inputs, unit, model.elements, float(model.cutoff))
    predicted = predict_structures(model, structures)
    report_extrapolation(predicted, args.max_extrapolation_warnings)  # past the limit: nothing written
    write_extxyz(predicted, out)
    atoms = sum(len(a) for a in predicted)
    print(f"wrote energies and forces of {len(predicted)} structures ({atoms} atoms) to {out}")
    errors = reference_errors(predicted)
    if errors:
        print(errors)
    return 0


def register(subparsers: Any) -> None:
    """Add ``md`` and ``export`` to the ``mpnn`` parser."""
    _md_parser(subparsers)
    _export_parser(subparsers)


def add_structure_arguments(p: argparse.ArgumentParser) -> None:
    """MODEL, STRUCTURE, ``--index``, ``--units`` and ``--max-extrapolation-warnings``: what the
    commands that run one structure with a potential (``md``, ``relax``, ``mc``) share."""
    p.add_argument("model", metavar="MODEL", help="potential: n2p2 folder, run folder or committee folder")
    p.add_argument("structure", metavar="STRUCTURE", help="structure file (extxyz, n2p2 input.data, ...)")
    p.add_argument(
        "--index",
        type=int,
        default=0,
        metavar="I",
        help="which structure of the file (default: 0, the first; -1: the last)",
    )
    add_units_option(p, "units of the n2p2 files, e.g. bohr,hartree (default: angstrom,ev)")
    add_extrapolation_option(p)


def read_structure_argument(args: argparse.Namespace, model: torch.nn.Module) -> Atoms:
    """The structure ``--index`` of STRUCTURE (``add_structure_arguments``), checked against the
    model's elements and cutoff, without the file's energy and forces."""
    from mpnn.data.atoms import check_elements, read_structures

    unit = args.units or (1.0, 1.0)
    atoms = read_structures(args.structure, index=args.index, units=unit, cutoff=float(model.cutoff))[0]
    check_elements([atoms], model.elements, f"{args.structure}")
    atoms.calc = None
    return atoms


def _md_parser(sub: Any) -> None:
    """The ``mpnn md`` subcommand."""
    p = sub.add_parser(
        "md",
        help="molecular dynamics with a potential",
        description="NVE (velocity Verlet) or NVT (Langevin) dynamics of one structure with a potential; "
        "writes an extended-XYZ trajectory (positions, momenta, energy, forces) frame by frame.",
    )
    add_structure_arguments(p)
    p.add_argument("--steps", type=_count, required=True, metavar="N", help="number of time steps")
    p.add_argument("--timestep", type=_positive_float, required=True, metavar="FS", help="time step, fs")
    ensemble = p.add_mutually_exclusive_group(required=True)
    ensemble.add_argument(
        "--temperature",
        type=_positive_float,
        metavar="K",
        help="Langevin NVT at K kelvin (initial velocities drawn at K)",
    )
    ensemble.add_argument("--nve", action="store_true", help="NVE (velocity Verlet)")
    p.add_argument(
        "--init-temperature",
        type=_positive_float,
        metavar="K",
        help="with --nve: initial Maxwell-Boltzmann velocities at K (default: the file's)",
    )
    p.add_argument(
        "--friction",
        type=_positive_float,
        default=0.01,
        metavar="G",
        help="Langevin friction, 1/fs (default: %(default)s)",
    )
    add_out_option(
        p,
        "extended-XYZ trajectory (default: %(default)s)",
        short=True,
        metavar="TRAJ",
        default="trajectory.extxyz",
    )
    p.add_argument("--interval", type=_positive_int, default=1, metavar="K", help="write every K steps")
    p.add_argument("--seed", type=_seed, default=0, metavar="S", help="seed of velocities and noise")
    add_quiet_option(p, "no progress bar")
    p.set_defaults(func=cmd_md)


def cmd_md(args: argparse.Namespace) -> int:
    """``mpnn md``: run the dynamics and print the energy balance."""
    from mpnn.potentials.committee import potential_folders
    from mpnn.potentials.md import run_md

    if args.init_temperature is not None and not args.nve:
        raise DataError("--init-temperature goes with --nve (--temperature sets the initial velocities)")
    unit = args.units or (1.0, 1.0)
    check_suffix(args.out, EXTXYZ_SUFFIXES, "an extended-XYZ trajectory")
    partial = f"{args.out}.partial"  # where run_md writes the frames until the run ends
    check_outputs(files=[args.out, partial], inputs=[args.structure], read_dirs=potential_folders(args.model))
    model = load_potential_model(args.model, unit)
    atoms = read_structure_argument(args, model)
    log = run_md(
        model,
        atoms,
        args.steps,
        args.timestep,
        temperature_K=args.temperature,
        friction_per_fs=args.friction,
        trajectory_path=args.out,
        interval=args.interval,
        seed=args.seed,
        progress=not args.quiet,
        initial_temperature_K=args.init_temperature,
        max_extrapolation_warnings=args.max_extrapolation_warnings,
    )
    total = log.total
    n = len(atoms)
    what = "NVE" if args.nve else f"NVT {args.temperature:g} K"
    print(
        f"{what}: {args.steps} steps of {args.timestep:g} fs, {n} atoms; {len(log.step)} frames in {args.out}"
    )
    print(
        f"final temperature {log.temperature[-1]:.1f} K; total energy {total[-1]:.6f} eV, "
        f"change {(total[-1] - total[0]) / n:+.3e} eV/atom, max |change| "
        f"{np.abs(total - total[0]).max() / n:.3e} eV/atom"
    )
    report_calculator(atoms.calc, "steps")
    return 0


def report_calculator(calc: Any, what: str) -> None:
    """After a run through an :class:`~mpnn.potentials.calculator.MpnnCalculator`: a warning on
    stderr with its extrapolation warnings over all its calls (``what``: ``"steps"``, ...) and, for a
    committee, the largest force deviation it met on stdout."""
    import warnings

    from mpnn.potentials.extrapolation import ExtrapolationWarning

    if getattr(calc, "extrapolation_total", 0):
        warnings.warn(
            f"{calc.extrapolation_total} extrapolation warnings (symmetry functions outside the "
            f"training range) in {calc.extrapolated_calls} of {calc.calls} {what}; the frames' "
            "'extrapolation' arrays say which atoms",
            ExtrapolationWarning,
            stacklevel=2,
        )
    if getattr(calc, "max_force_std_seen", None) is not None:
        print(f"committee: largest force deviation {calc.max_force_std_seen:.4g} eV/A over the run")


def _export_parser(sub: Any) -> None:
    """The ``mpnn export`` subcommand."""
    p = sub.add_parser(
        "export",
        help="write a potential as n2p2 files (input.nn, scaling.data, weights.ZZZ.data)",
        description="Write a potential (a train-potential run, or an n2p2 folder) as an n2p2 potential "
        "folder that n2p2 and LAMMPS (via n2p2's pair style) can run. Units of the written files: "
        "those of the potential's symmetry functions (Angstrom and eV for potentials trained here).",
    )
    p.add_argument("model", metavar="MODEL", help="potential run folder or n2p2 potential folder")
    p.add_argument("out", metavar="OUT_DIR", help="folder to write (created; its n2p2 files are replaced)")
    add_units_option(p, "units of an n2p2 MODEL's files", metavar="L,E")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    """``mpnn export MODEL OUT_DIR``."""
    from mpnn.n2p2.convert import export_n2p2
    from mpnn.potentials.committee import potential_folders

    check_outputs(folders=[args.out], read_dirs=potential_folders(args.model))
    check_output_folder(args.out, N2P2, foreign=True)  # not into a run, ensemble or search
    model = load_potential_model(args.model, args.units or (1.0, 1.0))
    export_n2p2(model, args.out, source=args.model)
    print(f"wrote the n2p2 potential of {args.model} to {args.out}")
    return 0
