"""The earlier models of Gilmer et al. (2017, Sec. 2) as engine configurations.

Each model's message, update and readout are checked on tiny graphs against numbers worked out
by hand or by plain per-atom Python loops (lists and ``math``, not the modules' tensor code);
GCN also against PyTorch Geometric's ``GCNConv``; and every model passes the shared contract.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from model_contract import CHECKS, molecules, seeded_factory

from mpnn.batch import BOND_TYPES, Molecule, collate
from mpnn.errors import DataError
from mpnn.messages.weave import PairToAtom
from mpnn.models.dtnn import DTNNConfig, dtnn
from mpnn.models.duvenaud import DuvenaudConfig, duvenaud
from mpnn.models.gcn import GCNConfig, gcn
from mpnn.models.interaction_network import InteractionNetworkConfig, interaction_network
from mpnn.models.weave import WeaveConfig, weave
from mpnn.updates.weave import WeaveAtomUpdate, WeavePairUpdate

F64 = torch.float64


def set_linear(linear: torch.nn.Linear, weight: list, bias: list | None = None) -> None:
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(weight, dtype=F64))
        if bias is not None:
            linear.bias.copy_(torch.tensor(bias, dtype=F64))


def as_lists(linear: torch.nn.Linear) -> tuple[list, list]:
    bias = linear.bias.tolist() if linear.bias is not None else [0.0] * linear.out_features
    return linear.weight.tolist(), bias


def affine(weight: list, bias: list, v: list) -> list:
    return [sum(w * x for w, x in zip(row, v, strict=True)) + b for row, b in zip(weight, bias, strict=True)]


def relu(v: list) -> list:
    return [max(0.0, a) for a in v]


def add(a: list, b: list) -> list:
    return [x + y for x, y in zip(a, b, strict=True)]


def molecule(z, pos, x, bonds, bond_type) -> Molecule:
    """A molecule from plain lists (positions in Angstrom)."""
    return Molecule(
        z=torch.tensor(z),
        pos=torch.tensor(pos, dtype=F64),
        x=torch.tensor(x, dtype=F64),
        bonds=torch.tensor(bonds, dtype=torch.long).view(-1, 2),
        bond_type=torch.tensor(bond_type, dtype=torch.long),
    )


def chain(x=((1.0, 2.0), (3.0, -1.0), (0.5, 4.0))) -> Molecule:
    """H-C=O on a line: atoms 0-1 single bond, 1-2 double bond; distances 1.0, 1.5 (2.5)."""
    pos = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.5, 0.0, 0.0]]
    return molecule([1, 6, 8], pos, [list(r) for r in x], [[0, 1], [1, 2]], [0, 1])


def branched() -> Molecule:
    """5 atoms, bonds 0-1, 1-2, 1-3, 3-4: degrees 1, 3, 1, 2, 1."""
    pos = [[0.0, 0.0, 0.0], [1.2, 0.0, 0.0], [1.8, 1.0, 0.0], [1.8, -1.0, 0.0], [3.0, -1.2, 0.0]]
    x = [[0.2, -0.3], [1.0, 0.5], [-0.7, 0.1], [0.4, 0.9], [0.0, -1.1]]
    return molecule([1, 6, 1, 7, 1], pos, x, [[0, 1], [1, 2], [1, 3], [3, 4]], [0, 0, 0, 1])


def neighbours(mol: Molecule) -> list[list[tuple[int, int]]]:
    """For each atom, its (neighbour, bond type) pairs, from the bond list."""
    out: list[list[tuple[int, int]]] = [[] for _ in range(mol.num_atoms)]
    for (i, j), t in zip(mol.bonds.tolist(), mol.bond_type.tolist(), strict=True):
        out[i].append((j, t))
        out[j].append((i, t))
    return out


# -- GCN (Kipf & Welling 2017) ----------------------------------------------------------------


def test_gcn_message_is_the_symmetric_normalisation_with_self_loops() -> None:
    model = gcn(GCNConfig(node_features=2, dim=2)).double()
    batch = collate([chain()], graph="bonds")
    h = batch.x
    message = model.net.messages[0]
    m = message(h, message.prepare(batch, model.net.edge_input(batch)))
    # degrees of A + I: 2, 3, 2
    h0, h1, h2 = h.tolist()
    s6 = math.sqrt(6.0)
    expected = [
        [h0[k] / 2 + h1[k] / s6 for k in range(2)],
        [h0[k] / s6 + h1[k] / 3 + h2[k] / s6 for k in range(2)],
        [h1[k] / s6 + h2[k] / 2 for k in range(2)],
    ]
    torch.testing.assert_close(m, torch.tensor(expected, dtype=F64), atol=1e-14, rtol=0)


def test_gcn_forward_by_hand() -> None:
    """One layer, relu(W m + b), sum readout and a linear f, worked out with explicit weights."""
    model = gcn(GCNConfig(node_features=2, dim=2, steps=1, hidden=[])).double()
    set_linear(model.net.updates[0].linear, [[1.0, -1.0], [0.5, 2.0]], [0.1, -0.2])
    set_linear(model.net.readout.head[0], [[1.0, 3.0]], [0.25])
    s6 = math.sqrt(6.0)
    # m by hand for h = x = [[1, 2], [3, -1], [0.5, 4]]
    m = [
        [1 / 2 + 3 / s6, 2 / 2 - 1 / s6],
        [1 / s6 + 3 / 3 + 0.5 / s6, 2 / s6 - 1 / 3 + 4 / s6],
        [3 / s6 + 0.5 / 2, -1 / s6 + 4 / 2],
    ]
    h1 = [relu([a - b + 0.1, 0.5 * a + 2 * b - 0.2]) for a, b in m]
    pooled = add(add(h1[0], h1[1]), h1[2])
    expected = pooled[0] + 3 * pooled[1] + 0.25
    got = model(collate([chain()], graph="bonds"))
    assert got.shape == (1, 1)
    assert got.item() == pytest.approx(expected, abs=1e-13)


def test_gcn_equals_pyg_gcnconv() -> None:
    pyg_nn = pytest.importorskip("torch_geometric.nn", reason="torch_geometric is a test dependency")
    torch.manual_seed(0)
    batch = collate(molecules(sizes=(4, 9, 6)), graph="bonds").to(dtype=F64)
    theirs = pyg_nn.GCNConv(8, 8).double()
    torch.nn.init.normal_(theirs.bias)
    model = gcn(GCNConfig(node_features=8, dim=8)).double()
    message, update = model.net.messages[0], model.net.updates[0]
    with torch.no_grad():
        update.linear.weight.copy_(theirs.lin.weight)
        update.linear.bias.copy_(theirs.bias)
    h = torch.randn(batch.num_atoms, 8, dtype=F64)
    got = update(h, message(h, message.prepare(batch, model.net.edge_input(batch))))
    expected = torch.relu(theirs(h, batch.edge_index))
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


# -- DTNN (Schütt et al. 2017) ----------------------------------------------------------------


def test_dtnn_forward_by_a_per_atom_loop() -> None:
    """c_Z embedding, Gaussian distances, one interaction pass, h + m, sum of NN(h) by hand."""
    config = DTNNConfig(
        dim=2, factors=2, steps=1, rbf_min=0.0, rbf_max=2.0, rbf_spacing=1.0, rbf_width=1.0, readout_hidden=2
    )
    model = dtnn(config).double()
    embedding = {1: [0.1, -0.2], 6: [0.3, 0.5], 8: [-0.4, 0.2]}
    with torch.no_grad():
        for z, c in embedding.items():
            model.net.node_input.embedding.weight[z] = torch.tensor(c, dtype=F64)
    message = model.net.messages[0]
    w_cf, b_1 = [[1.0, 0.5], [-0.5, 1.0]], [0.1, 0.2]
    w_df, b_2 = [[0.2, -0.1, 0.3], [0.4, 0.1, -0.2]], [0.05, -0.05]
    w_fc = [[1.0, -1.0], [0.5, 0.5]]
    w_o1, b_o1, w_o2, b_o2 = [[0.7, -0.3], [0.2, 0.9]], [0.0, 0.1], [[1.5, -2.0]], [0.3]
    set_linear(message.atom_to_factors, w_cf, b_1)
    set_linear(message.edge_to_factors, w_df, b_2)
    set_linear(message.factors_to_atom, w_fc)
    set_linear(model.net.readout.atom_net[0], w_o1, b_o1)
    set_linear(model.net.readout.atom_net[2], w_o2, b_o2)

    mol = chain()
    z, pos = mol.z.tolist(), mol.pos.tolist()
    energy = 0.0
    for i in range(3):
        m = [0.0, 0.0]
        for j in range(3):
            if j == i:
                continue
            distance = math.dist(pos[i], pos[j])
            d_hat = [math.exp(-((distance - mu) ** 2) / 2.0) for mu in (0.0, 1.0, 2.0)]
            factors = [
                a * b
                for a, b in zip(affine(w_cf, b_1, embedding[z[j]]), affine(w_df, b_2, d_hat), strict=True)
            ]
            m = add(m, [math.tanh(v) for v in affine(w_fc, [0.0, 0.0], factors)])
        h = add(embedding[z[i]], m)
        energy += affine(w_o2, b_o2, [math.tanh(v) for v in affine(w_o1, b_o1, h)])[0]
    assert model(collate([mol])).item() == pytest.approx(energy, abs=1e-13)


def test_dtnn_gaussians_of_a_distance() -> None:
    model = dtnn(DTNNConfig(rbf_min=0.0, rbf_max=2.0, rbf_spacing=1.0, rbf_width=0.5)).double()
    e = model.net.edge_input(collate([chain()]))  # edge 0: source 1 -> target 0, distance 1.0
    assert e.shape == (6, 3)
    expected = [math.exp(-((1.0 - mu) ** 2) / (2 * 0.25)) for mu in (0.0, 1.0, 2.0)]
    torch.testing.assert_close(e[0], torch.tensor(expected, dtype=F64), atol=1e-15, rtol=0)


def test_dtnn_rejects_an_atomic_number_above_max_z() -> None:
    model = dtnn(DTNNConfig(dim=4, factors=4, max_z=7)).double()
    with pytest.raises(DataError, match="z: atomic number 8"):
        model(collate([chain()]))


# -- Duvenaud et al. 2015 ---------------------------------------------------------------------


def test_duvenaud_message_sums_neighbours_bonds_and_counts_them() -> None:
    model = duvenaud(DuvenaudConfig(node_features=2, dim=2)).double()
    batch = collate([chain()], graph="bonds")
    message = model.net.messages[0]
    m = message(batch.x, message.prepare(batch, model.net.edge_input(batch)))
    single, double = [1.0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0]
    expected = [
        [3.0, -1.0, *single, 1.0],  # atom 0: neighbour 1, a single bond, degree 1
        [1.0 + 0.5, 2.0 + 4.0, *add(single, double), 2.0],  # atom 1: neighbours 0 and 2
        [3.0, -1.0, *double, 1.0],  # atom 2: neighbour 1, a double bond
    ]
    torch.testing.assert_close(m, torch.tensor(expected, dtype=F64), atol=0, rtol=0)


@pytest.mark.parametrize("self_weight", [True, False])
def test_duvenaud_forward_by_a_per_atom_loop(self_weight: bool) -> None:
    """Degree matrices per step (degree 3 above max_degree 2 uses H^2), softmax over all steps."""
    torch.manual_seed(3)
    config = DuvenaudConfig(
        node_features=2, dim=3, steps=2, fingerprint=4, hidden=[], max_degree=2, self_weight=self_weight
    )
    model = duvenaud(config).double()
    for update in model.net.updates:  # a non-zero bias, so that it is checked
        torch.nn.init.normal_(update.bias)
    mols = [branched(), chain()]
    got = model(collate(mols, graph="bonds"))

    def softmax(v: list) -> list:
        top = max(v)
        exps = [math.exp(a - top) for a in v]
        return [a / sum(exps) for a in exps]

    readout = model.net.readout
    expected = []
    for mol in mols:
        nbrs = neighbours(mol)
        h = [row + [0.0] for row in mol.x.tolist()]  # x zero-padded to dim 3
        fingerprint = [0.0] * 4
        for row in mol.x.tolist():
            fingerprint = add(fingerprint, softmax(affine(*as_lists(readout.inputs), row)))
        for t in range(2):
            update = model.net.updates[t]
            new_h = []
            for v in range(mol.num_atoms):
                summed = [0.0] * (3 + len(BOND_TYPES))
                for w, bond in nbrs[v]:
                    onehot = [1.0 if k == bond else 0.0 for k in range(len(BOND_TYPES))]
                    summed = add(summed, h[w] + onehot)
                matrix = update.by_degree[min(len(nbrs[v]), 2)].weight.tolist()
                pre = add(affine(matrix, [0.0] * 3, summed), update.bias.tolist())
                if self_weight:
                    pre = add(pre, affine(update.root.weight.tolist(), [0.0] * 3, h[v]))
                new_h.append(relu(pre))
            h = new_h
            for v in range(mol.num_atoms):
                fingerprint = add(fingerprint, softmax(affine(*as_lists(readout.per_step[t]), h[v])))
        expected.append(affine(*as_lists(readout.head[0]), fingerprint))
    torch.testing.assert_close(got, torch.tensor(expected, dtype=F64), atol=1e-13, rtol=0)


def test_duvenaud_has_a_matrix_per_step_and_degree() -> None:
    model = duvenaud(DuvenaudConfig(dim=16, steps=3, max_degree=4))
    updates = model.net.updates
    assert len(updates) == 3 and all(len(u.by_degree) == 5 for u in updates)
    assert not torch.equal(updates[0].by_degree[1].weight, updates[1].by_degree[1].weight)
    assert not torch.equal(updates[0].by_degree[1].weight, updates[0].by_degree[2].weight)


# -- Weave (Kearnes et al. 2016) --------------------------------------------------------------


def tiny_weave() -> tuple[WeavePairUpdate, PairToAtom, WeaveAtomUpdate]:
    """The weave model's modules at dim 1, pair_dim 1, hidden 1, every weight set by hand (relu)."""
    pair, message, update = WeavePairUpdate(1, 1, 1), PairToAtom(1, 1), WeaveAtomUpdate(1, 1, 1)
    set_linear(pair.pair.double(), [[2.0]], [0.0])  # P -> P: relu(2 e)
    set_linear(pair.atoms.double(), [[1.0, -1.0]], [0.0])  # A -> P: relu(h_v - h_w), both orders
    set_linear(pair.combine.double(), [[1.0, 1.0]], [0.0])
    set_linear(message.linear.double(), [[1.0]], [0.0])  # P -> A: relu(e)
    set_linear(update.atom.double(), [[1.0]], [0.0])  # A -> A: relu(h)
    set_linear(update.combine.double(), [[1.0, 1.0]], [0.0])
    return pair, message, update


