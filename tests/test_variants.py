"""Gilmer et al.'s variants: matrix, pair, directed and tower messages, the gated readout, the
discrete edge inputs, GG-NN and the configurable model, against hand-computed tiny graphs,
loops over edges, PyTorch Geometric layers and the shared model checks."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from model_contract import CHECKS, molecules, seeded_factory
from torch import nn

from mpnn.batch import Batch, Molecule, collate
from mpnn.inputs import BondDistanceEdges, BondTypeEdges, DistanceBinEdges, edge_vectors
from mpnn.messages import (
    DirectedMessage,
    EdgeNetwork,
    MatrixMessage,
    PairMessage,
    TowerMessage,
    TowerUpdate,
    reverse_edges,
    towers,
)
from mpnn.models import MODELS, build_model
from mpnn.models.ggnn import GGNNConfig, ggnn
from mpnn.models.gilmer import GilmerConfig, gilmer
from mpnn.models.presets import DESCRIPTIONS, PAPER_RATIO, PRESETS
from mpnn.readouts import GatedReadout
from mpnn.updates import GRUUpdate

MODELS.setdefault("mpnn", (GilmerConfig, gilmer))
MODELS.setdefault("ggnn", (GGNNConfig, ggnn))
F64 = torch.float64


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one thread is fastest, and spares the cores other jobs use (restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def toy_graph(
    edges: list[tuple[int, int]], types: list[int], n: int, pos: torch.Tensor | None = None
) -> Batch:
    """One structure of n atoms with the given directed edges (source, target), sorted by target."""
    assert edges == sorted(edges, key=lambda e: (e[1], e[0]))
    return Batch(
        z=torch.full((n,), 6),
        pos=pos if pos is not None else torch.zeros(n, 3, dtype=F64),
        x=torch.zeros(n, 0, dtype=F64),
        edge_index=torch.tensor(edges, dtype=torch.long).view(-1, 2).T.contiguous(),
        edge_type=torch.tensor(types, dtype=torch.long),
        batch=torch.zeros(n, dtype=torch.long),
        ptr=torch.tensor([0, n]),
    )


def batch_of(sizes=(3, 5, 6), graph: str = "complete") -> Batch:
    return collate(molecules(sizes=sizes, seed=4), graph=graph).to(dtype=F64)


# -- matrix message ----------------------------------------------------------------------------


def test_matrix_message_on_a_hand_computed_graph() -> None:
    """Edges 1->0 (type 1), 0->1 (type 0), 2->1 (type 1): m_0 = h_1 A_1, m_1 = h_0 A_0 + h_2 A_1."""
    message = MatrixMessage(2, 2, 2, bias=False).double()
    with torch.no_grad():
        message.weight.copy_(torch.tensor([[[1.0, 0.0], [0.0, 2.0]], [[0.0, 1.0], [1.0, 0.0]]]))
    h = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=F64)
    batch = toy_graph([(1, 0), (0, 1), (2, 1)], [1, 0, 1], 3)
    m = message(h, message.prepare(batch, batch.edge_type))
    torch.testing.assert_close(m, torch.tensor([[4.0, 3.0], [7.0, 9.0], [0.0, 0.0]], dtype=F64))
    message.aggregation = "mean"
    m = message(h, message.prepare(batch, batch.edge_type))
    torch.testing.assert_close(m, torch.tensor([[4.0, 3.0], [3.5, 4.5], [0.0, 0.0]], dtype=F64))


@pytest.mark.parametrize("aggregation", ["sum", "mean"])
def test_matrix_message_equals_a_loop_over_edges(aggregation: str) -> None:
    torch.manual_seed(0)
    batch = batch_of()
    types = BondTypeEdges()(batch)
    message = MatrixMessage(5, 4, 3, aggregation=aggregation).double()
    with torch.no_grad():
        message.bias.normal_()
    h = torch.randn(batch.num_atoms, 4, dtype=F64)
    got = message(h, message.prepare(batch, types))
    expected = torch.zeros(batch.num_atoms, 3, dtype=F64)
    count = [0] * batch.num_atoms
    for (w, v), k in zip(batch.edge_index.T.tolist(), types.tolist(), strict=True):
        expected[v] += h[w] @ message.weight[k]
        count[v] += 1
    if aggregation == "mean":
        expected /= torch.tensor(count, dtype=F64).clamp(min=1).unsqueeze(1)
    torch.testing.assert_close(got, expected + message.bias, atol=1e-12, rtol=0)


def test_matrix_message_equals_pyg_rgcnconv() -> None:
    pyg = pytest.importorskip("torch_geometric.nn", reason="torch_geometric is a test dependency")
    torch.manual_seed(1)
    batch = batch_of(graph="bonds")
    types = BondTypeEdges()(batch)
    theirs = pyg.RGCNConv(4, 3, num_relations=5, aggr="add", root_weight=False, bias=False).double()
    ours = MatrixMessage(5, 4, 3, bias=False).double()
    with torch.no_grad():
        ours.weight.copy_(theirs.weight)
    h = torch.randn(batch.num_atoms, 4, dtype=F64)
    expected = theirs(h, batch.edge_index, types)
    torch.testing.assert_close(ours(h, ours.prepare(batch, types)), expected, atol=1e-12, rtol=0)


def test_matrix_message_and_gru_equal_pyg_gated_graph_conv() -> None:
    """Two GG-NN steps with one edge type: PyG's GatedGraphConv (a matrix per step, one GRU)."""
    pyg = pytest.importorskip("torch_geometric.nn", reason="torch_geometric is a test dependency")
    torch.manual_seed(2)
    batch = batch_of(graph="bonds")
    theirs = pyg.GatedGraphConv(6, num_layers=2).double()
    steps = [MatrixMessage(1, 6, 6, bias=False).double() for _ in range(2)]
    update = GRUUpdate(6).double()
    update.cell.load_state_dict(theirs.rnn.state_dict())
    single_type = torch.zeros(batch.num_edges, dtype=torch.long)
    h0 = torch.randn(batch.num_atoms, 6, dtype=F64)
    h = h0
    for i, message in enumerate(steps):
        with torch.no_grad():
            message.weight[0].copy_(theirs.weight[i])
        h = update(h, message(h, message.prepare(batch, single_type)))
    torch.testing.assert_close(h, theirs(h0, batch.edge_index), atol=1e-12, rtol=0)


