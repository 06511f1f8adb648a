"""Neighbour lists and triplets against brute-force references written here (float64).

The reference enumerates every image explicitly: for periodic direction k the fractional component
of r_ij = pos[j] - pos[i] + S @ cell is (f_j - f_i + S)_k = r_ij . b_k, with b_k the k-th row of the
reciprocal lattice (columns of inv(cell)), so |S_k| <= cutoff |b_k| + max |f_j - f_i|_k; all S in that
box are tried and every (i, j, S) with 0 < |r_ij| < cutoff is kept.
"""

from __future__ import annotations

import itertools
import sys
import types

import numpy as np
import pytest
import torch

import mpnn.neighbors as nb
from mpnn.errors import DataError
from mpnn.neighbors import batch_neighbor_list, neighbor_list, triplets
from mpnn.neighbors_backends import VESIN_MIN_VERSION, _version_tuple, vesin_available

BACKENDS = ["vesin", "ase"] if vesin_available() else ["ase"]
PBC_PATTERNS = [p for p in itertools.product([False, True], repeat=3) if any(p)]
LARGE_MOLECULE = nb.DENSE_MAX_ATOMS + 12  # atoms: past the all-pairs pass of batch_neighbor_list
TRICLINIC = np.array([[5.0, 0.0, 0.0], [4.1, 2.2, 0.0], [3.7, 1.6, 1.9]])  # angles far from 90 deg


def brute_force(pos: np.ndarray, cutoff: float, cell: np.ndarray | None, pbc) -> np.ndarray:
    """(E, 5) rows (i, j, S0, S1, S2), sorted, by explicit enumeration of images."""
    pos = np.asarray(pos, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool)
    cell = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=np.float64)
    reach = [0, 0, 0]
    if pbc.any():
        # any completion of the non-periodic rows gives a valid bound (their shifts stay 0)
        full = cell.copy()
        full[~pbc] = np.random.default_rng(0).normal(size=(int((~pbc).sum()), 3))
        recip = np.linalg.inv(full)  # column k is b_k
        frac = pos @ recip
        for k in np.flatnonzero(pbc):
            span = np.ptp(frac[:, k]) if len(pos) else 0.0
            reach[k] = int(np.ceil(cutoff * np.linalg.norm(recip[:, k]) + span))
    rows = []
    for shift in itertools.product(*[range(-m, m + 1) for m in reach]):
        s = np.array(shift)
        dist = np.linalg.norm(pos[None, :, :] - pos[:, None, :] + s @ cell, axis=-1)
        for i, j in zip(*np.nonzero(dist < cutoff), strict=True):
            if i != j or s.any():
                rows.append((i, j, *shift))
    rows.sort()
    return np.array(rows, dtype=np.int64).reshape(-1, 5)


def as_rows(i: np.ndarray, j: np.ndarray, s: np.ndarray) -> np.ndarray:
    assert i.dtype == j.dtype == s.dtype == np.int64
    assert i.shape == j.shape == s.shape[:1] and s.shape[1:] == (3,)
    return np.column_stack([i, j, s]).reshape(-1, 5)


def spread_atoms(rng: np.random.Generator, n: int, frac_box: np.ndarray, min_dist: float) -> np.ndarray:
    """n random points in the parallelepiped ``frac_box`` rows, pairwise >= min_dist (no images)."""
    pos = np.zeros((0, 3))
    for _ in range(1000 * n):
        if len(pos) == n:
            break
        trial = rng.random(3) @ frac_box
        if len(pos) == 0 or np.linalg.norm(pos - trial, axis=1).min() >= min_dist:
            pos = np.vstack([pos, trial])
    assert len(pos) == n, "box too small for that many atoms"
    return pos


