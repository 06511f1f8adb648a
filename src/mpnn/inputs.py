r"""Input layers: what a model reads from a :class:`~mpnn.batch.Batch` before message passing.

Node inputs give h^0 (N, d); edge inputs give e_vw (E, D_e). Edge inputs that use
positions compute them here, inside the forward pass, so forces can flow through them.

The edge representations of Gilmer et al. (2017, Sec. 6) for molecular graphs:

=================  ===============================  ==========================================
class              discrete type (``onehot=False``)  one-hot / vector (``onehot=True``)
=================  ===============================  ==========================================
BondTypeEdges      bond type, 5 types (chemical      (E, 5)
                   graph + the "none" virtual type)
DistanceBinEdges   bond type if bonded, else         (E, 14)
                   4 + distance bin: 14 types
BondDistanceEdges  --                                (E, 6) one-hot bond type + distance (Å)
=================  ===============================  ==========================================

Discrete types (int64, (E,)) feed the matrix-multiplication message
(:class:`mpnn.messages.MatrixMessage`); one-hot vectors feed the edge network and the pair
message.  Every edge input has ``out_features`` (the width of its vector form),
``reads_positions``, and the discrete ones ``num_types``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mpnn.batch import BOND_TYPES, Batch
from mpnn.neighbors import numpy_edge_vectors  # noqa: F401  (here too: where edge_vectors is)


class PaddedNodeInput(nn.Module):
    """h^0_v = x_v zero-padded to width ``dim`` (Gilmer et al. 2017, Sec. 5)."""

    def __init__(self, in_features: int, dim: int) -> None:
        super().__init__()
        if in_features > dim:
            raise ValueError(f"PaddedNodeInput: {in_features} node features exceed dim {dim}")
        self.in_features, self.dim = in_features, dim

    def forward(self, batch: Batch) -> Tensor:
        """(N, F) features -> (N, dim)."""
        return nn.functional.pad(batch.x, (0, self.dim - self.in_features))


class LinearNodeInput(nn.Module):
    """h^0_v = act(W x_v + b), as PyTorch Geometric's QM9 example."""

    def __init__(self, in_features: int, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, dim)

    def forward(self, batch: Batch) -> Tensor:
        return torch.relu(self.linear(batch.x))


def edge_vectors(batch: Batch) -> Tensor:
    """(E, 3) vector from the target atom v to the source atom w (its periodic image), Angstrom.

    ``pos[w] - pos[v] + S @ cell`` with the edge's cell shift S; differentiable with respect
    to ``pos`` and ``cell`` (forces and stress).
    """
    source, target = batch.edge_index
    vectors = batch.pos[source] - batch.pos[target]
    if batch.shift is not None and batch.cell is not None:
        shift = batch.shift.to(batch.cell.dtype)
        if batch.cell.shape[0] == 1:  # one structure: one (E, 3) x (3, 3) product
            return vectors + shift @ batch.cell[0]
        cell = batch.cell[batch.batch[target]]  # (E, 3, 3)
        vectors = vectors + torch.bmm(shift.unsqueeze(1), cell).squeeze(1)
    return vectors


class BondDistanceEdges(nn.Module):
    """e_vw = [one-hot bond type (single, double, triple, aromatic, none), distance in Angstrom].

    The "raw distance" edge representation of Gilmer et al. (their best model), with
    the extra "none" type of the complete graph.  Output (E, 6), or (E, 5) without distance.
    """

    def __init__(self, distance: bool = True) -> None:
        super().__init__()
        self.distance = distance
        self.out_features = len(BOND_TYPES) + int(distance)
        self.reads_positions = distance

    def forward(self, batch: Batch) -> Tensor:
        dtype = batch.pos.dtype
        onehot = nn.functional.one_hot(batch.edge_type, len(BOND_TYPES)).to(dtype)
        if not self.distance:
            return onehot
        return torch.cat([onehot, edge_vectors(batch).norm(dim=-1, keepdim=True)], dim=-1)


class SpeciesInput(nn.Module):
    """h^0_v = one-hot of the element of atom v among ``elements`` (atomic numbers) -> (N, S)."""

    def __init__(self, elements: list[int]) -> None:
        super().__init__()
        lookup = torch.full((119,), -1, dtype=torch.long)
        lookup[torch.tensor(elements)] = torch.arange(len(elements))
        self.register_buffer("species_of", lookup, persistent=False)
        self.num_species = len(elements)

    def forward(self, batch: Batch) -> Tensor:
        species = self.species_of[batch.z]
        if bool((species < 0).any()):
            raise ValueError(
                f"SpeciesInput: atomic numbers {sorted(set(batch.z[species < 0].tolist()))} "
                "are not among the model's elements"
            )
        return nn.functional.one_hot(species, self.num_species).to(batch.pos.dtype)


