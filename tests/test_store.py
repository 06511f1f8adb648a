"""Structure stores: round trips against the in-memory readers, parallel loading, hostile files,
streaming statistics against numpy, and ``mpnn data convert``."""

from __future__ import annotations

import itertools
import json
import pickle
import re
import shutil
import tracemalloc
import zlib
from pathlib import Path

import lmdb
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from ase.units import Hartree
from conftest import SHARED_DATA
from test_atoms import INPUT_DATA

from mpnn import cli
from mpnn.batch import Molecule
from mpnn.data import qm9, store_format, store_writer
from mpnn.data.atoms import atoms_to_molecule, read_structures
from mpnn.data.qm9_build import build_qm9
from mpnn.data.store import ShuffleSampler, StructureStore, key
from mpnn.data.store_stats import element_energy_offsets, target_statistics
from mpnn.data.store_writer import StoreWriter
from mpnn.errors import DataError
from mpnn.n2p2.convert import parse_units

pytestmark = pytest.mark.usefixtures("one_thread")
FIELDS = ("z", "pos", "x", "bonds", "bond_type", "y", "cell", "pbc", "forces")


def convert(*args: str) -> int:
    return cli.main(["data", "convert", *map(str, args), "--quiet"])


def assert_same(a: Molecule, b: Molecule) -> None:
    """Every field equal, with its dtype (exact: float64 values round-trip bit for bit)."""
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y), name
    assert a.name == b.name


#: Molecules of the bundled QM9 subset that the tests convert (all 4,000 take seconds to featurise).
BUNDLED = 600


@pytest.fixture(scope="module")
def bundled(tmp_path_factory) -> tuple[StructureStore, object]:
    """The first molecules of the bundled QM9 subset as a store (converted by the CLI) and as the
    in-memory MoleculeSet of the existing pipeline."""
    folder = tmp_path_factory.mktemp("bundled")
    release = folder / "release"
    release.mkdir()
    for source, data in itertools.islice(qm9.iter_release_files(qm9.bundled_release_path()), BUNDLED):
        (release / Path(source).name).write_bytes(data)
    assert convert(release, folder / "qm9.lmdb", "--workers", "2") == 0
    reference = build_qm9(release, cache_dir=folder / "cache", workers=2, progress=False)
    return StructureStore(folder / "qm9.lmdb"), reference


def frames(count: int = 5) -> list[Atoms]:
    """Water molecules and periodic boxes with random energies and forces (extxyz keeps 17 digits)."""
    rng = np.random.default_rng(0)
    out = []
    for k in range(count):
        atoms = Atoms("OH2", positions=[[0, 0, 0.1178], [0, 0.7555, -0.4712], [0, -0.7555, -0.4712]])
        atoms.positions += rng.normal(scale=0.05, size=(3, 3))
        if k % 2:
            atoms.cell, atoms.pbc = np.diag([6.0, 7.0, 8.0]) + rng.normal(scale=0.1, size=(3, 3)), True
        atoms.calc = SinglePointCalculator(atoms, energy=-14.2 + rng.normal(), forces=rng.normal(size=(3, 3)))
        out.append(atoms)
    return out


def corrupt_copy(path: Path, tmp_path: Path, change) -> Path:
    """A copy of the store ``path`` with ``change(txn, dbs)`` applied through LMDB itself."""
    copy = tmp_path / f"changed-{len(list(tmp_path.iterdir()))}.lmdb"
    shutil.copy(path, copy)
    env = lmdb.open(str(copy), subdir=False, lock=False, max_dbs=4)
    with env.begin(write=True) as txn:
        change(txn, {name: env.open_db(name, txn=txn) for name in (b"meta", b"structures", b"targets")})
    env.close()
    return copy


def one_line_error(call, match: str) -> str:
    with pytest.raises(DataError, match=match) as info:
        call()
    assert "\n" not in str(info.value)
    return str(info.value)


# -- round trips ---------------------------------------------------------------------------------------
def test_qm9_store_equals_the_in_memory_set_field_by_field(bundled) -> None:
    store, reference = bundled
    assert len(store) == len(reference) == BUNDLED
    assert store.target_names == list(qm9.TARGETS) and store.target_units == list(qm9.UNITS)
    for i in range(len(store)):
        assert_same(store[i], reference[i])
    assert torch.equal(store.y, reference.y) and store.y.dtype == torch.float64
    assert store.atom_counts().tolist() == reference.atom_ptr.diff().tolist()
    assert_same(store[-1], reference[BUNDLED - 1])
    with pytest.raises(IndexError):
        store[BUNDLED]
    assert_same(pickle.loads(pickle.dumps(store))[7], reference[7])


