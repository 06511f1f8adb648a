"""Structure stores: data sets larger than memory, in one file, read lazily (:class:`StructureStore`).

A store is one LMDB file (`LMDB <http://www.lmdb.tech/doc/>`_, through the ``lmdb`` package)
written once by :class:`~mpnn.data.store_writer.StoreWriter` (``mpnn data convert``) and then only
read. Why LMDB rather than HDF5 (h5py):

* Random access to one variable-sized record is one B-tree lookup in a memory map: no chunk cache
  to tune, no ragged (pointer + flat array) layout to keep consistent while appending.
* Any number of processes read one file at once without a global lock: a ``DataLoader`` worker
  opens its own read-only environment (``lock=False``) and never waits for another. h5py holds one
  lock per process for every call, and an HDF5 handle must not cross a ``fork``.
* Records are written in bounded transactions with sequential (append) keys, so conversion memory
  does not grow with the set; a file that was not finished is never renamed into place.
* The record bytes are ours (:mod:`mpnn.data.store_format`): numbers and a checked header, no
  pickle, so an untrusted store runs no code.

Named databases of the file (M structures, K targets, chunks of :data:`TARGET_CHUNK` rows):

==============  ==========================  ===============================================
database        key                         value
==============  ==========================  ===============================================
``meta``        ``b"meta"``                 UTF-8 JSON (:func:`check_meta` lists the keys)
``structures``  index i, 8-byte big-endian  the record of structure i (:mod:`~.store_format`)
``targets``     chunk c, 8-byte big-endian  (rows, K) float64 little-endian: ``y`` of the chunk
``sizes``       chunk c, 8-byte big-endian  (rows,) int64 little-endian: atoms per structure
==============  ==========================  ===============================================

Reading maps the file; pages read stay in the process's resident set (shared, reclaimable file
pages) until they are unmapped, so one pass over a 100 GB store would show 100 GB resident. A
page fault maps more than the page read: Linux maps the neighbouring pages already in the page
cache too (``fault_around_bytes``, 64 KiB), so a record read in random order from a store in the
page cache (just written, or read by another process) maps 64 KiB for its leaf page and as much
for the B-tree page above it. The store counts that (the record's bytes + 2 x
:data:`FAULT_AROUND`) and closes its environment, which unmaps everything, after ``window``
bytes (default :data:`WINDOW`, about 500 records): the resident memory of a reader stays bounded
whatever the size of the file, at the cost of one re-open (about 0.1 ms with its first page
faults) per window.

Checks on opening: a regular file, a valid LMDB file (LMDB checks its meta pages) no shorter than
its last page (a truncated file would crash the reader when a missing page is touched), the
metadata (:func:`check_meta`) and the number of entries of each database. Each record is checked
when it is read (:func:`mpnn.data.store_format.decode`). Every failure is one
:class:`~mpnn.errors.DataError` line naming the file (and the record). LMDB itself trusts the links
between its pages beyond its own checks (page numbers past the last page are refused); a file
crafted to break the B-tree is outside what a reader of this format can detect.
"""

from __future__ import annotations

import json
import math
import operator
import os
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mpnn.batch import Molecule
from mpnn.data import store_format
from mpnn.errors import DataError

FORMAT_NAME = "mpnn.StructureStore"
FORMAT_VERSION = 1
#: Rows per value of the ``targets`` and ``sizes`` databases.
TARGET_CHUNK = 4096
#: Largest metadata record (bytes of JSON).
MAX_META_BYTES = 16 * 2**20
#: Bytes a process may map through one environment before the store re-opens it (module docstring).
WINDOW = 64 * 2**20
#: What a page fault may map around the page read (Linux's default ``fault_around_bytes``).
FAULT_AROUND = 64 * 2**10
DATABASES = (b"meta", b"structures", b"targets", b"sizes")
#: The name endings of store files (``mpnn data convert`` writes nothing else).
STORE_SUFFIXES = (".lmdb",)


