"""Issue 9, class 4: a few bytes must not exhaust CPU or memory.

Declared sizes (an XYZ count line, a cell) are bounded before anything is allocated or handed to
ASE: the hostile files below end ``mpnn`` with exit status 2 and one line within seconds, with a
small peak of traced memory.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from mpnn import cli
from mpnn.data.atoms import read_structures
from mpnn.data.xyz import parse_xyz_frames
from mpnn.errors import DataError
from mpnn.neighbors import MAX_IMAGES, MAX_NEIGHBORS, MAX_PAIRS, check_size, neighbor_list

TINY = Path(__file__).parent / "fixtures" / "n2p2" / "tiny"  # H, O; cutoff 6 Angstrom


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("mpnn: error: ")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


@pytest.fixture(scope="module", autouse=True)
def _warm(tmp_path_factory: pytest.TempPathFactory) -> None:
    """One ordinary prediction first: the timings below then exclude the first imports."""
    folder = tmp_path_factory.mktemp("warm")
    (folder / "water.xyz").write_text("3\nwater\nO 0 0 0.117\nH 0 0.757 -0.467\nH 0 -0.757 -0.467\n")
    assert cli.main(["predict", str(TINY), str(folder / "water.xyz"), "-o", str(folder / "o.extxyz")]) == 0


def _run_bounded(argv: list[str], seconds: float = 3.0, megabytes: float = 100.0) -> int:
    """cli.main(argv) -> status, asserting the wall time and the peak of traced allocations."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        status = cli.main(argv)
    finally:
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.1f} s"
    assert peak < megabytes * 2**20, f"peak {peak / 2**20:.0f} MiB"
    return status


@pytest.mark.parametrize("name", ["huge.xyz", "huge.extxyz"])
def test_xyz_count_beyond_the_file_is_refused_at_once(tmp_path, capsys, name) -> None:
    path = tmp_path / name
    path.write_text("2\nfirst\nH 0 0 0\nH 0 0 0.74\n999999999999\nsecond\nO 0 0 0\n")
    out = tmp_path / "out.extxyz"
    assert _run_bounded(["predict", str(TINY), str(path), "-o", str(out)]) == 2
    line = _one_line_error(capsys)
    assert f"{path}:5: the count line declares 999999999999 atoms" in line
    assert not out.exists()


def test_own_xyz_reader_allocates_nothing_from_the_count() -> None:
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"big.xyz:4: expected atom 2 of 999999999999"):
            parse_xyz_frames("999999999999\nc\nC 0 0 0\n", "big.xyz")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20  # 21.8 TiB before the fix


def test_ase_allocation_failure_is_one_line(tmp_path) -> None:
    poscar = tmp_path / "POSCAR"
    poscar.write_text("x\n1.0\n1 0 0\n0 1 0\n0 0 1\nO\n999999999999\nCartesian\n0 0 0\n")
    with pytest.raises(DataError) as info:
        read_structures(poscar)
    assert str(info.value).startswith(f"{poscar}: cannot read with ASE") and "\n" not in str(info.value)


@pytest.mark.parametrize("edge", [0.3, 0.05])
def test_tiny_periodic_cell_is_refused_before_the_neighbour_search(tmp_path, capsys, edge) -> None:
    # one atom in a cube of 0.3 A: about 4/3 pi 6^3 / 0.3^3 = 3.4e4 neighbours (5.6e8 angular triplets)
    path = tmp_path / "cell.extxyz"
    lattice = f"{edge} 0 0 0 {edge} 0 0 0 {edge}"
    path.write_text(f'1\nLattice="{lattice}" Properties=species:S:1:pos:R:3 pbc="T T T"\nO 0 0 0\n')
    assert _run_bounded(["predict", str(TINY), str(path), "-o", str(tmp_path / "o.extxyz")]) == 2
    line = _one_line_error(capsys)
    assert "neighbours per atom" in line or "periodic images" in line
    assert "check the cell units" in line


def test_thin_cell_caps_the_images_per_direction() -> None:
    cell = np.diag([1000.0, 1000.0, 1e-4])  # the ball of 1e3 A^3 per atom misses the 1e5 images along z
    start = time.perf_counter()
    with pytest.raises(DataError, match=rf"reaches 6e\+04 periodic images along it \(bound {MAX_IMAGES}\)"):
        neighbor_list(np.zeros((1, 3)), 6.0, cell, (True, True, True))
    assert time.perf_counter() - start < 1.0


def test_dense_cluster_of_a_molecule_is_refused() -> None:
    pos = np.random.default_rng(0).random((20000, 3)) * 10.0  # 20 atoms per A^3: ~1.6e8 pairs
    start = time.perf_counter()
    with pytest.raises(DataError, match="neighbours per atom"):
        neighbor_list(pos, 6.0)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(("density", "cutoff"), [(0.1, 6.0), (0.085, 12.0)])
