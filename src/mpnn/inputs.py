"""Input layers: what a model reads from a :class:`~mpnn.batch.Batch` before message passing.

Node inputs give h^0 (N, d); edge inputs give e_vw (E, D_e). Edge inputs that use
positions compute them here, inside the forward pass, so forces can flow through them.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mpnn.batch import BOND_TYPES, Batch


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
        cell = batch.cell[batch.batch[target]]  # (E, 3, 3)
        vectors = vectors + torch.bmm(batch.shift.to(cell.dtype).unsqueeze(1), cell).squeeze(1)
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
            raise ValueError(f"SpeciesInput: atomic numbers {sorted(set(batch.z[species < 0].tolist()))} "
                             "are not among the model's elements")
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
