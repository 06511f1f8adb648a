"""Same data, same wall-clock budget: test MAE on U0 of our enn-s2s and of PyG's QM9 example.

Both models train on the paper's split of the QM9 release (10,000 validation and 10,000 test
molecules drawn with a seed, the rest for training) with the same recipe: U0 atomisation
energy standardised on the training split, MSE, Adam (lr 1e-3, batch 128 as PyG's example),
the learning rate constant for the first half of the budget and then decaying linearly to
1e-5 at its end.  After the budget each model is evaluated on the same test molecules
(float32).  Goal: our MAE at most half of PyG's.

    python benchmarks/qm9_budget.py [--minutes 10] [--test-molecules 2000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from common import Contender, OurEnnS2S, load_qm9, machine
from pyg_reference import PygContender

from mpnn.data.qm9 import TARGETS, split_indices

U0 = TARGETS.index("U0")
CHEMICAL_ACCURACY_EV = 0.043


def train_for(
    seconds: float,
    step: Callable[[np.ndarray, float], None],
    train_idx: np.ndarray,
    batch_size: int,
    lr: float,
    seed: int,
) -> tuple[int, int]:
    """Shuffled epochs over train_idx until the budget is spent; returns (steps, molecules)."""
    rng = np.random.default_rng(seed)
    start, steps, seen = time.perf_counter(), 0, 0
    while True:
        order = rng.permutation(train_idx)
        for i in range(0, len(order) - batch_size + 1, batch_size):
            fraction = (time.perf_counter() - start) / seconds
            if fraction >= 1:
                return steps, seen
            decay = max(0.0, (fraction - 0.5) / 0.5)
            step(order[i : i + batch_size], lr * (1 - decay) + 1e-5 * decay)
            steps, seen = steps + 1, seen + batch_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget of each model")
    parser.add_argument("--test-molecules", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data, source = load_qm9()
    train_idx, _, test_idx = split_indices(len(data), 10_000, 10_000, seed=args.seed)
    test_idx = test_idx[: args.test_molecules]
    y = data.y[:, U0]
    mean, std = y[train_idx].mean(), y[train_idx].std()
    budget = args.minutes * 60
    print(
        f"# {source}: {len(train_idx)} training molecules, {len(test_idx)} test molecules, "
        f"budget {args.minutes:g} min per model, batch {args.batch_size}, float32\n# {machine()}"
    )

    contenders = [OurEnnS2S(data, U0, mean, std), PygContender(data, U0, mean, std)]

    def test_mae(contender: Contender) -> float:
        chunks = [test_idx[i : i + 256] for i in range(0, len(test_idx), 256)]
        errors = [(contender.infer(idx) - y[idx]).abs() for idx in chunks]
        return float(torch.cat(errors).mean())

    rows = []
    for contender in contenders:
        contender.model.train()
        step = lambda idx, lr, c=contender: c.train_step(idx, lr, clip=4.0)  # noqa: E731
        steps, seen = train_for(budget, step, train_idx, args.batch_size, 1e-3, args.seed)
        contender.model.eval()
        mae = test_mae(contender)
        rows.append((contender.name, steps, seen / len(train_idx), mae))
        print(
            f"# {contender.name}: {steps} steps, {seen / len(train_idx):.2f} epochs, test MAE {mae:.4f} eV",
            flush=True,
        )

    print("\n| model | steps | epochs | U0 test MAE (eV) | error ratio |\n|---|---:|---:|---:|---:|")
    for name, steps, epochs, mae in rows:
        print(f"| {name} | {steps} | {epochs:.2f} | {mae:.4f} | {mae / CHEMICAL_ACCURACY_EV:.1f} |")
    print(f"| **MAE mpnn / PyG** | | | **{rows[0][3] / rows[1][3]:.2f}** | |")


if __name__ == "__main__":
    main()