def test_matrix_message_rejects_continuous_or_unknown_edge_types() -> None:
    batch = batch_of()
    message = MatrixMessage(5, 4, 4)
    with pytest.raises(ValueError, match="edge_attr must be an int64"):
        message.prepare(batch, BondTypeEdges(onehot=True)(batch))
    with pytest.raises(ValueError, match=r"edge_attr holds types outside \[0, 3\)"):
        MatrixMessage(3, 4, 4).prepare(batch, DistanceBinEdges()(batch))


# -- pair message ------------------------------------------------------------------------------


@pytest.mark.parametrize("aggregation", ["sum", "mean"])
def test_pair_message_equals_a_loop_over_edges(aggregation: str) -> None:
    torch.manual_seed(3)
    batch = batch_of()
    e = BondDistanceEdges()(batch)
    message = PairMessage(6, 4, 3, hidden=(7, 5), aggregation=aggregation).double()
    h = torch.randn(batch.num_atoms, 4, dtype=F64)
    got = message(h, message.prepare(batch, e))
    f = nn.Sequential(message.first, *message.rest)  # f on the concatenation, applied edge by edge
    expected = torch.zeros(batch.num_atoms, 3, dtype=F64)
    count = [0] * batch.num_atoms
    for i, (w, v) in enumerate(batch.edge_index.T.tolist()):
        expected[v] += f(torch.cat([h[w], h[v], e[i]]))
        count[v] += 1
    if aggregation == "mean":
        expected /= torch.tensor(count, dtype=F64).clamp(min=1).unsqueeze(1)
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


def test_pair_message_sees_the_receiver() -> None:
    """Unlike the matrix message, changing h_v alone changes v's message."""
    torch.manual_seed(4)
    batch = toy_graph([(0, 1)], [0], 2)
    message = PairMessage(0, 3, 3, hidden=(8,)).double()
    ctx = message.prepare(batch, torch.zeros(1, 0, dtype=F64))
    h = torch.randn(2, 3, dtype=F64)
    h2 = h.clone()
    h2[1] += 1.0
    assert not torch.allclose(message(h, ctx)[1], message(h2, ctx)[1])


# -- directed message --------------------------------------------------------------------------


