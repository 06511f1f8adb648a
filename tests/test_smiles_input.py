"""Topology-only input from SMILES: features equal to the QM9 featurisation of the same molecule
(from its xyz file), SMILES files and their one-line errors, and ``mpnn predict`` on a .smi file.

The SMILES below are written by hand (other forms than the QM9 files' SMILES lines: other
atom order, aromatic vs Kekule, charge-separated nitro), so equality is checked up to atom
order with a per-atom signature: the atom's (z, feature row) and the sorted (neighbour's
(z, row), bond type) of its bonds.
"""

from __future__ import annotations

import argparse
import csv
import itertools
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from rdkit import Chem
from test_featurize import molecule as qm9_molecule

from mpnn.batch import Molecule, collate
from mpnn.cli.property import cmd_predict_property
from mpnn.data.featurize import NODE_FEATURES, featurize_mol, featurize_molecule
from mpnn.data.qm9 import ATOMIC_NUMBERS, bundled_release_path, iter_release
from mpnn.data.smiles import is_smiles_file, molecule_from_smiles, read_smiles_file, read_smiles_molecules
from mpnn.errors import DataError, FeaturizationError
from mpnn.files import save_json
from mpnn.models import MODELS, EnnS2SConfig, enn_s2s
from mpnn.train.checkpoint import save_tensors
from mpnn.train.predict import read_structures, to_molecule

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "qm9"
NUM_HS = NODE_FEATURES.index("num_hs")
#: QM9 fixture file -> the same molecule as a hand-written SMILES
FIXTURE_SMILES = {
    "dsgdb9nsd_000001.xyz": "C",
    "dsgdb9nsd_000002.xyz": "N",
    "dsgdb9nsd_000023.xyz": "C(#C)C#C",
    "dsgdb9nsd_000058.xyz": "N#CC(=N)N",
    "dsgdb9nsd_000184.xyz": "C(F)(F)(F)F",
    "dsgdb9nsd_000212.xyz": "c1ccn(C)c1",
}
#: test_featurize's QM9 molecules -> hand-written SMILES
INLINE_SMILES = {14: "OCC", 214: "C1=CC=CC=C1", 271: "[O-]C(=O)CC[NH3+]", 131915: "c1ccc(cc1)[N+](=O)[O-]"}


def signature(mol: Molecule) -> list:
    """Atom-order-free description of the graph with its node features and bond types."""
    key = [(int(z), tuple(row)) for z, row in zip(mol.z.tolist(), mol.x.tolist(), strict=True)]
    neighbours: list[list] = [[] for _ in key]
    for (i, j), t in zip(mol.bonds.tolist(), mol.bond_type.tolist(), strict=True):
        neighbours[i].append((key[j], t))
        neighbours[j].append((key[i], t))
    return sorted((k, sorted(n)) for k, n in zip(key, neighbours, strict=True))


def qm9_inline(index: int) -> Molecule:
    symbols, pos, smiles = qm9_molecule(index)
    f = featurize_molecule(symbols, pos, smiles)
    z = torch.tensor([ATOMIC_NUMBERS[s] for s in symbols])
    return Molecule(z, torch.tensor(pos), torch.tensor(f.x), torch.tensor(f.bonds), torch.tensor(f.bond_type))


@pytest.mark.parametrize("name", sorted(FIXTURE_SMILES))
def test_features_equal_the_qm9_featurisation_of_the_fixture_files(name: str) -> None:
    (structure,) = read_structures(FIXTURES / name)
    reference = to_molecule(structure)
    got = molecule_from_smiles(FIXTURE_SMILES[name])
    assert got.num_atoms == reference.num_atoms and len(got.bonds) == len(reference.bonds)
    assert signature(got) == signature(reference)


@pytest.mark.parametrize("index", sorted(INLINE_SMILES))
def test_features_equal_the_qm9_featurisation_of_inline_molecules(index: int) -> None:
    assert signature(molecule_from_smiles(INLINE_SMILES[index])) == signature(qm9_inline(index))


