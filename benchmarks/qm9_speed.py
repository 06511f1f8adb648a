"""Throughput of our enn-s2s against PyTorch Geometric's QM9 NNConv example, same molecules.

Both models: d = 64, T = 3 tied steps, edge network 5/6 -> 128 -> 64·64, set2set 3 steps,
complete graphs, batch 128, Adam, float32.  Each model's time includes its own batching from
per-molecule records (our collate; PyG's Complete + Distance transforms and Batch.from_data_list).
Prints molecules/s of training (forward, backward, Adam step) and inference, and the ratios.

    python benchmarks/qm9_speed.py [--molecules 2048] [--seconds 30] [--threads 2]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from common import OurEnnS2S, load_qm9, machine, our_batch, rate
from pyg_reference import PygContender

from mpnn.data.qm9 import TARGETS

U0 = TARGETS.index("U0")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=30.0, help="minimum time per measurement")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--bundled", action="store_true", help="use the bundled subset, not ../shared")
    parser.add_argument("--skip-pyg", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    data, source = load_qm9(full=not args.bundled)
    pick = np.random.default_rng(0).permutation(len(data))[: args.molecules]
    data = data.subset(pick)
    mean, std = data.y[:, U0].mean(), data.y[:, U0].std()
    chunks = [
        list(range(i, min(i + args.batch_size, len(data)))) for i in range(0, len(data), args.batch_size)
    ]
    print(
        f"# {source}: {len(data)} molecules, {data.num_atoms / len(data):.1f} atoms/molecule, "
        f"batch {args.batch_size}, float32\n# {machine()}"
    )

    contenders = [OurEnnS2S(data, U0, mean, std)]
    if not args.skip_pyg:
        contenders.append(PygContender(data, U0, mean, std))
    results = {
        c.name: (rate(c.train_step, chunks, args.seconds), rate(c.infer, chunks, args.seconds))
        for c in contenders
    }
    loop = loop_rate(data, args.batch_size, args.seconds)

    # float32 against float64 on the same weights and molecules (our model)
    ours = contenders[0].model
    batch = our_batch(data, chunks[0], dtype=torch.float64)
    with torch.no_grad():
        p64 = ours.double()(batch)
        p32 = ours.float()(batch.to(dtype=torch.float32)).double()
    deviation = float((p32 - p64).abs().max() / p64.std())

    print("\n| model | train mol/s | inference mol/s |\n|---|---:|---:|")
    for name, (train, infer) in results.items():
        print(f"| {name} | {train:.1f} | {infer:.1f} |")
    print(f"| mpnn enn-s2s, epochs of the training loop (`Trainer.train_epoch`) | {loop:.1f} | |")
    if "PyG NNConv example" in results:
        (ot, oi), (pt, pi) = results["mpnn enn-s2s"], results["PyG NNConv example"]
        print(f"| **ratio mpnn / PyG** | **{ot / pt:.1f}x** | **{oi / pi:.1f}x** |")
        print(f"| **ratio mpnn training loop / PyG** | **{loop / pt:.1f}x** | |")
    print(
        f"\nfloat32 vs float64 (our model, {len(chunks[0])} molecules): "
        f"max |difference| = {deviation:.1e} x std of the predictions"
    )


def loop_rate(data, batch_size: int, min_seconds: float) -> float:
    """Molecules per second of training through the one loop: whole epochs of
    :meth:`mpnn.train.trainer.Trainer.train_epoch` (shuffled loader, collation, forward, backward,
    clipping, Adam, metrics) over ``data``, after a warm-up epoch."""
    import tempfile
    import time
    from pathlib import Path

    from mpnn.models import build_model
    from mpnn.train.distributed import Context
    from mpnn.train.loader import BatchLoader
    from mpnn.train.properties import fit_standardization
    from mpnn.train.settings import TrainSettings
    from mpnn.train.targets import Properties
    from mpnn.train.trainer import Trainer

    torch.manual_seed(0)
    model = build_model({"model": "enn_s2s", "dim": 64, "edge_hidden": [128], "steps": 3, "set2set_steps": 3})
    fit_standardization(model, data.y[:, [U0]].numpy())
    loader = BatchLoader(data, np.arange(len(data)), [U0], batch_size, shuffle=True, seed=0)
    settings = TrainSettings(epochs=1000, batch_size=batch_size)
    with tempfile.TemporaryDirectory() as out:
        run = Trainer(model, [Properties(["U0"], model.mean, model.std)], settings, Path(out),
                      monitor="valid_ratio", ctx=Context(), export_dtype=None)  # fmt: skip
        run.train_epoch(loader, False)
        done, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < min_seconds or not done:
            run.train_epoch(loader, False)
            done += len(data)
    return done / elapsed


if __name__ == "__main__":
    main()