def test_real_large_boxes_are_within_the_bounds(density, cutoff) -> None:
    # 100,000 atoms of water (0.1 /A^3) or a dense metal (0.085 /A^3, 12 A cutoff: ~615 neighbours)
    n = 100_000
    edge = (n / density) ** (1 / 3)
    pos = np.random.default_rng(1).random((n, 3)) * edge
    check_size(pos, cutoff, np.eye(3) * edge, np.ones(3, dtype=bool))  # no error
    neighbours = density * 4 / 3 * np.pi * cutoff**3
    assert neighbours < MAX_NEIGHBORS / 5 and n * neighbours < MAX_PAIRS


def test_small_cells_that_real_work_uses_pass() -> None:
    # one atom in a 1 A cube with a 6 A cutoff: 894 images (a lattice count, not a density guess)
    i, _, _ = neighbor_list(np.zeros((1, 3)), 6.0, np.eye(3), (True, True, True))
    expected = sum(
        1
        for a in range(-6, 7)
        for b in range(-6, 7)
        for c in range(-6, 7)
        if 0 < a * a + b * b + c * c < 36
    )
    assert len(i) == expected == 894


@pytest.mark.parametrize("distance", [1e6, 1e12, 1e300])
def test_atoms_absurdly_far_apart_are_refused_not_a_crash(tmp_path, capsys, distance) -> None:
    """Two atoms 1e6 A apart made vesin 0.6 kill the process (SIGFPE); now one line, at once."""
    path = tmp_path / "far.xyz"
    path.write_text(f"2\n\nH 0 0 0\nH 0 {-distance!r} 0\n")
    assert _run_bounded(["predict", str(TINY), str(path), "-o", str(tmp_path / "o.extxyz")]) == 2
    assert "more than 1e+05 A; check the units" in _one_line_error(capsys)


def test_a_long_structure_is_searched_with_wider_bins_and_the_same_pairs() -> None:
    """Along 5e4 A, a 0.1 A search (the same-position check) would need 5e5 bins per row, beyond
    the backends' limit: the radius is widened for the search and the list cut back to 0.1 A.
    Reference: brute force over all pairs."""
    rng = np.random.default_rng(0)
    pos = np.concatenate([rng.uniform(0, 5e4, (40, 1)), rng.uniform(0, 0.3, (40, 2))], axis=1)
    pos[1] = pos[0] + [0.05, 0.0, 0.0]  # one pair within 0.1 A
    for cutoff in (0.1, 6.0, 2000.0):
        i, j, _ = neighbor_list(pos, cutoff)
        d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
        bi, bj = np.nonzero((d < cutoff) & ~np.eye(len(pos), dtype=bool))
        assert sorted(zip(i.tolist(), j.tolist(), strict=True)) == sorted(
            zip(bi.tolist(), bj.tolist(), strict=True)
        )


# -- compressed files, archives, processes, property-model sizes ----------------------------------
def test_a_decompression_bomb_is_refused_before_ase_reads_it(tmp_path, capsys, monkeypatch) -> None:
    import lzma

    import mpnn.data.atoms as atoms_module

    monkeypatch.setattr(atoms_module, "MAX_DECOMPRESSED", 2**20)  # the mechanism, at a test's scale
    bomb = tmp_path / "b.extxyz.xz"
    bomb.write_bytes(lzma.compress(b" " * (3 * 2**20)))
    assert bomb.stat().st_size < 2**20 // 100
    assert cli.main(["predict", str(TINY), str(bomb), "-o", str(tmp_path / "p.extxyz")]) == 2
    assert f"{bomb}: decompresses to more than 1 MiB" in _one_line_error(capsys)
    assert not (tmp_path / "p.extxyz").exists()


def test_an_oversized_tar_member_is_refused_from_its_header(tmp_path) -> None:
    import io
    import tarfile

    from mpnn.data.qm9 import MAX_MEMBER_BYTES, iter_release_files

    archive = tmp_path / "q.tar.gz"
    size = 16 * 2**20
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("dsgdb9nsd_000001.xyz")
        info.size = size
        tar.addfile(info, io.BytesIO(b"\0" * size))
    assert size > MAX_MEMBER_BYTES
    tracemalloc.start()
    with pytest.raises(DataError, match=rf"q.tar.gz/dsgdb9nsd_000001.xyz: {size} bytes"):
        list(iter_release_files(archive))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < size / 4  # the member was never read


