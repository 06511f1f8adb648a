"""Batches for training and evaluation: collated, float32, targets selected and in order.

A data set here is anything with ``len``, ``__getitem__ -> Molecule`` and ``y`` (M, K_all):
:class:`mpnn.data.dataset.MoleculeSet` in memory, or a :class:`mpnn.data.store.StructureStore`
read lazily from disk. The loader reads ``y`` once, for its own indices and the requested columns
(n x k x 8 bytes), so a model of one target sees a (B, 1) ``batch.y``; molecules are read per
batch. With ``workers`` > 0 they are read and collated by that many ``DataLoader`` worker
processes (each opens the store itself), ahead of the training step, in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Protocol

import numpy as np
import torch

from mpnn.batch import HYDROGENS, Batch, Molecule, collate
from mpnn.train.distributed import Context, shard
from mpnn.train.targets import Totals

#: Batches each worker prepares ahead of the step (``DataLoader``'s ``prefetch_factor``).
PREFETCH = 4


class MoleculeDataset(Protocol):
    """What the loader needs of a data set."""

    y: np.ndarray | torch.Tensor  # (M, K_all) float64, needed only when targets are loaded

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Molecule: ...


def target_values(dataset: MoleculeDataset, indices: np.ndarray, columns: Sequence[int]) -> np.ndarray:
    """(n, k) float64 ``dataset.y[indices][:, columns]`` (``y`` a tensor or an array). A data set
    with ``target_chunks()`` (a structure store) is read chunk by chunk: only n x k values are held."""
    rows = np.asarray(indices, dtype=np.int64)
    chunks = getattr(dataset, "target_chunks", None)
    if chunks is None:
        y = dataset.y.numpy() if isinstance(dataset.y, torch.Tensor) else np.asarray(dataset.y)
        return np.asarray(y[np.ix_(rows, list(columns))], dtype=np.float64)
    if len(rows) and not (0 <= rows.min() and rows.max() < len(dataset)):
        raise IndexError(f"target rows out of range for {len(dataset)} structures")
    values = np.empty((len(rows), len(columns)), dtype=np.float64)
    order = np.argsort(rows, kind="stable")
    ordered, start = rows[order], 0
    for chunk in chunks():
        low, high = np.searchsorted(ordered, [start, start + len(chunk)])
        values[order[low:high]] = chunk[np.ix_(ordered[low:high] - start, list(columns))]
        start += len(chunk)
    return values


class BatchLoader:
    """Iterate over ``indices`` of ``dataset`` in batches of ``batch_size``.

    With ``shuffle`` the order of epoch ``e`` is a permutation drawn from a generator seeded
    by ``(seed, e)``: it depends on nothing else, so a resumed run sees the same batches, whatever
    the number of processes or workers.

    Args:
        dataset: molecules and their targets ``dataset.y`` (M, K_all).
        indices: (n,) positions in ``dataset`` to iterate over.
        columns: target columns of ``dataset.y`` to put in ``batch.y`` (B, len(columns));
            None for molecules without targets (``batch.y`` is None).
        batch_size: structures per batch (the last batch may be smaller); under ``torchrun`` the
            global batch, of which each process gets every ``world``-th structure.
        graph: edge set for :func:`mpnn.batch.collate` (``model.graph``).
        shuffle: draw a new order each epoch; else keep ``indices``' order.
        seed: seed of the shuffling.
        dtype: floating dtype of the batches.
        hydrogens: ``"explicit"`` or ``"implicit"`` (heavy atoms only), for
            :func:`mpnn.batch.collate` (``model.hydrogens``).
        workers: ``DataLoader`` worker processes reading and collating batches (0: in this process).
        collate_fn: makes a batch of molecules instead of :func:`mpnn.batch.collate` (e.g. the
            radius graph of a potential); a picklable callable, for worker processes.
        atoms: (M,) atoms per structure of ``dataset``, to count each global batch's atoms
            (:class:`~mpnn.train.targets.Totals`; force losses divide by them); None counts none.
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
        workers: int = 0,
        collate_fn: Callable[[list[Molecule]], Batch] | None = None,
        atoms: np.ndarray | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if hydrogens not in HYDROGENS:
            raise ValueError(f"hydrogens must be one of {list(HYDROGENS)}, got {hydrogens!r}")
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.dataset, self.batch_size, self.graph = dataset, batch_size, graph
        self.hydrogens, self.workers = hydrogens, workers
        self.indices = np.asarray(indices, dtype=np.int64)
        self.columns = None if columns is None else list(columns)
        self.shuffle, self.seed, self.dtype = shuffle, seed, dtype
        #: (n, k) float64 targets of ``indices``, in their order (None without columns).
        self.targets = None if self.columns is None else target_values(dataset, self.indices, self.columns)
        self.atoms = atoms
        self._items = _Items(dataset, self.indices, self.targets)
        self._collate = _Collate(graph, hydrogens, dtype, collate_fn)
        self._reader: torch.utils.data.DataLoader | None = None
        self._chunks = _Chunks()

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    def positions(self, epoch: int) -> np.ndarray:
        """(n,) positions in ``indices`` in the order of epoch ``epoch``."""
        if not self.shuffle:
            return np.arange(len(self.indices))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.indices))

    def order(self, epoch: int) -> np.ndarray:
        """(n,) the dataset indices in the order of epoch ``epoch``."""
        return self.indices[self.positions(epoch)]

    def make_batch(self, positions: np.ndarray) -> Batch:
        """One batch of the structures at ``positions`` in ``indices``, read here."""
        return self._collate([self._items[int(p)] for p in positions])

    def _global_batches(self, epoch: int) -> list[np.ndarray]:
        """Positions in ``indices`` of each global batch of epoch ``epoch``."""
        order = self.positions(epoch)
        return [order[start : start + self.batch_size] for start in range(0, len(order), self.batch_size)]

    def _read(self, chunks: list[np.ndarray]) -> Iterator[Batch]:
        """The batches of ``chunks`` (positions in ``indices``), read here or by the workers."""
        if self.workers == 0:
            for chunk in chunks:
                yield self.make_batch(chunk)
            return
        if self._reader is None:
            self._reader = torch.utils.data.DataLoader(
                self._items,
                batch_sampler=self._chunks,
                num_workers=self.workers,
                collate_fn=self._collate,
                persistent_workers=True,
                prefetch_factor=PREFETCH,
            )
        self._chunks.chunks = [chunk.tolist() for chunk in chunks]
        yield from self._reader

    def batches(self, epoch: int) -> Iterator[Batch]:
        """The batches of epoch ``epoch``."""
        yield from self._read(self._global_batches(epoch))

    def steps(self, epoch: int, ctx: Context) -> Iterator[tuple[Batch, Totals]]:
        """This process's part of each global batch of epoch ``epoch`` and that batch's sizes
        (:mod:`mpnn.train.distributed`); a process without structures gets a stand-in."""
        chunks = self._global_batches(epoch)
        mine = [shard(chunk, ctx) for chunk in chunks]
        totals = [
            Totals(
                len(chunk),
                0 if self.atoms is None else int(self.atoms[self.indices[chunk]].sum()),
                1.0 if len(part) else 0.0,
            )
            for chunk, part in zip(chunks, mine, strict=True)
        ]
        read = [part if len(part) else chunk[:1] for chunk, part in zip(chunks, mine, strict=True)]
        yield from zip(self._read(read), totals, strict=True)