def test_directed_message_on_an_asymmetric_chain() -> None:
    """Edges 0->1 (type 0), 1->2 (type 1) only.  In: m_1 = h_0 A_0, m_2 = h_1 A_1.
    Out (against the edges, same types): m_0 = h_1 B_0, m_1 = h_2 B_1."""
    incoming, outgoing = MatrixMessage(2, 2, 2, bias=False), MatrixMessage(2, 2, 2, bias=False)
    with torch.no_grad():
        incoming.weight.copy_(torch.tensor([[[1.0, 0.0], [0.0, 1.0]], [[2.0, 0.0], [0.0, 3.0]]]))
        outgoing.weight.copy_(torch.tensor([[[0.0, 1.0], [1.0, 0.0]], [[1.0, 1.0], [0.0, 1.0]]]))
    message = DirectedMessage(incoming, outgoing).double()
    h = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=F64)
    batch = toy_graph([(0, 1), (1, 2)], [0, 1], 3)
    m = message(h, message.prepare(batch, batch.edge_type))
    expected = torch.tensor(
        [
            [0.0, 0.0, 4.0, 3.0],  # nothing comes in; out: h_1 B_0 = (4, 3)
            [1.0, 2.0, 5.0, 11.0],  # in: h_0 A_0; out: h_2 B_1 = (5, 5 + 6)
            [6.0, 12.0, 0.0, 0.0],  # in: h_1 A_1 = (2*3, 3*4); nothing goes out
        ],
        dtype=F64,
    )
    assert message.out_dim == 4
    torch.testing.assert_close(m, expected)


def test_directed_edge_networks_equal_a_loop_over_edges() -> None:
    """Edge networks in both channels on a random sparse directed graph (not symmetric)."""
    torch.manual_seed(5)
    n = 6
    pairs = sorted(
        {(int(a), int(b)) for a, b in torch.randint(0, n, (14, 2)).tolist() if a != b}, key=lambda p: p[::-1]
    )
    pos = torch.randn(n, 3, dtype=F64) * 2
    batch = toy_graph(pairs, [0] * len(pairs), n, pos=pos)
    e = BondDistanceEdges()(batch)
    channels = [EdgeNetwork(6, 3, 2, hidden=(5,), path=p).double() for p in ("cached", "contracted")]
    message = DirectedMessage(*channels)
    h = torch.randn(n, 3, dtype=F64)
    got = message(h, message.prepare(batch, e))

    def matrix(net: EdgeNetwork, edge: torch.Tensor) -> torch.Tensor:
        return net.matrix(net.hidden(edge)).view(3, 2)

    expected = torch.zeros(n, 4, dtype=F64)
    for i, (w, v) in enumerate(pairs):
        expected[v, :2] += h[w] @ matrix(channels[0], e[i])  # along w -> v
        expected[w, 2:] += h[v] @ matrix(channels[1], e[i])  # against it: w hears from v
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


def test_reverse_edges_flips_vectors_and_keeps_features() -> None:
    batch = batch_of(graph="bonds")
    batch.shift = torch.randint(-1, 2, (batch.num_edges, 3)).to(F64)
    batch.cell = (torch.eye(3, dtype=F64) * 7.0).expand(batch.num_graphs, 3, 3)
    attr = torch.arange(batch.num_edges)
    reversed_batch, reversed_attr = reverse_edges(batch, attr)
    source, target = reversed_batch.edge_index
    assert bool((torch.diff(target * batch.num_atoms + source) > 0).all())  # sorted by target
    original = batch.edge_index[:, reversed_attr]
    assert torch.equal(reversed_batch.edge_index, original.flip(0))
    torch.testing.assert_close(edge_vectors(reversed_batch), -edge_vectors(batch)[reversed_attr])


# -- towers ------------------------------------------------------------------------------------


def tower_cell(update: TowerUpdate, i: int) -> nn.GRUCell:
    """Tower i's GRU as an ``nn.GRUCell``: its slices of the update's grouped weights."""
    grouped = update.cells
    cell = nn.GRUCell(grouped.weight_ih.shape[2], grouped.tower_dim).to(grouped.weight_ih.dtype)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(grouped, name)[i])
    return cell


def test_one_tower_is_a_gru_step_then_the_mixing_network() -> None:
    torch.manual_seed(6)
    batch = batch_of()
    e = BondDistanceEdges()(batch)
    message, update = towers(4, 1, lambda width: EdgeNetwork(6, width, width, hidden=(5,)), mixing_hidden=[7])
    message, update = message.double(), update.double()
    h = torch.randn(batch.num_atoms, 4, dtype=F64)
    got = update(h, message(h, message.prepare(batch, e)))
    single = message.towers[0]
    m = single(h, single.prepare(batch, e))
    gru = GRUUpdate(4).double()
    gru.cell.load_state_dict(tower_cell(update, 0).state_dict())
    first, last = update.mixing[0], update.mixing[2]
    hidden = torch.relu(gru(h, m) @ first.weight.T + first.bias)
    torch.testing.assert_close(got, hidden @ last.weight.T + last.bias, atol=1e-12, rtol=0)


