"""NVE molecular dynamics of n2p2's 1080-atom water box with its H2O_RPBE-D3 potential, through our ASE
calculator (:class:`mpnn.potentials.calculator.MpnnCalculator`, float64, neighbour list rebuilt every step).

Velocity Verlet, 1000 steps of 0.5 fs (0.5 ps) from Maxwell-Boltzmann velocities at 300 K (centre of mass
at rest). Prints the wall time per step and the total-energy conservation per atom:

* drift: E_tot(end) - E_tot(0) and the slope of a least-squares line through E_tot(t) (eV/atom/ps);
* max |E_tot(t) - E_tot(0)| over the run; the goal is < 1e-4 eV/atom.

The potential and the structure come from ``../shared/data/n2p2_examples.tar.xz`` (unpacked into a
temporary folder; GPL-3.0 files used in place) or from ``--folder`` (an ``nnp-predict/H2O_RPBE-D3``
folder). Units of the files: Bohr and Hartree. ``--potential RUN --structure FILE`` runs a potential
trained here (Angstrom, eV; an HDNNP or an SF-MPNN) on the first structure of FILE instead, e.g. the
SF-MPNN of ``benchmarks.water_potentials`` on a 192-atom frame of its test set.

    python -m benchmarks.md_water_nve [--steps 1000] [--timestep 0.5] [--trajectory traj.extxyz]
    python -m benchmarks.md_water_nve --potential runs/water/sf_mpnn --structure runs/water-data/test.xyz
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.common import machine
from mpnn.data.atoms import read_structures
from mpnn.n2p2.convert import parse_units
from mpnn.potentials.load import load_potential
from mpnn.potentials.md import run_md

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
MEMBER = "n2p2_examples/nnp-predict/H2O_RPBE-D3"


def potential_folder(given: str | None, scratch: Path) -> Path:
    if given:
        return Path(given)
    archive = SHARED / "n2p2_examples.tar.xz"
    if not archive.is_file():
        raise SystemExit(f"{archive}: not found; pass --folder nnp-predict/H2O_RPBE-D3")
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith(MEMBER + "/")]
        tar.extractall(scratch, members=members, filter="data")
    return scratch / MEMBER


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--folder", help="the nnp-predict/H2O_RPBE-D3 folder (default: from ../shared/data)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--timestep", type=float, default=0.5, help="fs")
    parser.add_argument("--temperature", type=float, default=300.0, help="initial temperature, K")
    parser.add_argument("--interval", type=int, default=1, help="record the energy every K steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trajectory", help="also write an extxyz trajectory (every --interval steps)")
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--potential", help="a potential run folder (Angstrom, eV) instead of n2p2's")
    parser.add_argument("--structure", help="with --potential: the structure file (its first frame)")
    args = parser.parse_args()

    if args.potential:
        if not args.structure:
            raise SystemExit("--potential needs --structure")
        model = load_potential(args.potential)
        atoms = read_structures(args.structure, index=0)[0]
        atoms.calc = None
    else:
        units = parse_units("bohr,hartree")
        with tempfile.TemporaryDirectory() as scratch:
            folder = potential_folder(args.folder, Path(scratch))
            model = load_potential(folder, units=units)
            atoms = read_structures(folder / "input.data", units=units)[0]
    n = len(atoms)
    print(f"machine: {machine()}")
    lengths = np.round(atoms.cell.lengths(), 3).tolist()
    what = model.config.get("model", "?")
    print(f"water box: {n} atoms, cell {lengths} A, cutoff {model.cutoff:.3f} A, model {what}")
    start = time.perf_counter()
    log = run_md(model, atoms, args.steps, args.timestep, initial_temperature_K=args.temperature,
                 trajectory_path=args.trajectory, interval=args.interval, seed=args.seed,
                 progress=args.progress)  # fmt: skip
    wall = time.perf_counter() - start
    total = log.total
    time_ps = np.asarray(log.time_fs) / 1000.0
    deviation = np.abs(total - total[0]).max() / n
    slope = np.polyfit(time_ps, total / n, 1)[0] if len(total) > 1 else float("nan")
    per_step = wall / max(args.steps, 1)
    print(f"NVE: {args.steps} steps of {args.timestep:g} fs ({args.steps * args.timestep / 1000:g} ps) from "
          f"{args.temperature:g} K; final temperature {log.temperature[-1]:.1f} K")  # fmt: skip
    print(f"time: {wall:.1f} s, {per_step:.3f} s/step, {1e6 * per_step / n:.1f} us/atom/step")
    print(f"total energy: drift {(total[-1] - total[0]) / n:+.3e} eV/atom over the run, fit slope "
          f"{slope:+.3e} eV/atom/ps; max |E(t) - E(0)| {deviation:.3e} eV/atom "
          f"(goal < 1e-4: {'met' if deviation < 1e-4 else 'NOT met'})")  # fmt: skip


if __name__ == "__main__":
    main()
