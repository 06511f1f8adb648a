"""Potentials trained from a structure store read lazily (``mpnn train-potential STORE --lazy``).

The cached path (:mod:`mpnn.train.potential_data`) keeps every structure's symmetry functions and
their derivatives in memory: fast, but the set must fit. Here nothing grows with the set but the
(M,) index arrays and the (M, S) composition used for the energy offsets:

* one streaming pass over the training structures gives the elements, the statistics of every
  symmetry function (:class:`~mpnn.train.potential_data.DescriptorMoments`: min, max, mean,
  sigma; n2p2's scaling) and the energy terms (offsets by least squares on the composition, the
  scale from the force RMS: :func:`~mpnn.train.potential_data.energy_terms_of`);
* training reads each batch from the store (:class:`~mpnn.train.loader.BatchLoader` with
  ``DataLoader`` workers, shuffled by ``(seed, epoch)``, every P-th structure per process under
  ``torchrun``) and differentiates the model's own functions of the positions (the same modules and
  force code as prediction and MD; no cache);
* the errors of ``best.pt`` on the training and validation structures are summed batch by batch
  (:func:`streamed_errors`).

The steps are those of the cached path on the same structures, to rounding (a test checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from tqdm.auto import tqdm

from mpnn.batch import Batch, Molecule
from mpnn.data.store import StructureStore
from mpnn.errors import DataError
from mpnn.models.hdnnp import PotentialModel
from mpnn.train import potential_data as pdata
from mpnn.train.distributed import Context
from mpnn.train.loader import BatchLoader
from mpnn.train.metrics import PotentialErrors
from mpnn.train.targets import Energy, Forces, Predictions

#: Structures per chunk of the statistics pass.
CHUNK = 256


def open_energy_store(path: str, *, forces: bool, units: Sequence[float] = (1.0, 1.0)) -> StructureStore:
    """The store ``path`` of structures with energies (eV), and forces if ``forces``, checked."""
    store = StructureStore(path)
    if tuple(units) != (1.0, 1.0):
        raise DataError(f"{path}: --units applies to n2p2 input.data files; a store holds Angstrom and eV")
    if list(store.target_names) != ["energy"] or list(store.target_units) != ["eV"]:
        held = ", ".join(store.target_names) or "no targets"
        raise DataError(f"{path}: a store of structures with energies (eV) is needed; this one holds {held}")
    if not len(store):
        raise DataError(f"{path}: no structures")
    if forces and "forces" not in store.meta["fields"]:
        raise DataError(f"{path}: the store has no forces (train on energies alone with --force-weight 0)")
    return store


def store_elements(store: StructureStore, indices: np.ndarray, progress: bool = False) -> list[int]:
    """The sorted atomic numbers of the structures ``indices`` (a pass reading only ``z``)."""
    seen: set[int] = set()
    for i in tqdm(indices, desc="elements", disable=not progress, leave=False, unit="structure"):
        seen.update(np.unique(store.read(int(i), ("z",))["z"]).tolist())
    return sorted(seen)


class StructureCollate:
    """Molecules -> a float64 :class:`Batch` with the radius graph of ``cutoff`` (forces zero when
    absent); a plain object, so ``DataLoader`` workers receive it."""

    def __init__(self, cutoff: float) -> None:
        self.cutoff = cutoff

    def __call__(self, molecules: list[Molecule]) -> Batch:
        from mpnn.data.atoms import collate_structures

        if any(m.y is None for m in molecules):
            raise DataError(f"{next(m.name for m in molecules if m.y is None)}: no energy")
        batch = collate_structures(molecules, self.cutoff).to(dtype=torch.float64)
        finite = torch.isfinite(batch.y).all() and (
            batch.forces is None or torch.isfinite(batch.forces).all()
        )
        if not finite:  # one check per batch; the structure is looked for only when it fails
            bad = next(
                m for m in molecules
                if not (torch.isfinite(m.y).all() and (m.forces is None or torch.isfinite(m.forces).all()))
            )  # fmt: skip
            raise DataError(f"{bad.name}: a non-finite energy or force")
        return batch if batch.forces is not None else replace(batch, forces=torch.zeros_like(batch.pos))


def streamed_inputs(
    model: PotentialModel,
    store: StructureStore,
    indices: np.ndarray,
    num_species: int,
    progress: bool = False,
) -> tuple[list[torch.Tensor], tuple[list[float], float]]:
    """One pass over ``indices``: the statistics of the model's functions per species and the
    energy terms (offsets, scale) of :func:`~mpnn.train.potential_data.energy_terms_of`."""
    message, collate = model.symmetry_functions, StructureCollate(model.cutoff)
    moments = pdata.DescriptorMoments(message.sizes)
    counts = torch.zeros((len(indices), num_species), dtype=torch.float64)
    energy = torch.zeros(len(indices), dtype=torch.float64)
    square, components = 0.0, 0
    starts = range(0, len(indices), CHUNK)
    for start in tqdm(starts, desc="symmetry-function statistics", disable=not progress, leave=False):
        batch = collate([store[int(i)] for i in indices[start : start + CHUNK]])
        with torch.no_grad():
            species = message.species(batch)
            moments.add(message.raw(batch, model.net.edge_input(batch)), species)
        rows = batch.batch + start
        counts.index_put_((rows, species), torch.ones_like(rows, dtype=torch.float64), accumulate=True)
        energy[start : start + batch.num_graphs] = batch.y.reshape(-1)
        square += float(batch.forces.square().sum())
        components += batch.forces.numel()
    return moments.result(), pdata.energy_terms_of(counts, energy, square, components)


def store_loader(
    store: StructureStore,
    indices: np.ndarray,
    cutoff: float,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    workers: int = 0,
) -> BatchLoader:
    """Batches of the structures ``indices`` of ``store``, read per batch (by ``workers`` processes)."""
    return BatchLoader(
        store,
        indices,
        None,
        batch_size,
        shuffle=shuffle,
        seed=seed,
        dtype=dtype,
        workers=workers,
        collate_fn=StructureCollate(cutoff),
        atoms=store.atom_counts(),
    )


def streamed_errors(
    model: PotentialModel, loader: BatchLoader, split: str, *, forces: bool = True
) -> PotentialErrors:
    """Errors of ``model`` on the loader's structures, summed batch by batch (float64)."""
    predictions, energy, force = Predictions(model.eval()), Energy(), Forces()
    sums: dict[str, torch.Tensor] = {}
    structures = atoms = 0
    for batch, _ in loader.steps(0, Context()):
        batch = batch.to(dtype=torch.float64)
        with torch.enable_grad() if forces else torch.no_grad():
            predicted = predictions(batch, forces=forces)
        parts = {"energy": energy.sums(predicted["energy"], batch)}
        if forces:
            parts["forces"] = force.sums(predicted["forces"], batch)
        for key, value in parts.items():
            sums[key] = value if key not in sums else sums[key] + value
        structures, atoms = structures + batch.num_graphs, atoms + batch.num_atoms
    e = energy.metrics(sums["energy"], split)
    f = force.metrics(sums.get("forces"), split)
    return PotentialErrors(
        split,
        structures,
        atoms,
        e[f"{split}_energy_mae"],
        e[f"{split}_energy_rmse"],
        f[f"{split}_force_mae"],
        f[f"{split}_force_rmse"],
    )