def test_reopening_after_each_window_reads_the_same(bundled) -> None:
    store, reference = bundled
    small = StructureStore(store.path, window=20_000)  # a new mapping every ~10 records
    for i in range(0, 400, 3):
        assert_same(small[i], reference[i])


@pytest.mark.parametrize("suffix", [".extxyz", ".db"])
def test_ase_files_round_trip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"water{suffix}"
    write(path, frames())
    assert convert(path, tmp_path / "w.lmdb") == 0
    store = StructureStore(tmp_path / "w.lmdb")
    assert store.meta["fields"] == [
        "z",
        "pos",
        "x",
        "bonds",
        "bond_type",
        "y",
        "name",
        "cell",
        "pbc",
        "forces",
    ]
    for k, atoms in enumerate(read_structures(path)):
        assert_same(store[k], atoms_to_molecule(atoms, name=f"water{suffix}:{k}"))
    assert store[1].pbc.tolist() == [True] * 3 and store[0].cell is None


def test_n2p2_input_data_with_units(tmp_path: Path) -> None:
    path = tmp_path / "input.data"
    path.write_text(INPUT_DATA)
    assert convert(path, tmp_path / "h.lmdb", "--units", "bohr,hartree") == 0
    store = StructureStore(tmp_path / "h.lmdb")
    units = parse_units("bohr,hartree")  # the CLI's units (CODATA 2018)
    for k, atoms in enumerate(read_structures(path, units=units)):
        assert_same(store[k], atoms_to_molecule(atoms, name=f"input.data:{k}"))
    assert float(store[0].y) == -1.17 * units[1] and abs(units[1] / Hartree - 1) < 1e-6


def test_deepmd_water_equals_its_npy_arrays(tmp_path: Path) -> None:
    archive = SHARED_DATA / "deepmd_water_64H2O.tar.xz"
    if not archive.is_file():
        pytest.skip("../shared/data/deepmd_water_64H2O.tar.xz (DeePMD water example) is not present")
    import tarfile

    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "archive", filter="data")
    real = tmp_path / "archive" / "deepmd_water" / "data" / "data_1"
    system = tmp_path / "systems" / "water"  # the first 3 frames of each of its two sets
    shutil.copytree(real, system, ignore=lambda folder, names: [n for n in names if n.endswith(".npy")])
    arrays: dict[str, list[np.ndarray]] = {}
    for folder in sorted(real.glob("set.*")):
        for name in ("coord", "box", "energy", "force"):
            part = np.load(folder / f"{name}.npy")[:3]
            np.save(system / folder.name / f"{name}.npy", part)
            arrays.setdefault(name, []).append(part)
    assert convert(tmp_path / "systems", tmp_path / "w.lmdb") == 0  # the systems below the folder
    store = StructureStore(tmp_path / "w.lmdb")
    assert len(store) == 6 and store[4].name == "water/set.001:1"
    types = np.loadtxt(real / "type.raw", dtype=int)
    for k in range(6):
        m, frame = store[k], {name: np.concatenate(parts)[k] for name, parts in arrays.items()}
        assert m.z.tolist() == np.where(types == 0, 8, 1).tolist()
        assert np.array_equal(m.pos.numpy(), frame["coord"].reshape(-1, 3).astype(np.float64))
        assert np.array_equal(m.forces.numpy(), frame["force"].reshape(-1, 3).astype(np.float64))
        assert np.array_equal(m.cell.numpy(), frame["box"].reshape(3, 3).astype(np.float64))
        assert m.y.tolist() == [float(frame["energy"])] and m.pbc.tolist() == [True] * 3