def test_towers_are_independent_before_the_mixing() -> None:
    """k = 2 with the mixing replaced by the identity: tower 0's new state reads tower 0 alone."""
    torch.manual_seed(7)
    batch = batch_of()
    types = BondTypeEdges()(batch)
    message, update = towers(6, 2, lambda width: MatrixMessage(5, width, width))
    message, update = message.double(), update.double()
    update.mixing = nn.Identity()
    h = torch.randn(batch.num_atoms, 6, dtype=F64)
    ctx = message.prepare(batch, types)
    out = update(h, message(h, ctx))
    tower = message.towers[0]
    alone = tower_cell(update, 0)(tower(h[:, :3], tower.prepare(batch, types)), h[:, :3])
    torch.testing.assert_close(out[:, :3], alone, atol=1e-12, rtol=0)
    h2 = h.clone()
    h2[:, 3:] += 1.0
    out2 = update(h2, message(h2, ctx))
    torch.testing.assert_close(out2[:, :3], out[:, :3], atol=1e-12, rtol=0)
    assert not torch.allclose(out2[:, 3:], out[:, 3:])


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_tower_edge_networks_hold_d_squared_over_k_matrix_entries(k: int) -> None:
    """The cost model: k towers of (d/k) x (d/k) edge matrices, H·d²/k weights in all."""
    d, hidden = 16, 5
    message, _ = towers(d, k, lambda width: EdgeNetwork(3, width, width, hidden=(hidden,)))
    entries = sum(t.matrix.weight.numel() for t in message.towers)
    assert entries == hidden * d * d // k


def test_towers_reject_a_width_not_divisible_by_k() -> None:
    with pytest.raises(ValueError, match="towers"):
        towers(10, 3, lambda width: MatrixMessage(2, width, width))
    with pytest.raises(ValueError, match="one width"):
        TowerMessage([MatrixMessage(2, 3, 3), MatrixMessage(2, 4, 4)])
    with pytest.raises(ValueError, match="TowerUpdate"):
        TowerUpdate(10, [3, 3, 3])


# -- gated readout -----------------------------------------------------------------------------


@pytest.mark.parametrize("features", [3, 0])
def test_gated_readout_equals_a_manual_sum(features: int) -> None:
    torch.manual_seed(8)
    readout = GatedReadout(4, features, 2, hidden=6).double()
    h, x = torch.randn(7, 4, dtype=F64), torch.randn(7, features, dtype=F64)
    index = torch.tensor([0, 0, 0, 2, 2, 2, 2])  # structure 1 has no atoms

    def two_layers(seq: nn.Sequential, inp: torch.Tensor) -> torch.Tensor:
        a, b = seq[0], seq[2]
        return torch.relu(inp @ a.weight.T + a.bias) @ b.weight.T + b.bias

    expected = []
    for g in range(3):
        r = torch.zeros(6, dtype=F64)
        for v in (index == g).nonzero().flatten().tolist():
            gate = 1.0 / (1.0 + torch.exp(-two_layers(readout.gate, torch.cat([h[v], x[v]]))))
            r = r + gate * two_layers(readout.value, h[v])
        expected.append(two_layers(readout.head, r))
    torch.testing.assert_close(readout(h, x, index, 3), torch.stack(expected), atol=1e-12, rtol=0)


# -- edge inputs -------------------------------------------------------------------------------


def two_atoms(distance: float, bond_type: int | None = None) -> Molecule:
    pos = torch.tensor([[0.0, 0.0, 0.0], [distance, 0.0, 0.0]], dtype=F64)
    bonds = torch.tensor([[0, 1]]) if bond_type is not None else torch.zeros(0, 2, dtype=torch.long)
    types = torch.tensor([bond_type]) if bond_type is not None else torch.zeros(0, dtype=torch.long)
    return Molecule(torch.tensor([6, 6]), pos, torch.zeros(2, 0), bonds, types)