class EdgeVectors(nn.Module):
    """e_vw = (r_w - r_v) / unit: edge vectors (E, 3) in the model's length unit.

    ``unit`` is the model's length unit in Angstrom (e.g. 0.529177 for Bohr).
    """

    def __init__(self, unit: float = 1.0) -> None:
        super().__init__()
        self.unit = float(unit)

    def forward(self, batch: Batch) -> Tensor:
        vectors = edge_vectors(batch)
        return vectors if self.unit == 1.0 else vectors / self.unit


class BondTypeEdges(nn.Module):
    """The chemical graph: e_vw = bond type (single, double, triple, aromatic, none).

    "none" is the virtual edge type of unbonded pairs on the complete graph (Gilmer et al.
    2017, Sec. 5.2); on the bond graph it never occurs.  ``forward(batch)`` gives the int64 (E,)
    type index into :data:`~mpnn.batch.BOND_TYPES` (``num_types`` = 5), or with ``onehot`` its
    (E, 5) one-hot in the positions' dtype.  Reads no positions.
    """

    reads_positions = False

    def __init__(self, onehot: bool = False) -> None:
        super().__init__()
        self.onehot = onehot
        self.num_types = self.out_features = len(BOND_TYPES)

    def forward(self, batch: Batch) -> Tensor:
        if not self.onehot:
            return batch.edge_type
        return nn.functional.one_hot(batch.edge_type, self.num_types).to(batch.pos.dtype)


#: Upper edges (Angstrom) of Gilmer's first nine distance bins: [0, 2], eight bins of width
#: 0.5 over (2, 6]; the tenth bin is (6, inf).  A distance equal to an edge falls in the lower bin.
DISTANCE_BIN_EDGES = (2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0)


class DistanceBinEdges(nn.Module):
    r"""Gilmer et al.'s (2017, Sec. 6) "distance bins": an alphabet of 14 discrete edge types.

    .. math::
        \mathrm{type}(v, w) = \begin{cases} b_{vw} \in \{0, 1, 2, 3\} & \text{bonded
        (single, double, triple, aromatic)} \\ 4 + \mathrm{bin}(r_{vw}) \in \{4, \dots, 13\}
        & \text{not bonded} \end{cases}

    with :math:`\mathrm{bin}(r) = 0` for r in [0, 2] Å, 1..8 for the eight bins of width 0.5 Å
    over (2, 6], and 9 for r > 6 Å (a distance on a bin edge belongs to the lower bin).  The
    paper: "the adjacency matrix then has entries in an alphabet of size 14, indicating bond type
    for bonded atoms and distance bin for atoms that are not bonded".  The distance of a bonded
    pair is left out (it is almost determined by the bond type).

    ``forward(batch)`` gives the int64 (E,) type (``num_types`` = 14), or with ``onehot`` its
    (E, 14) one-hot.  The type is piecewise constant in the positions, so no gradient flows to
    them (forces through these edges are zero).

    Args:
        onehot: return the one-hot (for the edge network or the pair message).
        edges: upper bin edges in Angstrom (all but the last, open bin).
    """

    reads_positions = True

    def __init__(self, onehot: bool = False, edges: tuple[float, ...] = DISTANCE_BIN_EDGES) -> None:
        super().__init__()
        self.onehot = onehot
        self.register_buffer("bin_edges", torch.tensor(edges, dtype=torch.float64), persistent=False)
        self.num_bonds = BOND_TYPES.index("none")  # 4 real bond types come first
        self.num_types = self.out_features = self.num_bonds + len(edges) + 1

    def forward(self, batch: Batch) -> Tensor:
        with torch.no_grad():
            distance = edge_vectors(batch).norm(dim=-1)
            bins = torch.bucketize(distance, self.bin_edges.to(distance.dtype), right=False)
        bonded = batch.edge_type != self.num_bonds
        types = torch.where(bonded, batch.edge_type, self.num_bonds + bins)
        if not self.onehot:
            return types
        return nn.functional.one_hot(types, self.num_types).to(batch.pos.dtype)
