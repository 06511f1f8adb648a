"""The QM9 data set (Ramakrishnan et al., Sci. Data 1, 140022 (2014); data CC0).

Reads the original release: an archive (or folder) of ``dsgdb9nsd_NNNNNN.xyz`` files, the free-atom
reference energies ``atomref.txt`` and the list of uncharacterised molecules
``uncharacterized.txt``; converts each molecule's values into the 13 targets of Gilmer et al. 2017,
Table 2, in the paper's units; and draws the random train/valid/test split.
"""

from __future__ import annotations

import lzma
import tarfile
import zlib
from collections import Counter
from collections.abc import Iterator
from importlib import resources
from os import PathLike
from pathlib import Path

import numpy as np

from mpnn.data.qm9_xyz import ATOMIC_NUMBERS, PROPERTY_NAMES, QM9Record, decode, parse_xyz
from mpnn.errors import DataError

__all__ = [
    "ATOMIC_NUMBERS",
    "ATOMREF_FIELDS",
    "CHEMICAL_ACCURACY",
    "HARTREE_TO_EV",
    "PROPERTY_NAMES",
    "TARGETS",
    "UNITS",
    "QM9Record",
    "bundled_atomref_path",
    "bundled_release_path",
    "iter_release",
    "iter_release_files",
    "parse_xyz",
    "read_atomref",
    "read_uncharacterized",
    "split_indices",
    "targets",
]

