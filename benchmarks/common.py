"""Shared pieces of the QM9 benchmarks: data, our loader, timing."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from mpnn.batch import collate
from mpnn.data.dataset import MoleculeSet
from mpnn.data.qm9 import bundled_release_path
from mpnn.data.qm9_build import build_qm9
from mpnn.models import build_model

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


class Contender:
    """A model under benchmark: its batching, its loss on standardised U0, its U0 prediction (eV)."""

    name = ""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def batch(self, indices):  # pragma: no cover - interface
        raise NotImplementedError

    def loss(self, batch) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def predict(self, batch) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def train_step(self, indices, lr: float | None = None, clip: float | None = None) -> None:
        """One Adam step on the molecules ``indices`` (batching included)."""
        if lr is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        batch = self.batch(indices)
        self.optimizer.zero_grad()
        self.loss(batch).backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.optimizer.step()

    @torch.no_grad()
    def infer(self, indices) -> torch.Tensor:
        """(B,) U0 predictions in eV (batching included)."""
        return self.predict(self.batch(indices)).double().view(-1)


class OurEnnS2S(Contender):
    """Our enn-s2s at the PyG example's size: d 64, edge network 6 -> 128 -> 64·64, T 3, set2set 3."""

    name = "mpnn enn-s2s"

    def __init__(self, data: MoleculeSet, target: int, mean: torch.Tensor, std: torch.Tensor) -> None:
        model = build_model(
            {"model": "enn_s2s", "dim": 64, "edge_hidden": [128], "steps": 3, "set2set_steps": 3}
        )
        model.set_standardization(mean.view(1).float(), std.view(1).float())
        super().__init__(model)
        self.data, self.target = data, target

    def batch(self, indices):
        return our_batch(self.data, indices)

    def loss(self, batch) -> torch.Tensor:
        target = (batch.y[:, self.target : self.target + 1] - self.model.mean) / self.model.std
        return torch.nn.functional.mse_loss(self.model.standardized(batch), target)

    def predict(self, batch) -> torch.Tensor:
        return self.model(batch)