def test_featurisation_workers_are_at_most_the_cores(tmp_path, monkeypatch) -> None:
    import os

    from mpnn.data import qm9, qm9_build

    seen = []

    def stop(release, state, workers):
        seen.append(workers)
        raise DataError("stop")

    monkeypatch.setattr(qm9_build, "iter_featurized", stop)
    with pytest.raises(DataError, match="stop"):
        qm9_build.build_qm9(qm9.bundled_release_path(), workers=100000, cache_dir=tmp_path)
    assert seen == [os.cpu_count() or 1]
    assert not any(tmp_path.glob("*.lmdb"))  # a failed build leaves no cache behind


def test_property_models_refuse_huge_molecules_before_featurising(tmp_path) -> None:
    from mpnn.data.featurize import MAX_ATOMS, featurize_molecule
    from mpnn.data.smiles import MAX_SMILES_LENGTH, parse_smiles
    from mpnn.train.predict import read_inputs

    path = tmp_path / "h2_1k.xyz"
    rows = "".join(f"H {0.74 * (k % 2)} {2.0 * (k // 2)} 0\n" for k in range(1024))
    path.write_text(f"1024\nhydrogen molecules\n{rows}")
    start = time.perf_counter()
    with pytest.raises(DataError, match=rf"^{path}:1: 1024 atoms; property models take at most {MAX_ATOMS}"):
        read_inputs([path])
    with pytest.raises(DataError, match=f"30000 characters; at most {MAX_SMILES_LENGTH}"):
        parse_smiles("C" * 30000)
    with pytest.raises(DataError, match=f"{3 * 200 + 2} atoms with hydrogens; property models take at most"):
        parse_smiles("C" * 200)  # C200H402: 602 atoms
    assert time.perf_counter() - start < 3
    assert parse_smiles("C" * 29).GetNumAtoms() == 29  # C29H60, 89 atoms: accepted
    with pytest.raises(DataError):
        featurize_molecule(["H"] * (MAX_ATOMS + 1), np.zeros((MAX_ATOMS + 1, 3)))


def test_not_a_structure_file_says_what_it_is(tmp_path, capsys) -> None:
    import os

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "empty").mkdir()
    for given, said in ((tmp_path / "empty", "is a folder"), (fifo, "not a regular file")):
        with pytest.raises(DataError, match=f"^{given}: {said}"):
            read_structures(given)
    with pytest.raises(DataError, match=f"^{tmp_path / 'gone.xyz'}: no such file"):
        read_structures(tmp_path / "gone.xyz")


def test_neighbour_bounds_name_the_file_structure_and_the_models_cutoff(tmp_path, capsys) -> None:
    path = tmp_path / "thin.extxyz"
    head = 'Lattice="0.05 0 0 0 10 0 0 0 10" Properties=species:S:1:pos:R:3 pbc="T T T"'
    path.write_text(f"2\n{head}\nH 0 0 0\nO 0 1 1\n")
    assert cli.main(["predict", str(TINY), str(path), "-o", str(tmp_path / "p.extxyz")]) == 2
    line = _one_line_error(capsys)
    assert line.startswith(f"mpnn: error: {path}: structure 0: the cell is 0.05 A thick across row 0: ")
    assert "the model's cutoff 6 A reaches 120 periodic images" in line


def test_a_frame_ase_cannot_read_is_named(tmp_path, capsys) -> None:
    path = tmp_path / "missing.extxyz"
    good = '1\nProperties=species:S:1:pos:R:3:forces:R:3 pbc="F F F"\nH 0 0 0 1 2 3\n'
    path.write_text(good + good.replace("1 2 3", "1 2"))
    with pytest.raises(DataError, match=f"^{path}:4: frame 1: cannot read with ASE: "):
        read_structures(path)


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("input.nn", "neither an n2p2 potential folder"),  # no regular input.nn: not a potential
        ("scaling.data", "scaling.data: not a regular file"),
        ("weights.008.data", "weights.008.data: not a regular file"),
    ],
)
def test_a_fifo_in_an_n2p2_potential_is_refused_not_waited_on(tmp_path, capsys, name, said) -> None:
    """Every n2p2 reader opens files through one check: a FIFO would block ``read_text`` forever."""
    import os
    import shutil

    potential = tmp_path / "pot"
    shutil.copytree(TINY, potential)
    (potential / name).unlink()
    os.mkfifo(potential / name)
    (tmp_path / "w.xyz").write_text("3\nwater\nO 0 0 0.117\nH 0 0.757 -0.467\nH 0 -0.757 -0.467\n")
    argv = ["predict", str(potential), str(tmp_path / "w.xyz"), "-o", str(tmp_path / "o.extxyz")]
    assert _run_bounded(argv) == 2
    assert said in _one_line_error(capsys)