def check(pos, cutoff, cell, pbc, backend) -> np.ndarray:
    got = as_rows(*neighbor_list(pos, cutoff, cell, pbc, backend=backend))
    want = brute_force(pos, cutoff, cell, pbc)
    np.testing.assert_array_equal(got, want)
    return got


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("seed", range(4))
def test_random_molecules(backend, seed):
    rng = np.random.default_rng(seed)
    pos = spread_atoms(rng, 25, np.diag([6.0, 5.0, 7.0]), 0.8) + rng.normal(size=3) * 50  # far from 0
    rows = check(pos, rng.uniform(1.5, 4.0), None, (False, False, False), backend)
    assert len(rows) > 0 and not rows[:, 2:].any()
    # a molecule does not depend on a cell it does not use, nor on where it sits
    moved = pos - 1e3
    again = as_rows(*neighbor_list(moved, 4.0, np.eye(3) * 0.1, backend=backend))
    np.testing.assert_array_equal(again, brute_force(moved, 4.0, None, (False,) * 3))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", [np.eye(3) * 7.5, TRICLINIC * 1.6], ids=["cubic", "triclinic"])
def test_periodic_cells_unwrapped_positions(backend, cell):
    rng = np.random.default_rng(1)
    frac = rng.random((20, 3)) + rng.integers(-2, 3, size=(20, 3))  # atoms outside the cell
    rows = check(frac @ cell, 5.0, cell, (True, True, True), backend)
    assert rows[:, 2:].any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_cell_smaller_than_cutoff_many_images(backend):
    rng = np.random.default_rng(2)
    cell = TRICLINIC * 0.5  # shortest height ~0.95 A against a 4 A cutoff
    pos = rng.random((3, 3)) @ cell
    rows = check(pos, 4.0, cell, (True, True, True), backend)
    self_images = rows[rows[:, 0] == rows[:, 1]]
    assert len(self_images) > 50
    ij, counts = np.unique(rows[:, :2], axis=0, return_counts=True)
    assert len(ij) == 9 and counts.min() > 10  # every (i, j) with many images each


@pytest.mark.parametrize("backend", BACKENDS)
def test_single_atom_lattices_count_shells(backend):
    # simple cubic a = 2, cutoff 4.5: integer vectors with 0 < |n|^2 <= 5 number 6 + 12 + 8 + 6 + 24
    i, j, s = neighbor_list(np.zeros((1, 3)), 4.5, np.eye(3) * 2.0, (True, True, True), backend=backend)
    assert len(i) == 56 and (i == 0).all() and (j == 0).all()
    assert {int(v) for v in (s**2).sum(axis=1)} == {1, 2, 3, 4, 5}
    # fcc primitive cell, a = 3.6: 12 neighbours at a / sqrt 2 = 2.55, 6 more at a = 3.6
    fcc = 1.8 * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    for cutoff, count in [(3.0, 12), (4.0, 18)]:
        i, _, s = neighbor_list(np.array([[0.3, -0.2, 9.0]]), cutoff, fcc, (True,) * 3, backend=backend)
        assert len(i) == count
        np.testing.assert_allclose(
            np.linalg.norm(s @ fcc, axis=1).max(), 2.5456 if count == 12 else 3.6, atol=1e-4
        )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pbc", PBC_PATTERNS, ids=lambda p: "".join("TF"[not x] for x in p))
def test_mixed_periodicity(backend, pbc):
    rng = np.random.default_rng(sum(2**k * v for k, v in enumerate(pbc)))
    cell = TRICLINIC * 0.9  # heights below the cutoff: several images along every periodic direction
    frac = rng.random((12, 3)) * np.where(pbc, 1.0, 3.0) + np.where(pbc, rng.integers(-1, 2, (12, 3)), 0)
    pos = frac @ cell
    rows = check(pos, 3.5, cell, pbc, backend)
    assert not rows[:, 2:][:, ~np.array(pbc)].any()
    assert rows[:, 2:][:, np.array(pbc)].any()
    # the rows of non-periodic directions are unused: zero, arbitrary or NaN rows give the same list
    for fill in (0.0, 0.37, np.nan):
        other = cell.copy()
        other[~np.array(pbc)] = fill * rng.normal(size=(3 - sum(pbc), 3))
        got = as_rows(*neighbor_list(pos, 3.5, other, pbc, backend=backend))
        np.testing.assert_array_equal(got, rows)