def is_store_path(path: str | os.PathLike[str] | None) -> bool:
    """Whether ``path`` names a structure store by its suffix (:data:`STORE_SUFFIXES`)."""
    return path is not None and Path(path).name.lower().endswith(STORE_SUFFIXES)


def key(index: int) -> bytes:
    """The key of structure (or chunk) ``index``: 8 bytes big-endian, so keys sort as numbers."""
    return index.to_bytes(8, "big")


def open_environment(path: Path, **options: Any):
    """An ``lmdb.Environment`` of the store file ``path`` (one file, no lock file), for
    :class:`StructureStore` and :class:`~mpnn.data.store_writer.StoreWriter`."""
    import lmdb

    return lmdb.open(str(path), subdir=False, lock=False, max_dbs=len(DATABASES), **options)


def check_meta(meta: Any, where: str) -> dict[str, Any]:
    """The metadata of a store, checked; ``where`` starts the one-line :class:`DataError`.

    Keys: ``format`` (:data:`FORMAT_NAME`), ``version`` (:data:`FORMAT_VERSION`),
    ``num_structures`` M, ``num_atoms`` N, ``fields`` (those of
    :data:`mpnn.data.store_format.FIELDS` that records hold; ``y`` and ``forces`` are in every
    record or in none), ``node_features`` F, ``target_names`` and ``target_units`` (K each; K = 0
    without ``y``), ``target_chunk``, ``source`` (a description) and ``info`` (plain values).
    """
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise DataError(f"{where}: not a structure store (no {FORMAT_NAME} metadata)")
    if meta.get("version") != FORMAT_VERSION:
        raise DataError(f"{where}: store format version {meta.get('version')!r}; this reads {FORMAT_VERSION}")

    def count(name: str, low: int = 0) -> None:
        value = meta.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value < 2**62:
            raise DataError(f"{where}: metadata {name} = {value!r} is not an integer >= {low}")

    for name, low in (("num_structures", 0), ("num_atoms", 0), ("node_features", 0), ("target_chunk", 1)):
        count(name, low)
    strings = {name: meta.get(name) for name in ("fields", "target_names", "target_units")}
    for name, value in strings.items():
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DataError(f"{where}: metadata {name} is not a list of strings")
    unknown = set(meta["fields"]) - set(store_format.FIELDS)
    missing = set(store_format.REQUIRED) - set(meta["fields"])
    if unknown or missing:
        raise DataError(f"{where}: metadata fields: unknown {sorted(unknown)}, missing {sorted(missing)}")
    k = len(meta["target_names"])
    if len(meta["target_units"]) != k or (k > 0) != ("y" in meta["fields"]):
        raise DataError(f"{where}: metadata: {k} target names, {len(meta['target_units'])} units")
    if not isinstance(meta.get("source"), str) or not isinstance(meta.get("info"), dict):
        raise DataError(f"{where}: metadata source or info missing")
    return meta


class _Environment:
    """One open LMDB file of this process, shared by the stores that read it: LMDB (and the
    ``lmdb`` package) allow one environment per file and process."""

    def __init__(self, path: Path) -> None:
        import lmdb

        try:
            self.env = open_environment(path, readonly=True, readahead=False)
        except lmdb.Error as error:
            raise DataError(f"{path}: not a structure store ({_lmdb_reason(error)})") from None
        try:
            pages = (self.env.info()["last_pgno"] + 1) * self.env.stat()["psize"]
            if path.stat().st_size < pages:  # touching a missing page would crash the process
                raise DataError(f"{path}: truncated: {path.stat().st_size} bytes, its pages need {pages}")
            self.dbs = {name: self.env.open_db(name, create=False) for name in DATABASES}
        except lmdb.Error as error:
            self.env.close()
            raise DataError(f"{path}: not a structure store ({_lmdb_reason(error)})") from None
        except BaseException:
            self.env.close()
            raise
        self.users = 0


#: The environments open in this process, by (device, inode) of their file.
_OPEN: dict[tuple[int, int], _Environment] = {}


def _forget_parent() -> None:
    """In a forked child: close the parent's environments (no locks, so this touches nothing of
    the parent's) so that the child's stores open their own."""
    for shared in _OPEN.values():
        shared.env.close()
    _OPEN.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent)