def triangle(h: list[float]) -> Molecule:
    pos = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    return molecule([6, 6, 6], pos, [[v] for v in h], [[0, 1], [1, 2]], [0, 0])


def test_weave_pair_update_by_hand_is_symmetric() -> None:
    """e' = relu(relu(2e) + relu(h_v - h_w) + relu(h_w - h_v)) = 2e + |h_v - h_w| for e >= 0."""
    pair_update, _, _ = tiny_weave()
    batch = collate([triangle([3.0, 1.0, -2.0])])
    e = torch.full((batch.num_edges, 1), 0.5, dtype=F64)
    new = pair_update(e, batch.x, batch)
    by_pair = {(w, v): new[k, 0].item() for k, (w, v) in enumerate(batch.edge_index.t().tolist())}
    expected = {(0, 1): 1 + 2, (0, 2): 1 + 5, (1, 2): 1 + 3}
    for (a, b), value in expected.items():
        assert by_pair[(a, b)] == value and by_pair[(b, a)] == value


def test_weave_atom_update_by_hand() -> None:
    """m_v = sum_w relu(e_vw), h' = relu(relu(h) + m), with the pair states of the previous test."""
    _, message, update = tiny_weave()
    batch = collate([triangle([3.0, 1.0, -2.0])])
    pair_value = {frozenset((0, 1)): 3.0, frozenset((0, 2)): 6.0, frozenset((1, 2)): 4.0}
    e = torch.tensor([[pair_value[frozenset(p)]] for p in batch.edge_index.t().tolist()], dtype=F64)
    m = message(batch.x, message.prepare(batch, e))
    torch.testing.assert_close(m, torch.tensor([[9.0], [7.0], [10.0]], dtype=F64), atol=0, rtol=0)
    h = update(batch.x, m)
    torch.testing.assert_close(h, torch.tensor([[12.0], [8.0], [10.0]], dtype=F64), atol=0, rtol=0)


