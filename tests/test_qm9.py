"""QM9 release reader: parser, error messages, tables, targets, splits, bundled subset.

Expected numbers are typed in from the fixture files' text (tests/fixtures/qm9/, byte-for-byte
copies of release files) and from shared/data/SOURCES.md; the arithmetic is in the comments.
"""

from __future__ import annotations

import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from mpnn.data import qm9
from mpnn.errors import DataError

FIXTURES = Path(__file__).resolve().parent / "fixtures"
XYZ = FIXTURES / "qm9"
HA = 27.211386246  # eV per Hartree


def read(index: int) -> str:
    return (XYZ / f"dsgdb9nsd_{index:06d}.xyz").read_text()


def parse(index: int) -> qm9.QM9Record:
    return qm9.parse_xyz(read(index), f"dsgdb9nsd_{index:06d}.xyz")


@pytest.fixture(scope="module")
def atomref() -> dict:
    return qm9.read_atomref(qm9.bundled_atomref_path())


# ------------------------------------------------------------------------------------ parser


def test_parse_methane_fields() -> None:
    r = parse(1)
    assert r.index == 1 and r.name == "dsgdb9nsd_000001"
    assert r.symbols == ["C", "H", "H", "H", "H"]
    assert r.atomic_numbers.tolist() == [6, 1, 1, 1, 1]
    assert r.positions.shape == (5, 3) and r.positions.dtype == np.float64
    assert r.positions[0].tolist() == [-0.0126981359, 1.0858041578, 0.0080009958]
    assert r.positions[4].tolist() == [-0.5238136345, 1.4379326443, 0.9063972942]
    assert r.charges.tolist() == [-0.535689, 0.133921, 0.133922, 0.133923, 0.133923]
    assert list(r.properties) == list(qm9.PROPERTY_NAMES)
    assert r.properties["A"] == 157.7118 and r.properties["alpha"] == 13.21
    assert r.properties["U0"] == -40.47893 and r.properties["Cv"] == 6.469
    assert r.frequencies.shape == (9,)  # 3n - 6 = 9 for 5 atoms
    assert r.frequencies[-1] == 3151.7078
    assert (r.smiles_gdb, r.smiles_b3lyp) == ("C", "C")
    assert r.inchi_b3lyp == "InChI=1S/CH4/h1H4"


def test_parse_mathematica_exponents() -> None:
    r = parse(212)  # N-methylpyrrole; its first atom's x is written "2.1997*^-6"
    assert r.positions[0, 0] == 2.1997e-6
    assert r.positions[0, 1] == 1.4462618059
    assert len(r.symbols) == 13 and r.smiles_b3lyp == "Cn1cccc1"


def test_parse_linear_molecule_and_trailing_tabs() -> None:
    r = parse(23)  # butadiyne C4H2 is linear: 3n - 5 = 13 frequencies
    assert r.frequencies.shape == (13,)
    assert r.properties["A"] == 0.0 and r.properties["B"] == 4.4259726
    assert r.smiles_gdb == "C#CC#C" and r.smiles_b3lyp == "C(#C)C#C"


def _edit(text: str, line: int, old: str, new: str) -> str:
    lines = text.split("\n")
    assert old in lines[line - 1], (line, old)
    lines[line - 1] = lines[line - 1].replace(old, new, 1)
    return "\n".join(lines)


def _drop_line(text: str, line: int) -> str:
    lines = text.split("\n")
    return "\n".join(lines[: line - 1] + lines[line:])