# -- parallel loading --------------------------------------------------------------------------------
@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_dataloader_workers_yield_every_structure_once(bundled, tmp_path: Path, context: str) -> None:
    if context == "fork":
        store, n, workers = bundled[0], BUNDLED, 2
    else:  # a spawned worker imports torch (seconds): one worker and a small store
        write(tmp_path / "w.extxyz", frames(40))
        convert(tmp_path / "w.extxyz", tmp_path / "w.lmdb")
        store, n, workers = StructureStore(tmp_path / "w.lmdb"), 40, 1
    store[0]  # opened in this process first: the workers must open their own
    order = {"sampler": ShuffleSampler(n, seed=3)} if context == "fork" else {"shuffle": True}
    loader = torch.utils.data.DataLoader(
        store, batch_size=7, num_workers=workers, collate_fn=list, multiprocessing_context=context, **order
    )
    seen = [m.name for batch in loader for m in batch]  # collate_fn=list: the molecules
    assert sorted(seen) == sorted(store[i].name for i in range(n)) and len(set(seen)) == n
    assert seen != [store[i].name for i in range(n)]  # shuffled
    if context == "fork":  # the next epoch: another order; the same seed again: the same orders
        again = list(ShuffleSampler(n, seed=3))
        assert list(loader.sampler) != again and [store[i].name for i in again] == seen


