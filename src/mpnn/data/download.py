"""Download of the QM9 release (Ramakrishnan et al. 2014) from figshare, collection 978904.

Each file is streamed to a temporary file beside its destination, checked (the release must be a
readable tar of xyz files, the two tables must parse), and only then renamed into place, so an
interrupted or failed download never leaves a file that looks complete. ``file://`` URLs work too.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

from tqdm.auto import tqdm

from mpnn.data.qm9 import iter_release_files, read_atomref, read_uncharacterized
from mpnn.errors import DataError, MpnnError
from mpnn.files import stage

#: ``dsgdb9nsd.xyz.tar.bz2``: the 133,885 xyz files.
QM9_URL = "https://ndownloader.figshare.com/files/3195389"
#: ``atomref.txt``: free-atom reference energies.
ATOMREF_URL = "https://ndownloader.figshare.com/files/3195395"
#: ``uncharacterized.txt``: the 3,054 molecules whose geometry changed their connectivity.
UNCHARACTERIZED_URL = "https://ndownloader.figshare.com/files/3195404"

__all__ = [
    "ATOMREF_URL",
    "QM9_URL",
    "UNCHARACTERIZED_URL",
    "QM9Files",
    "check_release",
    "download_file",
    "download_qm9",
]
_CHUNK = 1 << 20


@dataclass(frozen=True)
class QM9Files:
    """Paths of the downloaded release files (None where not requested)."""

    release: Path
    atomref: Path | None
    uncharacterized: Path | None


def download_qm9(
    dest_dir: str | PathLike[str],
    url: str = QM9_URL,
    *,
    atomref_url: str | None = ATOMREF_URL,
    uncharacterized_url: str | None = UNCHARACTERIZED_URL,
    overwrite: bool = False,
    progress: bool = True,
    timeout: float = 60.0,
) -> QM9Files:
    """Download the QM9 release archive and its two tables into ``dest_dir``.

    Files already present are kept unless ``overwrite``. The archive is saved as
    ``dsgdb9nsd.xyz.tar.bz2`` when ``url`` does not name a tar file, else under the URL's name.

    Raises:
        DataError: a downloaded file is not what it should be (nothing is left behind).
        MpnnError: the URL cannot be read.
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    name = Path(urlparse(url).path).name
    release_name = name if ".tar" in name else "dsgdb9nsd.xyz.tar.bz2"

    def get(link: str | None, file_name: str, check: Callable[[Path], object]) -> Path | None:
        if link is None:
            return None
        target = dest / file_name
        if overwrite or not target.is_file():
            download_file(link, target, check=check, progress=progress, timeout=timeout)
        return target

    return QM9Files(
        release=get(url, release_name, check_release),
        atomref=get(atomref_url, "atomref.txt", read_atomref),
        uncharacterized=get(uncharacterized_url, "uncharacterized.txt", read_uncharacterized),
    )


def download_file(
    url: str,
    dest: str | PathLike[str],
    *,
    check: Callable[[Path], object] | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Stream ``url`` to ``dest`` atomically: temporary file, ``check(tmp)``, then rename.

    ``check`` raises :class:`DataError` for a bad file; ``sha256`` (hex) is compared if given.
    """
    dest = Path(dest)
    digests: list[str] = []

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as out:
            digests.append(_copy_url(url, out, progress=progress, timeout=timeout, label=dest.name))

    tmp = stage(dest, write)
    try:
        if sha256 is not None and digests[0] != sha256.lower():
            raise DataError(f"{url}: sha256 {digests[0]} differs from the expected {sha256}")
        if check is not None:
            _check_as(check, tmp, url)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def check_release(path: Path) -> int:
    """Read the whole archive as a tar stream; the number of xyz files (DataError if unreadable)."""
    return sum(1 for _ in iter_release_files(path))


def _check_as(check: Callable[[Path], object], tmp: Path, url: str) -> None:
    """Run ``check`` on the temporary file; errors name the URL, not the temporary file."""
    try:
        check(tmp)
    except DataError as e:
        raise DataError(f"{url}: downloaded file is not usable: {e}") from None


def _copy_url(url: str, out: BinaryIO, *, progress: bool, timeout: float, label: str) -> str:
    """Copy the body of ``url`` into the binary file ``out``; its sha256 hex digest."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = response.headers.get("Content-Length")
            with tqdm(
                total=int(total) if total else None,
                unit="B",
                unit_scale=True,
                desc=label,
                disable=not progress,
            ) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise MpnnError(f"download of {url} failed: {getattr(e, 'reason', e)}") from None
    return digest.hexdigest()
