"""Learning curves of potential runs side by side: validation force and energy MAE against training time.

Reads each run folder's ``metrics.csv`` (written by ``mpnn train-potential``) and prints a Markdown
table of the validation errors at fractions of the training time (the epoch closest to each), and
with ``--plot FILE`` draws force MAE against training seconds for every run (log scale).

    python -m benchmarks.learning_curves runs/ethanol-hdnnp runs/ethanol-sf [--labels HDNNP,SF-MPNN]
        [--plot docs/learning_curves.png]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def curve(folder: Path) -> list[dict[str, float]]:
    with open(folder / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in rows]


def at(rows: list[dict[str, float]], seconds: float) -> dict[str, float]:
    return min(rows, key=lambda r: abs(r["elapsed_s"] - seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders")
    parser.add_argument("--labels", help="comma-separated names of the runs")
    parser.add_argument("--points", type=int, default=8, help="rows of the table")
    parser.add_argument("--plot", type=Path, help="draw the force curves into this PNG")
    args = parser.parse_args()
    if args.plot and args.plot.suffix.lower() != ".png":
        parser.error(f"--plot {args.plot}: a .png file is written there")
    labels = args.labels.split(",") if args.labels else [r.name for r in args.runs]
    curves = [curve(r) for r in args.runs]
    longest = max(c[-1]["elapsed_s"] for c in curves)
    columns = " | ".join(f"{name}: epoch, valid E / F MAE" for name in labels)
    print(f"| training time (s) | {columns} |")
    print("|---:|" + "---|" * len(labels))
    for k in range(1, args.points + 1):
        seconds = longest * k / args.points
        cells = []
        for rows in curves:
            row = at(rows, seconds)
            cells.append(f"{int(row['epoch'])}, {row['valid_energy_mae']:.3f} / {row['valid_force_mae']:.2f}")
        print(f"| {seconds:.0f} | " + " | ".join(cells) + " |")
    print("(validation MAE: energy meV/atom, forces meV/A, at the epoch closest to each time)")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for name, rows in zip(labels, curves, strict=True):
            ax.plot([r["elapsed_s"] for r in rows], [r["valid_force_mae"] for r in rows], label=name, lw=1)
        ax.set_yscale("log")
        ax.set_xlabel("training time (s)")
        ax.set_ylabel("validation force MAE (meV/Å)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