class _Items(torch.utils.data.Dataset):
    """Item p: the molecule at position p of the loader's ``indices`` and its targets (k,) or None."""

    def __init__(self, dataset: MoleculeDataset, indices: np.ndarray, targets: np.ndarray | None) -> None:
        self.dataset, self.indices, self.targets = dataset, indices, targets

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[Molecule, np.ndarray | None]:
        y = None if self.targets is None else self.targets[position]
        return self.dataset[int(self.indices[position])], y


class _Chunks(torch.utils.data.Sampler[list[int]]):
    """The positions of each batch of the current epoch (set by the loader before it reads)."""

    def __init__(self) -> None:
        self.chunks: list[list[int]] = []

    def __len__(self) -> int:
        return len(self.chunks)

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.chunks)


class _Collate:
    """``[(molecule, targets)] -> Batch`` in ``dtype``: :func:`mpnn.batch.collate` or ``make``; the
    loader's targets replace ``y`` where it has them (``make`` keeps its own ``y`` otherwise). A plain
    object, so that worker processes started by ``spawn`` receive it pickled."""

    def __init__(
        self, graph: str, hydrogens: str, dtype: torch.dtype, make: Callable[[list[Molecule]], Batch] | None
    ) -> None:
        self.graph, self.hydrogens, self.dtype, self.make = graph, hydrogens, dtype, make

    def __call__(self, items: list[tuple[Molecule, np.ndarray | None]]) -> Batch:
        molecules = [m for m, _ in items]
        if self.make is not None:
            batch = self.make(molecules)
        else:
            batch = collate(molecules, graph=self.graph, hydrogens=self.hydrogens)
        if items and items[0][1] is not None:
            batch = replace(batch, y=torch.from_numpy(np.stack([y for _, y in items])))
        elif self.make is None:
            batch = replace(batch, y=None)
        return batch.to(dtype=self.dtype)