# (transformation of the methane file, 1-based line the error must name, words it must contain)
MALFORMED = {
    "empty file": (lambda t: "", 1, "missing atom count"),
    "atom count not an integer": (lambda t: _edit(t, 1, "5", "five"), 1, "not an integer"),
    "empty molecule": (lambda t: _edit(t, 1, "5", "0"), 1, "empty molecule"),
    "atom count too small": (lambda t: _edit(t, 1, "5", "4"), 7, "line 1 says 4 atoms"),
    "atom count too large": (lambda t: _edit(t, 1, "5", "6"), 8, "expected an atom line"),
    "missing InChI line": (lambda t: _drop_line(t, 10), 10, "missing line"),
    "no gdb tag": (lambda t: _edit(t, 2, "gdb 1", "xyz 1"), 2, "gdb <id>"),
    "14 properties": (lambda t: _edit(t, 2, "\t6.469", ""), 2, "expected 15 properties"),
    "non-numeric property": (lambda t: _edit(t, 2, "13.21", "13.2l"), 2, "alpha '13.2l'"),
    "non-numeric coordinate": (lambda t: _edit(t, 3, "1.0858041578", "1.08x"), 3, "y '1.08x'"),
    "NaN coordinate": (lambda t: _edit(t, 4, "0.0019761204", "nan"), 4, "not a finite"),
    "missing charge": (lambda t: _edit(t, 5, "\t 0.133922", ""), 5, "got 4 fields"),
    "unknown element": (lambda t: _edit(t, 6, "H", "Cl"), 6, "unknown element 'Cl'"),
    "non-numeric frequency": (lambda t: _edit(t, 8, "1341.3284", "1341.3z"), 8, "frequency 2"),
    "three SMILES": (lambda t: _edit(t, 9, "C\tC", "C\tC\tC"), 9, "expected 2 SMILES"),
    # the file ends in a newline, so the appended text is line 11
    "text after InChI": (lambda t: t + "extra\n", 11, "unexpected text"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_input_names_file_and_line(case: str) -> None:
    transform, line, words = MALFORMED[case]
    with pytest.raises(DataError) as info:
        qm9.parse_xyz(transform(read(1)), "bad.xyz")
    message = str(info.value)
    assert message.startswith(f"bad.xyz:{line}: "), message
    assert words in message and "\n" not in message


def test_non_ascii_byte_names_its_line(tmp_path: Path) -> None:
    (tmp_path / "dsgdb9nsd_000001.xyz").write_bytes(read(1).encode().replace(b"InChI", b"InCh\xc3"))
    with pytest.raises(DataError, match=r"dsgdb9nsd_000001\.xyz:10: byte 0xc3 is not ASCII"):
        list(qm9.iter_release(tmp_path))


# ------------------------------------------------------------------------- release reading

FIXTURE_INDICES = [1, 2, 23, 58, 184, 212]


def test_iter_release_folder() -> None:
    records = list(qm9.iter_release(XYZ))
    assert [r.index for r in records] == FIXTURE_INDICES
    assert [len(r.symbols) for r in records] == [5, 4, 6, 8, 5, 13]


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_iter_release_tar_equals_folder(tmp_path: Path, mode: str) -> None:
    suffix = {"w": "", "w:gz": ".gz", "w:bz2": ".bz2", "w:xz": ".xz"}[mode]
    archive = tmp_path / f"release.tar{suffix}"
    with tarfile.open(archive, mode) as tar:
        tar.add(XYZ, arcname="dsgdb9nsd")  # a folder inside the archive, plus a non-xyz member
        tar.add(FIXTURES / "qm9_uncharacterized_excerpt.txt", arcname="README.txt")
    from_tar = list(qm9.iter_release(archive))
    from_folder = list(qm9.iter_release(XYZ))
    assert [r.index for r in from_tar] == FIXTURE_INDICES
    for a, b in zip(from_tar, from_folder, strict=True):
        assert np.array_equal(a.positions, b.positions) and a.properties == b.properties


def test_iter_release_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file"):
        list(qm9.iter_release(tmp_path / "absent.tar.xz"))
    broken = tmp_path / "broken.tar.xz"
    good = tmp_path / "good.tar.xz"
    with tarfile.open(good, "w:xz") as tar:
        tar.add(XYZ, arcname=".")
    broken.write_bytes(good.read_bytes()[:2000])  # truncated xz stream
    with pytest.raises(DataError, match="not a readable tar archive"):
        list(qm9.iter_release(broken))
    empty = tmp_path / "empty.tar"
    tarfile.open(empty, "w").close()
    with pytest.raises(DataError, match="no .xyz files"):
        list(qm9.iter_release(empty))


# ---------------------------------------------------------------------------------- tables


def test_read_atomref(atomref: dict) -> None:
    assert sorted(atomref) == ["C", "F", "H", "N", "O"]
    assert atomref["H"]["U0"] == -0.500273 and atomref["C"]["U"] == -37.845355
    assert atomref["N"]["H"] == -54.581501 and atomref["F"]["G"] == -99.733544
    assert atomref["O"]["zpve"] == 0.0 and atomref["C"]["Cv"] == 2.981


def test_read_atomref_missing_element(tmp_path: Path) -> None:
    text = qm9.bundled_atomref_path().read_text()
    bad = tmp_path / "atomref.txt"
    bad.write_text("\n".join(line for line in text.split("\n") if not line.startswith("   F")))
    with pytest.raises(DataError, match="no reference values for F"):
        qm9.read_atomref(bad)


def test_bundled_atomref_is_the_shared_file(shared_data: Path) -> None:
    shared = (shared_data / "qm9_atomref.txt").read_bytes()
    assert qm9.bundled_atomref_path().read_bytes() == shared


def test_read_uncharacterized_excerpt() -> None:
    # the excerpt is the file's 13 first lines (title, rules, header, 4 rows) and its last line
    indices = qm9.read_uncharacterized(FIXTURES / "qm9_uncharacterized_excerpt.txt")
    assert indices == {58, 61, 80, 185}


def test_read_uncharacterized_full(shared_data: Path) -> None:
    indices = qm9.read_uncharacterized(shared_data / "qm9_uncharacterized.txt")
    assert len(indices) == 3054  # SOURCES.md
    assert {58, 61, 80, 185, 133866} <= indices and min(indices) == 58


# --------------------------------------------------------------------------------- targets


def test_methane_targets(atomref: dict) -> None:
    y = dict(zip(qm9.TARGETS, qm9.targets(parse(1), atomref), strict=True))
    # U0: -40.47893 - (C -37.846772 + 4 H -0.500273) = -40.47893 + 37.846772 + 2.001092
    #     = -0.631066 Ha; x 27.211386246 = -17.1722 eV (SOURCES.md: -17.17 eV)
    assert y["U0"] == pytest.approx(-0.631066 * HA, abs=1e-9)
    assert y["U0"] == pytest.approx(-17.17, abs=0.005)
    # U: -40.476062 - (-37.845355 + 4 x -0.498857) = -0.635279 Ha
    assert y["U"] == pytest.approx(-0.635279 * HA, abs=1e-9)
    # H: -40.475117 - (-37.844411 + 4 x -0.497912) = -0.639058 Ha
    assert y["H"] == pytest.approx(-0.639058 * HA, abs=1e-9)
    # G: -40.498597 - (-37.861317 + 4 x -0.510927) = -0.593572 Ha
    assert y["G"] == pytest.approx(-0.593572 * HA, abs=1e-9)
    # homo -0.3877 Ha = -10.549854 eV; lumo 0.1171 Ha; gap 0.5048 Ha; zpve 0.044749 Ha = 1.21768 eV
    assert y["homo"] == pytest.approx(-10.549854, abs=1e-6)
    assert y["lumo"] == pytest.approx(0.1171 * HA) and y["gap"] == pytest.approx(0.5048 * HA)
    assert y["zpve"] == pytest.approx(1.217682, abs=1e-6)
    # as in the file: mu 0 D, alpha 13.21 Bohr^3, r2 35.3641 Bohr^2, Cv 6.469 cal/(mol K)
    assert (y["mu"], y["alpha"], y["r2"], y["Cv"]) == (0.0, 13.21, 35.3641, 6.469)
    assert y["omega1"] == 3151.7078  # the largest of the 9 frequencies on line 8


def test_more_hand_checked_targets(atomref: dict) -> None:
    cf4 = dict(zip(qm9.TARGETS, qm9.targets(parse(184), atomref), strict=True))
    # CF4 U0: -437.484875 - (-37.846772 + 4 x -99.718730) = -437.484875 + 436.721692 = -0.763183
    assert cf4["U0"] == pytest.approx(-0.763183 * HA, abs=1e-9)
    assert cf4["omega1"] == 1291.31 and cf4["mu"] == 0.0003 and cf4["Cv"] == 12.639
    nh3 = dict(zip(qm9.TARGETS, qm9.targets(parse(2), atomref), strict=True))
    # NH3 G: -56.544961 - (-54.598897 + 3 x -0.510927) = -56.544961 + 56.131678 = -0.413283
    assert nh3["G"] == pytest.approx(-0.413283 * HA, abs=1e-9)
    assert nh3["omega1"] == 3575.3343
    c4h2 = qm9.targets(parse(23), atomref)
    assert c4h2[qm9.TARGETS.index("omega1")] == 3505.9596  # last of 13 values, the largest


def test_target_tables_are_consistent() -> None:
    assert len(qm9.TARGETS) == len(qm9.UNITS) == len(qm9.CHEMICAL_ACCURACY) == 13
    assert qm9.TARGETS[7] == "U0" and qm9.CHEMICAL_ACCURACY[7] == 0.043
    assert qm9.CHEMICAL_ACCURACY[qm9.TARGETS.index("omega1")] == 10.0


# ---------------------------------------------------------------------------------- splits


def test_split_indices_sizes_disjoint_reproducible() -> None:
    train, valid, test = qm9.split_indices(1000, n_valid=100, n_test=50, seed=3)
    assert (len(train), len(valid), len(test)) == (850, 100, 50)
    joined = np.concatenate([train, valid, test])
    assert np.array_equal(np.sort(joined), np.arange(1000))  # disjoint and complete
    again = qm9.split_indices(1000, n_valid=100, n_test=50, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((train, valid, test), again, strict=True))
    other = qm9.split_indices(1000, n_valid=100, n_test=50, seed=4)
    assert not np.array_equal(valid, other[1])


def test_split_indices_defaults_and_fractions() -> None:
    train, valid, test = qm9.split_indices(130831)  # Gilmer: 10,000 valid, 10,000 test
    assert (len(train), len(valid), len(test)) == (110831, 10000, 10000)
    train, valid, test = qm9.split_indices(4000, n_valid=0.1, n_test=0.1)
    assert (len(train), len(valid), len(test)) == (3200, 400, 400)
    with pytest.raises(ValueError):
        qm9.split_indices(100, n_valid=60, n_test=60)


# --------------------------------------------------------------------------- bundled subset


def test_bundled_subset(atomref: dict) -> None:
    path = qm9.bundled_release_path()
    with tarfile.open(path, "r:xz") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) and len(names) == 4000  # bundled/README.md
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members)
    records = list(qm9.iter_release(path))
    indices = [r.index for r in records]
    assert len(set(indices)) == 4000
    assert [f"dsgdb9nsd_{i:06d}.xyz" for i in indices] == names
    assert sum(len(r.symbols) for r in records) == 72073  # bundled/README.md
    excerpt = qm9.read_uncharacterized(FIXTURES / "qm9_uncharacterized_excerpt.txt")
    assert not excerpt & set(indices)
    assert np.isfinite(qm9.targets(records[0], atomref)).all()


