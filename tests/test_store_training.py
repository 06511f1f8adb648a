"""Training from structure stores: the same steps as from the files they were converted from.

A store is read lazily, record by record, by ``DataLoader`` workers; these tests show that the
batches, and so the weights after training, are those of the in-memory path.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from test_train_potential import SMALL_OPTIONS, clusters

from mpnn import cli
from mpnn.data import qm9
from mpnn.data.qm9_build import build_qm9
from mpnn.data.store import StructureStore
from mpnn.errors import DataError
from mpnn.train.checkpoint import LAST
from mpnn.train.data import open_property_store
from mpnn.train.distributed import Context
from mpnn.train.loader import BatchLoader, target_values

pytestmark = pytest.mark.usefixtures("one_thread")
MOLECULES = 120


def run(*args: str) -> int:
    return cli.main([*map(str, args), "--quiet"])


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> tuple[Path, Path]:
    """The first molecules of the bundled QM9 subset as a release folder and as a store."""
    folder = tmp_path_factory.mktemp("store-training")
    files = folder / "release"
    files.mkdir()
    for source, data in itertools.islice(qm9.iter_release_files(qm9.bundled_release_path()), MOLECULES):
        (files / Path(source).name).write_bytes(data)
    assert run("data", "convert", files, folder / "qm9.lmdb", "--workers", "1") == 0
    return files, folder / "qm9.lmdb"


def last(out: Path) -> dict:
    return torch.load(out / LAST, weights_only=True)


def test_property_training_from_a_store_takes_the_steps_of_the_release(
    release, tmp_path, monkeypatch
) -> None:
    """``mpnn train --data qm9.lmdb --workers 2`` (lazy, two reader processes) ends with the
    weights, bit for bit, and the history of ``mpnn train --data <release>`` (in memory)."""
    monkeypatch.setenv("MPNN_CACHE", str(tmp_path / "cache"))
    files, store = release
    common = ["train", "--epochs", "2", "--valid", "20", "--test", "20", "--batch-size", "16", "--dim", "16"]
    assert run(*common, "--data", files, "--workers", "1", "--out", tmp_path / "memory") == 0
    assert run(*common, "--data", store, "--workers", "2", "--out", tmp_path / "lazy") == 0
    memory, lazy = last(tmp_path / "memory"), last(tmp_path / "lazy")
    assert memory["state"]["step"] == lazy["state"]["step"] == 2 * 5
    for name, value in memory["model"].items():
        assert torch.equal(value, lazy["model"][name]), name
    for a, b in zip(memory["state"]["history"], lazy["state"]["history"], strict=True):
        assert {k: v for k, v in a.items() if "elapsed" not in k} == {
            k: v for k, v in b.items() if "elapsed" not in k
        }
    assert (tmp_path / "lazy" / "test_metrics.csv").read_text() == (
        tmp_path / "memory" / "test_metrics.csv"
    ).read_text()


@pytest.mark.parametrize("world", [1, 2])
def test_workers_give_each_process_the_batches_it_reads_itself(release, world: int) -> None:
    """Batches read by two DataLoader workers, for each rank of ``world`` processes, over two
    epochs, equal those read in the process; targets come from the store's target column."""
    store = open_property_store(release[1])
    indices = np.arange(3, MOLECULES, 2)
    columns = [7, 2]
    assert np.array_equal(target_values(store, indices, columns), store.y.numpy()[np.ix_(indices, columns)])
    for rank in range(world):
        ctx = Context(rank=rank, world=world)
        here = BatchLoader(store, indices, columns, 7, shuffle=True, seed=4, dtype=torch.float64)
        there = BatchLoader(store, indices, columns, 7, shuffle=True, seed=4, dtype=torch.float64, workers=2)
        for epoch in range(2):
            pairs = list(zip(here.steps(epoch, ctx), there.steps(epoch, ctx), strict=True))
            assert len(pairs) == len(here)
            for (a, totals_a), (b, totals_b) in pairs:
                assert totals_a == totals_b
                for field in ("z", "pos", "x", "edge_index", "edge_type", "batch", "y"):
                    assert torch.equal(getattr(a, field), getattr(b, field)), field


def test_a_store_of_other_targets_is_refused_with_one_line(release, tmp_path) -> None:
    ase.io.write(tmp_path / "e.xyz", clusters(4, 0), format="extxyz")
    assert run("data", "convert", tmp_path / "e.xyz", tmp_path / "e.lmdb") == 0
    with pytest.raises(DataError, match="not the 13 of QM9"):
        open_property_store(tmp_path / "e.lmdb")


