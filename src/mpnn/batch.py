"""The one batch type of `mpnn`, and how molecules are collated into it.

Every model in the package reads a :class:`Batch` and nothing else. A batch is a
flat graph: the atoms of all its structures are concatenated, and `batch[i]`
says which structure atom `i` belongs to. All keys, shapes and units live here.

Keys of :class:`Batch` (N atoms, E directed edges, B structures, F node features,
K targets):

==============  ==========  ======  ===========================================
key             shape       dtype   meaning
==============  ==========  ======  ===========================================
``z``           (N,)        int64   atomic number
``pos``         (N, 3)      float   Cartesian position, Angstrom
``x``           (N, F)      float   node features (Gilmer Table 1); F may be 0
``edge_index``  (2, E)      int64   ``[source w, target v]``: the message flows
                                    w -> v. Sorted by target, then source.
``edge_type``   (E,)        int64   bond type of the pair, :data:`BOND_TYPES`
``batch``       (N,)        int64   index of the structure of each atom
``ptr``         (B + 1,)    int64   atoms of structure b are ``ptr[b]:ptr[b+1]``
``y``           (B, K)      float   targets, or ``None``
``cell``        (B, 3, 3)   float   periodic cell rows, Angstrom, or ``None``
``pbc``         (B, 3)      bool    periodic directions, or ``None``
``shift``       (E, 3)      float   cell shifts S (integers) of each edge's source
                                    image: ``r_vw = pos[w] - pos[v] + S @ cell``;
                                    ``None`` when no edge crosses a cell boundary
``forces``      (N, 3)      float   reference forces, eV/Angstrom, or ``None``
==============  ==========  ======  ===========================================

Edge *features* that depend on positions (distances) are not stored: models
compute them from ``pos`` and ``edge_index`` in their forward pass, so gradients
with respect to positions (forces) flow through them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace

import torch
from torch import Tensor

#: Bond types, in the order of the one-hot edge encoding (Gilmer et al. 2017).
BOND_TYPES = ("single", "double", "triple", "aromatic", "none")
BOND_NONE = BOND_TYPES.index("none")


@dataclass
class Molecule:
    """One structure, as stored in a data set.

    Attributes:
        z: (n,) int64 atomic numbers.
        pos: (n, 3) float64 positions in Angstrom.
        x: (n, F) float32 node features, or an (n, 0) tensor.
        bonds: (nb, 2) int64 atom pairs ``i < j`` of the chemical bonds.
        bond_type: (nb,) int64 index into :data:`BOND_TYPES` (never "none").
        y: (K,) float64 targets, or ``None`` (for potentials: the energy in eV, shape (1,)).
        name: an identifier (e.g. ``"dsgdb9nsd_000001"``).
        cell: (3, 3) float64 cell rows in Angstrom, or ``None`` for a molecule.
        pbc: (3,) bool periodic directions, or ``None`` (no periodicity).
        forces: (n, 3) float64 reference forces in eV/Angstrom, or ``None``.
    """

    z: Tensor
    pos: Tensor
    x: Tensor
    bonds: Tensor
    bond_type: Tensor
    y: Tensor | None = None
    name: str = ""
    cell: Tensor | None = None
    pbc: Tensor | None = None
    forces: Tensor | None = None

    @property
    def num_atoms(self) -> int:
        return int(self.z.shape[0])


@dataclass
class Batch:
    """A flat graph of B structures; see the module docstring for the keys."""

    z: Tensor
    pos: Tensor
    x: Tensor
    edge_index: Tensor
    edge_type: Tensor
    batch: Tensor
    ptr: Tensor
    y: Tensor | None = None
    cell: Tensor | None = None
    pbc: Tensor | None = None
    shift: Tensor | None = None
    forces: Tensor | None = None

    @property
    def num_graphs(self) -> int:
        return int(self.ptr.shape[0] - 1)

    @property
    def num_atoms(self) -> int:
        return int(self.z.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> Batch:
        """Move to ``device``; floating tensors are also cast to ``dtype`` if given."""
        changes = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Tensor):
                cast = dtype if (dtype is not None and value.is_floating_point()) else None
                changes[f.name] = value.to(device=device, dtype=cast)
        return replace(self, **changes)


def pair_template(n: int, cache: dict[int, Tensor] = {}) -> Tensor:  # noqa: B006
    """(2, n(n-1)) all ordered pairs (source, target), source != target, sorted by target."""
    if n not in cache:
        target, source = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
        keep = target != source
        cache[n] = torch.stack([source[keep], target[keep]])
    return cache[n]


def complete_graph_edges(molecules: Sequence[Molecule], offsets: Tensor) -> tuple[Tensor, Tensor]:
    """Directed edges between all atom pairs of each molecule, typed by its bonds.

    Returns ``edge_index`` (2, E) sorted by target then source, and ``edge_type`` (E,).
    """
    starts = offsets.tolist()
    edge_index = torch.cat(
        [pair_template(m.num_atoms) + s for m, s in zip(molecules, starts, strict=True)], 1
    )
    edge_type = torch.full((edge_index.shape[1],), BOND_NONE, dtype=torch.long)
    bonds = torch.cat([m.bonds + s for m, s in zip(molecules, starts, strict=True)])
    if bonds.numel():
        # edges are sorted by key = target * N + source, so each bond (both directions) is found
        # by a binary search
        n = int(offsets[-1]) + molecules[-1].num_atoms
        keys = edge_index[1] * n + edge_index[0]
        bond_keys = torch.cat([bonds[:, 0] * n + bonds[:, 1], bonds[:, 1] * n + bonds[:, 0]])
        types = torch.cat([m.bond_type for m in molecules])
        edge_type[torch.searchsorted(keys, bond_keys)] = torch.cat([types, types])
    return edge_index, edge_type


def bond_graph_edges(molecules: Sequence[Molecule], offsets: Tensor) -> tuple[Tensor, Tensor]:
    """Directed edges along chemical bonds only (both directions), sorted by target."""
    index_parts, type_parts = [], []
    for mol, start in zip(molecules, offsets.tolist(), strict=True):
        b = mol.bonds
        source = torch.cat([b[:, 0], b[:, 1]])
        target = torch.cat([b[:, 1], b[:, 0]])
        types = torch.cat([mol.bond_type, mol.bond_type])
        order = torch.argsort(target * max(mol.num_atoms, 1) + source)
        index_parts.append(torch.stack([source[order], target[order]]) + start)
        type_parts.append(types[order])
    return torch.cat(index_parts, dim=1), torch.cat(type_parts)


GRAPHS = {"complete": complete_graph_edges, "bonds": bond_graph_edges}


def collate(molecules: Sequence[Molecule], graph: str = "complete") -> Batch:
    """Concatenate molecules into one :class:`Batch`.

    Args:
        molecules: the structures, in batch order.
        graph: ``"complete"`` (every ordered atom pair, typed by bond or "none")
            or ``"bonds"`` (chemical bonds only).
    """
    if not molecules:
        raise ValueError("collate: empty list of molecules")
    if graph not in GRAPHS:
        raise ValueError(f"collate: graph must be one of {sorted(GRAPHS)}, got {graph!r}")
    counts = torch.tensor([m.num_atoms for m in molecules])
    ptr = torch.zeros(len(molecules) + 1, dtype=torch.long)
    ptr[1:] = torch.cumsum(counts, 0)
    edge_index, edge_type = GRAPHS[graph](molecules, ptr[:-1])
    ys = [m.y for m in molecules]
    y = torch.stack(ys) if all(v is not None for v in ys) else None
    return Batch(
        z=torch.cat([m.z for m in molecules]),
        pos=torch.cat([m.pos for m in molecules]),
        x=torch.cat([m.x for m in molecules]),
        edge_index=edge_index,
        edge_type=edge_type,
        batch=torch.repeat_interleave(torch.arange(len(molecules)), counts),
        ptr=ptr,
        y=y,
    )