@pytest.mark.parametrize(
    ("distance", "bin_"),
    [
        (0.5, 0),
        (1.999, 0),
        (2.0, 0),
        (2.001, 1),
        (2.5, 1),
        (2.75, 2),
        (5.9, 8),
        (6.0, 8),
        (6.001, 9),
        (40.0, 9),
    ],
)
def test_distance_bins_at_the_bin_edges(distance: float, bin_: int) -> None:
    """Unbonded pairs: type 4 + bin, bins [0, 2], (2, 2.5], ..., (5.5, 6], (6, inf)."""
    batch = collate([two_atoms(distance)])
    types = DistanceBinEdges()(batch)
    assert types.tolist() == [4 + bin_, 4 + bin_]
    onehot = DistanceBinEdges(onehot=True)(batch)
    assert onehot.shape == (2, 14) and onehot.argmax(1).tolist() == types.tolist()
    assert onehot.sum().item() == 2


def test_bonded_pairs_keep_their_bond_type_whatever_the_distance() -> None:
    batch = collate([two_atoms(3.3, bond_type=1), two_atoms(1.2, bond_type=3)])
    assert DistanceBinEdges()(batch).tolist() == [1, 1, 3, 3]


def test_distance_bins_equal_a_loop_over_pairs() -> None:
    batch = batch_of(sizes=(9, 12))
    got = DistanceBinEdges()(batch).tolist()
    for i, (w, v) in enumerate(batch.edge_index.T.tolist()):
        bond = int(batch.edge_type[i])
        r = math.dist(batch.pos[w].tolist(), batch.pos[v].tolist())
        expected = bond if bond < 4 else 4 + (0 if r <= 2 else 9 if r > 6 else math.ceil((r - 2) / 0.5))
        assert got[i] == expected


def test_bond_type_edges_are_the_chemical_graph() -> None:
    batch = batch_of()
    discrete, onehot = BondTypeEdges(), BondTypeEdges(onehot=True)
    assert torch.equal(discrete(batch), batch.edge_type) and discrete.num_types == 5
    assert torch.equal(onehot(batch).argmax(1), batch.edge_type) and onehot(batch).shape[1] == 5
    assert not discrete.reads_positions and DistanceBinEdges.reads_positions


# -- models ------------------------------------------------------------------------------------

SMALL = {"dim": 16, "steps": 2, "message_hidden": [8], "set2set_steps": 2, "readout_hidden": 12}
CONFIGS = {
    "ggnn": {"model": "ggnn", "dim": 16, "steps": 2, "readout_hidden": 12},
    "ggnn_complete_untied": {
        "model": "ggnn",
        "dim": 16,
        "steps": 2,
        "graph": "complete",
        "tie_weights": False,
    },
    "edge_network_set2set": {"model": "mpnn", **SMALL},
    "edge_network_undirected_mean": {"model": "mpnn", **SMALL, "directed": False, "aggregation": "mean"},
    "edge_network_chemical_sum": {"model": "mpnn", **SMALL, "edges": "chemical", "readout": "sum"},
    "edge_network_bins_bonds": {"model": "mpnn", **SMALL, "edges": "distance_bins", "graph": "bonds"},
    "matrix_bins_gated": {
        "model": "mpnn",
        **SMALL,
        "message": "matrix",
        "edges": "distance_bins",
        "readout": "gated",
    },
    "matrix_chemical_master": {
        "model": "mpnn",
        **SMALL,
        "message": "matrix",
        "edges": "chemical",
        "master_dim": 5,
    },
    "pair_gated": {"model": "mpnn", **SMALL, "message": "pair", "readout": "gated"},
    "pair_chemical_bonds": {
        "model": "mpnn",
        **SMALL,
        "message": "pair",
        "edges": "chemical",
        "graph": "bonds",
    },
    "edge_network_master_towers2": {"model": "mpnn", **SMALL, "master_dim": 6, "towers": 2},
    "matrix_bins_towers4_untied": {
        "model": "mpnn",
        **SMALL,
        "message": "matrix",
        "edges": "distance_bins",
        "towers": 4,
        "tie_weights": False,
    },
    "pair_towers4_linear_input": {
        "model": "mpnn",
        **SMALL,
        "message": "pair",
        "towers": 4,
        "node_input": "linear",
        "directed": False,
    },
}


def factory(name: str):
    return seeded_factory(lambda: build_model(CONFIGS[name]))


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_model_contract(name: str, check: str) -> None:
    model = factory(name)()
    if check == "position_gradient" and not model.positions:
        pytest.skip("the model reads no positions (topology only): its gradient is zero by construction")
    CHECKS[check](factory(name))


