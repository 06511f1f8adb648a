r"""The structures of a potential's training set, collated once, with their symmetry functions cached.

:func:`build_structures` collates M structures with N atoms and E directed edges (neighbour
pairs within the model's cutoff, ``edge_index = [source j, target i]``) into one flat
:class:`~mpnn.batch.Batch` and, for a model whose message can cache its inputs (an HDNNP's
:class:`~mpnn.messages.symmetry_functions.SymmetryFunctions`), adds ``descriptors`` (N, W) and
``descriptor_grad`` (E, W, 3) made by the message itself (:mod:`mpnn.messages.symmetry_cache`).
:class:`StructureLoader` hands out the batches of an epoch with their cache, so a training step
runs the model's own modules (scaling, element networks, sum, and the forces of
:func:`mpnn.potentials.forces.evaluate`) without recomputing the functions. The scaling
statistics and the energy offsets come from the cache too (:func:`statistics`, :func:`energy_terms`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from mpnn.batch import Batch, Molecule
from mpnn.messages.symmetry_cache import jacobian
from mpnn.messages.symmetry_functions import SymmetryFunctions
from mpnn.models.hdnnp import PotentialModel
from mpnn.train.distributed import Context, shard
from mpnn.train.targets import Totals

#: Structures whose symmetry functions and Jacobians are computed at once.
CHUNK = 1024


@dataclass
class StructureSet:
    """M structures as one flat batch (with its cache), ``edge_ptr`` (M + 1,) delimiting the edges
    of each structure and ``species`` (N,) each atom's species index in the model."""

    batch: Batch
    edge_ptr: Tensor
    species: Tensor

    def __len__(self) -> int:
        return self.batch.num_graphs

    @property
    def energy(self) -> Tensor:
        """(M,) float64 reference energies, eV."""
        return self.batch.y.reshape(-1).double()

    def atoms_per_structure(self) -> Tensor:
        """(M,) int64 number of atoms of each structure."""
        return self.batch.ptr.diff()

    def select(self, indices: Sequence[int] | Tensor | np.ndarray) -> Batch:
        """The batch of the structures ``indices`` (in that order), atoms and edges renumbered."""
        b = self.batch
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        atoms, atom_ptr, owner = _ranges(b.ptr, idx)
        edges, _, edge_owner = _ranges(self.edge_ptr, idx)
        shift = (atom_ptr[:-1] - b.ptr[idx])[edge_owner]

        def pick(value: Tensor | None, rows: Tensor) -> Tensor | None:
            return None if value is None else value[rows]

        return Batch(
            z=b.z[atoms],
            pos=b.pos[atoms],
            x=b.x[atoms],
            edge_index=b.edge_index[:, edges] + shift,
            edge_type=b.edge_type[edges],
            batch=owner,
            ptr=atom_ptr,
            y=pick(b.y, idx),
            cell=pick(b.cell, idx),
            pbc=pick(b.pbc, idx),
            shift=pick(b.shift, edges),
            forces=pick(b.forces, atoms),
            descriptors=pick(b.descriptors, atoms),
            descriptor_grad=pick(b.descriptor_grad, edges),
        )


