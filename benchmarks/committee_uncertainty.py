"""How well a committee's spread and the extrapolation warnings flag its errors on a test set.

Runs ``mpnn predict COMMITTEE TEST -o OUT`` (float64, in process, the thread count printed) and
reports, against the test file's reference energies and forces: the committee's energy MAE and
force MAE/RMSE; the Pearson correlation between each structure's largest per-atom force deviation
``max_force_std`` and its largest per-atom force error |F - F_ref|, and between ``energy_std``
and |E - E_ref|; the mean largest force error of the 10 % of structures with the largest
deviation against the others; and the same for structures with and without extrapolation
warnings.

    python -m benchmarks.committee_uncertainty COMMITTEE TEST.xyz [--out predicted.extxyz]
"""

from __future__ import annotations

import argparse

import ase.io
import numpy as np

from benchmarks.common import machine
from mpnn import cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("committee", help="a folder of two or more potentials")
    parser.add_argument("test", help="structures with reference energies and forces")
    parser.add_argument("--out", default="committee_predicted.extxyz")
    args = parser.parse_args()
    print(machine(), "| float64 | mpnn predict in process")
    if cli.main(["predict", args.committee, args.test, "-o", args.out]) != 0:
        raise SystemExit(1)
    frames = ase.io.read(args.out, ":")
    deviation = np.array([a.info["max_force_std"] for a in frames])
    spread = np.array([a.info["energy_std"] for a in frames])
    differences = [a.get_forces() - a.arrays["ref_forces"] for a in frames]
    force_error = np.array([np.linalg.norm(d, axis=1).max() for d in differences])  # eV/A
    energy_error = np.array([abs(a.get_potential_energy() - a.info["ref_energy"]) for a in frames])
    components = 1000 * np.concatenate([d.ravel() for d in differences])  # meV/A
    per_atom = 1000 * energy_error / np.array([len(a) for a in frames])  # meV/atom
    print(
        f"{len(frames)} structures: energy MAE {per_atom.mean():.4g} meV/atom, force MAE "
        f"{np.abs(components).mean():.4g} meV/A, RMSE {np.sqrt((components**2).mean()):.4g} meV/A"
    )
    print(f"corr(max_force_std, largest force error) = {np.corrcoef(deviation, force_error)[0, 1]:.3f}")
    print(f"corr(energy_std, |energy error|) = {np.corrcoef(spread, energy_error)[0, 1]:.3f}")
    warned = np.array([a.info.get("extrapolation_warnings", 0) > 0 for a in frames])
    uncertain = deviation >= np.quantile(deviation, 0.9)
    for name, flagged in (("most uncertain (top 10 %)", uncertain), ("with extrapolation warnings", warned)):
        if flagged.any() and (~flagged).any():
            mean, rest = 1000 * force_error[flagged].mean(), 1000 * force_error[~flagged].mean()
            print(
                f"largest force error, mean: {mean:.1f} meV/A in {int(flagged.sum())} {name}, "
                f"{rest:.1f} in the others"
            )


if __name__ == "__main__":
    main()
