"""Make the bundled QM9 subset shipped in ``src/mpnn/data/bundled/``.

Selection rule: from the characterised molecules of the release (all indices 1..133,885 that are
not in ``uncharacterized.txt``), draw ``--count`` indices without replacement with
``numpy.random.default_rng(--seed).choice``; copy their xyz files byte for byte into a
deterministic tar.xz (names sorted, mtime 0, uid/gid 0, mode 0644, ustar, xz preset 9e).
The atom references are copied unchanged.

Usage::

    python scripts/make_bundled_subset.py ../shared/data/qm9_dsgdb9nsd.xyz.tar.xz \\
        --uncharacterized ../shared/data/qm9_uncharacterized.txt \\
        --atomref ../shared/data/qm9_atomref.txt
"""

from __future__ import annotations

import argparse
import hashlib
import io
import lzma
import os
import re
import shutil
import tarfile
from pathlib import Path

import numpy as np

from mpnn.data.qm9 import iter_release_files, read_atomref, read_uncharacterized

OUT_DIR = Path(__file__).resolve().parents[1] / "src" / "mpnn" / "data" / "bundled"
RELEASE_NAME = "qm9_subset.xyz.tar.xz"
ATOMREF_NAME = "qm9_atomref.txt"
NUM_MOLECULES = 133_885
_INDEX = re.compile(r"dsgdb9nsd_(\d+)\.xyz$")


def select(count: int, seed: int, uncharacterized: set[int]) -> set[int]:
    """``count`` characterised QM9 indices drawn without replacement with a seeded generator."""
    candidates = np.array([i for i in range(1, NUM_MOLECULES + 1) if i not in uncharacterized])
    chosen = np.random.default_rng(seed).choice(candidates, size=count, replace=False)
    return {int(i) for i in chosen}


def collect(release: Path, chosen: set[int]) -> dict[str, bytes]:
    """The bytes of the chosen files, by base name."""
    files = {}
    for source, data in iter_release_files(release):
        name = source.rsplit("/", 1)[-1]
        match = _INDEX.search(name)
        if match and int(match.group(1)) in chosen:
            files[name] = data
    if len(files) != len(chosen):
        raise SystemExit(f"found {len(files)} of the {len(chosen)} chosen files in {release}")
    return files


def write_tar(files: dict[str, bytes], out: Path) -> None:
    """Write a deterministic tar.xz of ``files`` atomically."""
    tmp = out.with_name(out.name + ".tmp")
    preset = 9 | lzma.PRESET_EXTREME
    with tarfile.open(tmp, "w:xz", format=tarfile.USTAR_FORMAT, preset=preset) as archive:
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(files[name]), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(files[name]))
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("release", type=Path, help="the full QM9 release archive")
    parser.add_argument("--uncharacterized", type=Path, required=True)
    parser.add_argument("--atomref", type=Path, required=True)
    parser.add_argument("--count", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)

    read_atomref(args.atomref)  # refuse to copy a file that does not parse
    chosen = select(args.count, args.seed, read_uncharacterized(args.uncharacterized))
    files = collect(args.release, chosen)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    out = args.out_dir / RELEASE_NAME
    write_tar(files, out)
    shutil.copyfile(args.atomref, args.out_dir / ATOMREF_NAME)
    for path in (out, args.out_dir / ATOMREF_NAME):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        print(f"{path.name}: {path.stat().st_size} bytes, sha256[:16] {digest}")
    atoms = sum(int(data.split(maxsplit=1)[0]) for data in files.values())
    print(f"{len(files)} molecules, {atoms} atoms")


if __name__ == "__main__":
    main()
