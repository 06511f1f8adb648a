"""Train an HDNNP or an SF-MPNN on revised-MD17 ethanol with ``mpnn train-potential``; report test errors.

Data: ``../shared/data/botnet_ethanol_rmd17.tar.gz`` (BOTNet data sets, MIT): ``train.xyz`` (1000
configurations, of which ``--valid`` are held out for early stopping) and ``test_MD.xyz`` (1000),
energies in eV and forces in eV/Angstrom (PBE/def2-SVP).  Goal: test force MAE <= 15 meV/Angstrom
(GAP 14.8; ANI-type networks ~16-24).  The command it runs is printed; the run folder keeps
``metrics.csv``, ``test_metrics.csv``, the parity plots and the model (``best.pt``); the data are
unpacked beside it (``<out>-data/``); running the script again with the same ``--out`` resumes an
interrupted run (the wall time printed is then that of the last call; ``metrics.csv`` has the
training time). ``--model sf_mpnn`` trains the SF-MPNN (:mod:`mpnn.models.sf_mpnn`) on the same
symmetry functions with ``SF_MPNN`` added (goal: test force MAE <= 5 meV/Angstrom, energy <= 0.1
meV/atom); ``--time-budget S`` replaces the epochs by S seconds of training, the same budget for both
models.

    python -m benchmarks.ethanol_train [--out runs/ethanol] [--epochs N | --time-budget S] [--quick]
        [--model hdnnp|sf_mpnn] [-- more train-potential options, which override SETTINGS]
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import sys
import tarfile
import time
from pathlib import Path

from benchmarks.common import machine
from mpnn.cli import main_train_potential as train_potential

ARCHIVE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "botnet_ethanol_rmd17.tar.gz"
GOAL_FORCE_MAE = {"hdnnp": 15.0, "sf_mpnn": 5.0}  # meV/Angstrom
#: The settings of the reported run (``mpnn train-potential --help`` explains them).
SETTINGS = (
    "--valid 0.05 --cutoff 5.0 --radial 16 --angular 4 --angular-shifts 8 --zetas 1,2,4,8,16 "
    "--angular-type 9 --nodes 64,64 --activation t --batch-size 16 --lr 1e-3 --schedule linear "
    "--force-weight 10 --patience 0 --float32"
).split()
#: What the SF-MPNN adds: T - 1 learned steps; --nodes becomes its energy networks on h^T.
SF_MPNN = "--model sf_mpnn --steps 2 --features 64 --embedding 64 --message filter --nodes 64".split()


def unpack(folder: Path) -> tuple[Path, Path]:
    """``train.xyz`` and ``test_MD.xyz`` from the archive, unpacked into ``folder``."""
    if not ARCHIVE.is_file():
        sys.exit(f"{ARCHIVE}: not found (the shared data folder beside the repository)")
    with tarfile.open(ARCHIVE) as tar:
        for name in ("dataset_ethanol/train.xyz", "dataset_ethanol/test_MD.xyz"):
            if not (folder / name).is_file():
                tar.extract(name, folder, filter="data")
    return folder / "dataset_ethanol" / "train.xyz", folder / "dataset_ethanol" / "test_MD.xyz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/ethanol", help="run folder (an existing run is resumed)")
    parser.add_argument("--epochs", type=int, default=1500)
    parser.add_argument("--time-budget", type=float, help="seconds of training instead of --epochs")
    parser.add_argument("--model", choices=("hdnnp", "sf_mpnn"), default="hdnnp")
    parser.add_argument("--quick", action="store_true", help="20 epochs: check that it runs")
    parser.add_argument("more", nargs="*", help="after --: train-potential options (override SETTINGS)")
    args = parser.parse_args()
    epochs = 20 if args.quick else args.epochs
    out = Path(args.out)
    # beside the run folder (a run folder never holds its inputs), in a fixed place so that running
    # again resumes the run
    train, test = unpack(out.with_name(out.name + "-data"))
    length = ["--time-budget", str(args.time_budget)] if args.time_budget and not args.quick else []
    length = length or ["--epochs", str(epochs)]
    extra = SF_MPNN if args.model == "sf_mpnn" else []
    command = [str(train), "--test", str(test), *length, "--out", str(out), *SETTINGS, *extra, *args.more]
    print("mpnn train-potential " + shlex.join(command), flush=True)
    start = time.perf_counter()
    status = train_potential(command)
    wall = time.perf_counter() - start
    if status:
        sys.exit(status)
    with open(out / "test_metrics.csv") as handle:
        rows = {row["split"]: row for row in csv.DictReader(handle)}
    config = json.loads((out / "config.json").read_text())
    sizes = {
        e: len(f)
        for e, f in zip(config["model"]["elements"], config["model"]["symmetry_functions"], strict=True)
    }
    test_row = rows["test"]
    force_mae = float(test_row["force_mae"])
    print(f"\nmachine: {machine()}")
    print(f"symmetry functions per element: {sizes} ({sum(sizes.values())} in all)")
    print(f"wall time (this call, descriptors + training + test): {wall / 60:.1f} min")
    energy_mae, energy_rmse = float(test_row["energy_mae"]), float(test_row["energy_rmse"])
    print(
        f"test ({test_row['structures']} structures): energy MAE {energy_mae:.3f} meV/atom "
        f"(RMSE {energy_rmse:.3f}), force MAE {force_mae:.2f} meV/A "
        f"(RMSE {float(test_row['force_rmse']):.2f})"
    )
    goal = GOAL_FORCE_MAE[args.model]
    verdict = "met" if force_mae <= goal else "NOT met"
    print(f"goal: force MAE <= {goal} meV/A (GAP 14.8, HDNNP 11.4, NequIP ~3): {verdict}")


if __name__ == "__main__":
    main()
