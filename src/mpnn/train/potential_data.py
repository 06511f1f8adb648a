r"""The training set of a potential as precomputed symmetry functions and their Jacobians.

Symmetry functions depend only on positions, so they are computed once per structure (n2p2's
``memorize_symfunc_results``) by the model's own :class:`~mpnn.messages.symmetry_functions.SymmetryFunctions`;
an epoch then only runs the element networks.  For a set of M structures with N atoms, E
directed edges (neighbour pairs within the cutoff, ``edge_index = [source j, target i]``) and W
functions:

* ``g`` (N, W): the functions :math:`G_{i f}` (float64; unscaled or scaled, see ``scaled``);
* ``dg`` (E, W, 3): :math:`\partial G_{i f} / \partial \mathbf r_e` for edge e = (j -> i) with
  :math:`\mathbf r_e = \mathbf r_j - \mathbf r_i + S\,\text{cell}` (Angstrom): :math:`G_i` depends
  only on the vectors of the edges that end at i, so this edge form holds the whole Jacobian;
* ``energy`` (M,) eV, ``forces`` (N, 3) eV/Angstrom: the reference values.

With :math:`E = \sum_i E_i(G_i)` the forces follow from the chain rule,

.. math::
    \frac{\partial E}{\partial \mathbf r_e} = \sum_f \frac{\partial E_{i}}{\partial G_{i f}}
    \frac{\partial G_{i f}}{\partial \mathbf r_e}, \qquad
    \mathbf F_k = \sum_{e:\,i(e) = k} \frac{\partial E}{\partial \mathbf r_e}
                - \sum_{e:\,j(e) = k} \frac{\partial E}{\partial \mathbf r_e},

which :func:`energies_and_forces` evaluates for a batch (differentiably, so a loss on forces trains
the networks).  Memory: 8 E W 3 bytes in float64 (ethanol, W = 100: 170 kB per structure).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor
from tqdm.auto import tqdm

from mpnn.batch import Molecule
from mpnn.inputs import edge_vectors
from mpnn.messages.symmetry_functions import SymmetryFunctions
from mpnn.models.hdnnp import PotentialModel
from mpnn.scatter import segment_sum
from mpnn.symmetry.families import FAMILIES
from mpnn.updates.element_mlp import ElementUpdate

#: Structures whose Jacobians are computed at once.
CHUNK = 1024


@dataclass
class Descriptors:
    """Symmetry functions of M structures; see the module docstring for the fields.

    ``species`` (N,) is each atom's species index, ``atom_ptr``/``edge_ptr`` (M + 1,) delimit the
    atoms and edges of each structure; ``edge_index`` (2, E) holds global atom indices.
    """

    species: Tensor
    g: Tensor
    dg: Tensor
    edge_index: Tensor
    atom_ptr: Tensor
    edge_ptr: Tensor
    energy: Tensor
    forces: Tensor

    @property
    def num_structures(self) -> int:
        return int(self.atom_ptr.shape[0] - 1)

    def __len__(self) -> int:
        return self.num_structures

    def atoms_per_structure(self) -> Tensor:
        """(M,) int64 number of atoms of each structure."""
        return self.atom_ptr.diff()

    def select(self, indices: Sequence[int] | Tensor) -> Descriptors:
        """The structures ``indices`` (in that order), atom and edge indices renumbered."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        atoms, atom_ptr, owner = _ranges(self.atom_ptr, idx)
        edges, edge_ptr, edge_owner = _ranges(self.edge_ptr, idx)
        shift = (atom_ptr[:-1] - self.atom_ptr[idx])[edge_owner]
        return Descriptors(
            self.species[atoms],
            self.g[atoms],
            self.dg[edges],
            self.edge_index[:, edges] + shift,
            atom_ptr,
            edge_ptr,
            self.energy[idx],
            self.forces[atoms],
        )

    def to(self, dtype: torch.dtype) -> Descriptors:
        """Floating fields cast to ``dtype``."""
        changes = {
            f.name: getattr(self, f.name).to(dtype)
            for f in fields(self)
            if getattr(self, f.name).is_floating_point()
        }
        return replace(self, **changes)


