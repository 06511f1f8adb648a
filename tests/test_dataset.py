"""MoleculeSet storage, save/load, and the cached QM9 build."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mpnn.batch import collate
from mpnn.data import qm9, qm9_build
from mpnn.data.dataset import MoleculeSet
from mpnn.data.qm9_build import build_qm9
from mpnn.errors import DataError

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HA = 27.211386246  # eV per Hartree


def small_set() -> MoleculeSet:
    """Three molecules of 2, 3 and 1 atoms; molecule 1 has two bonds, molecule 0 one."""
    return MoleculeSet(
        z=torch.tensor([1, 1, 8, 1, 1, 6]),
        pos=torch.arange(18, dtype=torch.float64).reshape(6, 3),
        x=torch.arange(12, dtype=torch.float32).reshape(6, 2),
        atom_ptr=torch.tensor([0, 2, 5, 6]),
        bonds=torch.tensor([[0, 1], [0, 1], [0, 2]]),
        bond_type=torch.tensor([0, 0, 1]),
        bond_ptr=torch.tensor([0, 1, 3, 3]),
        y=torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]], dtype=torch.float64),
        ids=torch.tensor([7, 8, 9]),
        target_names=["a", "b"],
        name_format="mol{:03d}",
        failures=[(4, "no bonds")],
        meta={"source": "hand-made", "dropped": 1},
    )


def assert_same(a: MoleculeSet, b: MoleculeSet) -> None:
    for name in ("z", "pos", "x", "atom_ptr", "bonds", "bond_type", "bond_ptr", "y", "ids"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
        assert getattr(a, name).dtype == getattr(b, name).dtype, name
    assert a.target_names == b.target_names and a.name_format == b.name_format
    assert a.failures == b.failures and a.meta == b.meta


# --------------------------------------------------------------------------- MoleculeSet


def test_getitem() -> None:
    s = small_set()
    assert len(s) == 3 and s.num_atoms == 6
    m = s[1]
    assert m.z.tolist() == [8, 1, 1] and m.pos[0].tolist() == [6.0, 7.0, 8.0]
    assert m.x.tolist() == [[4.0, 5.0], [6.0, 7.0], [8.0, 9.0]]
    assert m.bonds.tolist() == [[0, 1], [0, 2]] and m.bond_type.tolist() == [0, 1]
    assert m.y.tolist() == [2.0, 20.0] and m.name == "mol008"
    last = s[-1]
    assert last.z.tolist() == [6] and last.bonds.shape == (0, 2) and last.name == "mol009"
    with pytest.raises(IndexError):
        s[3]


def test_molecules_collate() -> None:
    batch = collate([small_set()[i] for i in range(3)], graph="bonds")
    assert batch.num_graphs == 3 and batch.num_atoms == 6
    assert batch.num_edges == 6  # 3 bonds, both directions
    assert batch.y.shape == (3, 2)


def test_subset_reorders_and_keeps_local_bonds() -> None:
    s = small_set()
    sub = s.subset([2, 0, -2])
    assert sub.ids.tolist() == [9, 7, 8]
    assert sub.atom_ptr.tolist() == [0, 1, 3, 6] and sub.bond_ptr.tolist() == [0, 0, 1, 3]
    for k, i in enumerate([2, 0, 1]):
        a, b = sub[k], s[i]
        assert torch.equal(a.z, b.z) and torch.equal(a.pos, b.pos) and torch.equal(a.x, b.x)
        assert torch.equal(a.bonds, b.bonds) and torch.equal(a.y, b.y) and a.name == b.name
    mask = s.subset(np.array([True, False, True]))
    assert mask.ids.tolist() == [7, 9] and mask.num_atoms == 3
    empty = s.subset([])
    assert len(empty) == 0 and empty.num_atoms == 0
    with pytest.raises(IndexError):
        s.subset([3])


def test_select_targets() -> None:
    s = small_set().select_targets(["b"])
    assert s.target_names == ["b"] and s.y[:, 0].tolist() == [10.0, 20.0, 30.0]
    with pytest.raises(KeyError):
        small_set().select_targets(["c"])


def test_inconsistent_shapes_are_refused() -> None:
    s = small_set()
    with pytest.raises(DataError, match="atom_ptr"):
        MoleculeSet(**{**s._fields(), "atom_ptr": torch.tensor([0, 2, 5, 7])})
    with pytest.raises(DataError, match="float32"):
        MoleculeSet(**{**s._fields(), "x": s.x.double()})


def test_save_load_round_trip(tmp_path: Path) -> None:
    s = small_set()
    path = tmp_path / "sub" / "set.pt"
    s.save(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["set.pt"]  # no temporary left
    raw = torch.load(path, weights_only=True)  # plain data: the safe loader accepts it
    assert isinstance(raw, dict) and raw["target_names"] == ["a", "b"]
    loaded = MoleculeSet.load(path)
    assert_same(s, loaded)
    assert loaded[1].name == "mol008"


def test_load_refuses_other_files(tmp_path: Path) -> None:
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(DataError, match="not a MoleculeSet file"):
        MoleculeSet.load(other)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(DataError, match="not a readable MoleculeSet file"):
        MoleculeSet.load(garbage)


# ------------------------------------------------------------------------------ build_qm9


@pytest.fixture
def fake_featurize(monkeypatch: pytest.MonkeyPatch):
    """Build with tests/fixtures/fake_featurize.py (refuses fluorine) instead of RDKit."""
    monkeypatch.setattr(qm9_build, "FEATURIZE_MODULE", "fixtures.fake_featurize")
    module = importlib.import_module("fixtures.fake_featurize")
    module.CALLS[0] = 0
    return module


@pytest.fixture
def release(tmp_path: Path) -> Path:
    folder = tmp_path / "release"
    shutil.copytree(FIXTURES / "qm9", folder)
    return folder


def test_build_qm9_in_process(fake_featurize, release: Path, tmp_path: Path) -> None:
    unc = FIXTURES / "qm9_uncharacterized_excerpt.txt"  # lists 58 of the fixtures
    cache = tmp_path / "cache"
    s = build_qm9(release, uncharacterized_path=unc, cache_dir=cache, workers=1, progress=False)
    # fixtures 1, 2, 23, 58, 184, 212: 58 is uncharacterised, 184 (CF4) has fluorine
    assert s.ids.tolist() == [1, 2, 23, 212]
    assert [i for i, _ in s.failures] == [184] and "fluorine" in s.failures[0][1]
    assert s.meta["uncharacterized_dropped"] == 1
    assert s.target_names == list(qm9.TARGETS)
    assert s.atom_ptr.tolist() == [0, 5, 9, 15, 28]  # 5 + 4 + 6 + 13 atoms
    methane = s[0]
    assert methane.name == "dsgdb9nsd_000001" and methane.z.tolist() == [6, 1, 1, 1, 1]
    # U0 atomisation of methane: -0.631066 Ha (see test_qm9.py for the arithmetic)
    assert float(methane.y[qm9.TARGETS.index("U0")]) == pytest.approx(-0.631066 * HA)
    assert methane.bonds.tolist() == [[0, 1], [0, 2], [0, 3], [0, 4]]  # C-H within 1.6 A
    assert fake_featurize.CALLS[0] == 5  # every characterised molecule, CF4 included

    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].name.startswith("release-")
    again = build_qm9(release, uncharacterized_path=unc, cache_dir=cache, workers=1, progress=False)
    assert fake_featurize.CALLS[0] == 5  # loaded from the cache: nothing featurised
    assert_same(s, again)


def test_build_qm9_cache_key(fake_featurize, release: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MPNN_CACHE", str(tmp_path / "env_cache"))
    build_qm9(release, workers=0, progress=False)
    assert len(list((tmp_path / "env_cache").iterdir())) == 1
    shutil.copy(FIXTURES / "qm9_uncharacterized_excerpt.txt", tmp_path / "unc.txt")
    kept = build_qm9(release, uncharacterized_path=tmp_path / "unc.txt", workers=0, progress=False)
    assert len(kept) == 4 and len(list((tmp_path / "env_cache").iterdir())) == 2
    stat = (tmp_path / "unc.txt").stat()
    os.utime(tmp_path / "unc.txt", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    calls = fake_featurize.CALLS[0]
    build_qm9(release, uncharacterized_path=tmp_path / "unc.txt", workers=0, progress=False)
    assert fake_featurize.CALLS[0] > calls  # a changed input is rebuilt, not read from the cache


def test_build_qm9_corrupt_cache_is_rebuilt(fake_featurize, release: Path, tmp_path) -> None:
    cache = tmp_path / "cache"
    first = build_qm9(release, cache_dir=cache, workers=1, progress=False)
    (cache_file,) = cache.iterdir()
    cache_file.write_bytes(b"truncated")
    assert_same(first, build_qm9(release, cache_dir=cache, workers=1, progress=False))


def test_build_qm9_reports_malformed_file(fake_featurize, release: Path, tmp_path) -> None:
    path = release / "dsgdb9nsd_000002.xyz"
    path.write_text(path.read_text().replace("-0.0273771593", "-0.02737x"))
    with pytest.raises(DataError, match=r"dsgdb9nsd_000002\.xyz:4: z '-0.02737x' is not a number"):
        build_qm9(release, cache_dir=tmp_path / "cache", workers=1, progress=False)


def test_build_qm9_worker_pool(fake_featurize, release: Path, tmp_path: Path) -> None:
    """Two worker processes (spawned ones import the fake featuriser from tests/ via sys.path)."""
    assert str(Path(__file__).parent) in sys.path
    archive = tmp_path / "release.tar.gz"
    shutil.make_archive(str(tmp_path / "release"), "gztar", root_dir=release)
    kw = {"cache_dir": tmp_path / "cache", "progress": False}
    pooled = build_qm9(archive, workers=2, **kw)
    single = build_qm9(release, workers=1, **kw)
    assert pooled.ids.tolist() == [1, 2, 23, 58, 212]
    assert_same(pooled, MoleculeSet(**{**single._fields(), "meta": pooled.meta}))


@pytest.mark.skipif(
    importlib.util.find_spec("mpnn.data.featurize") is None, reason="needs mpnn.data.featurize"
)
def test_build_bundled_subset_with_rdkit(tmp_path: Path) -> None:
    """The bundled 4,000 molecules through the real featuriser, in two worker processes."""
    s = build_qm9(qm9.bundled_release_path(), cache_dir=tmp_path, workers=2, progress=False)
    assert len(s) + len(s.failures) == 4000  # bundled/README.md
    assert len(s.failures) < 40, s.failures[:5]
    assert s.num_atoms <= 72073 and s.x.dtype == torch.float32 and s.x.shape[1] > 0
    assert torch.isfinite(s.y).all()
    again = build_qm9(qm9.bundled_release_path(), cache_dir=tmp_path, workers=2, progress=False)
    assert_same(s, again)


@pytest.mark.parametrize("damage", ["malformed file", "truncated archive"])
def test_build_qm9_worker_pool_errors(fake_featurize, release: Path, tmp_path: Path, damage: str) -> None:
    """An error in a worker (parse) or in the reading thread (archive) reaches the caller; no hang."""
    if damage == "malformed file":
        path = release / "dsgdb9nsd_000023.xyz"
        path.write_text(path.read_text().replace("gdb 23", "gdb twenty-three"))
        source, match = release, r"dsgdb9nsd_000023\.xyz:2: molecule id 'twenty-three'"
    else:
        archive = Path(shutil.make_archive(str(tmp_path / "release"), "xztar", root_dir=release))
        source = tmp_path / "cut.tar.xz"
        source.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
        match = "not a readable tar archive"
    with pytest.raises(DataError, match=match):
        build_qm9(source, cache_dir=tmp_path / "cache", workers=2, progress=False)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())