#: Largest xyz file of a release (bytes), checked from a tar header or the file size before
#: reading: a QM9 xyz file (at most 29 atoms) has under 2 KB, so 1 MiB is generous.
MAX_MEMBER_BYTES = 2**20
#: The 13 targets, in the order of Gilmer et al. 2017, Table 2.
TARGETS = ("mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "U0", "U", "H", "G", "Cv", "omega1")
#: Units of :data:`TARGETS` as returned by :func:`targets`.
UNITS = ("D", "Bohr^3", "eV", "eV", "eV", "Bohr^2", "eV", "eV", "eV", "eV", "eV", "cal/(mol K)", "cm^-1")
#: Chemical accuracy of each target (Gilmer et al. 2017, Table 2), in :data:`UNITS`.
CHEMICAL_ACCURACY = (0.1, 0.1, 0.043, 0.043, 0.043, 1.2, 0.0012, 0.043, 0.043, 0.043, 0.043, 0.050, 10.0)
#: eV per Hartree (CODATA 2018).
HARTREE_TO_EV = 27.211386246
#: The columns of ``atomref.txt`` after the element, as keys of :func:`read_atomref`.
ATOMREF_FIELDS = ("zpve", "U0", "U", "H", "G", "Cv")

_ENERGY_TARGETS = ("U0", "U", "H", "G")  # atomisation energies
_TO_EV = ("homo", "lumo", "gap", "zpve")  # Hartree values converted as they are


def targets(record: QM9Record, atomref: dict[str, dict[str, float]]) -> np.ndarray:
    """The 13 :data:`TARGETS` of one molecule as a (13,) float64 array in :data:`UNITS`.

    mu, alpha, r2 and Cv are the file's values; homo, lumo, gap and zpve are converted from
    Hartree to eV; U0, U, H, G are atomisation energies in eV (molecular value minus the sum of
    the free-atom values of the same quantity in ``atomref``); omega1 is the highest harmonic
    frequency (cm^-1).
    """
    if record.frequencies.size == 0:
        raise DataError(f"{record.name}: no harmonic frequencies, omega1 is undefined")
    p = record.properties
    counts = Counter(record.symbols)
    values = {name: p[name] for name in ("mu", "alpha", "r2", "Cv")}
    values.update({name: p[name] * HARTREE_TO_EV for name in _TO_EV})
    for name in _ENERGY_TARGETS:
        reference = sum(k * atomref[element][name] for element, k in counts.items())
        values[name] = (p[name] - reference) * HARTREE_TO_EV
    values["omega1"] = float(record.frequencies.max())
    return np.array([values[name] for name in TARGETS], dtype=np.float64)


def read_atomref(path: str | PathLike[str]) -> dict[str, dict[str, float]]:
    """Free-atom references from QM9's ``atomref.txt``.

    Returns ``{element: {field: value}}`` for H, C, N, O, F with the fields
    :data:`ATOMREF_FIELDS`: zpve, U0 (0 K), U, H, G (298.15 K) in Hartree, Cv in cal/(mol K).
    """
    path = Path(path)
    table: dict[str, dict[str, float]] = {}
    for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
        tokens = line.split()
        if not tokens or tokens[0] not in ATOMIC_NUMBERS:
            continue  # title, header and '=' rule lines
        if len(tokens) != 1 + len(ATOMREF_FIELDS):
            raise DataError(f"{path}:{lineno}: expected element and 6 values, got {len(tokens)}")
        try:
            values = [float(t) for t in tokens[1:]]
        except ValueError:
            raise DataError(f"{path}:{lineno}: a value of {tokens[0]} is not a number") from None
        table[tokens[0]] = dict(zip(ATOMREF_FIELDS, values, strict=True))
    missing = [e for e in ATOMIC_NUMBERS if e not in table]
    if missing:
        raise DataError(f"{path}: no reference values for {', '.join(missing)}")
    return table


def read_uncharacterized(path: str | PathLike[str]) -> set[int]:
    """Indices (1-based, as in the file names) listed in QM9's ``uncharacterized.txt``.

    Data rows start with the index; header, title and rule lines are skipped.
    """
    path = Path(path)
    indices = {
        int(tokens[0])
        for tokens in map(str.split, _read_text(path).splitlines())
        if len(tokens) > 1 and tokens[0].isdigit()
    }
    if not indices:
        raise DataError(f"{path}: no molecule indices found")
    return indices


def split_indices(
    num: int, n_valid: int | float = 10000, n_test: int | float = 10000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random train/valid/test split of ``range(num)`` (Gilmer et al.: 10,000 valid and test).

    ``n_valid`` and ``n_test`` are counts, or fractions of ``num`` when given as a float < 1.
    A seeded permutation draws valid first, then test; the rest is train. Returns three sorted
    int64 arrays that are disjoint and together cover ``range(num)``.
    """
    sizes = [round(n * num) if isinstance(n, float) and n < 1 else int(n) for n in (n_valid, n_test)]
    if min(sizes) < 0 or sum(sizes) > num:
        raise ValueError(f"split_indices: cannot take {sizes[0]} + {sizes[1]} of {num} items")
    order = np.random.default_rng(seed).permutation(num)
    valid, test = order[: sizes[0]], order[sizes[0] : sum(sizes)]
    return np.sort(order[sum(sizes) :]), np.sort(valid), np.sort(test)


def iter_release_files(path: str | PathLike[str]) -> Iterator[tuple[str, bytes]]:
    """Yield ``(source, bytes)`` of each ``*.xyz`` file of a release, without extracting it.

    ``path`` is a tar archive (``.tar``, ``.tar.gz``, ``.tar.bz2``, ``.tar.xz``; read as a stream)
    or a folder of ``*.xyz`` files (sorted by name). ``source`` is ``archive/member`` or the path.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.xyz"))
        if not files:
            raise DataError(f"{path}: no *.xyz files in this folder")
        for file in files:
            check_member_size(str(file), file.stat().st_size)
            yield str(file), file.read_bytes()
    elif path.is_file():
        yield from _iter_tar(path)
    else:
        raise DataError(f"{path}: no such file or folder")


def check_member_size(source: str, size: int) -> None:
    """Refuse a release file (``source``: file or ``archive/member``) of more than
    :data:`MAX_MEMBER_BYTES`, from its declared size, before it is read."""
    if size > MAX_MEMBER_BYTES:
        raise DataError(
            f"{source}: {size} bytes; a QM9 xyz file has under 2 KB (bound {MAX_MEMBER_BYTES} bytes, "
            "mpnn.data.qm9.MAX_MEMBER_BYTES); not a QM9 release"
        )


def _iter_tar(path: Path) -> Iterator[tuple[str, bytes]]:
    count = 0
    try:
        with tarfile.open(path, mode="r|*") as archive:
            for member in archive:
                if member.isfile() and member.name.endswith(".xyz"):
                    count += 1
                    name = member.name.removeprefix("./")
                    check_member_size(f"{path}/{name}", member.size)  # from the header, before reading
                    yield f"{path}/{name}", archive.extractfile(member).read()
                archive.members = []  # a stream keeps every header read (2 KB each) unless told not to
    except (tarfile.TarError, EOFError, OSError, lzma.LZMAError, zlib.error) as e:
        raise DataError(f"{path}: not a readable tar archive ({e})") from None
    if count == 0:
        raise DataError(f"{path}: no .xyz files in this archive")


def iter_release(path: str | PathLike[str]) -> Iterator[QM9Record]:
    """Yield the parsed molecules of a release archive or folder, in file order."""
    for source, data in iter_release_files(path):
        yield parse_xyz(decode(data, source), source)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None


def _bundled(name: str) -> Path:
    path = Path(str(resources.files("mpnn.data") / "bundled" / name))
    if not path.is_file():
        raise DataError(f"{path}: bundled file missing (was the package installed with its data?)")
    return path


def bundled_release_path() -> Path:
    """The bundled QM9 subset (4,000 characterised molecules, see ``bundled/README.md``)."""
    return _bundled("qm9_subset.xyz.tar.xz")


def bundled_atomref_path() -> Path:
    """The bundled copy of QM9's ``atomref.txt``."""
    return _bundled("qm9_atomref.txt")