def _ranges(ptr: Tensor, idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Concatenated ranges ptr[m]:ptr[m+1] of the structures idx; their new ptr; owner of each."""
    counts = ptr[idx + 1] - ptr[idx]
    new_ptr = torch.zeros(idx.numel() + 1, dtype=torch.long)
    new_ptr[1:] = torch.cumsum(counts, 0)
    owner = torch.repeat_interleave(torch.arange(idx.numel()), counts)
    items = ptr[idx][owner] + torch.arange(int(new_ptr[-1])) - new_ptr[:-1][owner]
    return items, new_ptr, owner


def compute_descriptors(
    model: PotentialModel,
    molecules: Sequence[Molecule],
    *,
    chunk: int = CHUNK,
    progress: bool = False,
    desc: str = "symmetry functions",
) -> Descriptors:
    """Unscaled symmetry functions and their Jacobians (float64) of ``molecules`` for ``model``.

    Each structure needs ``y`` (its energy, eV); ``forces`` may be None (then zeros are stored).
    The model's :class:`SymmetryFunctions` computes all functions of an atom in one pass, so its
    Jacobian would cost one backward pass over all W functions per column.  Instead the functions
    are split (:func:`function_groups`) into radial groups (one centre element and neighbour element)
    and single angular functions, each evaluated by its own :class:`SymmetryFunctions` on the
    edges it can see (centre and neighbours of its elements) and differentiated column by column:
    the work is that of the function's own terms.
    """
    from mpnn.data.atoms import collate_structures

    groups = function_groups(model)
    by_edges: dict[tuple[int, Tensor], list[FunctionGroup]] = {}
    for group in groups:  # the groups that see the same edges
        key = next((k for k in by_edges if k[0] == group.centre and torch.equal(k[1], group.neighbors)), None)
        by_edges.setdefault(key or (group.centre, group.neighbors), []).append(group)
    unit = model.net.edge_input.unit
    width = model.symmetry_functions.width
    parts = []
    starts = range(0, len(molecules), chunk)
    bar = tqdm(
        total=len(starts) * len(groups), desc=desc, disable=not progress, leave=False, dynamic_ncols=True
    )
    for start in starts:
        batch = collate_structures(list(molecules[start : start + chunk]), model.cutoff).to(
            dtype=torch.float64
        )
        vectors = edge_vectors(batch).detach()
        species = model.symmetry_functions.species(batch)
        source, centre = batch.edge_index
        g = vectors.new_zeros((batch.num_atoms, width))
        dg = vectors.new_zeros((vectors.shape[0], width, 3))
        for (centre_species, neighbor_species), members in by_edges.items():
            seen = (species[centre] == centre_species) & torch.isin(species[source], neighbor_species)
            edges = seen.nonzero().squeeze(1)
            part = replace(
                batch, edge_index=batch.edge_index[:, edges], edge_type=batch.edge_type[edges], shift=None
            )
            local = vectors[edges].requires_grad_(True)
            columns = torch.cat([group.columns for group in members])
            grads = []
            for group in members:
                with torch.enable_grad():
                    values = group.module.raw(part, local / unit)
                    for k in range(values.shape[1]):
                        (grad,) = torch.autograd.grad(
                            values[:, k].sum(), local, retain_graph=True, allow_unused=True
                        )
                        grads.append(torch.zeros_like(local) if grad is None else grad)
                g.index_add_(1, group.columns, values.detach())
                bar.update(1)
            dg[edges.unsqueeze(1), columns.unsqueeze(0)] = torch.stack(grads, 1)
        forces = batch.forces if batch.forces is not None else torch.zeros_like(batch.pos)
        edge_counts = torch.bincount(batch.batch[centre], minlength=batch.num_graphs)
        energy = batch.y.reshape(-1).to(torch.float64)
        parts.append((species, g, dg, batch.edge_index, batch.ptr, edge_counts, energy, forces.double()))
    bar.close()
    return _concatenate(parts)


@dataclass
class FunctionGroup:
    """Some of a model's functions, computed apart: ``module`` holds only them.

    Attributes:
        module: a :class:`SymmetryFunctions` with the group's functions (for centre element ``centre``).
        columns: (W_g,) their columns in the model's (N, W) matrix.
        centre: species index of the centre element.
        neighbors: species indices whose atoms the functions see as neighbours.
    """

    module: SymmetryFunctions
    columns: Tensor
    centre: int
    neighbors: Tensor


def function_groups(model: PotentialModel) -> list[FunctionGroup]:
    """The model's functions as radial groups (centre element, type, neighbour elements) and single
    angular functions (whose terms are expensive: one module per function keeps each column's
    backward pass to that function's own terms)."""
    config = model.config
    numbers = model.symmetry_functions.elements
    everyone = list(range(len(numbers)))
    grouped: dict[tuple, list[int]] = {}
    for s, specs in enumerate(model.symmetry_functions.specs):
        for column, spec in enumerate(specs):
            single = column if FAMILIES[spec.type].angular else None
            grouped.setdefault((s, spec.type, spec.neighbors, single), []).append(column)
    out = []
    for (s, _, neighbors, _), columns in grouped.items():
        specs = [[] for _ in numbers]
        specs[s] = [model.symmetry_functions.specs[s][c] for c in columns]
        module = SymmetryFunctions(numbers, specs, config["cutoff_type"], config["cutoff_alpha"])
        seen = sorted({_species(e, numbers) for e in neighbors}) if neighbors else everyone
        out.append(FunctionGroup(module, torch.tensor(columns), s, torch.tensor(seen)))
    return out


def _species(name: str, numbers: Sequence[int]) -> int:
    """Species index of an element given by symbol or atomic number (as text)."""
    from ase.data import atomic_numbers

    return list(numbers).index(int(name) if name.isdigit() else atomic_numbers[name])


def _concatenate(parts: list[tuple]) -> Descriptors:
    species, g, dg, edge_index, atom_counts, edge_counts, energy, forces = ([] for _ in range(8))
    offset = 0
    for s, gi, dgi, ei, ptr, ecount, en, fo in parts:
        species.append(s), g.append(gi), dg.append(dgi), edge_index.append(ei + offset)
        atom_counts.append(ptr.diff()), edge_counts.append(ecount), energy.append(en), forces.append(fo)
        offset += int(ptr[-1])

    def ptr_of(counts: list[Tensor]) -> Tensor:
        c = torch.cat(counts)
        return torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(c, 0)])

    return Descriptors(
        torch.cat(species),
        torch.cat(g),
        torch.cat(dg),
        torch.cat(edge_index, 1),
        ptr_of(atom_counts),
        ptr_of(edge_counts),
        torch.cat(energy),
        torch.cat(forces),
    )