def test_features_equal_the_qm9_featurisation_on_the_bundled_subset() -> None:
    compared = 0
    for record in itertools.islice(iter_release(bundled_release_path()), 40):
        f = featurize_molecule(record.symbols, record.positions, (record.smiles_b3lyp, record.smiles_gdb))
        if f.bond_source != "smiles":  # the SMILES graph is not the geometry's
            continue
        z = torch.tensor([ATOMIC_NUMBERS[s] for s in record.symbols])
        ref = Molecule(z, torch.tensor(record.positions), torch.tensor(f.x), torch.tensor(f.bonds),
                       torch.tensor(f.bond_type))  # fmt: skip
        assert signature(molecule_from_smiles(f.smiles)) == signature(ref), record.smiles_gdb
        compared += 1
    assert compared >= 35


def test_molecule_fields() -> None:
    mol = molecule_from_smiles("OCC")  # SMILES atoms O, C, C first, then the six H
    assert mol.z.tolist() == [8, 6, 6, 1, 1, 1, 1, 1, 1]
    assert mol.pos.shape == (9, 3) and mol.pos.dtype == torch.float64 and not bool(mol.pos.any())
    assert mol.x.shape == (9, 13) and mol.x.dtype == torch.float32
    assert mol.x[:3, NUM_HS].tolist() == [1.0, 2.0, 3.0]
    assert mol.bonds.tolist() == [[0, 1], [0, 3], [1, 2], [1, 4], [1, 5], [2, 6], [2, 7], [2, 8]]
    assert mol.bond_type.tolist() == [0] * 8 and mol.y is None
    assert mol.name == "OCC" and molecule_from_smiles("OCC", "ethanol").name == "ethanol"
    # with implicit hydrogens: the three heavy atoms, bonded O-C and C-C
    batch = collate([mol], graph="bonds", hydrogens="implicit")
    assert batch.z.tolist() == [8, 6, 6] and batch.edge_index.tolist() == [[1, 0, 2, 1], [0, 1, 1, 2]]


@pytest.mark.parametrize(
    ("smiles", "message"),
    [
        ("C1CC", "cannot parse SMILES 'C1CC'"),
        ("CC(C)(C)(C)(C)C", "cannot parse SMILES"),  # five-valent carbon
        ("CCl", "element Cl of SMILES 'CCl' is not supported (only H, C, N, O, F)"),
        ("*C", "element * of SMILES"),
        ("[CH3]", "SMILES '[CH3]' has radical electrons"),
        ("", "SMILES '' has no atoms"),
    ],
)
def test_bad_smiles_are_one_line_errors(smiles: str, message: str) -> None:
    with pytest.raises(DataError) as info:
        molecule_from_smiles(smiles)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_featurize_mol_wants_hydrogens_as_atoms() -> None:
    with pytest.raises(FeaturizationError, match=r"atom 0 \(C\) has hydrogens that are not atoms"):
        featurize_mol(Chem.MolFromSmiles("CCO"))
    with pytest.raises(FeaturizationError, match="unknown element Cl"):
        featurize_mol(Chem.AddHs(Chem.MolFromSmiles("CCl")))
    f = featurize_mol(Chem.AddHs(Chem.MolFromSmiles("CCO")), "CCO")
    assert f.smiles == "CCO" and f.bond_source == "smiles" and f.x.shape == (9, 13)


def test_read_smiles_file(tmp_path: Path) -> None:
    path = tmp_path / "mols.smi"
    path.write_text(
        "# QM9 molecules\nC methane\n\nN#CC(=N)N  cyano  amidine \n   # indented comment\nc1ccn(C)c1\n"
    )
    assert read_smiles_file(path) == [
        ("methane", "C", 2),
        ("cyano  amidine", "N#CC(=N)N", 4),  # '#' inside a SMILES is a triple bond
        ("c1ccn(C)c1", "c1ccn(C)c1", 6),
    ]
    assert [m.name for m in read_smiles_molecules(path)] == ["methane", "cyano  amidine", "c1ccn(C)c1"]
    assert is_smiles_file(path) and is_smiles_file("a/B.SMILES") and not is_smiles_file("a.xyz")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("C\nC1CC ring\n", "{}:2: cannot parse SMILES 'C1CC'"),
        (
            "CCO\n\nCCl chloroethane\n",
            "{}:3: element Cl of SMILES 'CCl' is not supported (only H, C, N, O, F)",
        ),
        ("[CH3] methyl\n", "{}:1: SMILES '[CH3]' has radical electrons (closed-shell molecules only)"),
        ("# nothing\n\n", "{}: no SMILES in this file"),
    ],
)
def test_bad_smiles_files_are_one_line_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.smi"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        read_smiles_file(path)
    assert str(info.value) == message.format(path)
    with pytest.raises(DataError, match="no-such.smi: cannot read"):
        read_smiles_file(tmp_path / "no-such.smi")


