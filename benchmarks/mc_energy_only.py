"""What Monte Carlo saves by evaluating energies alone: one call of our ASE calculator
(:class:`mpnn.potentials.calculator.MpnnCalculator`, float64, neighbour list rebuilt every call) with
``forces_with_energy=False`` (the forward pass, as ``mpnn mc`` runs it) against the default (forward
and backward: energy, forces and stress), on n2p2's Cu2S cell (144 atoms) and water box (1080 atoms).

Each call follows a displacement of one atom (as a Monte Carlo move does); the median over
``--calls`` calls per mode, the two modes alternating. Times a call in process, not a whole process.
The potentials come from ``../shared/data/n2p2_examples.tar.xz`` (unpacked into a temporary folder;
GPL-3.0 files used in place).

    OMP_NUM_THREADS=1 python -m benchmarks.mc_energy_only [--calls 20]
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
from mpnn.potentials.calculator import MpnnCalculator
from mpnn.potentials.load import load_potential

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
#: (folder in the archive, (Angstrom, eV) per unit of its files)
CASES = {"Cu2S_PBE": (1.0, 1.0), "H2O_RPBE-D3": (0.529177210903, 27.211386245988)}


def seconds_per_call(calc: MpnnCalculator, atoms, calls: int, rng: np.random.Generator) -> list[float]:
    atoms = atoms.copy()
    atoms.calc = calc
    atoms.get_potential_energy()  # warm-up
    times = []
    for _ in range(calls):
        atoms.positions[rng.integers(len(atoms))] += rng.uniform(-0.05, 0.05, 3)
        start = time.perf_counter()
        atoms.get_potential_energy()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    archive = SHARED / "n2p2_examples.tar.xz"
    if not archive.is_file():
        raise SystemExit(f"{archive}: not found")
    print(f"{machine()}; float64; one call in process (median of {args.calls})")
    with tempfile.TemporaryDirectory() as scratch:
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if any(f"/{c}/" in m.name for c in CASES)]
            tar.extractall(scratch, members=members, filter="data")
        for name, units in CASES.items():
            folder = Path(scratch) / "n2p2_examples" / "nnp-predict" / name
            model = load_potential(folder, units=units)
            atoms = read_structures(folder / "input.data", units=units)[0]
            atoms.calc = None
            rng = np.random.default_rng(0)
            full, lazy = [], []
            for _ in range(2):  # alternate the modes: a busy machine slows both alike
                full += seconds_per_call(MpnnCalculator(model), atoms, args.calls // 2, rng)
                lazy += seconds_per_call(
                    MpnnCalculator(model, forces_with_energy=False), atoms, args.calls // 2, rng
                )
            f, e = 1000 * np.median(full), 1000 * np.median(lazy)
            print(
                f"{name} ({len(atoms)} atoms): energy+forces+stress {f:.1f} ms, "
                f"energy only {e:.1f} ms ({f / e:.2f}x)"
            )


if __name__ == "__main__":
    main()