def test_weave_pair_states_stay_symmetric_through_the_steps() -> None:
    torch.manual_seed(0)
    model = weave(WeaveConfig(dim=16, pair_dim=8, hidden=8, steps=3, readout_width=8)).double()
    states = []
    for module in model.net.edge_updates:
        module.register_forward_hook(lambda mod, args, out: states.append(out))
    batch = collate(molecules(sizes=(4, 6)), graph="complete").to(dtype=F64)
    model(batch)
    assert len(states) == 2  # steps - 1: the pair states after the last step are never read
    index = {(w, v): k for k, (w, v) in enumerate(batch.edge_index.t().tolist())}
    reverse = [index[(v, w)] for (w, v) in batch.edge_index.t().tolist()]
    for e in states:
        assert e.abs().sum() > 0
        torch.testing.assert_close(e, e[reverse], atol=1e-14, rtol=0)


# -- Interaction network (Battaglia et al. 2016) ----------------------------------------------


def test_interaction_network_by_hand() -> None:
    """phi_R = h_v + 2 h_w + 0.5 d_vw + 0.1; m_v = [sum, x_v]; phi_O = h - 0.5 sum + 2 x + 0.3."""
    config = InteractionNetworkConfig(node_features=1, dim=1, effect_dim=1, hidden=[], readout_hidden=[])
    model = interaction_network(config).double()
    message, update = model.net.messages[0], model.net.updates[0]
    set_linear(message.relational[0], [[1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5]], [0.1])
    set_linear(update.net[0], [[1.0, -0.5, 2.0]], [0.3])
    set_linear(model.net.readout.head[0], [[2.0]], [1.0])
    pos = [[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [3.0, 0.0, 0.0]]  # distances 1, 3 and 2
    batch = collate([molecule([6, 6, 6], pos, [[1.0], [-1.0], [2.0]], [[0, 1]], [0])])
    m = message(batch.x, message.prepare(batch, model.net.edge_input(batch)))
    effects = [
        (1 - 2 + 0.5 * 1 + 0.1) + (1 + 4 + 0.5 * 3 + 0.1),
        (-1 + 2 + 0.5 * 1 + 0.1) + (-1 + 4 + 0.5 * 2 + 0.1),
        (2 + 2 + 0.5 * 3 + 0.1) + (2 - 2 + 0.5 * 2 + 0.1),
    ]
    x = [1.0, -1.0, 2.0]
    torch.testing.assert_close(
        m, torch.tensor([[s, xv] for s, xv in zip(effects, x, strict=True)], dtype=F64)
    )
    h = [xv - 0.5 * s + 2 * xv + 0.3 for s, xv in zip(effects, x, strict=True)]
    torch.testing.assert_close(update(batch.x, m), torch.tensor([[v] for v in h], dtype=F64))
    assert model(batch).item() == pytest.approx(2 * sum(h) + 1.0, abs=1e-13)


# -- the shared contract ----------------------------------------------------------------------

BUILDERS = {
    "duvenaud": (duvenaud, DuvenaudConfig(dim=16, steps=3, fingerprint=8, hidden=[8], num_targets=2)),
    "gcn": (gcn, GCNConfig(dim=16, steps=2, hidden=[8], num_targets=2)),
    "gcn_mean": (gcn, GCNConfig(dim=16, steps=2, hidden=[8], pool="mean", tie_weights=True)),
    "dtnn": (dtnn, DTNNConfig(dim=8, factors=8, steps=2, rbf_spacing=0.5, num_targets=2)),
    "weave": (weave, WeaveConfig(dim=16, pair_dim=8, hidden=8, steps=2, readout_width=8, readout_hidden=[8])),
    "interaction_network": (
        interaction_network,
        InteractionNetworkConfig(dim=16, effect_dim=8, hidden=[8], steps=2, readout_hidden=[8]),
    ),
}
READS_POSITIONS = {"dtnn", "weave", "interaction_network"}


def factory(name: str):
    build, config = BUILDERS[name]
    return seeded_factory(lambda: build(config))


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_model_contract(name: str, check: str) -> None:
    if check == "position_gradient" and name not in READS_POSITIONS:
        pytest.skip(f"{name} reads the chemical graph only: its prediction has no position gradient")
    CHECKS[check](factory(name))


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_positions_flag_and_config_round_trip(name: str) -> None:
    """``positions`` says whether moving the atoms changes the prediction; the config rebuilds the model."""
    model = factory(name)()
    mols = molecules(sizes=(4, 7))
    batch = collate(mols, graph=model.graph).to(dtype=F64)
    before = model(batch)
    batch.pos = batch.pos + 0.3 * torch.randn(
        batch.pos.shape, generator=torch.Generator().manual_seed(5), dtype=F64
    )
    moved = model(batch)
    assert model.positions == (name in READS_POSITIONS)
    if model.positions:
        assert (moved - before).abs().max() > 1e-6
    else:
        assert torch.equal(moved, before)

    build, config = BUILDERS[name]
    settings = json.loads(json.dumps(model.config))
    assert settings.pop("model") == name.removesuffix("_mean")
    rebuilt = build(type(config)(**settings)).double()
    rebuilt.load_state_dict(model.state_dict())
    again = rebuilt(collate(mols, graph=model.graph).to(dtype=F64))
    torch.testing.assert_close(again, before, atol=0, rtol=0)


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="activation"):
        interaction_network(InteractionNetworkConfig(activation="swish"))
    with pytest.raises(ValueError, match="pool"):
        gcn(GCNConfig(pool="max"))
    with pytest.raises(ValueError, match="pair_dim"):
        weave(WeaveConfig(pair_dim=4))
    with pytest.raises(ValueError, match="exceed dim"):
        duvenaud(DuvenaudConfig(dim=8))
