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
``descriptors`` (N, W)      float   precomputed inputs of the model's message (its
                                    unscaled symmetry functions), or ``None``
``descriptor_`` (E, W, 3)   float   their derivatives with respect to each edge
``grad``                            vector, or ``None`` (:mod:`mpnn.messages.
                                    symmetry_cache`)
==============  ==========  ======  ===========================================

Hydrogens (``collate(..., hydrogens=...)``; Gilmer et al. 2017 compare both): ``"explicit"`` keeps
every atom of the stored structures as a node. ``"implicit"`` drops the hydrogen atoms
(``z == 1``) and every bond to them before the graph is built; the heavy atoms keep their
rows of ``z``, ``pos`` and ``x`` (in order) and their bonds, renumbered. The hydrogens survive
only as the node feature that counts them (column ``"num_hs"`` of
:data:`mpnn.data.featurize.NODE_FEATURES`, computed on the H-explicit molecule), so
N = number of heavy atoms. A structure with no heavy atom (H2) keeps its hydrogen atoms and
bonds as they are, so that no structure of the batch has zero nodes.

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
    descriptors: Tensor | None = None
    descriptor_grad: Tensor | None = None

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


def complete_graph_edges(ptr: Tensor, bonds: Tensor, bond_type: Tensor) -> tuple[Tensor, Tensor]:
    """Directed edges between all atom pairs of each structure, typed by its bonds.

    Args:
        ptr: (B + 1,) atoms of structure b are ``ptr[b]:ptr[b+1]``.
        bonds: (nb, 2) bonded atom pairs, indices into the whole batch.
        bond_type: (nb,) index into :data:`BOND_TYPES`.

    Returns ``edge_index`` (2, E) sorted by target then source, and ``edge_type`` (E,).
    """
    bounds = ptr.tolist()
    edge_index = torch.cat(
        [pair_template(b - a) + a for a, b in zip(bounds[:-1], bounds[1:], strict=True)], 1
    )
    edge_type = torch.full((edge_index.shape[1],), BOND_NONE, dtype=torch.long)
    if bonds.numel():
        # edges are sorted by key = target * N + source, so each bond (both directions) is found
        # by a binary search
        n = bounds[-1]
        keys = edge_index[1] * n + edge_index[0]
        bond_keys = torch.cat([bonds[:, 0] * n + bonds[:, 1], bonds[:, 1] * n + bonds[:, 0]])
        edge_type[torch.searchsorted(keys, bond_keys)] = torch.cat([bond_type, bond_type])
    return edge_index, edge_type


def bond_graph_edges(ptr: Tensor, bonds: Tensor, bond_type: Tensor) -> tuple[Tensor, Tensor]:
    """Directed edges along chemical bonds only (both directions), sorted by target then source.

    Arguments and returns as :func:`complete_graph_edges`.
    """
    source = torch.cat([bonds[:, 0], bonds[:, 1]])
    target = torch.cat([bonds[:, 1], bonds[:, 0]])
    order = torch.argsort(target * max(int(ptr[-1]), 1) + source)
    return torch.stack([source[order], target[order]]), torch.cat([bond_type, bond_type])[order]


GRAPHS = {"complete": complete_graph_edges, "bonds": bond_graph_edges}
#: Atoms :func:`collate` keeps: ``"explicit"`` all, ``"implicit"`` heavy atoms only.
HYDROGENS = ("explicit", "implicit")


def collate(molecules: Sequence[Molecule], graph: str = "complete", hydrogens: str = "explicit") -> Batch:
    """Concatenate molecules into one :class:`Batch`.

    Args:
        molecules: the structures, in batch order.
        graph: ``"complete"`` (every ordered atom pair, typed by bond or "none")
            or ``"bonds"`` (chemical bonds only).
        hydrogens: ``"explicit"`` (every atom is a node) or ``"implicit"`` (hydrogen atoms,
            ``z == 1``, and their bonds are dropped before the graph is built; see the module
            docstring: a structure without heavy atoms keeps its hydrogens).
    """
    if not molecules:
        raise ValueError("collate: empty list of molecules")
    if graph not in GRAPHS:
        raise ValueError(f"collate: graph must be one of {sorted(GRAPHS)}, got {graph!r}")
    if hydrogens not in HYDROGENS:
        raise ValueError(f"collate: hydrogens must be one of {list(HYDROGENS)}, got {hydrogens!r}")
    num = len(molecules)
    counts = torch.tensor([m.num_atoms for m in molecules])
    starts = torch.cumsum(counts, 0) - counts
    bond_counts = torch.tensor([m.bonds.shape[0] for m in molecules])
    bonds = torch.cat([m.bonds for m in molecules]) + torch.repeat_interleave(starts, bond_counts)[:, None]
    bond_type = torch.cat([m.bond_type for m in molecules])
    z = torch.cat([m.z for m in molecules])
    pos = torch.cat([m.pos for m in molecules])
    x = torch.cat([m.x for m in molecules])
    batch = torch.repeat_interleave(torch.arange(num), counts)
    if hydrogens == "implicit":
        keep = z != 1
        no_heavy = torch.bincount(batch[keep], minlength=num) == 0
        keep |= no_heavy[batch]  # structures without heavy atoms (H2) keep their hydrogens
        if not bool(keep.all()):
            new_index = torch.cumsum(keep, 0) - 1  # increasing: bonds stay i < j
            kept_bond = keep[bonds[:, 0]] & keep[bonds[:, 1]]
            bonds, bond_type = new_index[bonds[kept_bond]], bond_type[kept_bond]
            z, pos, x, batch = z[keep], pos[keep], x[keep], batch[keep]
            counts = torch.bincount(batch, minlength=num)
    ptr = torch.zeros(num + 1, dtype=torch.long)
    ptr[1:] = torch.cumsum(counts, 0)
    edge_index, edge_type = GRAPHS[graph](ptr, bonds, bond_type)
    ys = [m.y for m in molecules]
    y = torch.stack(ys) if all(v is not None for v in ys) else None
    return Batch(z=z, pos=pos, x=x, edge_index=edge_index, edge_type=edge_type, batch=batch, ptr=ptr, y=y)
