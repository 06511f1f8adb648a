"""QM9 release -> featurised, cached :class:`~mpnn.data.dataset.MoleculeSet` (:func:`build_qm9`).

The release is parsed once, its uncharacterised molecules dropped, the 13 targets computed in
the paper's units and every molecule featurised in worker processes; the result is cached on
disk (keyed by the inputs and the parser's and featuriser's source) and reloads in seconds. The
cache is a structure store (:mod:`mpnn.data.store`), the file ``mpnn data convert`` writes: it
can be handed to ``mpnn train --data`` as it is, to be read lazily instead of into memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import logging
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from os import PathLike
from pathlib import Path
from types import ModuleType

from tqdm.auto import tqdm

from mpnn.batch import Molecule
from mpnn.data import qm9, qm9_xyz, store_format
from mpnn.data.dataset import FORMAT_NAME, FORMAT_VERSION, MoleculeSet, from_arrays
from mpnn.data.store import StructureStore
from mpnn.data.store_writer import StoreWriter
from mpnn.errors import DataError, FeaturizationError

_log = logging.getLogger(__name__)


QM9_NAME_PREFIX = "dsgdb9nsd_"
QM9_NAME_FORMAT = QM9_NAME_PREFIX + "{:06d}"
#: Module providing ``featurize_molecule(symbols, positions, smiles) -> Featurized``.
FEATURIZE_MODULE = "mpnn.data.featurize"
_WORKER: dict = {}  # per-process state of the featurisation workers


def default_cache_dir() -> Path:
    """``$MPNN_CACHE`` if set, else ``~/.cache/mpnn``."""
    return Path(os.environ.get("MPNN_CACHE") or Path.home() / ".cache" / "mpnn")


def build_qm9(
    release_path: str | PathLike[str],
    *,
    uncharacterized_path: str | PathLike[str] | None = None,
    atomref_path: str | PathLike[str] | None = None,
    cache_dir: str | PathLike[str] | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> MoleculeSet:
    """Parse, filter, featurise and cache a QM9 release as a :class:`MoleculeSet`.

    Args:
        release_path: a tar archive or folder of QM9 xyz files
            (e.g. :func:`mpnn.data.qm9.bundled_release_path`).
        uncharacterized_path: ``uncharacterized.txt``; its molecules are dropped (None keeps all;
            pass it for the full release, which holds 3,054 of them).
        atomref_path: ``atomref.txt`` (default: the bundled copy, the same for every release).
        cache_dir: folder of the cache (default :func:`default_cache_dir`). The cache file is keyed
            by the input files' name, size and mtime, :data:`FORMAT_VERSION` and the source of the
            parser and featuriser; a second call with the same inputs loads it.
        workers: featurisation processes (default and at most ``os.cpu_count()``; 0 or 1: in this
            process).
        progress: show a tqdm progress bar.

    Returns:
        y holds :data:`qm9.TARGETS` in :data:`qm9.UNITS`; ids are QM9 indices. Molecules whose
        featurisation fails (:class:`FeaturizationError`) are left out and listed in ``failures``.
    """
    release = Path(release_path)
    atomref_file = Path(atomref_path) if atomref_path is not None else qm9.bundled_atomref_path()
    unc_file = Path(uncharacterized_path) if uncharacterized_path is not None else None
    featurize = importlib.import_module(FEATURIZE_MODULE)
    key = _cache_key([release, unc_file, atomref_file], [qm9, qm9_xyz, featurize, store_format])
    cache_file = Path(cache_dir or default_cache_dir()) / f"{release.name}-{key}.lmdb"
    if cache_file.is_file():
        try:
            return read_cache(cache_file)
        except DataError as e:
            _log.warning("%s; rebuilding it", e)
            cache_file.unlink()
    state = release_state(atomref_file, unc_file)
    described = describe(release, unc_file)
    info: dict = {"release": release.name, "atomref": atomref_file.name}
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    writer = StoreWriter(cache_file, target_names=qm9.TARGETS, target_units=qm9.UNITS, source=described)
    bar = tqdm(desc=f"QM9 {release.name}", unit="mol", disable=not progress)
    with bar, writer:
        for molecule in featurized_molecules(release, state, worker_count(workers), info, bar.update):
            writer.add(molecule)
        if not writer.count:
            raise DataError(f"{release}: no molecules")
        writer.info.update(info)
    if info["failures"]:
        examples = "; ".join(reason for _, reason in info["failures"][:5])
        _log.warning(
            "%d molecules of %s could not be featurised and were left out, e.g. %s",
            info["num_failures"],
            release.name,
            examples,
        )
    return read_cache(cache_file)  # what a later call reads, the same molecules in the same form


def describe(release: Path, unc_file: Path | None) -> str:
    """The description a QM9 store keeps of its source."""
    return f"QM9 release {release.name}" + (f", uncharacterized {unc_file.name} dropped" if unc_file else "")


def featurized_molecules(
    release: Path,
    state: dict,
    workers: int,
    info: dict,
    tick: Callable[[], object] = lambda: None,
    max_failures: int | None = None,
) -> Iterator[Molecule]:
    """The featurised molecules of ``release`` in file order (:func:`iter_featurized`), each made
    by :func:`~mpnn.data.dataset.from_arrays` as the in-memory set makes it. ``info`` receives
    ``uncharacterized_dropped``, ``num_failures`` and ``failures`` (``[index, reason]``, the first
    ``max_failures``; all with None); ``tick`` is called once per file."""
    info.update(uncharacterized_dropped=0, num_failures=0, failures=[])
    for result in iter_featurized(release, state, workers):
        tick()
        if result is None:
            info["uncharacterized_dropped"] += 1
        elif len(result) == 2:
            info["num_failures"] += 1
            if max_failures is None or len(info["failures"]) < max_failures:
                info["failures"].append(list(result))
        else:
            yield from_arrays([result], qm9.TARGETS, name_format=QM9_NAME_FORMAT)[0]


def read_cache(path: Path) -> MoleculeSet:
    """The :class:`MoleculeSet` of a QM9 store (the cache of :func:`build_qm9`), read whole."""
    store = StructureStore(path)
    try:
        if tuple(store.target_names) != qm9.TARGETS:
            raise DataError(f"{path}: not a QM9 store")
        parts = []
        for i in range(len(store)):
            a = store.read(i)
            name = bytes(a["name"]).decode()
            number = name.removeprefix(QM9_NAME_PREFIX)
            if number == name or not number.isdigit():
                raise DataError(f"{path}: record {i}: {name!r} is not a QM9 name")
            parts.append((int(number), a["z"], a["pos"], a["x"], a["bonds"], a["bond_type"], a["y"]))
        info = store.meta["info"]
        failures = [(int(i), str(reason)) for i, reason in info.get("failures", [])]
        meta = {
            "source": str(info.get("release", "")),
            "atomref": str(info.get("atomref", "")),
            "uncharacterized_dropped": int(info.get("uncharacterized_dropped", 0)),
        }
    finally:
        store.close()
    return from_arrays(parts, qm9.TARGETS, name_format=QM9_NAME_FORMAT, failures=failures, meta=meta)


def worker_count(workers: int | None) -> int:
    """Featurisation processes: ``workers``, at most (and by default) ``os.cpu_count()``."""
    cores = os.cpu_count() or 1
    return cores if workers is None else min(workers, cores)  # more processes than cores gain nothing


def release_state(atomref_file: Path, unc_file: Path | None) -> dict:
    """What every featurisation process needs: free-atom references, indices to drop, featuriser."""
    atomref = qm9.read_atomref(atomref_file)
    skip = qm9.read_uncharacterized(unc_file) if unc_file else set()
    return {"atomref": atomref, "skip": skip, "featurize_module": FEATURIZE_MODULE}


def iter_featurized(release: Path, state: dict, workers: int) -> Iterator[tuple | None]:
    """:func:`_process` of every file of ``release`` in file order (a bounded number read ahead):
    ``None`` for an uncharacterised molecule, ``(index, reason)`` when featurisation fails, else
    ``(index, z, pos, x, bonds, bond_type, y)`` (as :func:`mpnn.data.dataset.from_arrays` takes)."""
    with _mapper(workers, state) as imap:
        yield from imap(qm9.iter_release_files(release))


@contextlib.contextmanager
def _mapper(workers: int, state: dict) -> Iterator[Callable]:
    """An ordered ``imap(items)`` of :func:`_process`, in this process or in a worker pool.

    At most ``limit`` files are read ahead of the results, so memory stays bounded.
    """
    if workers <= 1:
        _init_worker(state)
        yield lambda items: map(_process, items)
        return
    chunk, limit = 32, 32 * workers * 8
    room, stop = threading.Semaphore(limit), threading.Event()

    def bounded(items: Iterator) -> Iterator:
        for item in items:
            room.acquire()
            if stop.is_set():
                return
            yield item

    def imap(items: Iterator) -> Iterator:
        for result in pool.imap(_process, bounded(items), chunksize=chunk):
            room.release()
            yield result

    # fork on Linux: workers start at once and need no `if __name__ == "__main__"` guard in the
    # calling script; they use only numpy and RDKit, never torch. Elsewhere spawn (safe default).
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    with context.Pool(workers, initializer=_init_worker, initargs=(state,)) as pool:
        try:
            yield imap
        finally:
            stop.set()
            for _ in range(limit):
                room.release()  # unblock the feeding thread so the pool can shut down


def _init_worker(state: dict) -> None:
    """Set this process's state: atomref, skip (indices to drop) and the featuriser."""
    _WORKER.update(state)
    _WORKER["featurize"] = importlib.import_module(state["featurize_module"]).featurize_molecule


