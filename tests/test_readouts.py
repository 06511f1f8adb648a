"""Readouts against explicit per-structure computations."""

import torch

from mpnn.readouts import Set2SetReadout, SumReadout


def test_sum_readout_adds_atomic_contributions() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh())
    readout = SumReadout(net).double()
    h = torch.randn(7, 4, dtype=torch.float64)
    index = torch.tensor([0, 0, 2, 2, 2, 3, 3])  # structure 1 has no atoms
    got = readout(h, h[:, :0], index, 4)
    expected = torch.stack([net.double()(h[index == b]).sum(0) for b in range(4)])
    torch.testing.assert_close(got, expected, atol=1e-14, rtol=0)
    assert torch.all(got[1] == 0)


def test_set2set_readout_is_invariant_to_atom_order_and_reads_x() -> None:
    torch.manual_seed(1)
    readout = Set2SetReadout(dim=6, in_features=3, out_features=2, steps=3, project=5).double()
    h, x = torch.randn(9, 6, dtype=torch.float64), torch.randn(9, 3, dtype=torch.float64)
    index = torch.tensor([0] * 4 + [1] * 5)
    perm = torch.cat([torch.randperm(4), 4 + torch.randperm(5)])
    before = readout(h, x, index, 2)
    torch.testing.assert_close(readout(h[perm], x[perm], index, 2), before, atol=1e-12, rtol=0)
    x2 = x.clone()
    x2[0] += 1.0
    changed = readout(h, x2, index, 2)
    assert not torch.allclose(changed[0], before[0]) and torch.allclose(changed[1], before[1])