def _ranges(ptr: Tensor, idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Concatenated ranges ptr[m]:ptr[m+1] of the structures idx; their new ptr; owner of each."""
    counts = ptr[idx + 1] - ptr[idx]
    new_ptr = torch.zeros(idx.numel() + 1, dtype=torch.long)
    new_ptr[1:] = torch.cumsum(counts, 0)
    owner = torch.repeat_interleave(torch.arange(idx.numel()), counts)
    items = ptr[idx][owner] + torch.arange(int(new_ptr[-1])) - new_ptr[:-1][owner]
    return items, new_ptr, owner


def build_structures(
    model: PotentialModel,
    molecules: Sequence[Molecule],
    *,
    chunk: int = CHUNK,
    progress: bool = False,
    desc: str = "symmetry functions",
    cache: bool = True,
) -> StructureSet:
    """``molecules`` collated for ``model`` (float64), with its message's cache.

    Each structure needs ``y`` (its energy, eV); ``forces`` may be None (then zeros are stored).
    Without ``cache`` (or for a model whose first message is not symmetry functions) the batches
    carry no cache and training differentiates the model's own functions of the positions.
    """
    from mpnn.data.atoms import collate_structures

    message = model.symmetry_functions
    cache = cache and isinstance(message, SymmetryFunctions)
    parts = []
    starts = range(0, len(molecules), chunk)
    for start in tqdm(starts, desc=desc, disable=not progress, leave=False, dynamic_ncols=True):
        batch = collate_structures(list(molecules[start : start + chunk]), model.cutoff).to(
            dtype=torch.float64
        )
        if batch.forces is None:
            batch = replace(batch, forces=torch.zeros_like(batch.pos))
        if cache:
            vectors = model.net.edge_input(batch).detach()
            g, dg = jacobian(message, batch, vectors)
            batch = replace(batch, descriptors=g, descriptor_grad=dg)
        parts.append(batch)
    batch, edge_ptr = _concatenate(parts)
    return StructureSet(batch, edge_ptr, message.species(batch))


def _concatenate(parts: list[Batch]) -> tuple[Batch, Tensor]:
    """One batch of the chunks' batches (cells of zeros where some chunks have none); edge_ptr."""
    periodic = any(p.cell is not None for p in parts)
    atoms = edges = 0
    fields: dict[str, list[Tensor]] = {k: [] for k in ("edge_index", "batch", "cell", "pbc", "shift")}
    counts, edge_counts = [], []
    for p in parts:
        fields["edge_index"].append(p.edge_index + atoms)
        fields["batch"].append(p.batch + sum(len(c) for c in counts))
        counts.append(p.ptr.diff())
        edge_counts.append(torch.bincount(p.batch[p.edge_index[1]], minlength=p.num_graphs))
        if periodic:
            fields["cell"].append(p.cell if p.cell is not None else p.pos.new_zeros((p.num_graphs, 3, 3)))
            fields["pbc"].append(
                p.pbc if p.pbc is not None else torch.zeros((p.num_graphs, 3), dtype=torch.bool)
            )
            fields["shift"].append(p.shift if p.shift is not None else p.pos.new_zeros((p.num_edges, 3)))
        atoms, edges = atoms + p.num_atoms, edges + p.num_edges

    def cat(name: str) -> Tensor:
        return torch.cat([getattr(p, name) for p in parts])

    def ptr(c: list[Tensor]) -> Tensor:
        return torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(torch.cat(c), 0)])

    batch = Batch(
        z=cat("z"),
        pos=cat("pos"),
        x=cat("x"),
        edge_index=torch.cat(fields["edge_index"], 1),
        edge_type=cat("edge_type"),
        batch=torch.cat(fields["batch"]),
        ptr=ptr(counts),
        y=cat("y"),
        cell=torch.cat(fields["cell"]) if periodic else None,
        pbc=torch.cat(fields["pbc"]) if periodic else None,
        shift=torch.cat(fields["shift"]) if periodic else None,
        forces=cat("forces"),
        descriptors=cat("descriptors") if parts[0].descriptors is not None else None,
        descriptor_grad=cat("descriptor_grad") if parts[0].descriptors is not None else None,
    )
    return batch, ptr(edge_counts)


