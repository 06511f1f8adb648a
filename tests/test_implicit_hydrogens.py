"""collate(..., hydrogens="implicit"): heavy atoms only, bonds renumbered, num_hs kept.

References: hand-counted atoms, bonds and hydrogen counts of QM9 fixture molecules (methane,
ammonia, butadiyne, cyanoguanidine-like NC(=N)C#N, CF4, N-methylpyrrole; ethanol's
coordinates from test_featurize), and a per-atom Python loop that builds the heavy-atom
molecules before an explicit collate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_featurize import molecule as qm9_molecule

from mpnn.batch import BOND_NONE, Molecule, collate
from mpnn.data.featurize import NODE_FEATURES, featurize_molecule
from mpnn.models import EnnS2SConfig, enn_s2s
from mpnn.train.loader import BatchLoader
from mpnn.train.predict import predict_table, read_structures, to_molecule

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "qm9"
NUM_HS = NODE_FEATURES.index("num_hs")
SINGLE, DOUBLE, TRIPLE, AROMATIC = range(4)
#: file -> (heavy atoms, heavy-heavy bonds), counted by hand from the SMILES on the file's last lines
FIXTURE_COUNTS = {
    "dsgdb9nsd_000001.xyz": (1, 0),  # C
    "dsgdb9nsd_000002.xyz": (1, 0),  # N
    "dsgdb9nsd_000023.xyz": (4, 3),  # C#CC#C
    "dsgdb9nsd_000058.xyz": (5, 4),  # NC(=N)C#N
    "dsgdb9nsd_000184.xyz": (5, 4),  # FC(F)(F)F
    "dsgdb9nsd_000212.xyz": (6, 6),  # CN1C=CC=C1
}


def fixture_molecules() -> list[Molecule]:
    return [to_molecule(s) for name in FIXTURE_COUNTS for s in read_structures(FIXTURES / name)]


def ethanol() -> Molecule:
    """QM9 14 (xyz order C, C, O, then 6 H), featurised from its coordinates and SMILES."""
    symbols, pos, smiles = qm9_molecule(14)
    f = featurize_molecule(symbols, pos, smiles)
    z = torch.tensor([{"H": 1, "C": 6, "O": 8}[s] for s in symbols])
    return Molecule(z, torch.tensor(pos), torch.tensor(f.x), torch.tensor(f.bonds), torch.tensor(f.bond_type))


def hydrogen_molecule() -> Molecule:
    return Molecule(
        z=torch.tensor([1, 1]),
        pos=torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.74]], dtype=torch.float64),
        x=torch.tensor([[1.0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]] * 2),
        bonds=torch.tensor([[0, 1]]),
        bond_type=torch.tensor([SINGLE]),
    )


def edges(batch) -> list[tuple[int, int, int]]:
    return list(zip(*batch.edge_index.tolist(), batch.edge_type.tolist(), strict=True))


def heavy_only(mol: Molecule) -> Molecule:
    """Reference: the heavy-atom molecule, built atom by atom (H2-like molecules unchanged)."""
    z = mol.z.tolist()
    if all(v == 1 for v in z):
        return mol
    new, kept = {}, []
    for i, v in enumerate(z):
        if v != 1:
            new[i] = len(kept)
            kept.append(i)
    bonds, types = [], []
    for (i, j), t in zip(mol.bonds.tolist(), mol.bond_type.tolist(), strict=True):
        if i in new and j in new:
            bonds.append([new[i], new[j]])
            types.append(t)
    rows = torch.tensor(kept, dtype=torch.long)
    return Molecule(
        mol.z[rows],
        mol.pos[rows],
        mol.x[rows],
        torch.tensor(bonds, dtype=torch.long).reshape(-1, 2),
        torch.tensor(types, dtype=torch.long),
        mol.y,
    )


def test_ethanol_keeps_its_heavy_atoms_with_their_hydrogen_counts() -> None:
    mol = ethanol()
    for graph in ("complete", "bonds"):
        batch = collate([mol], graph=graph, hydrogens="implicit")
        assert batch.z.tolist() == [6, 6, 8] and batch.ptr.tolist() == [0, 3]
        assert batch.batch.tolist() == [0, 0, 0]
        assert torch.equal(batch.pos, mol.pos[:3]) and torch.equal(batch.x, mol.x[:3])
        assert batch.x[:, NUM_HS].tolist() == [3.0, 2.0, 1.0]  # CH3, CH2, OH
    complete = collate([mol], graph="complete", hydrogens="implicit")
    # (source, target, type), sorted by target then source: C0-C1 and C1-O2 bonded, C0...O2 not
    assert edges(complete) == [
        (1, 0, SINGLE), (2, 0, BOND_NONE),
        (0, 1, SINGLE), (2, 1, SINGLE),
        (0, 2, BOND_NONE), (1, 2, SINGLE),
    ]  # fmt: skip
    bonds = collate([mol], graph="bonds", hydrogens="implicit")
    assert edges(bonds) == [(1, 0, SINGLE), (0, 1, SINGLE), (2, 1, SINGLE), (1, 2, SINGLE)]


def test_bonds_are_renumbered_when_hydrogens_come_first() -> None:
    # H0 C1 H2 O3 H4 C5 H6 H7 N8: heavy atoms 1, 3, 5, 8 become 0, 1, 2, 3
    z = torch.tensor([1, 6, 1, 8, 1, 6, 1, 1, 7])
    pairs = [[0, 1], [1, 3], [1, 2], [3, 5], [3, 4], [5, 6], [5, 7], [5, 8]]
    types = [SINGLE, DOUBLE, SINGLE, SINGLE, SINGLE, SINGLE, SINGLE, TRIPLE]
    x = torch.arange(9 * 2, dtype=torch.float64).reshape(9, 2)
    mol = Molecule(z, torch.randn(9, 3, dtype=torch.float64), x, torch.tensor(pairs), torch.tensor(types))
    batch = collate([mol, mol], graph="bonds", hydrogens="implicit")
    assert batch.z.tolist() == [6, 8, 6, 7] * 2
    assert batch.x[:, 0].tolist() == [2.0, 6.0, 10.0, 16.0] * 2
    assert batch.ptr.tolist() == [0, 4, 8]
    expected = [
        (1, 0, DOUBLE),
        (0, 1, DOUBLE),
        (2, 1, SINGLE),
        (1, 2, SINGLE),
        (3, 2, TRIPLE),
        (2, 3, TRIPLE),
    ]
    assert edges(batch) == expected + [(s + 4, t + 4, k) for s, t, k in expected]


def test_qm9_fixture_batch_counts_atoms_edges_and_hydrogens() -> None:
    mols = fixture_molecules()
    heavy = [h for h, _ in FIXTURE_COUNTS.values()]
    complete = collate(mols, graph="complete", hydrogens="implicit")
    assert torch.diff(complete.ptr).tolist() == heavy == [1, 1, 4, 5, 5, 6]
    assert complete.num_edges == sum(n * (n - 1) for n in heavy) == 82
    assert not bool((complete.z == 1).any())
    bonds = collate(mols, graph="bonds", hydrogens="implicit")
    assert bonds.num_edges == 2 * sum(b for _, b in FIXTURE_COUNTS.values()) == 34
    # the typed complete-graph edges that are not "none" are exactly the bond-graph edges
    typed = [e for e in edges(complete) if e[2] != BOND_NONE]
    assert typed == edges(bonds)
    # every hydrogen of the explicit molecule is counted on a heavy atom
    for b, mol in enumerate(mols):
        rows = complete.x[complete.ptr[b] : complete.ptr[b + 1]]
        assert rows[:, NUM_HS].sum().item() == int((mol.z == 1).sum())
    # hand values: methane C has 4 H, ammonia N 3; butadiyne's inner carbons (rows 0, 1) none
    assert complete.x[0, NUM_HS] == 4 and complete.x[1, NUM_HS] == 3
    assert complete.x[2:6, NUM_HS].tolist() == [0.0, 0.0, 1.0, 1.0]
    # CF4 has no hydrogen: its atoms and bonds are those of the explicit batch
    explicit = collate(mols, graph="bonds")
    cf4 = 4
    assert torch.equal(
        explicit.z[explicit.ptr[cf4] : explicit.ptr[cf4 + 1]], bonds.z[bonds.ptr[cf4] : bonds.ptr[cf4 + 1]]
    )


@pytest.mark.parametrize("graph", ["complete", "bonds"])
def test_implicit_collate_matches_an_atom_by_atom_reference(graph: str) -> None:
    mols = [hydrogen_molecule(), *fixture_molecules(), ethanol(), hydrogen_molecule()]
    got = collate(mols, graph=graph, hydrogens="implicit")
    ref = collate([heavy_only(m) for m in mols], graph=graph)
    for key in ("z", "pos", "x", "edge_index", "edge_type", "batch", "ptr"):
        assert torch.equal(getattr(got, key), getattr(ref, key)), key


def test_a_molecule_without_heavy_atoms_keeps_its_hydrogens() -> None:
    single_h = Molecule(
        torch.tensor([1]), torch.zeros(1, 3, dtype=torch.float64), torch.zeros(1, 13),
        torch.zeros(0, 2, dtype=torch.long), torch.zeros(0, dtype=torch.long),
    )  # fmt: skip
    mols = [hydrogen_molecule(), fixture_molecules()[0], single_h]
    batch = collate(mols, graph="complete", hydrogens="implicit")
    assert batch.z.tolist() == [1, 1, 6, 1] and batch.ptr.tolist() == [0, 2, 3, 4]
    assert edges(batch) == [(1, 0, SINGLE), (0, 1, SINGLE)]
    # every structure has a node, so a readout gives one finite row per structure
    torch.manual_seed(0)
    model = enn_s2s(EnnS2SConfig(dim=16, edge_hidden=[8], steps=2, set2set_steps=2, distance=False)).double()
    out = model(batch.to(dtype=torch.float64))
    assert out.shape == (3, 1) and bool(torch.isfinite(out).all())


def test_explicit_is_the_default_and_unknown_modes_are_rejected() -> None:
    mols = fixture_molecules()
    a, b = collate(mols), collate(mols, hydrogens="explicit")
    assert torch.equal(a.z, b.z) and torch.equal(a.edge_index, b.edge_index)
    assert a.num_atoms == sum(m.num_atoms for m in mols)
    with pytest.raises(ValueError, match="hydrogens"):
        collate(mols, hydrogens="none")
    with pytest.raises(ValueError, match="hydrogens"):
        BatchLoader(mols, np.arange(2), None, 2, hydrogens="heavy")


def test_loader_passes_hydrogens_on() -> None:
    mols = fixture_molecules()
    loader = BatchLoader(mols, np.arange(6), None, 4, "bonds", hydrogens="implicit", dtype=torch.float64)
    sizes = [torch.diff(b.ptr).tolist() for b in loader.batches(0)]
    assert sizes == [[1, 1, 4, 5], [5, 6]]


class _Recorder(torch.nn.Module):
    """A stand-in property model without ``hydrogens``: predicts the atom count of each structure."""

    graph = "complete"

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(1))
        self.register_buffer("std", torch.ones(1))

    def standardized(self, batch) -> torch.Tensor:
        return torch.diff(batch.ptr).to(torch.float64)[:, None]


def test_predict_table_collates_with_each_models_hydrogens() -> None:
    mols = [ethanol(), *fixture_molecules()[:3]]
    stripped = [heavy_only(m) for m in mols]
    torch.manual_seed(0)
    implicit = enn_s2s(EnnS2SConfig(dim=16, edge_hidden=[8], steps=2, set2set_steps=2)).double()
    implicit.hydrogens = "implicit"
    explicit = enn_s2s(EnnS2SConfig(dim=16, edge_hidden=[8], steps=2, set2set_steps=2)).double()
    explicit.load_state_dict(implicit.state_dict())
    # an implicit-hydrogen model does not see the hydrogen atoms at all
    _, with_h = predict_table([(implicit, ["U0"])], mols)
    _, without_h = predict_table([(implicit, ["U0"])], stripped)
    np.testing.assert_allclose(with_h, without_h, rtol=1e-6)
    # the same weights with explicit hydrogens do see them
    _, seen = predict_table([(explicit, ["U0"])], mols)
    assert np.abs(seen - with_h).max() > 1e-4
    # a model without the attribute gets explicit hydrogens: all atoms of each molecule
    _, counts = predict_table([(_Recorder(), ["U0"])], mols)
    assert counts[:, 0].tolist() == [9, 5, 4, 6]
