"""The edge network's three paths equal the formula m_v = sum_w h_w A(e_vw), to 1e-10 in float64."""

import dataclasses

import pytest
import torch
from model_contract import molecules

from mpnn.batch import collate
from mpnn.inputs import BondDistanceEdges
from mpnn.messages import EdgeNetwork
from mpnn.messages.contraction import BlockLayout, SlotLayout

FAST_PATHS = ("naive", "cached", "contracted")


def graph(kind: str = "complete"):
    batch = collate(molecules(sizes=(3, 7, 4, 11)), graph=kind).to(dtype=torch.float64)
    return batch, BondDistanceEdges()(batch)


def reference_messages(layer: EdgeNetwork, h, edge_index, edge_attr) -> torch.Tensor:
    """Edge by edge, with nothing shared with the layer's code but its weights."""
    n, (d_in, d_out) = h.shape[0], (layer.in_dim, layer.out_dim)
    out = torch.zeros(n, d_out, dtype=h.dtype)
    count = torch.zeros(n, dtype=h.dtype)
    for e in range(edge_index.shape[1]):
        w, v = int(edge_index[0, e]), int(edge_index[1, e])
        z = edge_attr[e]
        for linear in layer.hidden[::2]:
            z = torch.relu(linear.weight @ z + linear.bias)
        a = (layer.matrix.weight @ z + layer.matrix.bias).view(d_in, d_out)
        out[v] += h[w] @ a
        count[v] += 1
    if layer.aggregation == "mean":
        out = out / count.clamp(min=1).unsqueeze(1)
    if layer.root is not None:
        out = out + h @ layer.root.weight.T
    if layer.bias is not None:
        out = out + layer.bias
    return out


@pytest.mark.parametrize("kind", ["complete", "bonds"])
@pytest.mark.parametrize("aggregation", ["sum", "mean"])
@pytest.mark.parametrize("path", FAST_PATHS)
def test_paths_equal_the_formula(path: str, aggregation: str, kind: str) -> None:
    torch.manual_seed(0)
    batch, edge_attr = graph(kind)
    layer = EdgeNetwork(
        6, 5, 7, hidden=(9, 8), aggregation=aggregation, path=path, root_weight=True, bias=True
    ).double()
    h = torch.randn(batch.num_atoms, 5, dtype=torch.float64)
    expected = reference_messages(layer, h, batch.edge_index, edge_attr)
    got = layer(h, layer.prepare(batch, edge_attr, steps=3))
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("path", ["cached", "contracted"])
def test_gradients_equal_the_naive_path(path: str) -> None:
    """Training sees the same gradients, for weights, node states and edge features."""
    torch.manual_seed(1)
    batch, edge_attr = graph()
    layer = EdgeNetwork(6, 4, 4, hidden=(8,)).double()
    h = torch.randn(batch.num_atoms, 4, dtype=torch.float64)
    grads = {}
    for name in ("naive", path):
        layer.path = name
        hh, ee = h.clone().requires_grad_(True), edge_attr.clone().requires_grad_(True)
        m = layer(hh, layer.prepare(batch, ee, steps=2))
        m = layer(torch.tanh(m), layer.prepare(batch, ee, steps=2))
        params = list(layer.parameters())
        grads[name] = torch.autograd.grad((m**2).sum(), [hh, ee, *params])
    for a, b in zip(grads["naive"], grads[path], strict=True):
        torch.testing.assert_close(b, a, atol=1e-10, rtol=0)


def test_unsorted_edges_give_the_same_messages() -> None:
    torch.manual_seed(2)
    batch, edge_attr = graph()
    layer = EdgeNetwork(6, 4, 4, path="contracted").double()
    h = torch.randn(batch.num_atoms, 4, dtype=torch.float64)
    perm = torch.randperm(batch.num_edges)
    expected = layer(h, layer.prepare(batch, edge_attr))
    shuffled = dataclasses.replace(batch, edge_index=batch.edge_index[:, perm])
    ctx = layer.prepare(shuffled, edge_attr[perm])
    assert isinstance(ctx.layout, SlotLayout)  # no longer the sorted complete graph
    got = layer(h, ctx)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


def test_auto_picks_the_cheaper_path() -> None:
    """Dense molecular graphs favour the contracted sums; sparse bond graphs the cached matrices."""
    layer = EdgeNetwork(6, 64, 64, hidden=(128,))
    n = 18
    assert layer.choose_path(n, n * (n - 1), n - 1, steps=3) == "contracted"
    assert layer.choose_path(n, 2 * (n - 1), 4, steps=3) == "cached"
    batch, edge_attr = graph("bonds")
    assert layer.prepare(batch, edge_attr.float(), 3).path == "cached"


@pytest.mark.parametrize("kind", ["complete", "bonds"])
def test_contracted_path_keeps_per_edge_tensors_narrow(kind: str) -> None:
    """Every tensor of the contracted context has at most H + 1 values per (node, edge) slot."""
    batch, edge_attr = graph(kind)
    layer = EdgeNetwork(6, 16, 16, hidden=(8,), path="contracted").double()
    ctx = layer.prepare(batch, edge_attr)
    assert ctx.matrices is None and ctx.z is None
    layout = ctx.layout
    assert isinstance(layout, BlockLayout if kind == "complete" else SlotLayout)
    tensors = [t for group in getattr(layout, "groups", []) for t in group]
    tensors += [v for v in vars(layout).values() if isinstance(v, torch.Tensor)]
    assert max(t.numel() for t in tensors) <= layout.slots * 9
    sizes = batch.ptr[1:] - batch.ptr[:-1]
    if kind == "complete":
        assert layout.slots == int((sizes**2).sum())


def test_isolated_and_lone_atoms_receive_no_message() -> None:
    """A one-atom structure (no edges) and an atom with no incoming edge get m = 0."""
    layer = EdgeNetwork(6, 3, 3, path="contracted").double()
    mols = molecules(sizes=(1, 3, 1, 2))
    for kind in ("complete", "bonds"):
        batch = collate(mols, graph=kind).to(dtype=torch.float64)
        h = torch.randn(batch.num_atoms, 3, dtype=torch.float64)
        m = layer(h, layer.prepare(batch, BondDistanceEdges()(batch)))
        assert torch.all(m[[0, 4]] == 0) and torch.any(m[1:4] != 0)
        torch.testing.assert_close(
            m, reference_messages(layer, h, batch.edge_index, BondDistanceEdges()(batch)), atol=1e-12, rtol=0
        )