def statistics(desc: Descriptors, sizes: Sequence[int]) -> list[Tensor]:
    """Per species s, (sizes[s], 4) min, max, mean, sigma (population) of its atoms' functions."""
    out = []
    for s, n in enumerate(sizes):
        values = desc.g[desc.species == s, :n]
        if values.shape[0] == 0:
            out.append(torch.zeros((n, 4), dtype=torch.float64))
            continue
        mean = values.mean(0)
        sigma = (values * values).mean(0).sub(mean * mean).clamp(min=0.0).sqrt()
        out.append(torch.stack([values.min(0).values, values.max(0).values, mean, sigma], 1))
    return out


def informative_columns(stats: Sequence[Tensor], tolerance: float = 1e-10) -> list[list[int]]:
    """Per species, the columns whose range (max - min) exceeds ``tolerance`` times their size."""
    keep = []
    for s in stats:
        span = s[:, 1] - s[:, 0]
        size = torch.maximum(s[:, 0].abs(), s[:, 1].abs())
        keep.append(torch.nonzero(span > tolerance * size.clamp(min=1e-300)).squeeze(1).tolist())
    return keep


def keep_columns(desc: Descriptors, keep: Sequence[Sequence[int]]) -> Descriptors:
    """Descriptors with, for atoms of species s, only the columns keep[s] (then zero padding)."""
    width = max((len(k) for k in keep), default=0)
    table = torch.zeros((len(keep), width), dtype=torch.long)
    mask = torch.zeros((len(keep), width), dtype=torch.bool)
    for s, columns in enumerate(keep):
        table[s, : len(columns)] = torch.tensor(columns, dtype=torch.long)
        mask[s, : len(columns)] = True
    atom_index, atom_mask = table[desc.species], mask[desc.species]
    g = torch.gather(desc.g, 1, atom_index) * atom_mask
    target = desc.species[desc.edge_index[1]]
    edge_index, edge_mask = table[target], mask[target].unsqueeze(2)
    dg = torch.gather(desc.dg, 1, edge_index.unsqueeze(2).expand(-1, -1, 3)) * edge_mask
    return replace(desc, g=g, dg=dg)


