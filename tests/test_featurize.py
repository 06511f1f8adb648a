"""Tests of :mod:`mpnn.data.featurize` on real QM9 molecules.

Coordinates (Angstrom) and SMILES are copied from the QM9 release files
``dsgdb9nsd_<index>.xyz`` (B3LYP/6-31G(2df,p) geometries); the SMILES pair is
(SMILES of the B3LYP geometry, SMILES of GDB-17), as on the file's SMILES line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mpnn.batch import BOND_TYPES
from mpnn.data.featurize import NODE_FEATURES, Featurized, featurize_molecule
from mpnn.errors import FeaturizationError

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
COL = {name: k for k, name in enumerate(NODE_FEATURES)}
SINGLE, DOUBLE, TRIPLE, AROMATIC = (BOND_TYPES.index(t) for t in BOND_TYPES[:4])

QM9 = {
    1: ("""
        C -0.0126981359 1.0858041578 0.0080009958
        H 0.002150416 -0.0060313176 0.0019761204
        H 1.0117308433 1.4637511618 0.0002765748
        H -0.540815069 1.4475266138 -0.8766437152
        H -0.5238136345 1.4379326443 0.9063972942
        """, ("C", "C")),
    3: ("""
        O -0.0343604951 0.9775395708 0.0076015923
        H 0.0647664923 0.0205721989 0.0015346341
        H 0.8717903737 1.3007924048 0.0006931336
        """, ("O", "O")),
    4: ("""
        C 0.5995394918 0. 1.
        C -0.5995394918 0. 1.
        H -1.6616385861 0. 1.
        H 1.6616385861 0. 1.
        """, ("C#C", "C#C")),
    5: ("""
        C -0.0133239314 1.1324657151 0.0082758861
        N 0.0023107217 -0.0191585871 0.0019287305
        H -0.0278026991 2.1989492963 0.0141537903
        """, ("C#N", "C#N")),
    14: ("""
        C -0.0086050396 1.5020382883 -0.0068121748
        C 0.0109931006 -0.0176487687 -0.013770355
        O 0.6808884095 -0.4404180314 -1.1931320987
        H 1.0115333417 1.896620303 -0.0192015475
        H -0.5315986204 1.8807610923 -0.8897465868
        H -0.5167457158 1.876117708 0.8871073864
        H 0.5237712083 -0.3891229547 0.8882408183
        H -1.0202754406 -0.4050726108 0.0169067033
        H 0.6952957263 -1.4017956761 -1.2014849452
        """, ("CCO", "CCO")),
    76: ("""
        C -0.0916069514 1.3754004601 -0.0072942591
        O -0.0696453372 -0.0483158103 -0.1114881209
        C 0.6811462531 -0.5614267288 -1.1073245763
        C 0.6040529833 -2.0670154987 -1.0876689236
        N 1.3264553326 0.1926634321 -1.8996773119
        H 0.9146391568 1.7684365489 0.1625746035
        H -0.4856282569 1.8262461472 -0.9223521639
        H -0.739714304 1.600074234 0.8411060529
        H -0.4343006504 -2.3924216178 -1.203252047
        H 1.2062711041 -2.5004997736 -1.8874563954
        H 0.9565133742 -2.4497667017 -0.1250183847
        H 1.8350411459 -0.3610436113 -2.5848605537
        """, ("CO[C](C)[NH]", "COC(C)=N")),
    105: ("""
        C -0.0445774324 1.5704237601 0.0110417803
        C 1.4740896832 1.2298426501 -0.0067263896
        C 1.1682993117 0.1443109379 1.0663744852
        C 0.0391253719 0.0162093398 0.0024263012
        C 1.1462118991 0.1542190803 -1.0826776727
        H -0.432979399 2.0365230932 0.9212539305
        H -0.4522920887 2.0457291576 -0.8859162855
        H 2.3071156075 1.9344078755 -0.0121404539
        H 1.8734729739 -0.6889311545 1.1373305611
        H 0.8720963351 0.5020028465 2.0568232459
        H -0.79393529 -0.6883164323 0.0076413099
        H 0.8299890169 0.5207143173 -2.063620376
        H 1.8497119208 -0.6782799316 -1.1756418065
        """, ("C1[C@H]2C[C@@H]1C2", "C1C2CC1C2")),
    214: ("""
        C -0.0263621144 1.3835086344 0.0103870267
        C 1.1708019283 2.0965810056 0.0023045827
        C 2.3868915311 1.4163752988 -0.0131380362
        C 2.4057296503 0.0230978461 -0.0205116117
        C 1.2085609122 -0.6899726756 -0.0124063764
        C -0.0075247651 -0.0097718365 0.0030452239
        H -0.9733414726 1.9132329519 0.0224498095
        H 1.1560436477 3.1816075197 0.0080224004
        H 3.3191394577 1.9717268815 -0.0194567412
        H 3.3527113702 -0.5066219591 -0.0325112361
        H 1.223326423 -1.7750001478 -0.0181456652
        H -0.9397757183 -0.565118069 0.0093265237
        """, ("c1ccccc1", "C1=CC=CC=C1")),
    271: ("""
        N -0.1154594636 0.9594606304 -0.0418313489
        H -0.3257014144 -0.0359798464 0.0587509999
        H 0.8898694341 1.0428378366 -0.2037360955
        H -0.6152111659 1.3176122495 -0.8617376193
        C -0.5130594595 1.6754972886 1.2847420453
        C 0.1633028003 1.0759096615 2.4754813508
        C -0.8294842703 1.3117762516 3.7677550055
        O -2.0293185494 1.3417178417 3.437502693
        O -0.2294997621 1.3877019507 4.8339189894
        H -0.2837360253 2.7293622845 1.1145665096
        H -1.5918941197 1.527684564 1.4115850922
        H 0.2264012804 -0.0172612198 2.3831653584
        H 1.1595647852 1.4748597771 2.6739338795
        """, ("[NH3]CCC(=O)[O]", "[NH3+]CCC([O-])=O")),
    131915: ("""
        O -0.0563768034 -0.006003755 0.0037426637
        N -0.0217095489 1.2178419806 0.0068277636
        O 1.0030120529 1.887865011 0.0018948968
        C -1.3083326965 1.9375610043 0.0172680413
        C -1.2989150217 3.3278010821 0.0208284689
        C -2.5163764615 3.9995496598 0.0306834914
        C -3.7121477838 3.2822209787 0.0367866012
        C -3.6976065135 1.887860055 0.0330617358
        C -2.4880545053 1.2019723056 0.0232100779
        H -0.3525171242 3.8510323407 0.0158928988
        H -2.5307001157 5.0837152287 0.0335952679
        H -4.6588571643 3.8117970643 0.0444740588
        H -4.628940292 1.3326815785 0.0378290324
        H -2.438624399 0.1216893717 0.0200602416
        """, ("O=N(=O)c1ccccc1", "O=N(=O)C1=CC=CC=C1")),
    133857: ("""
        C 5.3702138268 5.9262994611 -2.4107222797
        C 4.7982070507 4.7934592265 -3.2350912376
        C 3.3872393464 4.1938179122 -3.113858888
        C 4.1282278313 3.3162907071 -1.3355396089
        C 3.0124213746 2.3483663588 -1.633721534
        C 3.4099355207 1.4782010536 -2.5917598524
        C 4.7713441586 1.9128601859 -3.1786465757
        C 4.6844554889 3.3950485898 -2.7404566674
        C 2.7965462155 3.8751425082 -1.7369574331
        H 5.0052729679 6.8921738106 -2.7757535001
        H 6.4644464895 5.9358123663 -2.4684685629
        H 5.0896006842 5.8325393693 -1.3588402406
        H 5.0309240376 4.8753507092 -4.2980118752
        H 2.8445825414 4.0297617185 -4.0405300505
        H 4.6270692189 3.3407878156 -0.3738592592
        H 2.763641441 0.7931608743 -3.1358708154
        H 4.7738706282 1.7402671452 -4.2616130811
        H 5.6614241029 1.4169820409 -2.768117947
        H 2.071903395 4.4474505868 -1.1679911112
        """, ("C[C@@H]1[C@H]2[C@@]31[C@@H]1[C]([CH]C3)[C@H]21", "CC1C2C3C4=CCC13C24")),
}  # fmt: skip


def molecule(index: int) -> tuple[list[str], np.ndarray, tuple[str, str]]:
    """Symbols, (n, 3) positions and (B3LYP SMILES, GDB-17 SMILES) of a QM9 molecule."""
    text, smiles = QM9[index]
    rows = [line.split() for line in text.strip().splitlines()]
    return [r[0] for r in rows], np.array([[float(v) for v in r[1:]] for r in rows]), smiles


def featurize(index: int, smiles: object = "both") -> Featurized:
    symbols, pos, pair = molecule(index)
    return featurize_molecule(symbols, pos, pair if smiles == "both" else smiles)


def bond_types(f: Featurized) -> dict[tuple[int, int], int]:
    return {(int(i), int(j)): int(t) for (i, j), t in zip(f.bonds, f.bond_type, strict=True)}


def assert_same(a: Featurized, b: Featurized) -> None:
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.bonds, b.bonds)
    np.testing.assert_array_equal(a.bond_type, b.bond_type)


def test_feature_names_follow_gilmer_table_1():
    assert NODE_FEATURES[:5] == ("H", "C", "N", "O", "F")
    assert NODE_FEATURES[5:] == ("atomic_number", "acceptor", "donor", "aromatic",
                                 "sp", "sp2", "sp3", "num_hs")  # fmt: skip


@pytest.mark.parametrize("index", sorted(QM9))
def test_output_shapes_and_dtypes(index):
    f = featurize(index)
    n = len(molecule(index)[0])
    assert f.x.shape == (n, 13) and f.x.dtype == np.float32
    assert f.bonds.dtype == np.int64 and f.bond_type.dtype == np.int64
    assert f.bonds.shape == (len(f.bond_type), 2)
    assert np.all(f.bonds[:, 0] < f.bonds[:, 1])
    assert [tuple(b) for b in f.bonds.tolist()] == sorted(tuple(b) for b in f.bonds.tolist())
    assert set(f.bond_type.tolist()) <= {SINGLE, DOUBLE, TRIPLE, AROMATIC}
    assert np.all(f.x[:, :5].sum(axis=1) == 1)
    assert np.all(f.x[:, COL["sp"] : COL["sp3"] + 1].sum(axis=1) <= 1)


def test_methane():
    f = featurize(1)
    assert f.bond_source == "smiles"
    c = f.x[0]
    assert c[COL["C"]] == 1 and c[COL["atomic_number"]] == 6
    assert c[COL["sp3"]] == 1 and c[COL["num_hs"]] == 4 and c[COL["aromatic"]] == 0
    for h in f.x[1:]:
        assert h[COL["H"]] == 1 and h[COL["atomic_number"]] == 1 and h[COL["num_hs"]] == 0
        assert h[COL["sp"] : COL["sp3"] + 1].sum() == 0
    assert f.x[:, COL["donor"]].sum() == 0 and f.x[:, COL["acceptor"]].sum() == 0
    assert bond_types(f) == {(0, k): SINGLE for k in range(1, 5)}


def test_water():
    f = featurize(3)
    o = f.x[0]
    assert o[COL["O"]] == 1 and o[COL["atomic_number"]] == 8
    assert o[COL["sp3"]] == 1 and o[COL["num_hs"]] == 2
    # BaseFeatures.fdef only flags O with exactly one H (hydroxyl) as donor/acceptor
    assert o[COL["donor"]] == 0 and o[COL["acceptor"]] == 0
    assert bond_types(f) == {(0, 1): SINGLE, (0, 2): SINGLE}


def test_acetylene_and_hcn_are_sp_with_a_triple_bond():
    f = featurize(4)
    assert bond_types(f) == {(0, 1): TRIPLE, (0, 3): SINGLE, (1, 2): SINGLE}
    assert np.all(f.x[:2, COL["sp"]] == 1) and np.all(f.x[:2, COL["num_hs"]] == 1)
    f = featurize(5)
    assert bond_types(f) == {(0, 1): TRIPLE, (0, 2): SINGLE}
    assert f.x[0, COL["sp"]] == 1 and f.x[1, COL["sp"]] == 1
    assert f.x[0, COL["num_hs"]] == 1 and f.x[1, COL["num_hs"]] == 0


def test_benzene_is_aromatic():
    f = featurize(214)
    carbons, hydrogens = f.x[:6], f.x[6:]
    assert np.all(carbons[:, COL["aromatic"]] == 1) and np.all(carbons[:, COL["sp2"]] == 1)
    assert np.all(carbons[:, COL["num_hs"]] == 1)
    assert np.all(hydrogens[:, COL["aromatic"]] == 0)
    types = bond_types(f)
    ring = {b: t for b, t in types.items() if max(b) < 6}
    assert len(ring) == 6 and set(ring.values()) == {AROMATIC}
    assert sorted(t for b, t in types.items() if max(b) >= 6) == [SINGLE] * 6
    # the Kekule GDB-17 SMILES gives the same aromatic result
    assert_same(featurize(214, "C1=CC=CC=C1"), f)


def test_ethanol_donor_acceptor_and_hybridization():
    f = featurize(14)
    c1, c2, o = f.x[0], f.x[1], f.x[2]
    assert o[COL["donor"]] == 1 and o[COL["acceptor"]] == 1 and o[COL["num_hs"]] == 1
    assert c1[COL["donor"]] == c1[COL["acceptor"]] == 0
    assert c1[COL["sp3"]] == c2[COL["sp3"]] == o[COL["sp3"]] == 1
    assert c1[COL["num_hs"]] == 3 and c2[COL["num_hs"]] == 2
    assert bond_types(f)[(1, 2)] == SINGLE and bond_types(f)[(2, 8)] == SINGLE


def test_zwitterion_uses_the_charged_gdb_smiles():
    # the B3LYP SMILES [NH3]CCC(=O)[O] has a neutral 4-valent N: RDKit rejects it
    f = featurize(271)
    assert f.bond_source == "smiles" and f.smiles == "[NH3+]CCC([O-])=O"
    n = f.x[0]
    assert n[COL["donor"]] == 1 and n[COL["acceptor"]] == 0
    assert n[COL["sp3"]] == 1 and n[COL["num_hs"]] == 3
    assert f.x[6, COL["sp2"]] == 1
    # carboxylate: the shorter C-O (C6-O8 1.226 A vs C6-O7 1.245 A) is the double bond
    types = bond_types(f)
    assert types[(6, 8)] == DOUBLE and types[(6, 7)] == SINGLE
    assert f.x[8, COL["acceptor"]] == 1
    # with the B3LYP SMILES alone, its connectivity is used with orders from valences
    alone = featurize(271, QM9[271][1][0])
    assert alone.bond_source == "smiles+geometry"
    assert_same(alone, f)


def test_b3lyp_smiles_with_radicals_falls_back_to_gdb():
    # Open Babel wrote the imine C=N of QM9 76 as two radicals
    f = featurize(76)
    assert f.bond_source == "smiles" and f.smiles == "COC(C)=N"
    assert bond_types(f)[(2, 4)] == DOUBLE
    assert f.x[4, COL["sp2"]] == 1 and f.x[4, COL["num_hs"]] == 1
    alone = featurize(76, "CO[C](C)[NH]")
    assert alone.bond_source == "smiles+geometry"
    assert_same(alone, f)


def test_geometry_isomer_of_gdb_uses_b3lyp_connectivity():
    # QM9 133857: the B3LYP geometry no longer has GDB-17's graph; its own SMILES lost the
    # C=C double bond (two radicals), so that connectivity gets orders from valences
    symbols, pos, _ = molecule(133857)
    f = featurize(133857)
    assert f.bond_source == "smiles+geometry" and f.smiles == QM9[133857][1][0]
    double = [b for b, t in bond_types(f).items() if t == DOUBLE]
    assert len(double) == 1
    length = np.linalg.norm(pos[double[0][0]] - pos[double[0][1]])
    assert length == pytest.approx(1.354, abs=1e-3)
    with pytest.raises(FeaturizationError, match="connectivity differs"):
        featurize(133857, "CC1C2C3C4=CCC13C24")


def test_strained_cage_keeps_the_long_non_bond_out():
    # bicyclo[1.1.1]pentane: the bridgeheads C1 and C3 are 1.88 A apart but not bonded
    symbols, pos, _ = molecule(105)
    assert np.linalg.norm(pos[1] - pos[3]) == pytest.approx(1.879, abs=1e-3)
    for f in (featurize(105), featurize(105, None)):
        assert (1, 3) not in bond_types(f)
        assert len(f.bonds) == 14


def test_nitro_group_with_a_five_valent_n_smiles():
    f = featurize(131915)
    assert f.bond_source == "smiles" and f.smiles == "O=N(=O)c1ccccc1"
    types = bond_types(f)
    assert sorted((types[(0, 1)], types[(1, 2)])) == [SINGLE, DOUBLE]
    assert_same(featurize(131915, None), f)


@pytest.mark.parametrize("index", sorted(QM9))
def test_geometry_path_agrees_with_smiles_path(index):
    f, g = featurize(index), featurize(index, None)
    assert g.bond_source == "geometry" and g.smiles is None
    assert_same(g, f)


@pytest.mark.parametrize("index", [14, 76, 214, 271])
def test_rows_follow_the_input_atom_order(index):
    symbols, pos, smiles = molecule(index)
    perm = np.random.default_rng(index).permutation(len(symbols))
    ref = featurize_molecule(symbols, pos, smiles)
    got = featurize_molecule([symbols[k] for k in perm], pos[perm], smiles)
    np.testing.assert_array_equal(got.x, ref.x[perm])
    new = np.argsort(perm)  # new index of each old atom
    assert bond_types(got) == {tuple(sorted((int(new[i]), int(new[j])))): t
                               for (i, j), t in bond_types(ref).items()}  # fmt: skip


def test_smiles_atom_order_does_not_matter():
    symbols, pos, _ = molecule(14)  # xyz order C, C, O
    ref = featurize_molecule(symbols, pos, "CCO")
    for smi in ("OCC", "[H]OC([H])([H])C([H])([H])[H]", "C(O)C"):
        assert_same(featurize_molecule(symbols, pos, smi), ref)


def test_errors():
    symbols, pos, _ = molecule(14)
    with pytest.raises(FeaturizationError, match="connectivity differs from geometry"):
        featurize_molecule(symbols, pos, "COC")  # dimethyl ether: same atoms, other graph
    with pytest.raises(FeaturizationError, match="atoms differ"):
        featurize_molecule(symbols, pos, "CC")
    with pytest.raises(FeaturizationError, match="cannot be parsed"):
        featurize_molecule(symbols, pos, "C1CC")
    with pytest.raises(FeaturizationError, match="empty"):
        featurize_molecule(symbols, pos, [])
    with pytest.raises(FeaturizationError, match="unknown element Cl"):
        featurize_molecule(["Cl", *symbols[1:]], pos, None)
    with pytest.raises(FeaturizationError, match="shape"):
        featurize_molecule(symbols, pos[:-1], "CCO")
    with pytest.raises(FeaturizationError, match="shape"):
        featurize_molecule(symbols, np.full_like(pos, np.nan), "CCO")
    squeezed = pos * 0.5  # every pair far too close: not a molecule
    with pytest.raises(FeaturizationError, match="connectivity differs"):
        featurize_molecule(symbols, squeezed, "CCO")


def test_first_molecules_of_the_release():
    """The first 1,000 files of the QM9 release all featurise, both ways alike."""
    release, unc = DATA / "qm9_dsgdb9nsd.xyz.tar.xz", DATA / "qm9_uncharacterized.txt"
    if not release.is_file() or not unc.is_file():
        pytest.skip(f"QM9 release not found in {DATA.resolve()}")
    from mpnn.data import qm9

    skip = qm9.read_uncharacterized(unc)
    count = 0
    for record in qm9.iter_release(release):
        if record.index > 1000:
            break
        if record.index in skip:
            continue
        f = featurize_molecule(record.symbols, record.positions,
                               (record.smiles_b3lyp, record.smiles_gdb))  # fmt: skip
        assert f.bond_source == "smiles"
        assert_same(featurize_molecule(record.symbols, record.positions, None), f)
        count += 1
    assert count > 950
