"""The anchor: PyTorch Geometric's ``examples/qm9_nn_conv.py`` model and data pipeline.

Model: Linear(F, 64) + ReLU; 3 x (NNConv(64, 64, Seq(Linear(5, 128), ReLU, Linear(128, 64·64)),
aggr="mean") + ReLU, GRU); Set2Set(64, 3); Linear(128, 64) + ReLU; Linear(64, 1).
Data: each molecule stores its chemical bonds (4-way one-hot); the example's transforms build
the complete graph and append the distance every time a molecule is fetched.  We reproduce that
here on our molecules (same atoms, positions and node features as our model reads).
"""

from __future__ import annotations

import copy

import torch
from common import Contender
from torch import nn
from torch_geometric.data import Batch as PygBatch
from torch_geometric.data import Data
from torch_geometric.nn import NNConv, Set2Set
from torch_geometric.transforms import Distance
from torch_geometric.utils import remove_self_loops

from mpnn.batch import Molecule
from mpnn.data.dataset import MoleculeSet


class PygNNConvNet(nn.Module):
    """PyG's QM9 NNConv example network (dim 64, T = 3, set2set 3 steps)."""

    def __init__(self, num_features: int, dim: int = 64, num_targets: int = 1) -> None:
        super().__init__()
        self.lin0 = nn.Linear(num_features, dim)
        edge_net = nn.Sequential(nn.Linear(5, 128), nn.ReLU(), nn.Linear(128, dim * dim))
        self.conv = NNConv(dim, dim, edge_net, aggr="mean")
        self.gru = nn.GRU(dim, dim)
        self.set2set = Set2Set(dim, processing_steps=3)
        self.lin1 = nn.Linear(2 * dim, dim)
        self.lin2 = nn.Linear(dim, num_targets)

    def forward(self, data: PygBatch) -> torch.Tensor:
        out = torch.relu(self.lin0(data.x))
        h = out.unsqueeze(0)
        for _ in range(3):
            m = torch.relu(self.conv(out, data.edge_index, data.edge_attr))
            out, h = self.gru(m.unsqueeze(0), h)
            out = out.squeeze(0)
        out = self.set2set(out, data.batch)
        return self.lin2(torch.relu(self.lin1(out)))


class Complete:
    """The example's transform: all ordered pairs, bond features where bonded, zeros elsewhere."""

    def __call__(self, data: Data) -> Data:
        data = copy.copy(data)
        n = data.num_nodes
        row = torch.arange(n).view(-1, 1).repeat(1, n).view(-1)
        col = torch.arange(n).repeat(n)
        edge_index = torch.stack([row, col], dim=0)
        idx = data.edge_index[0] * n + data.edge_index[1]
        edge_attr = data.edge_attr.new_zeros(n * n, data.edge_attr.shape[1])
        edge_attr[idx] = data.edge_attr
        data.edge_index, data.edge_attr = remove_self_loops(edge_index, edge_attr)
        return data


def to_pyg(mol: Molecule) -> Data:
    """A molecule as PyG's QM9 stores it: bonds both ways with a 4-way one-hot."""
    b = mol.bonds
    edge_index = torch.cat([b, b.flip(1)]).T.contiguous()
    onehot = nn.functional.one_hot(torch.cat([mol.bond_type, mol.bond_type]), 4).float()
    y = mol.y.float().view(1, -1) if mol.y is not None else None
    return Data(x=mol.x, pos=mol.pos.float(), edge_index=edge_index, edge_attr=onehot, y=y)


class PygLoader:
    """Batches as the example's DataLoader makes them: transforms applied on every fetch."""

    def __init__(self, data: list[Data]) -> None:
        self.data = data
        self.complete, self.distance = Complete(), Distance(norm=False)

    def batch(self, indices) -> PygBatch:
        return PygBatch.from_data_list([self.distance(self.complete(self.data[i])) for i in indices])


class PygContender(Contender):
    """PyG's example network, trained on (U0 - mean) / std as the example does."""

    name = "PyG NNConv example"

    def __init__(self, data: MoleculeSet, target: int, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__(PygNNConvNet(data.x.shape[1]))
        self.loader = PygLoader([to_pyg(data[i]) for i in range(len(data))])
        self.target, self.mean, self.std = target, float(mean), float(std)

    def batch(self, indices) -> PygBatch:
        return self.loader.batch(indices)

    def loss(self, batch) -> torch.Tensor:
        target = ((batch.y[:, self.target] - self.mean) / self.std).float().view(-1, 1)
        return torch.nn.functional.mse_loss(self.model(batch), target)

    def predict(self, batch) -> torch.Tensor:
        return self.model(batch) * self.std + self.mean
