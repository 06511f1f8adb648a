"""Towers in one computation (Gilmer et al. 2017, Sec. 5.4): the block-diagonal edge network and the
grouped GRU equal k separate edge networks and k GRU cells, edge by edge and end to end (float64)."""

from __future__ import annotations

import pytest
import torch
from model_contract import CHECKS, molecules
from torch import nn

import mpnn.messages.contraction as contraction
from mpnn.batch import collate
from mpnn.engine import MPNN
from mpnn.inputs import BondDistanceEdges
from mpnn.messages import DirectedMessage, EdgeNetwork, TowerUpdate, towers
from mpnn.models import MODELS, build_model
from mpnn.models.gilmer import GilmerConfig, gilmer
from mpnn.updates.grouped_gru import GroupedGRU

MODELS.setdefault("mpnn", (GilmerConfig, gilmer))
F64 = torch.float64
PATHS = ("naive", "cached", "contracted")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread is fastest, and spares the cores other jobs use (restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def graph(kind: str, sizes=(3, 7, 4, 7, 1, 11)):
    """Structures of repeated sizes (groups of several), a lone atom, on complete or bond graphs."""
    batch = collate(molecules(sizes=sizes, seed=5), graph=kind).to(dtype=F64)
    return batch, BondDistanceEdges()(batch)


def reference_messages(layer: EdgeNetwork, h: torch.Tensor, batch, edge_attr) -> torch.Tensor:
    """Edge by edge: the full matrix A(e) = block_diag(A_1(e), ..., A_k(e)), then h_w @ A(e)."""
    k, d_in, d_out = layer.blocks, layer.in_dim, layer.out_dim
    size = (d_in // k) * (d_out // k)
    out = torch.zeros(h.shape[0], d_out, dtype=h.dtype)
    count = torch.zeros(h.shape[0], dtype=h.dtype)
    for e, (w, v) in enumerate(batch.edge_index.T.tolist()):
        z = edge_attr[e]
        for linear in layer.hidden[::2]:
            z = torch.relu(linear.weight @ z + linear.bias)
        flat = layer.matrix.weight @ z + layer.matrix.bias
        a = torch.block_diag(*[flat[i * size : (i + 1) * size].view(d_in // k, d_out // k) for i in range(k)])
        out[v] += h[w] @ a
        count[v] += 1
    if layer.aggregation == "mean":
        out = out / count.clamp(min=1).unsqueeze(1)
    return out


@pytest.mark.parametrize("kind", ["complete", "bonds"])
@pytest.mark.parametrize("aggregation", ["sum", "mean"])
@pytest.mark.parametrize("path", PATHS)
def test_blocks_equal_the_block_diagonal_formula(path: str, aggregation: str, kind: str) -> None:
    torch.manual_seed(0)
    batch, edge_attr = graph(kind)
    layer = EdgeNetwork(6, 8, 12, hidden=(5, 7), aggregation=aggregation, path=path, blocks=4).double()
    h = torch.randn(batch.num_atoms, 8, dtype=F64)
    ctx = layer.prepare(batch, edge_attr, steps=3)
    assert ctx.path == path
    expected = reference_messages(layer, h, batch, edge_attr)
    torch.testing.assert_close(layer(h, ctx), expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", ["complete", "bonds"])
@pytest.mark.parametrize("path", PATHS)
def test_blocks_equal_k_edge_networks_sharing_the_hidden_layers(path: str, kind: str) -> None:
    """Tower i = an ordinary edge network on columns i of h, with the shared z and its own output layer."""
    torch.manual_seed(1)
    batch, edge_attr = graph(kind)
    k, width = 3, 4
    layer = EdgeNetwork(6, k * width, k * width, hidden=(9,), path=path, blocks=k).double()
    h = torch.randn(batch.num_atoms, k * width, dtype=F64)
    got = layer(h, layer.prepare(batch, edge_attr, steps=2))
    rows = width * width
    for i in range(k):
        tower = EdgeNetwork(6, width, width, hidden=(9,), path="naive").double()
        tower.hidden.load_state_dict(layer.hidden.state_dict())
        with torch.no_grad():
            tower.matrix.weight.copy_(layer.matrix.weight[i * rows : (i + 1) * rows])
            tower.matrix.bias.copy_(layer.matrix.bias[i * rows : (i + 1) * rows])
        part = h[:, i * width : (i + 1) * width]
        expected = tower(part, tower.prepare(batch, edge_attr))
        torch.testing.assert_close(got[:, i * width : (i + 1) * width], expected, atol=1e-12, rtol=0)


@pytest.mark.parametrize("chunk", [1, 1 << 30])
def test_chunks_of_structures_give_the_same_messages(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """One structure per chunk, or whole groups: the contracted blocks on a complete graph agree."""
    monkeypatch.setattr(contraction, "CHUNK", chunk)
    torch.manual_seed(2)
    batch, edge_attr = graph("complete", sizes=(5, 5, 5, 2, 5))
    layer = EdgeNetwork(6, 6, 6, hidden=(4,), path="contracted", blocks=2).double()
    h = torch.randn(batch.num_atoms, 6, dtype=F64)
    ctx = layer.prepare(batch, edge_attr)
    assert isinstance(ctx.layout, contraction.BlockLayout)
    torch.testing.assert_close(
        layer(h, ctx), reference_messages(layer, h, batch, edge_attr), atol=1e-12, rtol=0
    )


@pytest.mark.parametrize("path", ["cached", "contracted"])
def test_block_gradients_equal_the_naive_path(path: str) -> None:
    torch.manual_seed(3)
    batch, edge_attr = graph("complete")
    layer = EdgeNetwork(6, 6, 6, hidden=(5,), blocks=3).double()
    h = torch.randn(batch.num_atoms, 6, dtype=F64)
    grads = {}
    for name in ("naive", path):
        layer.path = name
        hh, ee = h.clone().requires_grad_(True), edge_attr.clone().requires_grad_(True)
        m = layer(hh, layer.prepare(batch, ee, steps=2))
        m = layer(torch.tanh(m), layer.prepare(batch, ee, steps=2))
        grads[name] = torch.autograd.grad((m**2).sum(), [hh, ee, *layer.parameters()])
    for a, b in zip(grads["naive"], grads[path], strict=True):
        torch.testing.assert_close(b, a, atol=1e-10, rtol=0)


def test_the_cost_model_counts_the_blocks() -> None:
    """N 10, E 40, slots 40, T 3, H+1 9, d 16: cached costs E·dd·(H+1+T) = 480·dd, contracted
    T·(H+1)·(N·dd + slots·d) = 270·dd + 17280.  dd = 256 (k = 1): 122880 > 86400, contracted;
    dd = 32 (k = 8): 15360 < 25920, cached."""
    assert EdgeNetwork(6, 16, 16, hidden=(8,), blocks=1).choose_path(10, 40, 40, steps=3) == "contracted"
    assert EdgeNetwork(6, 16, 16, hidden=(8,), blocks=8).choose_path(10, 40, 40, steps=3) == "cached"
    layer = EdgeNetwork(6, 200, 200, hidden=(128,), blocks=8)
    assert layer.matrix.weight.numel() == 128 * 200 * 200 // 8


def test_blocks_must_divide_the_widths() -> None:
    with pytest.raises(ValueError, match="EdgeNetwork: blocks") as error:
        EdgeNetwork(6, 10, 10, blocks=3)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="GroupedGRU"):
        GroupedGRU(8, 2, 6, channels=2)


# -- grouped GRU -------------------------------------------------------------------------------


def cell_of(grouped: GroupedGRU, i: int) -> nn.GRUCell:
    cell = nn.GRUCell(grouped.weight_ih.shape[2], grouped.tower_dim).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(grouped, name)[i])
    return cell


def test_one_group_is_exactly_a_gru_cell() -> None:
    torch.manual_seed(5)
    grouped = GroupedGRU(6, 1, 10).double()
    h, m = torch.randn(9, 6, dtype=F64), torch.randn(9, 10, dtype=F64)
    assert torch.equal(grouped(h, m), cell_of(grouped, 0)(m, h))


@pytest.mark.parametrize("channels", [1, 2])
def test_grouped_gru_equals_k_gru_cells(channels: int) -> None:
    """Tower i reads columns i of every channel: channel-major message, each channel tower-major."""
    torch.manual_seed(6)
    k, c, q = 4, 3, 5
    grouped = GroupedGRU(k * c, k, channels * k * q, channels=channels).double()
    h = torch.randn(7, k * c, dtype=F64, requires_grad=True)
    m = torch.randn(7, channels * k * q, dtype=F64, requires_grad=True)
    got = grouped(h, m)
    expected = []
    for i in range(k):
        x = torch.cat([m[:, ch * k * q + i * q : ch * k * q + (i + 1) * q] for ch in range(channels)], dim=1)
        expected.append(cell_of(grouped, i)(x, h[:, i * c : (i + 1) * c]))
    expected = torch.cat(expected, dim=1)
    torch.testing.assert_close(got, expected, atol=1e-13, rtol=0)
    weights = torch.randn_like(got)
    grad_got = torch.autograd.grad((got * weights).sum(), [h, m])
    grad_expected = torch.autograd.grad((expected * weights).sum(), [h, m])
    for a, b in zip(grad_got, grad_expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-13, rtol=0)


def test_grouped_gru_reset_draws_new_weights_in_the_gru_range() -> None:
    grouped = GroupedGRU(8, 2, 8)
    before = grouped.weight_hh.detach().clone()
    grouped.reset_parameters()
    assert not torch.equal(before, grouped.weight_hh)
    assert all(float(p.detach().abs().max()) <= 0.5 for p in grouped.parameters())  # 1 / sqrt(4)


# -- the model ---------------------------------------------------------------------------------

SMALL = {"dim": 16, "steps": 2, "message_hidden": [8], "set2set_steps": 2, "readout_hidden": 12}


def test_blocked_towers_model_equals_separate_towers() -> None:
    """The configurable model's edge-network towers equal k separate directed edge networks (generic
    towers) whose hidden layers hold the shared z, with the same GRUs and mixing network."""
    torch.manual_seed(7)
    model = build_model({"model": "mpnn", **SMALL, "towers": 2}).double()
    net = model.net
    blocked = net.messages[0]
    assert isinstance(blocked, DirectedMessage) and blocked.incoming.blocks == 2

    def factory(width: int) -> DirectedMessage:
        return DirectedMessage(EdgeNetwork(6, width, width, (8,)), EdgeNetwork(6, width, width, (8,)))

    message, update = towers(16, 2, factory)
    rows = 8 * 8
    with torch.no_grad():
        for i, tower in enumerate(message.towers):
            for name in ("incoming", "outgoing"):
                src, dst = getattr(blocked, name), getattr(tower, name)
                dst.hidden.load_state_dict(src.hidden.state_dict())
                dst.matrix.weight.copy_(src.matrix.weight[i * rows : (i + 1) * rows])
                dst.matrix.bias.copy_(src.matrix.bias[i * rows : (i + 1) * rows])
    update.load_state_dict(net.updates[0].state_dict())
    separate = MPNN(net.node_input, net.edge_input, message, update, net.readout, net.steps).double()
    for kind, sizes in (("complete", (3, 5, 5, 8)), ("bonds", (4, 6))):
        batch = collate(molecules(sizes=sizes, seed=8), graph=kind).to(dtype=F64)
        torch.testing.assert_close(net(batch), separate(batch), atol=1e-12, rtol=0)


CONFIGS = {
    "directed_towers4": {"towers": 4},
    "undirected_towers2_bonds_untied": {
        "towers": 2,
        "directed": False,
        "graph": "bonds",
        "tie_weights": False,
        "aggregation": "mean",
    },
}


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_towers_model_contract(name: str, check: str) -> None:
    def make():
        torch.manual_seed(0)
        return build_model({"model": "mpnn", **SMALL, **CONFIGS[name]}).double()

    CHECKS[check](make)


def test_towers_model_holds_d_squared_over_k_edge_matrix_weights() -> None:
    model = build_model({"model": "mpnn", **SMALL, "towers": 4})
    message, update = model.net.messages[0], model.net.updates[0]
    assert message.incoming.matrix.weight.numel() == 8 * 16 * 16 // 4
    assert isinstance(update, TowerUpdate) and update.cells.channels == 2 and update.tower_dim == 4