def _process(item: tuple[str, bytes]) -> tuple | None:
    """One file: None if uncharacterised, ``(index, reason)`` if featurisation fails, else
    ``(index, z, pos, x, bonds, bond_type, y)``."""
    source, data = item
    record = qm9.parse_xyz(qm9_xyz.decode(data, source), source)
    if record.index in _WORKER["skip"]:
        return None
    y = qm9.targets(record, _WORKER["atomref"])
    try:
        smiles = (record.smiles_b3lyp, record.smiles_gdb)  # candidates, geometry's first
        f = _WORKER["featurize"](record.symbols, record.positions, smiles)
    except FeaturizationError as e:
        return record.index, f"{record.name}: {e}"
    z = record.atomic_numbers
    return record.index, z, record.positions, f.x, f.bonds, f.bond_type, y


def _cache_key(files: Sequence[Path | None], modules: Sequence[ModuleType]) -> str:
    """16 hex digits of a hash of the files' name/size/mtime, the format and the code's source."""
    h = hashlib.sha256(f"{FORMAT_NAME} {FORMAT_VERSION}".encode())
    for path in files:
        if path is None:
            h.update(b"none\0")
            continue
        try:
            st = path.stat()
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror})") from None
        h.update(f"{path.name}:{st.st_size}:{st.st_mtime_ns}\0".encode())
    for module in modules:
        source = getattr(module, "__file__", None)
        h.update(Path(source).read_bytes() if source else module.__name__.encode())
    return h.hexdigest()[:16]