def test_bundled_subset_has_no_uncharacterized(shared_data: Path) -> None:
    unc = qm9.read_uncharacterized(shared_data / "qm9_uncharacterized.txt")
    assert not unc & {r.index for r in qm9.iter_release(qm9.bundled_release_path())}


# ---------------------------------------------------------------------- the whole release


def test_full_release(shared_data: Path, atomref: dict) -> None:
    """All 133,885 files (SOURCES.md); about 40-60 s, most of it xz decompression and tar."""
    unc = qm9.read_uncharacterized(shared_data / "qm9_uncharacterized.txt")
    start = time.perf_counter()
    count = atoms = kept = 0
    u0 = qm9.TARGETS.index("U0")
    for record in qm9.iter_release(shared_data / "qm9_dsgdb9nsd.xyz.tar.xz"):
        count += 1
        atoms += len(record.symbols)
        assert record.index == count  # files 1..133,885 in name order, "gdb <id>" matches
        if record.index not in unc:
            kept += 1
            assert qm9.targets(record, atomref)[u0] < 0, record.name  # every molecule is bound
    elapsed = time.perf_counter() - start
    assert count == 133885 and atoms == 2407753
    assert len(unc) == 3054 and kept == 130831
    print(f"parsed the full QM9 release in {elapsed:.1f} s")