def scaled(desc: Descriptors, model: PotentialModel) -> Descriptors:
    """The network inputs x = smin + f (G - ref), dx/dr = f dG/dr, and energies less the offsets.

    Uses the model's scaling buffers and ``offsets`` (so ``energy`` becomes the residual the
    networks learn, :func:`energy_terms`).
    """
    sf = model.symmetry_functions
    factor = sf.scale_factor.double()
    width = desc.g.shape[1]
    species = desc.species
    g = sf.scale_min.double()[species] + factor[species, :width] * (
        desc.g - sf.scale_ref.double()[species, :width]
    )
    dg = desc.dg * factor[species[desc.edge_index[1]], :width].unsqueeze(2)
    offsets = model.update.offsets.double()
    baseline = composition(desc, offsets.numel()) @ offsets
    return replace(desc, g=g, dg=dg, energy=desc.energy.double() - baseline)


def composition(desc: Descriptors, num_species: int) -> Tensor:
    """(M, S) float64 number of atoms of each species in each structure."""
    owner = _owner(desc.atom_ptr)
    counts = torch.zeros((desc.num_structures, num_species), dtype=torch.float64)
    return counts.index_put_(
        (owner, desc.species), torch.ones_like(owner, dtype=torch.float64), accumulate=True
    )


def energy_terms(desc: Descriptors, num_species: int) -> tuple[list[float], float]:
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
    counts = composition(desc, num_species)
    energy = desc.energy.to(torch.float64)
    offsets = torch.linalg.lstsq(counts, energy.unsqueeze(1), driver="gelsd").solution.squeeze(1)
    residual = energy - counts @ offsets
    spread = float(residual.std(correction=0) / counts.sum(1).mean().sqrt()) if residual.numel() > 1 else 0.0
    rms = float(desc.forces.double().square().mean().sqrt()) if desc.forces.numel() else 0.0
    scale = max(spread, rms)
    return offsets.tolist(), scale if scale > 1e-12 else 1.0


def network_energies(update: ElementUpdate, species: Tensor, x: Tensor) -> Tensor:
    """(N,) energy_scale * NN_s(x_i) of each atom, without the offsets (eV)."""
    out = x.new_zeros(x.shape[0])
    for s, network in enumerate(update.networks):
        atoms = (species == s).nonzero().squeeze(1)
        if atoms.numel():
            out = out.index_copy(0, atoms, network(x[atoms, : update.sizes[s]]).squeeze(1))
    return out * update.energy_scale.to(x.dtype)


def energies_and_forces(
    update: ElementUpdate, desc: Descriptors, *, forces: bool = True, create_graph: bool = False
) -> tuple[Tensor, Tensor | None]:
    """Energies (M,) without the offsets (eV) and forces (N, 3) (eV/Angstrom) from scaled descriptors.

    With ``create_graph`` the forces stay differentiable with respect to the network weights.
    """
    x = desc.g.detach().requires_grad_(forces)
    with torch.enable_grad() if forces else contextlib.nullcontext():
        atomic = network_energies(update, desc.species, x)
        energy = segment_sum(atomic, _owner(desc.atom_ptr), desc.num_structures)
        if not forces:
            return energy, None
        (de_dx,) = torch.autograd.grad(atomic.sum(), x, create_graph=create_graph)
    source, target = desc.edge_index
    de_dr = torch.einsum("ew,ewk->ek", de_dx[target], desc.dg)
    f = de_dr.new_zeros((x.shape[0], 3)).index_add(0, target, de_dr).index_add(0, source, -de_dr)
    return energy, f


def _owner(ptr: Tensor) -> Tensor:
    return torch.repeat_interleave(torch.arange(ptr.numel() - 1), ptr.diff())
