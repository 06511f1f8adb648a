"""HDNNP and SF-MPNN on liquid water (DeePMD-kit's 64-H2O example), the same data and budget.

Data: ``../shared/data/deepmd_water_64H2O.tar.xz`` (LGPL-3.0, used in place): 400 periodic frames of
192 atoms with energies (eV) and forces (eV/Angstrom). A seeded permutation (``--seed``, default 0)
splits them 320 / 80; the 320 train (``--valid`` of them pick the best epoch) and the 80 are the test
set. Both models get the same symmetry functions (``SYMMETRY``), loss, optimiser and wall-time
budget (``--budget`` seconds of training each; the HDNNP's energy networks read the functions,
the SF-MPNN's its last states), through ``mpnn train-potential``; the
commands are printed, and each run folder keeps ``metrics.csv`` (the learning curve) and
``test_metrics.csv``. Run the two models one after the other, or in two processes at once
(``--model hdnnp`` and ``--model sf_mpnn``, one thread each), then ``--report`` prints the table.

    python -m benchmarks.water_potentials [--model hdnnp|sf_mpnn|both] [--budget 1200] [--out runs/water]
    python -m benchmarks.water_potentials --report [--out runs/water]
"""

from __future__ import annotations

import argparse
import csv
import shlex
import sys
import tarfile
import time
from pathlib import Path

import ase.io
import numpy as np

from benchmarks.common import machine

ARCHIVE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "deepmd_water_64H2O.tar.xz"
#: Symmetry functions, energy networks and training settings shared by both models.
SYMMETRY = "--cutoff 5.0 --radial 8 --r-min 0.8 --angular 2 --angular-shifts 2 --zetas 1,4 --angular-type 9"
COMMON = (
    f"{SYMMETRY} --nodes 32,32 --activation t --batch-size 4 --lr 2e-3 --schedule linear "
    "--force-weight 10 --ema 0.99 --valid 0.1 --patience 0 --float32 --threads 1"
)
#: The learned steps of the SF-MPNN (its energy networks: one hidden layer on the last states).
MESSAGE = (
    "--model sf_mpnn --steps 2 --features 32 --embedding 32 --radial-basis 12 --message-cutoff 4.0 --nodes 32"
)
MODELS = {"hdnnp": COMMON.split(), "sf_mpnn": COMMON.split() + MESSAGE.split()}


def split(folder: Path, seed: int) -> tuple[Path, Path]:
    """``train.xyz`` (320 frames) and ``test.xyz`` (80) in ``folder``, from a seeded permutation."""
    from mpnn.data.deepmd import check_system, find_systems, iter_frames

    train, test = folder / "train.xyz", folder / "test.xyz"
    if train.is_file() and test.is_file():
        return train, test
    if not ARCHIVE.is_file():
        sys.exit(f"{ARCHIVE}: not found (the shared data folder beside the repository)")
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(ARCHIVE) as tar:
        tar.extractall(folder / "raw", filter="data")
    frames = [atoms for s in find_systems(folder / "raw") for _, _, atoms in iter_frames(check_system(s))]
    order = np.random.default_rng(seed).permutation(len(frames))
    ase.io.write(train, [frames[i] for i in order[:320]], format="extxyz")
    ase.io.write(test, [frames[i] for i in order[320:]], format="extxyz")
    return train, test


def train(name: str, data: tuple[Path, Path], out: Path, budget: float) -> None:
    from mpnn.cli import main_train_potential

    command = [str(data[0]), "--test", str(data[1]), "--time-budget", str(budget), "--out", str(out)]
    command += MODELS[name]
    print("mpnn train-potential " + shlex.join(command), flush=True)
    start = time.perf_counter()
    if main_train_potential(command):
        sys.exit(f"{name}: training failed")
    print(f"{name}: {(time.perf_counter() - start) / 60:.1f} min for the whole call", flush=True)


def report(out: Path) -> None:
    print(f"# {machine()}")
    header = f"{'model':>8} {'epochs':>6} {'train s':>8} {'E MAE meV/atom':>15} {'F MAE meV/A':>12}"
    print(f"{header} {'F RMSE':>8}")
    for name in MODELS:
        folder = out / name
        if not (folder / "test_metrics.csv").is_file():
            print(f"{name:>8}: no finished run in {folder}")
            continue
        with open(folder / "test_metrics.csv") as handle:
            row = {r["split"]: r for r in csv.DictReader(handle)}["test"]
        with open(folder / "metrics.csv") as handle:
            last = list(csv.DictReader(handle))[-1]
        print(
            f"{name:>8} {last['epoch']:>6} {float(last['elapsed_s']):8.0f} {float(row['energy_mae']):15.3f} "
            f"{float(row['force_mae']):12.2f} {float(row['force_rmse']):8.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=(*MODELS, "both"), default="both")
    parser.add_argument("--budget", type=float, default=1200.0, help="seconds of training per model")
    parser.add_argument("--out", default="runs/water", help="folder of the runs (and of the split data)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the 320/80 split")
    parser.add_argument("--report", action="store_true", help="only print the table of finished runs")
    args = parser.parse_args()
    out = Path(args.out)
    if not args.report:
        data = split(out.with_name(out.name + "-data"), args.seed)
        for name in MODELS if args.model == "both" else [args.model]:
            train(name, data, out / name, args.budget)
    report(out)


if __name__ == "__main__":
    main()
