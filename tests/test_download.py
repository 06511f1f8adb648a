"""Download of the QM9 release, on local files through file:// URLs (no network)."""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import pytest

from mpnn.data import download, qm9
from mpnn.data.download import QM9Files, download_file, download_qm9
from mpnn.errors import DataError, MpnnError

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, Path]:
    """A tiny release: two fixture molecules in a tar.bz2, the atomref and uncharacterized tables."""
    src = tmp_path / "server"
    src.mkdir()
    archive = src / "3195389"  # named like the figshare file: no suffix
    with tarfile.open(archive, "w:bz2") as tar:
        for index in (1, 2):
            name = f"dsgdb9nsd_{index:06d}.xyz"
            tar.add(FIXTURES / "qm9" / name, arcname=name)
    atomref = src / "3195395"
    atomref.write_bytes(qm9.bundled_atomref_path().read_bytes())
    unc = src / "3195404"
    unc.write_bytes((FIXTURES / "qm9_uncharacterized_excerpt.txt").read_bytes())
    return {"release": archive, "atomref": atomref, "uncharacterized": unc}


def fetch(sources: dict[str, Path], dest: Path, **kwargs) -> QM9Files:
    return download_qm9(
        dest,
        sources["release"].as_uri(),
        atomref_url=sources["atomref"].as_uri(),
        uncharacterized_url=sources["uncharacterized"].as_uri(),
        progress=False,
        **kwargs,
    )


def test_download_qm9_file_urls(sources: dict[str, Path], tmp_path: Path) -> None:
    dest = tmp_path / "qm9"
    files = fetch(sources, dest)
    assert files.release == dest / "dsgdb9nsd.xyz.tar.bz2"
    assert files.atomref == dest / "atomref.txt"
    assert files.uncharacterized == dest / "uncharacterized.txt"
    for key in ("release", "atomref", "uncharacterized"):
        assert getattr(files, key).read_bytes() == sources[key].read_bytes()
    names = sorted(p.name for p in dest.iterdir())  # and no temporary file left
    assert names == ["atomref.txt", "dsgdb9nsd.xyz.tar.bz2", "uncharacterized.txt"]
    assert [r.index for r in qm9.iter_release(files.release)] == [1, 2]
    assert qm9.read_uncharacterized(files.uncharacterized) == {58, 61, 80, 185}


def test_existing_files_are_kept_unless_overwrite(sources, tmp_path: Path) -> None:
    dest = tmp_path / "qm9"
    fetch(sources, dest)
    (dest / "atomref.txt").write_text("kept\n")
    fetch(sources, dest)
    assert (dest / "atomref.txt").read_text() == "kept\n"
    fetch(sources, dest, overwrite=True)
    assert (dest / "atomref.txt").read_bytes() == sources["atomref"].read_bytes()


def test_tables_can_be_skipped(sources, tmp_path: Path) -> None:
    files = download_qm9(
        tmp_path / "d",
        sources["release"].as_uri(),
        atomref_url=None,
        uncharacterized_url=None,
        progress=False,
    )
    assert files.atomref is None and files.uncharacterized is None
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["dsgdb9nsd.xyz.tar.bz2"]


def test_tar_name_from_url(tmp_path: Path) -> None:
    archive = tmp_path / "mine.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(FIXTURES / "qm9" / "dsgdb9nsd_000001.xyz", arcname="dsgdb9nsd_000001.xyz")
    files = download_qm9(
        tmp_path / "d",
        archive.as_uri(),
        atomref_url=None,
        uncharacterized_url=None,
        progress=False,
    )
    assert files.release.name == "mine.tar.xz"


@pytest.mark.parametrize("damage", ["not a tar", "truncated", "no xyz"])
def test_bad_archive_leaves_nothing(sources, tmp_path: Path, damage: str) -> None:
    bad = tmp_path / "bad.tar.bz2"
    data = sources["release"].read_bytes()
    if damage == "not a tar":
        bad.write_text("<html>rate limited</html>\n")
    elif damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    else:
        with tarfile.open(bad, "w:bz2") as tar:
            tar.add(sources["atomref"], arcname="atomref.txt")
    dest = tmp_path / "dest"
    with pytest.raises(DataError, match="downloaded file is not usable") as info:
        download_qm9(dest, bad.as_uri(), atomref_url=None, uncharacterized_url=None, progress=False)
    assert bad.as_uri() in str(info.value)
    assert list(dest.iterdir()) == []  # neither the file nor its temporary


def test_bad_table_is_refused(sources, tmp_path: Path) -> None:
    sources["atomref"].write_text("<html>not found</html>\n")
    with pytest.raises(DataError, match="no reference values"):
        fetch(sources, tmp_path / "qm9")
    assert not (tmp_path / "qm9" / "atomref.txt").exists()


def test_unreachable_url(tmp_path: Path) -> None:
    missing = (tmp_path / "absent.tar.bz2").as_uri()
    with pytest.raises(MpnnError, match="download of .*absent.tar.bz2 failed"):
        download_file(missing, tmp_path / "out" / "x.tar.bz2", progress=False)
    assert list((tmp_path / "out").iterdir()) == []


def test_sha256_check(sources, tmp_path: Path) -> None:
    url = sources["atomref"].as_uri()
    with pytest.raises(DataError, match="sha256"):
        download_file(url, tmp_path / "a.txt", sha256="0" * 64, progress=False)
    assert not (tmp_path / "a.txt").exists()
    digest = hashlib.sha256(sources["atomref"].read_bytes()).hexdigest()
    assert download_file(url, tmp_path / "a.txt", sha256=digest, progress=False).is_file()


def test_figshare_addresses() -> None:
    assert download.QM9_URL == "https://ndownloader.figshare.com/files/3195389"
    assert download.ATOMREF_URL.endswith("/3195395")
    assert download.UNCHARACTERIZED_URL.endswith("/3195404")
