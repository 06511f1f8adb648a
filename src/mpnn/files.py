"""The one way ``mpnn`` writes files: through a temporary beside the target, renamed over it.

``stage(path, write)`` writes a temporary ``.<name>.<8 characters>.tmp`` in the target's folder
(same file system, so the rename is atomic) with the usual permissions; :func:`atomic_write`
stages and renames one file, :func:`write_texts` several (all staged before any is renamed).
A failure removes the temporaries and leaves every target as it was; an I/O error is a one-line
:class:`~mpnn.errors.MpnnError` naming the target, never the temporary. The temporaries of a
killed process are removed by :func:`remove_stale_temporaries` when a run starts in that folder.
Reading starts with :func:`check_regular_file`: a folder, a FIFO (which would block a reader
forever), a socket or a device is refused before anything opens it.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mpnn.errors import DataError, MpnnError

#: The temporaries of :func:`stage`: ``.<name>.<8 characters of mkstemp>.tmp``.
TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")


def stage(path: str | Path, write: Callable[[Path], None]) -> Path:
    """``write(tmp)`` into a new temporary beside ``path`` (folders created); returns ``tmp``,
    not yet renamed. On failure the temporary is removed and an I/O error names ``path``."""
    path = Path(path)
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
    except BaseException as error:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        _raise_naming(error, path, tmp)
    return Path(tmp)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` through :func:`stage`, then rename the temporary over it."""
    path = Path(path)
    tmp = stage(path, write)
    try:
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        _raise_naming(error, path, str(tmp))


def write_texts(folder: str | Path, texts: dict[str, str]) -> None:
    """Write file name -> text into ``folder`` (created if needed): all staged, then all renamed;
    a failure replaces none of them and leaves no new empty folder."""
    folder = Path(folder)
    created = not folder.exists()
    staged: dict[Path, Path] = {}
    try:
        for name, text in texts.items():
            staged[folder / name] = stage(folder / name, _text_writer(text))
        for target, tmp in staged.items():
            os.replace(tmp, target)
    except BaseException:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        raise


def write_text(text: str, path: str | Path) -> None:
    """Write a UTF-8 text file atomically."""
    atomic_write(path, _text_writer(text))


def save_json(obj: Any, path: str | Path) -> None:
    """Write JSON atomically (indented, keys in insertion order)."""
    write_text(json.dumps(obj, indent=2) + "\n", path)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporaries that :func:`stage` left in ``folder`` when a process was killed:
    files named like ours (:data:`TEMPORARY`) and last modified before this process started (a
    live writer's temporary is younger). Returns the removed paths."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    started = _process_start()
    removed = []
    for path in folder.iterdir():
        if not TEMPORARY.match(path.name):
            continue
        try:
            if path.is_file() and not path.is_symlink() and path.stat().st_mtime < started:
                path.unlink()
                removed.append(path)
        except OSError:  # gone meanwhile, or not ours to remove
            continue
    return removed


def check_regular_file(path: str | Path, what: str = "a file") -> os.stat_result:
    """``os.stat(path)`` of a regular file; a folder, a FIFO (which would block the reader
    forever), a socket or a device is refused before anything opens it, with a one-line
    :class:`DataError` naming ``path`` (``what``: the kind of file expected, for the message)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError) as error:  # ValueError: a NUL byte in the name
        raise DataError(f"{path}: cannot read: {getattr(error, 'strerror', None) or error}") from None
    if stat.S_ISDIR(info.st_mode):
        raise DataError(f"{path}: is a folder, expected {what}")
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"{path}: not a regular file (a pipe, socket or device); expected {what}")
    return info


def read_text(path: str | Path, what: str = "a text file", max_bytes: int | None = None) -> str:
    """The UTF-8 text of the regular file ``path`` (:func:`check_regular_file`), of at most
    ``max_bytes`` if given; every failure is a one-line :class:`DataError` naming ``path``."""
    info = check_regular_file(path, what)
    if max_bytes is not None and info.st_size > max_bytes:
        raise DataError(f"{path}: {info.st_size:,} bytes, too large for {what}")
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read: {error.strerror or error}") from None


def _text_writer(text: str) -> Callable[[Path], None]:
    return lambda tmp: tmp.write_text(text, encoding="utf-8")


def _raise_naming(error: BaseException, path: Path, tmp: str | None) -> None:
    """Re-raise ``error``; an I/O failure as a one-line MpnnError naming ``path``."""
    if isinstance(error, OSError) or _is_write_failure(error, tmp):
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        reason = reason.replace(tmp, str(path)) if tmp else reason
        raise MpnnError(f"{path}: cannot write: {' '.join(reason.split())}") from None
    raise error


def _is_write_failure(error: BaseException, tmp: str | None) -> bool:
    """A RuntimeError of torch.save's writer, or one that names the temporary."""
    if not isinstance(error, RuntimeError):
        return False
    text = str(error)
    return bool(tmp and tmp in text) or "PytorchStreamWriter" in text or "inline_container" in text


def _process_start() -> float:
    """When this process started (seconds since the epoch)."""
    try:
        import psutil

        return float(psutil.Process().create_time())
    except Exception:  # no psutil: the time this module was imported
        return _IMPORTED


_IMPORTED = time.time()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