# -- hostile files ---------------------------------------------------------------------------------
def test_files_that_are_not_stores(bundled, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.lmdb"
    garbage.write_bytes(b"\x00garbage" * 2000)
    one_line_error(lambda: StructureStore(garbage), "garbage.lmdb: not a structure store")
    empty = tmp_path / "empty.lmdb"
    empty.write_bytes(b"")
    one_line_error(lambda: StructureStore(empty), "empty.lmdb: not a structure store")
    truncated = tmp_path / "truncated.lmdb"
    data = bundled[0].path.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    one_line_error(lambda: StructureStore(truncated), "truncated.lmdb: truncated")
    one_line_error(lambda: StructureStore(tmp_path), "is a folder")


def test_bad_metadata(bundled, tmp_path: Path) -> None:
    path = bundled[0].path
    meta = dict(bundled[0].meta)

    def meta_of(value: bytes):
        return lambda txn, dbs: txn.put(b"meta", value, db=dbs[b"meta"])

    cases = {
        b"{not json": "not JSON",
        json.dumps({**meta, "version": 2}).encode(): "version 2; this reads 1",
        json.dumps(
            {**meta, "num_structures": 10**9}
        ).encode(): f"{BUNDLED} structures entries, the metadata implies",
        json.dumps({**meta, "node_features": -1}).encode(): "node_features = -1",
        json.dumps({**meta, "fields": ["z"]}).encode(): "missing",
    }
    for value, message in cases.items():
        one_line_error(lambda v=value: StructureStore(corrupt_copy(path, tmp_path, meta_of(v))), message)


def reseal(record: bytearray) -> bytes:
    """``record`` with its checksum recomputed, as a hostile writer would."""
    _, count, _, _, size = store_format._HEADER.unpack_from(record)
    start = store_format._HEADER.size + store_format._ENTRY.size * count
    store_format._HEADER.pack_into(record, 0, store_format.MAGIC, count, 0, zlib.crc32(record[start:]), size)
    return bytes(record)


def test_bad_records_name_the_file_and_record_and_allocate_nothing_large(bundled, tmp_path: Path) -> None:
    path, molecule = bundled[0].path, bundled[1][5]
    good = store_format.encode(molecule)
    flipped = bytearray(good)
    flipped[-20] ^= 0xFF
    huge = bytearray(good)  # z of 2**31 - 1 atoms: gigabytes of positions, declared in a 2 KB record
    store_format._ENTRY.pack_into(huge, store_format._HEADER.size, 0, 1, 1, 2**31 - 1, 0, 0)
    bad_bond = bytearray(good)  # a checksummed record whose bond points outside the molecule
    at = good.index(molecule.bonds.numpy().astype("<i4").tobytes())
    bad_bond[at : at + 4] = np.int32(99).tobytes()
    wrong_dtype = bytearray(good)  # positions declared float32
    store_format._ENTRY.pack_into(wrong_dtype, store_format._HEADER.size + 16, 1, 4, 2, len(molecule.z), 3, 0)
    cases = {
        bytes(flipped): "checksum mismatch",
        reseal(huge): "the arrays declare more than the .* payload bytes",
        good[:-8]: "[0-9]+ bytes, the header declares",
        b"MPS2" + good[4:]: "bad magic",
        b"x": "1 bytes, shorter than the header",
        reseal(bad_bond): "bonds: an atom index outside 0..",
        reseal(wrong_dtype): "pos: stored as float32",
    }
    for record, message in cases.items():
        copy = corrupt_copy(
            path, tmp_path, lambda txn, dbs, r=record: txn.put(key(5), r, db=dbs[b"structures"])
        )
        store = StructureStore(copy)
        tracemalloc.start()
        one_line_error(lambda s=store: s[5], f"{copy.name}: record 5: {message}")
        assert tracemalloc.get_traced_memory()[1] < 2**20
        tracemalloc.stop()
        assert_same(store[4], bundled[1][4])  # the other records read as before
    molecule.bonds = molecule.bonds.clone()
    molecule.bonds[0, 1] = 99
    with pytest.raises(store_format.RecordError, match="bonds: an atom index outside"):
        store_format.encode(molecule)


# -- statistics --------------------------------------------------------------------------------------------
def test_target_statistics_equal_numpy(bundled) -> None:
    store, reference = bundled
    y = reference.y.numpy()
    stats = target_statistics(store)
    np.testing.assert_allclose(stats.mean, y.mean(axis=0), rtol=1e-12, atol=0)
    np.testing.assert_allclose(stats.std, y.std(axis=0), rtol=1e-12, atol=0)
    per_atom = y[:, 7] / reference.atom_ptr.diff().numpy()
    stats = target_statistics(store, ["U0"], per_atom=True, ddof=1)
    assert stats.names == ["U0/atom"] and stats.count == BUNDLED
    np.testing.assert_allclose(stats.std, per_atom.std(ddof=1), rtol=1e-12, atol=0)
    one_line_error(lambda: target_statistics(store, ["nope"]), "no target 'nope'")


def test_statistics_of_large_offsets_over_many_chunks(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    y = 1e6 + rng.normal(size=(4100, 2)) * np.array([1e-3, 10.0])  # two chunks; mean 1e9 x spread
    hydrogen = atoms_to_molecule(Atoms("H"))
    with StoreWriter(tmp_path / "s.lmdb", target_names=["a", "b"], target_units=["eV", "eV"]) as out:
        for row in y:
            hydrogen.y = torch.from_numpy(row)
            out.add(hydrogen)
    stats = target_statistics(StructureStore(tmp_path / "s.lmdb"))
    np.testing.assert_allclose(stats.mean, y.mean(axis=0), rtol=1e-12, atol=0)
    np.testing.assert_allclose(stats.std, y.std(axis=0), rtol=1e-12, atol=0)


def test_element_offsets_equal_least_squares_on_the_composition_matrix(bundled, tmp_path: Path) -> None:
    store, reference = bundled
    composition = np.stack([np.bincount(reference[i].z.numpy(), minlength=10) for i in range(len(reference))])
    elements, offsets = element_energy_offsets(store, "U0")
    assert elements.tolist() == np.flatnonzero(composition.sum(axis=0)).tolist() == [1, 6, 7, 8]
    expected = np.linalg.lstsq(composition[:, elements], reference.y[:, 7].numpy(), rcond=None)[0]
    np.testing.assert_allclose(offsets, expected, rtol=1e-9, atol=0)
    write(tmp_path / "w.extxyz", frames(6))  # every structure H2O: the minimum-norm solution
    convert(tmp_path / "w.extxyz", tmp_path / "w.lmdb")
    elements, offsets = element_energy_offsets(StructureStore(tmp_path / "w.lmdb"))
    energies = [a.get_potential_energy() for a in read_structures(tmp_path / "w.extxyz")]
    expected = np.linalg.lstsq(np.array([[2.0, 1.0]] * 6), energies, rcond=None)[0]
    assert elements.tolist() == [1, 8]
    np.testing.assert_allclose(offsets, expected, rtol=1e-12)


# -- writing ----------------------------------------------------------------------------------------
def test_writer_grows_the_map_and_checks_that_structures_agree(bundled, tmp_path: Path, monkeypatch) -> None:
    store, reference = bundled
    monkeypatch.setattr(store_writer, "INITIAL_MAP", 64 * 1024)  # full after a few dozen molecules
    with StoreWriter(
        tmp_path / "s.lmdb", target_names=store.target_names, target_units=store.target_units
    ) as out:
        for i in range(200):
            out.add(store[i])
    small = StructureStore(tmp_path / "s.lmdb")
    assert len(small) == 200 and small.meta["info"] == {}
    for i in (0, 99, 199):
        assert_same(small[i], reference[i])
    no_targets = reference[1]
    no_targets.y = None
    with pytest.raises(DataError, match=rf"structure 1 \({reference.name(1)}\): y None differs"):
        with StoreWriter(
            tmp_path / "t.lmdb", target_names=store.target_names, target_units=store.target_units
        ) as out:
            out.add(reference[0])
            out.add(no_targets)
    assert list(tmp_path.iterdir()) == [tmp_path / "s.lmdb"]  # no store, no temporary


# -- mpnn data convert --------------------------------------------------------------------------------
def test_convert_never_writes_over_anything(tmp_path: Path, capsys) -> None:
    source = tmp_path / "w.extxyz"
    write(source, frames())
    dest = tmp_path / "w.lmdb"
    assert convert(source, dest) == 0
    written = dest.read_bytes()
    (tmp_path / "empty.lmdb").touch()
    (tmp_path / "link.lmdb").symlink_to(source)
    release = tmp_path / "release"
    shutil.copytree(Path(__file__).parent / "fixtures" / "qm9", release)
    refused = {
        (source, dest): "w.lmdb: exists; a store is never written over anything",
        (source, tmp_path / "empty.lmdb"): "empty.lmdb: exists",
        (source, tmp_path / "link.lmdb"): "link.lmdb: exists",
        (source, tmp_path / "w.xyz"): "writes a structure store .one LMDB file., not .xyz",
        (release, release / "qm9.lmdb"): "lies inside .*release, which this command reads",
        (tmp_path / "missing.xyz", tmp_path / "m.lmdb"): "missing.xyz: no such file",
    }
    capsys.readouterr()
    for (src, out), message in refused.items():
        assert convert(src, out) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert re.match(f"mpnn: error: .*{message}", line), line
    assert dest.read_bytes() == written and source.is_symlink() is False
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "empty.lmdb",
        "link.lmdb",
        "release",
        "w.extxyz",
        "w.lmdb",
    ]
    assert not (release / "qm9.lmdb").exists()


def test_a_failed_or_interrupted_conversion_leaves_no_file(tmp_path: Path, capsys, monkeypatch) -> None:
    atoms = frames(6)
    atoms[4].positions[1, 0] = np.nan
    write(tmp_path / "bad.extxyz", atoms)
    assert convert(tmp_path / "bad.extxyz", tmp_path / "bad.lmdb") == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert re.match(r"mpnn: error: .*bad.extxyz: structure 4, atom 1: non-finite position", line), line
    write(tmp_path / "good.extxyz", frames(6))
    calls = []

    def interrupted(self, molecule):
        calls.append(molecule)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(StoreWriter, "add", interrupted)
    assert convert(tmp_path / "good.extxyz", tmp_path / "good.lmdb") == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.extxyz", "good.extxyz"]  # no temporaries


def test_info_of_a_store_and_of_a_file_that_is_not_one(bundled, tmp_path: Path, capsys) -> None:
    assert cli.main(["data", "info", str(bundled[0].path), "--stats"]) == 0
    out = capsys.readouterr().out
    mean = float(bundled[1].y[:, 7].mean())
    assert f"{BUNDLED} structures" in out and f"U0: mean {mean:.6g} eV" in out
    (tmp_path / "x.lmdb").write_bytes(b"\0" * 10000)
    assert cli.main(["data", "info", str(tmp_path / "x.lmdb")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"mpnn: error: {tmp_path / 'x.lmdb'}: not a structure store")


def test_close_atoms_give_one_warning_for_the_file(tmp_path: Path, capsys) -> None:
    h2 = [Atoms("H2", positions=[[0, 0, 0], [0, 0, d]]) for d in (0.74, 0.05, 0.06, 0.07)]
    write(tmp_path / "close.extxyz", h2)  # no energies: a store without targets
    assert convert(tmp_path / "close.extxyz", tmp_path / "close.lmdb") == 0
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert re.match(
        r"mpnn: warning: .*close.extxyz: structure 1: .*; 2 more structures have atoms this close", line
    )
    store = StructureStore(tmp_path / "close.lmdb")
    assert len(store) == 4 and store.target_names == [] and store[1].y is None
