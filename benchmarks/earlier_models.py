"""The earlier models of Gilmer et al. (2017, Sec. 2) and enn-s2s, trained on the same data for the same time.

Runs ``mpnn compare earlier_models`` (the built-in ablation: Duvenaud et al. fingerprints, GG-NN,
interaction networks, Weave, DTNN, GCN and enn-s2s, each with its own default sizes) on the bundled
QM9 subset (4,000 molecules: 3,200 train, 400 valid, 400 test; or ``--data`` for the release),
all 13 targets jointly, float32 on the CPU, ``--minutes`` of training per model with the same
learning-rate schedule, then prints the test table (MAE and error ratio per target, in the
layout of the paper's Table 2), the number of parameters and the wall time of each model.
The run folder keeps every model, ``report.md`` and ``report.png``; running the script again with
the same ``--out`` resumes (finished models are not retrained).

    python -m benchmarks.earlier_models [--minutes 4] [--out runs/earlier-models] [--data PATH]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

from benchmarks.common import machine
from mpnn.cli import main as mpnn_main
from mpnn.train.checkpoint import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget of each model")
    parser.add_argument("--out", default="runs/earlier-models")
    parser.add_argument("--data", help="QM9 release (default: the bundled subset)")
    args = parser.parse_args()
    command = [
        "compare",
        "earlier_models",
        "--time-budget",
        f"{args.minutes * 60:g}",
        "--out",
        args.out,
        "--quiet",
    ]
    if args.data:
        command += ["--data", args.data]
    print(f"machine: {machine()}")
    print("mpnn " + " ".join(command), flush=True)
    start = time.perf_counter()
    status = mpnn_main(command)
    if status:
        sys.exit(status)
    print(f"\nwall time of this call: {(time.perf_counter() - start) / 60:.1f} min")
    print(f"{'model':<22} {'parameters':>10} {'epochs':>7} {'train s':>8}")
    for folder in sorted(p for p in Path(args.out).iterdir() if (p / "config.json").is_file()):
        model, _ = load_model(folder)
        with open(folder / "metrics.csv") as handle:
            rows = list(csv.DictReader(handle))
        seconds = (
            float(rows[-1].get("elapsed_s") or rows[-1].get("time_s") or "nan") if rows else float("nan")
        )
        params = sum(p.numel() for p in model.parameters())
        print(f"{folder.name:<22} {params:>10,} {len(rows):>7} {seconds:>8.0f}")


if __name__ == "__main__":
    main()
