"""The engine's optional parts (edge states, master node, readout over all steps) on toy modules
whose every step can be worked out by hand."""

from __future__ import annotations

import torch
from torch import nn

from mpnn.batch import Molecule, collate
from mpnn.engine import MPNN
from mpnn.scatter import segment_sum
from mpnn.updates import MasterNode


class NodeFeatures(nn.Module):
    def forward(self, batch):
        return batch.x


class EdgeOnes(nn.Module):
    def forward(self, batch):
        return torch.ones(batch.num_edges, 1, dtype=batch.pos.dtype)


class SumEdgeAttr(nn.Module):
    """m_v = sum over edges into v of e_vw (broadcast to the width of h) + 0 * h."""

    def prepare(self, batch, edge_attr, steps):
        return (batch, edge_attr)

    def forward(self, h, context):
        batch, edge_attr = context
        m = segment_sum(edge_attr, batch.edge_index[1], batch.num_atoms)
        return m.expand(-1, h.shape[1]) + 0 * h


class Add(nn.Module):
    def forward(self, h, m):
        return h + m


class DoubleEdges(nn.Module):
    def forward(self, e, h, batch):
        return 2 * e


class Identity(nn.Module):
    def forward(self, h, x, index, num_graphs):
        return segment_sum(h, index, num_graphs)


def chain(n: int, features: int = 2) -> Molecule:
    """n atoms on a line 1.5 Angstrom apart, bonded in a chain."""
    pos = torch.zeros(n, 3, dtype=torch.float64)
    pos[:, 0] = 1.5 * torch.arange(n)
    bonds = torch.tensor([[i, i + 1] for i in range(n - 1)]).view(-1, 2)
    x = torch.arange(n * features, dtype=torch.float64).view(n, features)
    return Molecule(torch.full((n,), 6), pos, x, bonds, torch.zeros(n - 1, dtype=torch.long))


def test_edge_states_are_updated_between_steps() -> None:
    """Edge states 1, 2, 4 at steps 1, 2, 3: an atom of degree k gains k * (1 + 2 + 4)."""
    batch = collate([chain(3)], graph="bonds").to(dtype=torch.float64)
    parts = (NodeFeatures(), EdgeOnes(), SumEdgeAttr(), Add(), Identity())
    net = MPNN(*parts, steps=3, edge_update=DoubleEdges())
    h = net.node_states(batch)
    degree = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64).unsqueeze(1)
    torch.testing.assert_close(h, batch.x + degree * (1 + 2 + 4))


def test_without_edge_updates_the_edge_states_stay() -> None:
    batch = collate([chain(3)], graph="bonds").to(dtype=torch.float64)
    net = MPNN(NodeFeatures(), EdgeOnes(), SumEdgeAttr(), Add(), Identity(), steps=3)
    degree = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64).unsqueeze(1)
    torch.testing.assert_close(net.node_states(batch), batch.x + 3 * degree)


def test_readout_over_all_steps_reads_every_state() -> None:
    batch = collate([chain(3)], graph="bonds").to(dtype=torch.float64)
    net = MPNN(NodeFeatures(), EdgeOnes(), SumEdgeAttr(), Add(), Identity(), steps=2, readout_states="all")
    degree = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64).unsqueeze(1)
    expected = torch.cat([batch.x + degree, batch.x + 2 * degree], dim=1)
    torch.testing.assert_close(net.node_states(batch), expected)


class ZeroMessage(nn.Module):
    def prepare(self, batch, edge_attr, steps):
        return None

    def forward(self, h, context):
        return torch.zeros_like(h)


def test_master_node_against_its_equations() -> None:
    """Two steps with a master node, recomputed with the same weights step by step by hand."""
    torch.manual_seed(0)
    molecules = [chain(3), chain(2)]
    batch = collate(molecules, graph="bonds").to(dtype=torch.float64)
    master = MasterNode(dim=2, master_dim=3).double()
    with torch.no_grad():
        master.initial.copy_(torch.tensor([0.5, -1.0, 2.0]))
    net = MPNN(NodeFeatures(), EdgeOnes(), ZeroMessage(), Add(), Identity(), steps=2, master=master)
    h = net.node_states(batch)

    a_atom, a_master = master.to_atom_matrix.weight, master.to_master_matrix.weight  # (2, 3), (3, 2)
    expected = []
    for mol in molecules:
        hv = mol.x.clone()
        g = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64)
        for _ in range(2):
            message = hv.sum(0, keepdim=True) @ a_master.T  # sum_v A h_v (linear, so sum first)
            hv, g = hv + g @ a_atom.T, master.cell(message, g)
        expected.append(hv)
    torch.testing.assert_close(h, torch.cat(expected), atol=1e-12, rtol=0)


def test_untied_steps_get_their_own_master_and_edge_update_weights() -> None:
    master = MasterNode(dim=2, master_dim=3)
    net = MPNN(NodeFeatures(), EdgeOnes(), ZeroMessage(), Add(), Identity(), steps=3, tie_weights=False,
               master=master)  # fmt: skip
    assert len(net.masters) == 3
    assert not torch.equal(net.masters[0].cell.weight_hh, net.masters[1].cell.weight_hh)