class StructureLoader:
    """The batches of a :class:`StructureSet`, in ``dtype``: every structure once per epoch.

    With ``shuffle`` the order of epoch ``e`` is a permutation drawn from ``(seed, e)``, so a
    resumed run sees the same batches; ``batch_size`` is the global batch (each process takes its
    share, :func:`mpnn.train.distributed.shard`).
    """

    def __init__(
        self,
        structures: StructureSet,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        self.structures, self.batch_size, self.shuffle = structures, batch_size, shuffle
        self.seed, self.dtype = seed, dtype
        self._atoms = structures.atoms_per_structure().numpy()
        if dtype != torch.float64:  # cast once, not per batch
            self.structures = replace(structures, batch=structures.batch.to(dtype=dtype))

    def __len__(self) -> int:
        return -(-len(self.structures) // self.batch_size)

    def steps(self, epoch: int, ctx: Context) -> Iterator[tuple[Batch, Totals]]:
        """This process's part of each global batch of epoch ``epoch`` and that batch's sizes."""
        count = len(self.structures)
        order = (
            np.random.default_rng([self.seed, epoch]).permutation(count) if self.shuffle else np.arange(count)
        )
        for start in range(0, count, self.batch_size):
            chunk = order[start : start + self.batch_size]
            mine = shard(chunk, ctx)
            totals = Totals(len(chunk), int(self._atoms[chunk].sum()), 1.0 if len(mine) else 0.0)
            yield self.structures.select(mine if len(mine) else chunk[:1]), totals


def statistics(structures: StructureSet, sizes: Sequence[int]) -> list[Tensor]:
    """Per species s, (sizes[s], 4) min, max, mean, sigma (population) of its atoms' functions."""
    moments = DescriptorMoments(sizes)
    moments.add(structures.batch.descriptors, structures.species)
    return moments.result()


class DescriptorMoments:
    """Per species, the minimum, maximum, sum and sum of squares of each of its functions, added
    chunk by chunk (one streaming pass); :meth:`result` is what :func:`statistics` returns."""

    def __init__(self, sizes: Sequence[int]) -> None:
        self.sizes = list(sizes)
        inf = torch.tensor(float("inf"), dtype=torch.float64)
        self.low = [inf.expand(n).clone() for n in self.sizes]
        self.high = [-inf.expand(n).clone() for n in self.sizes]
        self.total = [torch.zeros(n, dtype=torch.float64) for n in self.sizes]
        self.squares = [torch.zeros(n, dtype=torch.float64) for n in self.sizes]
        self.count = [0] * len(self.sizes)

    def add(self, descriptors: Tensor, species: Tensor) -> None:
        """Add the functions (N, W) of N atoms of the given species (N,)."""
        for s, n in enumerate(self.sizes):
            values = descriptors[species == s, :n].double()
            if values.shape[0] == 0:
                continue
            self.low[s] = torch.minimum(self.low[s], values.min(0).values)
            self.high[s] = torch.maximum(self.high[s], values.max(0).values)
            self.total[s] += values.sum(0)
            self.squares[s] += (values * values).sum(0)
            self.count[s] += values.shape[0]

    def result(self) -> list[Tensor]:
        out = []
        for s, n in enumerate(self.sizes):
            if self.count[s] == 0:
                out.append(torch.zeros((n, 4), dtype=torch.float64))
                continue
            mean = self.total[s] / self.count[s]
            sigma = (self.squares[s] / self.count[s]).sub(mean * mean).clamp(min=0.0).sqrt()
            out.append(torch.stack([self.low[s], self.high[s], mean, sigma], 1))
        return out


def informative_columns(stats: Sequence[Tensor], tolerance: float = 1e-10) -> list[list[int]]:
    """Per species, the columns whose range (max - min) exceeds ``tolerance`` times their size."""
    keep = []
    for s in stats:
        span = s[:, 1] - s[:, 0]
        size = torch.maximum(s[:, 0].abs(), s[:, 1].abs())
        keep.append(torch.nonzero(span > tolerance * size.clamp(min=1e-300)).squeeze(1).tolist())
    return keep


def keep_columns(structures: StructureSet, keep: Sequence[Sequence[int]]) -> StructureSet:
    """The set with, for atoms of species s, only the cached columns keep[s] (then zero padding)."""
    width = max((len(k) for k in keep), default=0)
    table = torch.zeros((len(keep), width), dtype=torch.long)
    mask = torch.zeros((len(keep), width), dtype=torch.bool)
    for s, columns in enumerate(keep):
        table[s, : len(columns)] = torch.tensor(columns, dtype=torch.long)
        mask[s, : len(columns)] = True
    b, species = structures.batch, structures.species
    g = torch.gather(b.descriptors, 1, table[species]) * mask[species]
    target = species[b.edge_index[1]]
    index = table[target].unsqueeze(2).expand(-1, -1, 3)
    dg = torch.gather(b.descriptor_grad, 1, index) * mask[target].unsqueeze(2)
    return replace(structures, batch=replace(b, descriptors=g, descriptor_grad=dg))


def composition(structures: StructureSet, num_species: int) -> Tensor:
    """(M, S) float64 number of atoms of each species in each structure."""
    counts = torch.zeros((len(structures), num_species), dtype=torch.float64)
    owner, species = structures.batch.batch, structures.species
    return counts.index_put_((owner, species), torch.ones_like(owner, dtype=torch.float64), accumulate=True)


def energy_terms(structures: StructureSet, num_species: int) -> tuple[list[float], float]:
    r"""Per-species energy offsets and the energy scale (eV) for :func:`~mpnn.models.hdnnp.set_energy_terms`.

    The offsets o solve :math:`\min_o \sum_m (E_m - \sum_s n_{ms} o_s)^2` (least squares on the
    composition; the minimum-norm solution when compositions are collinear), so the networks learn
    the residual :math:`r_m`.  The scale makes a network output of order one mean the typical
    energy change: the larger of an atom's share of the residual spread,
    :math:`\sigma(r) / \sqrt{\bar n}`, and the energy an RMS force does over 1 Angstrom,
    :math:`F_{rms} \cdot 1` Angstrom (what the energy changes when an atom moves by one unit of
    the descriptors' length scale); 1 eV when both are zero.  (On rMD17 ethanol the second is 19
    times the first, and training converges much faster with it.)
    """
    forces = structures.batch.forces
    square = float(forces.double().square().sum()) if forces.numel() else 0.0
    return energy_terms_of(composition(structures, num_species), structures.energy, square, forces.numel())


def energy_terms_of(
    counts: Tensor, energy: Tensor, force_square_sum: float, force_components: int
) -> tuple[list[float], float]:
    """:func:`energy_terms` from the composition (M, S), the energies (M,) eV and the sum of
    squares of the force components (eV^2/Angstrom^2) and their number (a streaming pass's totals)."""
    counts, energy = counts.double(), energy.double()
    offsets = torch.linalg.lstsq(counts, energy.unsqueeze(1), driver="gelsd").solution.squeeze(1)
    residual = energy - counts @ offsets
    spread = float(residual.std(correction=0) / counts.sum(1).mean().sqrt()) if residual.numel() > 1 else 0.0
    rms = (force_square_sum / force_components) ** 0.5 if force_components else 0.0
    scale = max(spread, rms)
    return offsets.tolist(), scale if scale > 1e-12 else 1.0
