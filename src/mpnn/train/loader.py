"""Batches for training and evaluation: collated, float32, targets selected and in order.

A data set here is anything with ``len``, ``__getitem__ -> Molecule`` and ``y`` (M, K_all)
(e.g. :class:`mpnn.data.dataset.MoleculeSet`). Targets are taken from ``dataset.y`` and the
requested columns, so a model of one target sees a (B, 1) ``batch.y``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np
import torch

from mpnn.batch import HYDROGENS, Batch, Molecule, collate
from mpnn.train.distributed import Context, shard
from mpnn.train.targets import Totals


class MoleculeDataset(Protocol):
    """What the loader needs of a data set."""

    y: np.ndarray | torch.Tensor  # (M, K_all) float64, needed only when targets are loaded

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Molecule: ...


def target_values(dataset: MoleculeDataset, indices: np.ndarray, columns: Sequence[int]) -> np.ndarray:
    """(n, k) float64 ``dataset.y[indices][:, columns]`` (``y`` a tensor or an array)."""
    y = dataset.y.numpy() if isinstance(dataset.y, torch.Tensor) else np.asarray(dataset.y)
    rows = np.asarray(indices, dtype=np.int64)
    return np.asarray(y[np.ix_(rows, list(columns))], dtype=np.float64)


class BatchLoader:
    """Iterate over ``indices`` of ``dataset`` in batches of ``batch_size``.

    With ``shuffle`` the order of epoch ``e`` is a permutation drawn from a generator seeded
    by ``(seed, e)``: it depends on nothing else, so a resumed run sees the same batches.

    Args:
        dataset: molecules and their targets ``dataset.y`` (M, K_all).
        indices: (n,) positions in ``dataset`` to iterate over.
        columns: target columns of ``dataset.y`` to put in ``batch.y`` (B, len(columns));
            None for molecules without targets (``batch.y`` is None).
        batch_size: structures per batch (the last batch may be smaller).
        graph: edge set for :func:`mpnn.batch.collate` (``model.graph``).
        shuffle: draw a new order each epoch; else keep ``indices``' order.
        seed: seed of the shuffling.
        dtype: floating dtype of the batches.
        hydrogens: ``"explicit"`` or ``"implicit"`` (heavy atoms only), for
            :func:`mpnn.batch.collate` (``model.hydrogens``).
    """

    def __init__(
        self,
        dataset: MoleculeDataset,
        indices: Sequence[int] | np.ndarray,
        columns: Sequence[int] | None,
        batch_size: int,
        graph: str = "complete",
        shuffle: bool = False,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        *,
        hydrogens: str = "explicit",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if hydrogens not in HYDROGENS:
            raise ValueError(f"hydrogens must be one of {list(HYDROGENS)}, got {hydrogens!r}")
        self.dataset, self.batch_size, self.graph = dataset, batch_size, graph
        self.hydrogens = hydrogens
        self.indices = np.asarray(indices, dtype=np.int64)
        self.columns = None if columns is None else list(columns)
        self.shuffle, self.seed, self.dtype = shuffle, seed, dtype

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """(n,) the dataset indices in the order of epoch ``epoch``."""
        if not self.shuffle:
            return self.indices
        rng = np.random.default_rng([self.seed, epoch])
        return self.indices[rng.permutation(len(self.indices))]

    def batches(self, epoch: int) -> Iterator[Batch]:
        """The batches of epoch ``epoch``."""
        order = self.order(epoch)
        for start in range(0, len(order), self.batch_size):
            yield self.make_batch(order[start : start + self.batch_size])

    def make_batch(self, indices: np.ndarray) -> Batch:
        """One batch of the given dataset indices, targets from ``dataset.y``."""
        molecules = [self.dataset[int(i)] for i in indices]
        batch = collate(molecules, graph=self.graph, hydrogens=self.hydrogens)
        y = None
        if self.columns is not None:
            y = torch.from_numpy(target_values(self.dataset, indices, self.columns))
        return replace(batch, y=y).to(dtype=self.dtype)

    def steps(self, epoch: int, ctx: Context) -> Iterator[tuple[Batch, Totals]]:
        """This process's part of each global batch of epoch ``epoch`` and that batch's sizes
        (:mod:`mpnn.train.distributed`); a process without structures gets a stand-in."""
        order = self.order(epoch)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            mine = shard(chunk, ctx)
            totals = Totals(len(chunk), 0, 1.0 if len(mine) else 0.0)
            yield self.make_batch(mine if len(mine) else chunk[:1]), totals