def test_backends_identical_on_a_larger_slab():
    if len(BACKENDS) < 2:
        pytest.skip("vesin >= 0.5.8 is not importable")
    rng = np.random.default_rng(3)
    cell = np.array([[14.0, 0.0, 0.0], [5.0, 13.0, 0.0], [0.0, 0.0, 0.0]])
    pos = spread_atoms(rng, 300, np.array([[14.0, 0, 0], [5.0, 13.0, 0], [0, 0, 15.0]]), 0.9)
    for pbc in [(True, True, False), (True, True, True)]:
        box = cell if not pbc[2] else cell + np.diag([0, 0, 15.0])
        lists = [as_rows(*neighbor_list(pos, 6.0, box, pbc, backend=b)) for b in BACKENDS]
        np.testing.assert_array_equal(lists[0], lists[1])
        assert len(lists[0]) > 10 * len(pos)


def pairs(a, b) -> list[tuple[int, int]]:
    return list(zip(a.tolist(), b.tolist(), strict=True))


def test_strict_cutoff_and_order():
    pos = np.array([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    for backend in BACKENDS:
        i, j, _ = neighbor_list(pos, 2.0, backend=backend)
        assert pairs(i, j) == [(0, 2), (2, 0)]  # |r_01| = 2 is not below 2; |r_12| = sqrt 5
        i, j, _ = neighbor_list(pos, np.nextafter(2.0, 3.0), backend=backend)
        assert pairs(i, j) == [(0, 1), (0, 2), (1, 0), (2, 0)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_and_single_atom(backend):
    for pos, cell, pbc in [
        (np.zeros((0, 3)), None, (False,) * 3),
        (np.zeros((0, 3)), np.eye(3) * 3, (True,) * 3),
        (np.array([[1.0, 2.0, 3.0]]), None, (False,) * 3),
        (np.array([[1.0, 2.0, 3.0]]), np.eye(3) * 10, (True,) * 3),
    ]:
        i, j, s = neighbor_list(pos, 5.0, cell, pbc, backend=backend)
        assert i.shape == j.shape == (0,) and s.shape == (0, 3) and s.dtype == np.int64


def test_real_monoclinic_structure(n2p2_examples):
    lines = (n2p2_examples / "nnp-predict" / "Cu2S_PBE" / "input.data").read_text().splitlines()
    stop = lines.index("end")
    cell = np.array([[float(v) for v in ln.split()[1:4]] for ln in lines[:stop] if ln.startswith("lattice")])
    pos = np.array([[float(v) for v in ln.split()[1:4]] for ln in lines[:stop] if ln.startswith("atom")])
    assert cell.shape == (3, 3) and len(pos) > 100
    for backend in BACKENDS:
        check(pos, 6.0, cell, (True, True, True), backend)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pos": np.zeros((4, 2))}, "positions must have shape (N, 3), got (4, 2)"),
        ({"pos": np.array([[0.0, 0.0, np.nan]])}, "positions contain NaN or inf"),
        ({"pos": np.array([[0.0, np.inf, 0.0]])}, "positions contain NaN or inf"),
        ({"cutoff": 0.0}, "cutoff must be a positive finite number of Angstrom, got 0.0"),
        ({"cutoff": -1.0}, "cutoff must be a positive finite number of Angstrom, got -1.0"),
        ({"pbc": (True, False, False)}, "pbc is [True, False, False] but no cell was given"),
        (
            {"cell": np.diag([3.0, np.inf, 3.0]), "pbc": (False, True, False)},
            "cell contains NaN or inf in a periodic direction",
        ),
        (
            {"cell": np.array([[3.0, 0, 0], [6.0, 0, 0], [0, 0, 3.0]]), "pbc": (True, True, False)},
            "cell is singular: rows [0, 1] (pbc True) are zero or linearly dependent",
        ),
        ({"cell": np.diag([3.0, 0.0, 3.0]), "pbc": (True,) * 3}, "cell is singular: rows [0, 1, 2]"),
        (
            {"pos": np.array([[0.0, 0, 0], [1.0, 0, 0], [0.0, 0.0, 1e-9]])},
            "atoms 0 and 2 are at the same position",
        ),
        (
            {"pos": np.array([[0.1, 0.2, 0.3], [5.1, 0.2, 0.3]]), "cell": np.eye(3) * 5, "pbc": (True,) * 3},
            "atoms 0 and 1 are at the same position (periodic image [-1, 0, 0])",
        ),
        (
            {
                "pos": np.zeros((2000, 3)) + np.arange(2000)[:, None] * 1e-3,
                "cell": np.eye(3) * 0.6,
                "pbc": (True,) * 3,
            },
            "check the cell units",
        ),
    ],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_errors_are_one_line(kwargs, message, backend):
    args = {"pos": np.zeros((1, 3)), "cutoff": 3.0, "cell": None, "pbc": (False,) * 3} | kwargs
    with pytest.raises(DataError) as info:
        neighbor_list(args["pos"], args["cutoff"], args["cell"], args["pbc"], backend=backend)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_duplicate_reported_by_index_in_larger_set():
    pos = np.random.default_rng(5).random((10, 3)) * 10
    pos[7] = pos[3]
    with pytest.raises(DataError, match=r"^atoms 3 and 7 are at the same position$"):
        neighbor_list(pos, 2.0)


def test_fallback_to_ase_when_vesin_is_missing(monkeypatch):
    def no_vesin(*args):
        raise AssertionError("vesin must not be called")

    monkeypatch.setattr(nb, "vesin_available", lambda: False)
    monkeypatch.setattr(nb, "vesin_pairs", no_vesin)
    pos = np.random.default_rng(6).random((10, 3)) * 4
    got = as_rows(*neighbor_list(pos, 2.5, np.eye(3) * 4, (True, False, True)))
    np.testing.assert_array_equal(got, brute_force(pos, 2.5, np.eye(3) * 4, (True, False, True)))
    with pytest.raises(DataError, match="needs vesin >= 0.5.8"):
        neighbor_list(pos, 2.5, backend="vesin")
    with pytest.raises(DataError, match="unknown neighbour-list backend 'foo'"):
        neighbor_list(pos, 2.5, backend="foo")


def test_old_vesin_is_not_used(monkeypatch):
    assert _version_tuple("0.5.7") < VESIN_MIN_VERSION <= _version_tuple("0.6.2")
    assert _version_tuple("1.0.0rc1") > VESIN_MIN_VERSION
    monkeypatch.setitem(sys.modules, "vesin", types.SimpleNamespace(__version__="0.4.0"))
    assert not vesin_available()


def make_batch(rng: np.random.Generator):
    """Small and large molecules, an empty structure, a slab, a triclinic crystal, a lone atom in a cell.

    The small molecules go through the vectorised all-pairs pass, the others through cell lists.
    """
    structures = [
        (spread_atoms(rng, 9, np.eye(3) * 4.0, 0.9), None, (False, False, False)),
        (np.zeros((0, 3)), None, (False, False, False)),
        (spread_atoms(rng, LARGE_MOLECULE, np.eye(3) * 8.0, 0.9), None, (False, False, False)),
        (spread_atoms(rng, 3, np.eye(3) * 2.0, 0.9), None, (False, False, False)),
        (rng.random((7, 3)) @ np.diag([5.0, 5.0, 8.0]), np.diag([5.0, 5.0, 0.0]), (True, True, False)),
        (rng.random((6, 3)) @ TRICLINIC, TRICLINIC, (True, True, True)),
        (np.array([[0.5, 0.5, 0.5]]), np.eye(3) * 2.5, (True, True, True)),
    ]
    pos = torch.from_numpy(np.concatenate([p for p, _, _ in structures]))
    ptr = torch.tensor(np.cumsum([0] + [len(p) for p, _, _ in structures]))
    cell = torch.from_numpy(np.stack([np.zeros((3, 3)) if c is None else c for _, c, _ in structures]))
    pbc = torch.tensor([p for _, _, p in structures])
    return structures, pos, ptr, cell, pbc


@pytest.mark.parametrize("dense_max", [None, 0, 10**6], ids=["dense-small", "no-dense", "all-dense"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_batch_against_per_structure_lists(backend, dense_max, monkeypatch):
    if dense_max is not None:
        monkeypatch.setattr(nb, "DENSE_MAX_ATOMS", dense_max)
    structures, pos, ptr, cell, pbc = make_batch(np.random.default_rng(7))
    edge_index, shifts = batch_neighbor_list(pos, ptr, 3.0, cell, pbc, backend=backend)
    assert edge_index.dtype == torch.int64 and edge_index.shape[0] == 2
    assert shifts.dtype == pos.dtype and shifts.shape == (edge_index.shape[1], 3)
    want = []
    for (p, c, periodic), start in zip(structures, ptr.tolist()[:-1], strict=True):
        rows = brute_force(p, 3.0, c, periodic)
        want.append(np.column_stack([rows[:, 1] + start, rows[:, 0] + start, rows[:, 2:]]))
    want = np.concatenate(want)
    got = np.column_stack([edge_index.T.numpy(), shifts.numpy()])
    np.testing.assert_array_equal(got, want)  # brute-force rows are sorted by i, j, S = target, source, S
    # r_ij = pos[j] - pos[i] + S @ cell[batch[i]] is shorter than the cutoff
    batch = torch.repeat_interleave(torch.arange(len(structures)), ptr.diff())
    j, i = edge_index
    r = pos[j] - pos[i] + torch.einsum("ek,ekl->el", shifts, cell[batch[i]])
    assert (r.norm(dim=1) < 3.0).all() and (r.norm(dim=1) > 0).all()


@pytest.mark.parametrize("dense_max", [48, 0])
def test_batch_molecules_and_errors(dense_max, monkeypatch):
    monkeypatch.setattr(nb, "DENSE_MAX_ATOMS", dense_max)
    rng = np.random.default_rng(8)
    a, b = spread_atoms(rng, 5, np.eye(3) * 3, 1.0), spread_atoms(rng, 4, np.eye(3) * 3, 1.0)
    a, b = a.astype(np.float32).astype(np.float64), b.astype(np.float32).astype(np.float64)
    pos = torch.from_numpy(np.concatenate([a, b])).float().requires_grad_()
    edge_index, shifts = batch_neighbor_list(pos, torch.tensor([0, 5, 9]), 2.5)
    molecule = (False, False, False)
    want = np.concatenate(
        [brute_force(a, 2.5, None, molecule), brute_force(b, 2.5, None, molecule) + [5, 5, 0, 0, 0]]
    )
    np.testing.assert_array_equal(edge_index.numpy(), want[:, [1, 0]].T)
    assert shifts.dtype == torch.float32 and not shifts.any()
    empty_index, empty_shifts = batch_neighbor_list(torch.zeros(0, 3), torch.tensor([0]), 2.5)
    assert empty_index.shape == (2, 0) and empty_shifts.shape == (0, 3)
    b2 = b.copy()
    b2[2] = b2[0]
    expected = r"^structure 1 \(atoms 5:9\): atoms 0 and 2 are at the same position$"
    with pytest.raises(DataError, match=expected):
        batch_neighbor_list(torch.from_numpy(np.concatenate([a, b2])), torch.tensor([0, 5, 9]), 2.5)
    b2[2, 1] = np.nan
    with pytest.raises(DataError, match=r"^structure 1 \(atoms 5:9\): positions contain NaN or inf$"):
        batch_neighbor_list(torch.from_numpy(np.concatenate([a, b2])), torch.tensor([0, 5, 9]), 2.5)
    with pytest.raises(DataError, match="cutoff must be a positive finite number"):
        batch_neighbor_list(pos, torch.tensor([0, 5, 9]), -2.5)
    with pytest.raises(DataError, match="ptr must rise from 0 to the number of atoms 9"):
        batch_neighbor_list(pos, torch.tensor([0, 5, 8]), 2.5)
    with pytest.raises(DataError, match="no cell was given"):
        batch_neighbor_list(pos, torch.tensor([0, 5, 9]), 2.5, None, torch.ones(2, 3, dtype=torch.bool))


def loop_triplets(target: list[int]) -> list[tuple[int, int]]:
    return [(a, b) for a in range(len(target)) for b in range(a + 1, len(target)) if target[a] == target[b]]


@pytest.mark.parametrize("impl", [triplets, nb._triplets_torch], ids=["public-numpy", "torch-ops"])
def test_triplets_against_double_loop(impl):
    rng = np.random.default_rng(9)
    degrees = rng.integers(0, 7, size=30)
    degrees[[0, 5, 29]] = [0, 1, 0]  # isolated and lone-edge centres, and one without edges at the end
    target = torch.repeat_interleave(torch.arange(30), torch.from_numpy(degrees))
    a, b = impl(target, 30)
    assert a.dtype == b.dtype == torch.int64
    assert pairs(a, b) == loop_triplets(target.tolist())
    assert len(a) == int((degrees * (degrees - 1) // 2).sum())
    # on a real neighbour list (several images of one atom are distinct edges)
    structures, pos, ptr, cell, pbc = make_batch(np.random.default_rng(10))
    edge_index, _ = batch_neighbor_list(pos, ptr, 3.0, cell, pbc)
    a, b = impl(edge_index[1], len(pos))
    assert pairs(a, b) == loop_triplets(edge_index[1].tolist())
    assert len(a) > 100
    empty = impl(torch.zeros(0, dtype=torch.int64), 4)
    assert empty[0].shape == empty[1].shape == (0,)


def test_triplets_edge_cases():
    a, b = triplets(torch.zeros(0, dtype=torch.int64), 0)
    assert a.shape == b.shape == (0,)
    a, b = triplets(torch.tensor([2, 2]), 4)
    assert a.tolist() == [0] and b.tolist() == [1]
    with pytest.raises(DataError, match="sorted ascending"):
        triplets(torch.tensor([1, 0, 1]), 2)
    with pytest.raises(DataError, match="outside 0..1"):
        triplets(torch.tensor([0, 2]), 2)


def test_cell_volumes_are_the_determinants_on_every_device_path() -> None:
    from mpnn.neighbors import cell_volumes
    from mpnn.potentials.forces import device_cell_volumes

    cells = np.random.default_rng(3).normal(size=(50, 3, 3)) * 4.0
    cells[0] = np.diag([2.0, 3.0, 4.0])[[1, 0, 2]]  # a left-handed cell: its volume is positive
    cells[1] = [[1, 2, 3], [4, 5, 6], [5, 7, 9]]  # no volume
    expected = np.abs(np.linalg.det(cells))
    ours = cell_volumes(cells)
    np.testing.assert_allclose(ours[2:], expected[2:], rtol=1e-12)
    assert ours[0] == 24.0 and np.isnan(ours[1])
    torch_volumes = device_cell_volumes(torch.from_numpy(cells)).numpy()
    np.testing.assert_allclose(torch_volumes, ours, rtol=1e-13)  # NaN where ours is NaN
