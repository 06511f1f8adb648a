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
from common import load_qm9, machine, our_batch
from pyg_reference import PygLoader, PygNNConvNet, to_pyg

from mpnn.data.qm9 import TARGETS, split_indices
from mpnn.models import build_model

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


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


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

    ours = build_model({"model": "enn_s2s", "dim": 64, "edge_hidden": [128], "steps": 3, "set2set_steps": 3})
    ours.set_standardization(mean.view(1).float(), std.view(1).float())
    our_opt = torch.optim.Adam(ours.parameters(), lr=1e-3)

    def our_step(idx, lr):
        set_lr(our_opt, lr)
        batch = our_batch(data, idx)
        our_opt.zero_grad()
        target = (batch.y[:, U0 : U0 + 1] - ours.mean) / ours.std
        loss = torch.nn.functional.mse_loss(ours.standardized(batch), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ours.parameters(), 4.0)
        our_opt.step()

    pyg = PygNNConvNet(data.x.shape[1])
    pyg_opt = torch.optim.Adam(pyg.parameters(), lr=1e-3)
    loader = PygLoader([to_pyg(data[i]) for i in range(len(data))])

    def pyg_step(idx, lr):
        set_lr(pyg_opt, lr)
        batch = loader.batch(idx)
        pyg_opt.zero_grad()
        target = ((batch.y[:, U0] - mean) / std).float().view(-1, 1)
        loss = torch.nn.functional.mse_loss(pyg(batch), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(pyg.parameters(), 4.0)
        pyg_opt.step()

    @torch.no_grad()
    def test_mae(predict: Callable[[np.ndarray], torch.Tensor]) -> float:
        errors = [
            (predict(test_idx[i : i + 256]).double().view(-1) - y[test_idx[i : i + 256]]).abs()
            for i in range(0, len(test_idx), 256)
        ]
        return float(torch.cat(errors).mean())

    rows = []
    for name, step, model, predict in [
        ("mpnn enn-s2s", our_step, ours, lambda idx: ours(our_batch(data, idx))),
        (
            "PyG NNConv example",
            pyg_step,
            pyg,
            lambda idx: pyg(loader.batch(idx)) * std.float() + mean.float(),
        ),
    ]:
        model.train()
        steps, seen = train_for(budget, step, train_idx, args.batch_size, 1e-3, args.seed)
        model.eval()
        mae = test_mae(predict)
        rows.append((name, steps, seen / len(train_idx), mae))
        print(
            f"# {name}: {steps} steps, {seen / len(train_idx):.2f} epochs, test MAE {mae:.4f} eV", flush=True
        )

    print("\n| model | steps | epochs | U0 test MAE (eV) | error ratio |\n|---|---:|---:|---:|---:|")
    for name, steps, epochs, mae in rows:
        print(f"| {name} | {steps} | {epochs:.2f} | {mae:.4f} | {mae / CHEMICAL_ACCURACY_EV:.1f} |")
    print(f"| **MAE mpnn / PyG** | | | **{rows[0][3] / rows[1][3]:.2f}** | |")


if __name__ == "__main__":
    main()
