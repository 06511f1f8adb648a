"""Processes against threads on one machine: the one training loop on 1 process x T threads and on
P processes x 1 thread (``torchrun``, DDP over gloo), same global batch, same structures.

Workloads: QM9 enn-s2s (the PyG example's size: d 64, edge network 128, T 3, set2set 3; float32;
batch 128; molecules of the bundled QM9 subset) and the rMD17 ethanol HDNNP of
``benchmarks/ethanol_train.py`` (energies and forces, cached symmetry functions; float32; batch 16).
Each configuration runs in its own processes; after one warm-up epoch, ``--epochs`` epochs of
training steps (``Trainer.train_epoch``: batching, forward, forces, backward, all-reduce, Adam) are
timed in process, between barriers; validation is not timed. Prints structures/s and the
efficiency: the rate on P processes over P times the single-thread rate, and over the rate of one
process with P threads.

    python benchmarks/scaling.py [--processes 2] [--epochs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def qm9_workload(count: int):
    """(model, targets, loader, atoms per structure) for enn-s2s on ``count`` QM9 molecules."""
    from mpnn.data.qm9 import TARGETS, bundled_release_path
    from mpnn.data.qm9_build import build_qm9
    from mpnn.models import build_model
    from mpnn.train.loader import BatchLoader
    from mpnn.train.properties import fit_standardization
    from mpnn.train.targets import Properties

    data = build_qm9(bundled_release_path())
    pick = np.random.default_rng(0).permutation(len(data))[:count]
    torch.manual_seed(0)
    model = build_model({"model": "enn_s2s", "dim": 64, "edge_hidden": [128], "steps": 3, "set2set_steps": 3})
    column = TARGETS.index("U0")
    fit_standardization(model, data.y[pick][:, [column]].numpy())
    loader = BatchLoader(data, pick, [column], 128, shuffle=True, seed=0)
    atoms = float(data.atom_ptr.diff()[pick].double().mean())
    return model, [Properties(["U0"], model.mean, model.std)], loader, atoms


def ethanol_workload(count: int):
    """(model, targets, loader, atoms per structure) for the ethanol HDNNP on ``count`` structures."""
    import tarfile

    from benchmarks.ethanol_train import ARCHIVE
    from mpnn.train import potential_data as pdata
    from mpnn.train.potential_run import PotentialSpec, _new_potential, read_set, targets_of
    from mpnn.train.settings import potential_settings

    folder = Path(tempfile.mkdtemp())
    with tarfile.open(ARCHIVE) as tar:
        tar.extract("dataset_ethanol/train.xyz", folder, filter="data")
    molecules = read_set(str(folder / "dataset_ethanol" / "train.xyz"), forces=True)[:count]
    shutil.rmtree(folder)
    settings = potential_settings(batch_size=16, float32=True)
    symmetry = {
        "n_radial": 16,
        "n_angular": 4,
        "angular_shifts": 8,
        "zetas": [1, 2, 4, 8, 16],
        "angular_types": [9],
    }
    spec = PotentialSpec(train="unused", cutoff=5.0, nodes=[64, 64], symmetry=symmetry, training=settings)
    model, structures = _new_potential(spec, ["C", "H", "O"], molecules, False, lambda _: None)
    for parameter in model.parameters():
        parameter.data = parameter.data.float()
    loader = pdata.StructureLoader(structures, 16, shuffle=True, seed=0, dtype=torch.float32)
    return model, targets_of(settings), loader, 9.0


def worker(name: str, count: int, epochs: int, threads: int) -> None:
    """Time ``epochs`` training epochs of workload ``name``; rank 0 prints one JSON line."""
    from mpnn.train.distributed import context
    from mpnn.train.settings import TrainSettings
    from mpnn.train.trainer import Trainer

    torch.set_num_threads(threads)
    ctx = context()
    model, targets, loader, atoms = (qm9_workload if name == "qm9" else ethanol_workload)(count)
    out = Path(tempfile.mkdtemp())
    settings = TrainSettings(epochs=epochs + 1, batch_size=loader.batch_size, clip=None)
    run = Trainer(model, targets, settings, out, monitor="valid_loss", ctx=ctx, export_dtype=None)
    run.train_epoch(loader, False)  # warm-up
    ctx.barrier()
    start = time.perf_counter()
    for _ in range(epochs):
        run.train_epoch(loader, False)
    ctx.barrier()
    elapsed = time.perf_counter() - start
    shutil.rmtree(out)
    if ctx.main:
        structures = epochs * count
        print(json.dumps({"structures_per_s": structures / elapsed, "atoms_per_structure": atoms}))


def launch(name: str, count: int, epochs: int, processes: int, threads: int) -> dict[str, float]:
    """Run the worker on ``processes`` x ``threads``; its JSON line."""
    me = [str(Path(__file__).resolve()), "--worker", name, "--count", str(count), "--epochs", str(epochs)]
    me += ["--threads", str(threads)]
    if processes == 1:
        command = [sys.executable, *me]
    else:
        torchrun = str(Path(sys.executable).parent / "torchrun")
        command = [torchrun, "--standalone", f"--nproc_per_node={processes}", *me]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": f"{ROOT}:{ROOT / 'src'}"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{name} on {processes} x {threads}: failed\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--qm9", type=int, default=2048, help="QM9 molecules")
    parser.add_argument("--ethanol", type=int, default=960, help="ethanol structures")
    parser.add_argument("--worker", choices=("qm9", "ethanol"), help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.count, args.epochs, args.threads)
        return
    p = args.processes
    print(f"# the one training loop; float32; timed in process (training steps only); {os.cpu_count()} cores")
    print(f"\n| workload | 1 x 1 thread | 1 x {p} threads | {p} x 1 thread | vs {p} x (1 x 1) | vs 1 x {p} |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, count in (("qm9", args.qm9), ("ethanol", args.ethanol)):
        single = launch(name, count, args.epochs, 1, 1)["structures_per_s"]
        threads = launch(name, count, args.epochs, 1, p)["structures_per_s"]
        procs = launch(name, count, args.epochs, p, 1)["structures_per_s"]
        label = "QM9 enn-s2s, batch 128" if name == "qm9" else "ethanol HDNNP, batch 16"
        print(
            f"| {label} (structures/s) | {single:.1f} | {threads:.1f} | {procs:.1f} | "
            f"{procs / (p * single):.0%} | {procs / threads:.2f}x |"
        )


if __name__ == "__main__":
    main()
