"""Our layers equal PyTorch Geometric's, given the same weights (float64)."""

import pytest
import torch
from model_contract import molecules

from mpnn.batch import collate
from mpnn.inputs import BondDistanceEdges
from mpnn.messages import EdgeNetwork
from mpnn.readouts import Set2Set

pyg_nn = pytest.importorskip("torch_geometric.nn", reason="torch_geometric is a test dependency")


@pytest.mark.parametrize("aggregation", ["mean", "add"])
@pytest.mark.parametrize("path", ["naive", "cached", "contracted"])
def test_edge_network_equals_nnconv(path: str, aggregation: str) -> None:
    torch.manual_seed(0)
    batch = collate(molecules(sizes=(4, 9, 6)), graph="complete").to(dtype=torch.float64)
    edge_attr = BondDistanceEdges()(batch)
    edge_net = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Linear(32, 8 * 8))
    theirs = pyg_nn.NNConv(8, 8, edge_net, aggr=aggregation).double()
    ours = EdgeNetwork(
        6,
        8,
        8,
        hidden=(32,),
        aggregation="mean" if aggregation == "mean" else "sum",
        path=path,
        root_weight=True,
        bias=True,
    ).double()
    ours.hidden[0].load_state_dict(edge_net[0].state_dict())
    ours.matrix.load_state_dict(edge_net[2].state_dict())
    ours.root.weight.data.copy_(theirs.lin.weight)
    ours.bias.data.copy_(theirs.bias)
    h = torch.randn(batch.num_atoms, 8, dtype=torch.float64)
    expected = theirs(h, batch.edge_index, edge_attr)
    got = ours(h, ours.prepare(batch, edge_attr))
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)


def test_set2set_equals_pyg() -> None:
    torch.manual_seed(1)
    theirs = pyg_nn.Set2Set(5, processing_steps=3).double()
    ours = Set2Set(5, steps=3).double()
    ours.lstm.load_state_dict(theirs.lstm.state_dict())
    h = torch.randn(20, 5, dtype=torch.float64)
    index = torch.tensor([0] * 4 + [1] * 9 + [2] * 7)
    torch.testing.assert_close(ours(h, index, 3), theirs(h, index), atol=1e-12, rtol=0)