# -- mpnn predict on SMILES files ------------------------------------------------------------------
def _topology_only(config: EnnS2SConfig, hydrogens: str):
    model = enn_s2s(config)
    model.positions, model.hydrogens = False, hydrogens
    return model


def save_run(folder: Path, name: str, config: EnnS2SConfig, seed: int) -> Path:
    """A single-model `mpnn train`-like run folder: config.json and best.pt of a random model."""
    torch.manual_seed(seed)
    model = MODELS[name][1](config)
    model.set_standardization(torch.tensor([-7.0]), torch.tensor([3.0]))
    save_tensors(model.state_dict(), folder / "best.pt")
    save_json(
        {"targets": ["U0"], "data": {}, "model": {"model": name, **asdict(config)}}, folder / "config.json"
    )
    return folder


def predict_cli(run: Path, inputs: list, out: Path) -> int:
    """``mpnn predict RUN INPUTS --out OUT`` past the argument parser (cli.py is not ours to test)."""
    return cmd_predict_property(
        argparse.Namespace(model=str(run), inputs=[str(p) for p in inputs], out=str(out))
    )


TINY = EnnS2SConfig(dim=16, edge_hidden=[16], steps=2, set2set_steps=2, distance=False)


@pytest.mark.parametrize("hydrogens", ["implicit", "explicit"])
def test_predict_on_smiles_equals_predict_on_the_xyz_files(tmp_path, monkeypatch, capsys, hydrogens) -> None:
    builder = (EnnS2SConfig, lambda c: _topology_only(c, hydrogens))
    monkeypatch.setitem(MODELS, "topology_test", builder)
    run = save_run(tmp_path / "run", "topology_test", TINY, seed=3)
    smi = tmp_path / "mols.smi"
    smi.write_text("".join(f"{FIXTURE_SMILES[n]} {n[:-4]}\n" for n in sorted(FIXTURE_SMILES)))
    xyz = [str(FIXTURES / n) for n in sorted(FIXTURE_SMILES)]
    out_smi, out_xyz = tmp_path / "smi.csv", tmp_path / "xyz.csv"
    assert predict_cli(run, [smi], out_smi) == 0
    assert predict_cli(run, xyz, out_xyz) == 0
    from_smiles, from_xyz = list(csv.reader(open(out_smi))), list(csv.reader(open(out_xyz)))
    assert from_smiles[0] == from_xyz[0] == ["name", "U0 [eV]"]
    assert [r[0] for r in from_smiles] == [r[0] for r in from_xyz]  # names from the .smi file
    a = np.array([float(r[1]) for r in from_smiles[1:]])
    b = np.array([float(r[1]) for r in from_xyz[1:]])
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert np.ptp(a) > 1e-3  # the molecules are told apart
    assert "wrote 6 predictions of U0" in capsys.readouterr().out


def test_predict_refuses_smiles_for_a_model_that_reads_positions(tmp_path) -> None:
    run = save_run(tmp_path / "run", "enn_s2s", EnnS2SConfig(dim=16, edge_hidden=[16], steps=1), seed=0)
    smi, xyz = tmp_path / "mols.smi", FIXTURES / "dsgdb9nsd_000001.xyz"
    smi.write_text("CCO ethanol\n")
    out = tmp_path / "p.csv"
    with pytest.raises(DataError) as info:
        predict_cli(run, [xyz, smi], out)
    assert str(info.value) == f"model {run} reads 3D positions; SMILES input {smi} has none; give xyz files"
    assert not out.exists()
    # the same run predicts for the xyz file
    assert predict_cli(run, [xyz], out) == 0 and out.is_file()
