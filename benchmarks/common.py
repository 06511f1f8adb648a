"""Shared pieces of the QM9 benchmarks: data, our loader, timing."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from mpnn.batch import collate
from mpnn.data.dataset import MoleculeSet, build_qm9
from mpnn.data.qm9 import bundled_release_path

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def load_qm9(full: bool = True) -> tuple[MoleculeSet, str]:
    """The full QM9 release from ../shared/data (cached after the first build), else the bundled subset."""
    release = SHARED / "qm9_dsgdb9nsd.xyz.tar.xz"
    if full and release.is_file():
        unc = SHARED / "qm9_uncharacterized.txt"
        data = build_qm9(
            release.resolve(),
            uncharacterized_path=unc.resolve(),
            atomref_path=(SHARED / "qm9_atomref.txt").resolve(),
        )
        return data, "QM9 release (130,831 molecules)"
    return build_qm9(bundled_release_path()), "bundled QM9 subset"


def our_batch(data: MoleculeSet, indices, graph: str = "complete", dtype=torch.float32):
    return collate([data[int(i)] for i in indices], graph=graph).to(dtype=dtype)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"


def rate(step: Callable[[list[int]], None], chunks: list[list[int]], min_seconds: float) -> float:
    """Molecules per second of ``step`` over ``chunks`` (cycled), after one warm-up chunk."""
    step(chunks[0])
    done, start, i = 0, time.perf_counter(), 1
    while True:
        chunk = chunks[i % len(chunks)]
        step(chunk)
        done += len(chunk)
        i += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds and i > len(chunks) // 2:
            return done / elapsed
