"""Inference speed of towers (Gilmer et al. 2017, Sec. 5.4): k = 1 against k = 8 at d = 200.

The same model family (``mpnn`` configuration: edge-network messages, GRU, set2set, raw distance,
explicit hydrogens, complete graph, T = 3) with the d = 200 state split into k towers of width
d/k, mixed after every step.  The k towers are one edge network with block-diagonal matrices
A(e) = diag(A_1(e), ..., A_k(e)) per direction (shared hidden edge layers, one output layer per
tower) and k GRUs batched in one module.  On the contracted path (complete graphs) a step costs
N·(H+1)·d²/k multiply-adds for the tower products plus slots·(H+1)·d for the sums over the
neighbours (slots = sum of n² over structures): at d = 200, H = 128, ~4-5x fewer for k = 8 than
for k = 1.  The paper reports k = 8 inferring about 2x faster than k = 1 at d = 200.  Molecules:
the bundled QM9 subset (or the full release with --full), batches of 128, float32, no gradients;
the configurations are timed in turn in the same process, several rounds, and each one's best
round is kept.  ``--threads`` sets torch's intra-op threads (default: torch's choice); on a
machine whose other cores are busy, one thread gives the steadier figures.

    python -m benchmarks.towers_speed [--dim 200] [--towers 1,8] [--molecules 1024] [--full] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from benchmarks.common import load_qm9, machine, our_batch
from mpnn.models import build_model


def model_for(dim: int, towers: int, features: int) -> torch.nn.Module:
    config = {"model": "mpnn", "dim": dim, "towers": towers, "steps": 3, "node_features": features,
              "message": "edge_network", "readout": "set2set", "edges": "raw_distance"}  # fmt: skip
    torch.manual_seed(0)
    return build_model(config).eval()


def seconds_per_pass(models: list[torch.nn.Module], batches: list, rounds: int) -> list[float]:
    """Best of ``rounds`` timings of one pass over ``batches``, per model; the models take turns."""
    best = [float("inf")] * len(models)
    with torch.inference_mode():
        for model in models:
            model(batches[0])  # warm-up
        for _ in range(rounds):
            for i, model in enumerate(models):
                start = time.perf_counter()
                for batch in batches:
                    model(batch)
                best[i] = min(best[i], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=200)
    parser.add_argument("--towers", default="1,8", help="comma-separated k values; the first is the anchor")
    parser.add_argument("--molecules", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="molecules from the full QM9 release")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data, source = load_qm9(full=args.full)
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(data), size=min(args.molecules, len(data)), replace=False)
    batches = [
        our_batch(data, chosen[i : i + args.batch_size]) for i in range(0, len(chosen), args.batch_size)
    ]
    atoms = sum(b.num_atoms for b in batches)
    print(f"machine: {machine()}")
    print(f"{len(chosen)} molecules of the {source} ({atoms} atoms), batches of {args.batch_size}, float32, "
          f"d = {args.dim}, T = 3")  # fmt: skip
    ks = [int(k) for k in args.towers.split(",")]
    models = [model_for(args.dim, k, data.x.shape[1]) for k in ks]
    times = seconds_per_pass(models, batches, args.rounds)
    anchor = len(chosen) / times[0]
    print(f"{'towers k':>8}  {'parameters':>10}  {'mol/s':>8}  {'speed-up vs k=' + str(ks[0]):>16}")
    for k, model, seconds in zip(ks, models, times, strict=True):
        rate = len(chosen) / seconds
        params = sum(p.numel() for p in model.parameters())
        print(f"{k:>8}  {params:>10,}  {rate:>8.1f}  {rate / anchor:>16.2f}")


if __name__ == "__main__":
    main()