def test_models_say_whether_they_read_positions() -> None:
    positions = {name: factory(name)().positions for name in CONFIGS}
    assert positions["ggnn"] is False and positions["edge_network_chemical_sum"] is False
    assert positions["edge_network_set2set"] is True and positions["matrix_bins_gated"] is True


def test_implicit_hydrogen_model_on_heavy_atoms() -> None:
    if "hydrogens" not in inspect.signature(collate).parameters:
        pytest.skip("collate does not yet drop hydrogens")
    torch.manual_seed(0)
    model = build_model({"model": "mpnn", **SMALL, "hydrogens": "implicit"}).double()
    assert model.hydrogens == "implicit"
    mols = molecules()
    heavy = collate(mols, graph=model.graph, hydrogens=model.hydrogens).to(dtype=F64)
    assert heavy.num_atoms < collate(mols).num_atoms
    alone = torch.cat([model(collate([m], hydrogens="implicit").to(dtype=F64)) for m in mols])
    torch.testing.assert_close(model(heavy), alone, atol=1e-10, rtol=0)


def test_master_node_gets_the_message_width_and_reaches_the_prediction() -> None:
    torch.manual_seed(0)
    model = build_model({"model": "mpnn", **SMALL, "master_dim": 5}).double()
    master = model.net.masters[0]
    assert master.to_atom_matrix.out_features == 32  # directed: 2 x 16
    model(batch_of()).sum().backward()
    assert master.to_atom_matrix.weight.grad.abs().sum() > 0
    split = build_model({"model": "mpnn", **SMALL, "master_dim": 6, "towers": 2, "directed": False})
    assert split.net.masters[0].to_atom_matrix.out_features == 16  # 2 towers x 8


def test_untied_steps_have_their_own_matrices() -> None:
    model = build_model({"model": "ggnn", "dim": 16, "steps": 3, "tie_weights": False})
    weights = [message.incoming.weight for message in model.net.messages]
    assert len(weights) == 3 and not torch.equal(weights[0], weights[1])


def test_directed_models_double_the_message_width() -> None:
    directed = build_model({"model": "mpnn", **SMALL})
    undirected = build_model({"model": "mpnn", **SMALL, "directed": False})
    assert directed.net.updates[0].cell.input_size == 32 and undirected.net.updates[0].cell.input_size == 16


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"message": "conv"}, "message"),
        ({"readout": "mean"}, "readout"),
        ({"edges": "bins"}, "edges"),
        ({"graph": "knn"}, "graph"),
        ({"hydrogens": "none"}, "hydrogens"),
        ({"message": "matrix", "edges": "raw_distance"}, "edges"),
        ({"towers": 3}, "towers"),
        ({"master_dim": -1}, "master_dim"),
        ({"dim": 8}, "dim"),
    ],
)
def test_incompatible_settings_name_the_field(settings: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"mpnn: .*{field}") as error:
        build_model({"model": "mpnn", **SMALL, **settings})
    assert "\n" not in str(error.value)


def test_ggnn_errors_name_ggnn() -> None:
    with pytest.raises(ValueError, match="ggnn: graph"):
        build_model({"model": "ggnn", "graph": "knn"})


# -- presets -----------------------------------------------------------------------------------


def test_presets_build_and_leave_the_data_fields_to_the_run() -> None:
    assert set(DESCRIPTIONS) == set(PRESETS) and set(PAPER_RATIO) <= set(PRESETS)
    for name, preset in PRESETS.items():
        assert "node_features" not in preset and "num_targets" not in preset
        model = build_model({**preset, "node_features": 13, "num_targets": 2})
        assert model.config == {**preset, **model.config} and model.mean.shape == (2,)
        assert model.positions == (preset["edges"] != "chemical"), name
    assert build_model({**PRESETS["enn_s2s_towers8"], "node_features": 13}).net.updates[0].tower_dim == 25


def test_ggnn_model_is_the_ggnn_topology_preset() -> None:
    preset = build_model({**PRESETS["ggnn_topology"], "node_features": 13})
    model = build_model({"model": "ggnn", "node_features": 13})
    shapes = {k: v.shape for k, v in preset.state_dict().items()}
    assert shapes == {k: v.shape for k, v in model.state_dict().items()}
    assert (model.graph, model.hydrogens, model.positions) == ("bonds", "implicit", False)