def _acquire(path: Path) -> tuple[tuple[int, int], _Environment]:
    info = path.stat()
    identity = (info.st_dev, info.st_ino)
    if identity not in _OPEN:
        _OPEN[identity] = _Environment(path)
    _OPEN[identity].users += 1
    return identity, _OPEN[identity]


def _release(identity: tuple[int, int]) -> None:
    shared = _OPEN.get(identity)
    if shared is not None:
        shared.users -= 1
        if shared.users <= 0:
            shared.env.close()
            del _OPEN[identity]


class StructureStore:
    """The structures of a store file, read one at a time (a map-style ``torch`` data set).

    Attributes:
        path: the file.
        meta: its metadata (:func:`check_meta`).
        target_names, target_units: the K targets of ``y``.

    The LMDB environment opens on first use in each process (read-only, no lock) and re-opens
    after a ``fork`` or an unpickling, so a ``DataLoader`` with workers (fork or spawn) reads in
    parallel; only the path and the metadata are pickled. Stores of one file in one process
    share its environment; it is unmapped (every ``window`` bytes) when no other store uses it.
    """

    def __init__(self, path: str | os.PathLike[str], window: int = WINDOW) -> None:
        from mpnn.files import check_regular_file

        self.path = Path(path)
        self.window = int(window)
        check_regular_file(self.path, "a structure store")
        self._txn = self._dbs = self._identity = None
        self._pid, self._read = -1, 0
        txn, dbs = self._begin()
        try:
            raw = txn.get(b"meta", db=dbs[b"meta"])
            if raw is None or len(raw) > MAX_META_BYTES:
                raise DataError(f"{self.path}: not a structure store (no metadata record of a sane size)")
            try:
                meta = json.loads(bytes(raw).decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                raise DataError(f"{self.path}: the metadata record is not JSON") from None
            self.meta = check_meta(meta, str(self.path))
            self._check_entries(txn, dbs)
        finally:
            self.close()
        self.target_names: list[str] = list(self.meta["target_names"])
        self.target_units: list[str] = list(self.meta["target_units"])

    def _begin(self) -> tuple[Any, dict[bytes, Any]]:
        """A read transaction of this process's environment of the file, and its databases."""
        self._identity, shared = _acquire(self.path)
        self._txn, self._dbs = shared.env.begin(buffers=True), shared.dbs
        self._pid, self._read = os.getpid(), 0
        return self._txn, self._dbs

    def _check_entries(self, txn: Any, dbs: dict[bytes, Any]) -> None:
        m, k = self.meta["num_structures"], len(self.meta["target_names"])
        chunks = math.ceil(m / self.meta["target_chunk"])
        expected = {b"structures": m, b"targets": chunks if k else 0, b"sizes": chunks}
        for name, want in expected.items():
            have = txn.stat(dbs[name])["entries"]
            if have != want:
                raise DataError(f"{self.path}: {have} {name.decode()} entries, the metadata implies {want}")

    # -- per-process access -----------------------------------------------------------------------
    def _get(self, db: bytes, index: int) -> memoryview:
        if self._pid != os.getpid() or self._txn is None or self._read > self.window:
            self.close()
            self._begin()
        value = self._txn.get(key(index), db=self._dbs[db])
        if value is None:
            raise DataError(f"{self.path}: {db.decode()} entry {index} missing")
        self._read += len(value) + 2 * FAULT_AROUND  # the leaf and the branch page above it
        return value

    def close(self) -> None:
        """End this store's reading (the file is unmapped when no other store of this process
        reads it); the next read opens it again."""
        if self._txn is not None and self._pid == os.getpid():
            self._txn.abort()
            _release(self._identity)
        self._txn = self._dbs = self._identity = None  # in a forked child: the parent's, already gone

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_txn=None, _dbs=None, _identity=None, _pid=-1, _read=0)
        return state

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    # -- structures -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.meta["num_structures"])

    def __repr__(self) -> str:
        return (
            f"StructureStore({str(self.path)!r}: {len(self)} structures, {self.meta['num_atoms']} atoms, "
            f"targets {self.target_names})"
        )

    def _index(self, i: int) -> int:
        i = operator.index(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"StructureStore index {i} out of range for {len(self)} structures")
        return i % len(self)

    def read(self, i: int, fields: Collection[str] | None = None) -> dict[str, np.ndarray]:
        """The arrays of structure ``i`` (all fields, or only ``fields``), checked."""
        i = self._index(i)
        try:
            arrays = store_format.decode(
                self._get(b"structures", i), self.meta["node_features"], len(self.target_names), fields
            )
        except store_format.RecordError as error:
            raise DataError(f"{self.path}: record {i}: {error}") from None
        return arrays

    def __getitem__(self, i: int) -> Molecule:
        """Structure ``i`` (negative counts from the end) as a :class:`Molecule` of new tensors."""
        arrays = self.read(i)
        for name in ("y", "forces"):
            if (name in arrays) != (name in self.meta["fields"]):
                raise DataError(f"{self.path}: record {self._index(i)}: {name} differs from the metadata")
        return store_format.to_molecule(arrays)

    # -- per-structure columns, without reading the records ------------------------------------------
    def _column(self, db: bytes, dtype: str, width: int | None) -> Iterator[np.ndarray]:
        chunk, m = self.meta["target_chunk"], len(self)
        for c in range(math.ceil(m / chunk)):
            rows = min(chunk, m - c * chunk)
            shape = (rows,) if width is None else (rows, width)
            value = self._get(db, c)
            if len(value) != math.prod(shape) * 8:
                raise DataError(f"{self.path}: {db.decode()} chunk {c}: {len(value)} bytes for shape {shape}")
            yield np.frombuffer(value, dtype=dtype).reshape(shape).astype(dtype[1:])

    def target_chunks(self) -> Iterator[np.ndarray]:
        """``y`` of all structures in order, as (rows, K) float64 arrays of up to
        :data:`TARGET_CHUNK` rows (K x 8 bytes per structure, no record read)."""
        if not self.target_names:
            raise DataError(f"{self.path}: the store has no targets")
        return self._column(b"targets", "<f8", len(self.target_names))

    @property
    def y(self) -> torch.Tensor:
        """(M, K) float64 targets of all structures, in :attr:`target_units` (M x K x 8 bytes)."""
        empty = np.zeros((0, len(self.target_names)))
        return torch.from_numpy(np.concatenate([empty, *self.target_chunks()]))

    def size_chunks(self) -> Iterator[np.ndarray]:
        """Atoms per structure, in order, as (rows,) int64 arrays in the chunks of
        :meth:`target_chunks` (no record read)."""
        return self._column(b"sizes", "<i8", None)

    def atom_counts(self) -> np.ndarray:
        """(M,) int64 atoms per structure (no record read)."""
        return np.concatenate([np.zeros(0, np.int64), *self.size_chunks()])


def _lmdb_reason(error: Exception) -> str:
    """LMDB's message without the path it starts with."""
    text = " ".join(str(error).split())
    return text.split(": ", 1)[1] if ": " in text else text


class ShuffleSampler(torch.utils.data.Sampler[int]):
    """A new random order of ``range(n)`` each epoch, held as one int32 (int64 from 2**31) array.

    ``DataLoader(store, shuffle=True)`` holds the order as a list of Python ints, about 36 bytes
    per structure (3.6 GB for 100 million); this holds 4 (``DataLoader(store,
    sampler=ShuffleSampler(len(store), seed))``). Epoch e uses the generator seeded with
    ``(seed, e)``, so runs are reproducible.
    """

    def __init__(self, n: int, seed: int = 0) -> None:
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        dtype = np.int32 if self.n < 2**31 else np.int64
        order = np.random.default_rng([self.seed, self.epoch]).permutation(np.arange(self.n, dtype=dtype))
        self.epoch += 1
        for start in range(0, self.n, 2**16):  # Python ints for a block at a time
            yield from order[start : start + 2**16].tolist()