def test_potential_training_from_a_store_equals_training_from_its_file(tmp_path) -> None:
    """``mpnn train --data water.lmdb`` trains a potential (the store holds energies and forces)
    and ends where ``mpnn train-potential water.extxyz`` ends."""
    ase.io.write(tmp_path / "train.extxyz", clusters(16, 0), format="extxyz")
    assert run("data", "convert", tmp_path / "train.extxyz", tmp_path / "train.lmdb") == 0
    assert len(StructureStore(tmp_path / "train.lmdb")) == 16
    options = [*SMALL_OPTIONS, "--valid", "0.25", "--epochs", "2"]
    assert run("train-potential", tmp_path / "train.extxyz", *options, "--out", tmp_path / "file") == 0
    assert run("train-potential", tmp_path / "train.lmdb", *options, "--out", tmp_path / "store") == 0
    assert run("train", "--data", tmp_path / "train.lmdb", "--epochs", "2", "--out", tmp_path / "routed") == 0
    file, store = last(tmp_path / "file"), last(tmp_path / "store")
    assert file["state"]["step"] == store["state"]["step"] > 0
    for name, value in file["model"].items():
        assert torch.equal(value, store["model"][name]), name
    assert (tmp_path / "routed" / "config.json").is_file() and last(tmp_path / "routed")["state"]["step"] > 0


def test_in_memory_and_store_sets_agree_on_what_the_loader_reads(release, tmp_path, monkeypatch) -> None:
    """The molecules and targets a loader reads from the store equal those of the cached set."""
    monkeypatch.setenv("MPNN_CACHE", str(tmp_path / "cache"))
    memory = build_qm9(release[0], workers=1, progress=False)
    store = open_property_store(release[1])
    a = BatchLoader(memory, np.arange(MOLECULES), [0, 7], 50, dtype=torch.float64)
    b = BatchLoader(store, np.arange(MOLECULES), [0, 7], 50, dtype=torch.float64, workers=1)
    for x, y in zip(a.batches(0), b.batches(0), strict=True):
        for field in ("z", "pos", "x", "edge_index", "edge_type", "y"):
            assert torch.equal(getattr(x, field), getattr(y, field)), field


def test_the_qm9_cache_is_a_store_that_training_reads(release, tmp_path) -> None:
    """build_qm9's cache is the format of ``mpnn data convert``: its records are the molecules of
    the returned set, and it opens as a property store; a converted store has the same records."""
    memory = build_qm9(release[0], cache_dir=tmp_path, workers=1, progress=False)
    (cache,) = tmp_path.iterdir()
    cached, converted = open_property_store(cache), StructureStore(release[1])
    assert len(cached) == len(converted) == len(memory) == MOLECULES
    for i in (0, 17, MOLECULES - 1):
        for field in ("z", "pos", "x", "bonds", "bond_type", "y"):
            assert torch.equal(getattr(cached[i], field), getattr(memory[i], field)), field
            assert torch.equal(getattr(converted[i], field), getattr(memory[i], field)), field


@pytest.mark.parametrize("model", ["hdnnp", "sf_mpnn"])
def test_lazy_potential_training_takes_the_steps_of_the_cached_path(tmp_path, model: str) -> None:
    """``train-potential STORE --lazy`` (statistics in one streaming pass, batches read by two
    worker processes, forces through the positions) takes the steps of the cached path on the
    extxyz file the store was made from: the same scaling, energy terms and weights to rounding,
    and the same errors; for the HDNNP and for the SF-MPNN (whose learned steps read the positions
    in both paths)."""
    ase.io.write(tmp_path / "train.extxyz", clusters(20, 1), format="extxyz")
    assert run("data", "convert", tmp_path / "train.extxyz", tmp_path / "train.lmdb") == 0
    options = [*SMALL_OPTIONS, "--valid", "0.25", "--epochs", "3", "--model", model]
    if model == "sf_mpnn":
        options += ["--steps", "2", "--features", "8", "--embedding", "8", "--radial-basis", "4"]
    assert run("train-potential", tmp_path / "train.extxyz", *options, "--out", tmp_path / "cached") == 0
    lazy = ["--lazy", "--workers", "2"]
    assert run("train-potential", tmp_path / "train.lmdb", *options, *lazy, "--out", tmp_path / "lazy") == 0
    cached, streamed = last(tmp_path / "cached"), last(tmp_path / "lazy")
    assert cached["state"]["step"] == streamed["state"]["step"] == 3 * 4
    for name, value in cached["model"].items():
        torch.testing.assert_close(streamed["model"][name], value, rtol=1e-9, atol=1e-10, msg=name)
    rows = [list(csv.DictReader(open(tmp_path / f / "test_metrics.csv"))) for f in ("cached", "lazy")]
    for a, b in zip(*rows, strict=True):
        assert a["split"] == b["split"] and a["structures"] == b["structures"] and a["atoms"] == b["atoms"]
        for key in ("energy_mae", "energy_rmse", "force_mae", "force_rmse"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-6), key
