"""Write a structure store by streaming (:class:`StoreWriter`): memory bounded, nothing half-written.

::

    with StoreWriter("qm9.lmdb", target_names=TARGETS, target_units=UNITS, source="QM9") as out:
        for molecule in molecules:          # any iterator: nothing is held but one transaction
            out.add(molecule)

Records go into a temporary file beside the destination (``.<name>.<8 characters>.tmp``, the
temporaries :func:`mpnn.files.remove_stale_temporaries` removes), committed every
``batch_records`` records or ``batch_bytes`` bytes, whichever comes first; the ``targets`` and
``sizes`` chunks when they fill up. The environment is re-opened after every
:data:`mpnn.data.store.WINDOW` bytes written, which unmaps the pages LMDB read back, so resident
memory stays bounded (see :mod:`mpnn.data.store`). On success the metadata is written, the file
synced and then linked to the destination, which must not exist (a hard link never replaces a
file that appeared meanwhile). Any exception, ``KeyboardInterrupt`` included, removes the
temporary: the destination either is a complete store or does not exist.

The first structure fixes what every other must match: whether it has targets ``y`` (K values) and
forces, and the width and dtype of its node features ``x``. A mismatch, or a structure the record
format cannot hold (:func:`mpnn.data.store_format.encode`), is a one-line
:class:`~mpnn.errors.DataError` naming the structure.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mpnn.batch import Molecule
from mpnn.data import store_format
from mpnn.data.store import (
    FORMAT_NAME,
    FORMAT_VERSION,
    TARGET_CHUNK,
    WINDOW,
    check_meta,
    key,
    open_environment,
)
from mpnn.errors import DataError, MpnnError
from mpnn.files import _umask

#: Initial LMDB map size; it doubles whenever a transaction does not fit.
INITIAL_MAP = 2**30


class StoreWriter:
    """Stream :class:`Molecule` objects into a new store file ``dest`` (see the module docstring).

    Args:
        dest: the store file to create; it must not exist.
        target_names, target_units: names and units of the K values of each structure's ``y``
            (empty when the structures have no ``y``).
        source: a description of where the structures come from (kept in the metadata).
        info: plain values (str, int, float, lists of them) for the metadata; may be updated
            until the writer closes (e.g. counts known only at the end).
        batch_records, batch_bytes: records and bytes per transaction at most.
    """

    def __init__(
        self,
        dest: str | os.PathLike[str],
        *,
        target_names: Sequence[str] = (),
        target_units: Sequence[str] = (),
        source: str = "",
        info: dict[str, Any] | None = None,
        batch_records: int = 1024,
        batch_bytes: int = 32 * 2**20,
    ) -> None:
        if len(target_units) != len(target_names):
            raise DataError(f"{dest}: {len(target_names)} target names but {len(target_units)} units")
        self.dest = Path(dest)
        self.target_names, self.target_units = list(target_names), list(target_units)
        self.source = source
        self.info: dict[str, Any] = dict(info or {})
        self.batch_records, self.batch_bytes = batch_records, batch_bytes
        self.count = self.num_atoms = 0
        self._fields: set[str] = set(store_format.REQUIRED)
        self._first: dict[str, Any] | None = None
        self._pending: list[tuple[bytes, bytes, bytes]] = []
        self._pending_bytes = 0
        self._y: list[np.ndarray] = []
        self._sizes: list[int] = []
        self._tmp: Path | None = None
        self._env = None
        self._map = INITIAL_MAP

    def __enter__(self) -> StoreWriter:
        if os.path.lexists(self.dest):
            raise DataError(f"{self.dest}: exists; a store is never written over a file (remove it first)")
        try:
            self.dest.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{self.dest.name}.", suffix=".tmp", dir=self.dest.parent)
            os.close(fd)
            self._tmp = Path(name)
            self._open()
        except BaseException as error:
            self._abort()
            if isinstance(error, OSError):
                raise MpnnError(f"{self.dest}: cannot write: {error.strerror or error}") from None
            raise
        return self

    def _open(self) -> None:
        self._env = open_environment(self._tmp, map_size=self._map, sync=False, metasync=False)
        self._mapped = 0

    def __exit__(self, kind: type | None, error: BaseException | None, trace: Any) -> None:
        if kind is not None:
            self._abort()
            return
        try:
            self._finish()
        except BaseException as failure:
            self._abort()
            if isinstance(failure, OSError):
                raise MpnnError(f"{self.dest}: cannot write: {failure.strerror or failure}") from None
            raise

    # -- adding -----------------------------------------------------------------------------------
    def add(self, molecule: Molecule) -> None:
        """Append one structure (index :attr:`count`)."""
        where = f"structure {self.count}" + (f" ({molecule.name})" if molecule.name else "")
        shape = {
            "y": None if molecule.y is None else tuple(molecule.y.shape),
            "forces": molecule.forces is not None,
            "x": (tuple(molecule.x.shape[1:]), str(molecule.x.dtype)),
        }
        if self._first is None:
            self._first = shape
            k = shape["y"][0] if shape["y"] else 0
            if shape["y"] is not None and k != len(self.target_names):
                raise DataError(f"{where}: {k} targets, but {len(self.target_names)} target names")
        for name, value in shape.items():
            if value != self._first[name]:
                raise DataError(
                    f"{where}: {name} {value} differs from the first structure's {self._first[name]}"
                )
        try:
            record = store_format.encode(molecule)
        except store_format.RecordError as error:
            raise DataError(f"{where}: {error}") from None
        self._fields.update(f for f in ("y", "cell", "pbc", "forces") if getattr(molecule, f) is not None)
        self._pending.append((b"structures", key(self.count), record))
        self._pending_bytes += len(record)
        if molecule.y is not None:
            self._y.append(np.asarray(molecule.y, dtype=np.float64))
        self._sizes.append(molecule.num_atoms)
        self.count += 1
        self.num_atoms += molecule.num_atoms
        if len(self._sizes) == TARGET_CHUNK:
            self._chunk()
        if len(self._pending) >= self.batch_records or self._pending_bytes >= self.batch_bytes:
            self._flush()

    def _chunk(self) -> None:
        """Queue the ``targets`` and ``sizes`` values of the structures since the last chunk."""
        c = (self.count - 1) // TARGET_CHUNK
        if self._y:
            self._pending.append((b"targets", key(c), np.stack(self._y).astype("<f8").tobytes()))
        self._pending.append((b"sizes", key(c), np.asarray(self._sizes, dtype="<i8").tobytes()))
        self._y, self._sizes = [], []

    def _flush(self) -> None:
        """Write the queued values in one transaction (growing the map when it is full)."""
        import lmdb

        if not self._pending:
            return
        while True:
            try:
                with self._env.begin(write=True) as txn:
                    dbs = {
                        name: self._env.open_db(name, txn=txn)
                        for name in (b"structures", b"targets", b"sizes")
                    }
                    for db, k, value in self._pending:
                        txn.put(k, value, db=dbs[db], append=True)
                break
            except lmdb.MapFullError:  # the transaction was aborted: retry it in a larger map
                self._map *= 2
                self._env.set_mapsize(self._map)
        self._mapped += self._pending_bytes
        self._pending, self._pending_bytes = [], 0
        if self._mapped > WINDOW:  # unmap the pages LMDB read (and the kernel mapped around them)
            self._env.close()
            self._open()

    # -- finishing --------------------------------------------------------------------------------
    def _finish(self) -> None:
        if self.count == 0:
            raise DataError(f"{self.dest}: no structures to write")
        if self._sizes:
            self._chunk()
        self._flush()
        meta = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "num_structures": self.count,
            "num_atoms": self.num_atoms,
            "fields": [f for f in store_format.FIELDS if f in self._fields],
            "node_features": int(self._first["x"][0][0]) if self._first["x"][0] else 0,
            "target_names": self.target_names if self._first["y"] is not None else [],
            "target_units": self.target_units if self._first["y"] is not None else [],
            "target_chunk": TARGET_CHUNK,
            "source": self.source,
            "info": self.info,
        }
        check_meta(meta, str(self.dest))
        text = json.dumps(meta).encode("utf-8")
        with self._env.begin(write=True) as txn:
            txn.put(b"meta", text, db=self._env.open_db(b"meta", txn=txn))
        self._env.sync(True)
        self._env.close()
        self._env = None
        os.chmod(self._tmp, 0o666 & ~_umask())
        _publish(self._tmp, self.dest)
        self._tmp = None

    def _abort(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


def _publish(tmp: Path, dest: Path) -> None:
    """Give ``tmp`` the name ``dest`` without ever replacing an existing ``dest``."""
    try:
        os.link(tmp, dest)
    except FileExistsError:
        raise DataError(f"{dest}: appeared while the store was written; the new store was not kept") from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.lexists(dest):  # a file system without hard links: check, then rename
            raise DataError(
                f"{dest}: appeared while the store was written; the new store was not kept"
            ) from None
        os.replace(tmp, dest)
        return
    tmp.unlink()
