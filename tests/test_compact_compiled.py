"""The compiled walks of the compact functions (:mod:`mpnn.symmetry.compact_kernels`) against the
PyTorch path (itself tested against n2p2's formulas and finite differences in
``test_compact_symmetry.py``): values and the gradients with respect to the positions (and the
cell), on clusters and periodic cells, every subtype, windows with rl < 0, = 0 and > 0, all six
types, and a message that mixes them with Gaussian functions."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from ase import Atoms
from test_compact_symmetry import ANGLES, PAIRS, make_specs

from mpnn.data.atoms import atoms_to_molecule, collate_structures
from mpnn.inputs import edge_vectors
from mpnn.messages.symmetry_functions import SymmetryFunctions
from mpnn.symmetry import compiled

pytestmark = [
    pytest.mark.skipif(not compiled.available(), reason="numba is not installed: only one path exists"),
    pytest.mark.usefixtures("one_thread"),
]
F64 = torch.float64
#: every subtype; rl = -rc (n2p2's SCAN potentials), -rc < rl < 0, rl = 0 and rl > 0
WINDOWS = [
    (-3.0, 3.0, "p1"),
    (-2.6, 2.6, "p2"),
    (-2.2, 3.0, "p3"),
    (-1.0, 2.8, "p4"),
    (0.0, 2.7, "p1a"),
    (-3.0, 3.0, "p2a"),
    (0.6, 2.9, "p3a"),
    (-0.5, 2.5, "p4a"),
    (0.4, 3.1, "e"),
    (-2.8, 2.8, "e"),
]


def structure(kind: str, seed: int) -> Atoms:
    """A random H/C/O cluster, or a small triclinic periodic cell (neighbours are images too)."""
    rng = np.random.default_rng(seed)
    if kind == "cluster":
        n, cell, pbc = 9, np.eye(3) * 3.4, False
    else:
        n, cell, pbc = 4, np.array([[3.3, 0.0, 0.0], [0.7, 3.1, 0.0], [-0.4, 0.5, 3.5]]), True
    numbers = rng.choice([1, 6, 8], size=n)
    numbers[:3] = [1, 6, 8]
    return Atoms(numbers=numbers, scaled_positions=rng.random((n, 3)), cell=cell, pbc=pbc)


def values_and_gradients(module: SymmetryFunctions, atoms: Atoms, use_compiled: bool):
    """(G (N, W), d(sum G * P)/dpos, d(...)/dcell or None) with a fixed projection P."""
    module.compiled = use_compiled
    batch = collate_structures([atoms_to_molecule(atoms, targets=False)], module.cutoff)
    batch.pos = batch.pos.to(F64).requires_grad_()
    leaves = [batch.pos]
    if batch.cell is not None:
        batch.cell = batch.cell.to(F64).requires_grad_()
        leaves.append(batch.cell)
    out = module.raw(batch, edge_vectors(batch))
    if use_compiled:
        assert module.all_fused() and "FusedFunctions" in out.grad_fn.name()
    projection = torch.linspace(-1.0, 2.0, out.numel(), dtype=F64).view_as(out)
    grads = torch.autograd.grad((out * projection).sum(), leaves)
    return out.detach(), grads[0], (grads[1] if len(grads) > 1 else None)


def module_of(specs: list, elements: list[int]) -> SymmetryFunctions:
    return SymmetryFunctions(elements, [specs for _ in elements], cutoff_type=1).double().eval()


def assert_same(specs: list, atoms: Atoms) -> float:
    module = module_of(specs, [1, 6, 8])
    expected = values_and_gradients(module, atoms, use_compiled=False)
    ours = values_and_gradients(module, atoms, use_compiled=True)
    scale = float(expected[0].abs().max())
    torch.testing.assert_close(ours[0], expected[0], rtol=1e-12, atol=1e-13 * scale)
    for mine, theirs in zip(ours[1:], expected[1:], strict=True):
        if theirs is None:
            assert mine is None
            continue
        torch.testing.assert_close(mine, theirs, rtol=1e-11, atol=1e-12 * float(theirs.abs().max()))
    return scale


@pytest.mark.parametrize("type_", [20, 21, 22, 23, 24, 25])
@pytest.mark.parametrize("kind", ["cluster", "periodic"])
def test_compiled_equals_pytorch_path(type_: int, kind: str) -> None:
    specs = make_specs(type_, WINDOWS, ANGLES, PAIRS[type_])
    for seed in range(2):
        assert assert_same(specs, structure(kind, seed)) > 0.1  # the functions are exercised


def test_function_order_and_incomplete_grids() -> None:
    """Shuffled functions, a grid with missing cells and a repeated function: the kernel's cells."""
    specs = make_specs(22, WINDOWS[:4], ANGLES[:4], PAIRS[22][:2])
    g = torch.Generator().manual_seed(3)
    shuffled = [specs[k] for k in torch.randperm(len(specs), generator=g)]
    variant = shuffled[5:] + [shuffled[7]] + make_specs(25, WINDOWS[4:6], ANGLES[2:], PAIRS[25])
    assert_same(variant, structure("cluster", 4))


def test_mixed_with_gaussian_functions() -> None:
    """Gaussian (types 2, 3, 9) and compact functions in one message: both walks add up."""

    def gaussian(type_: int, neighbors: list[str], **fields) -> SimpleNamespace:
        values = {"rc": 3.0, "rs": 0.0, "lambda_": 1.0, "zeta": 1.0, **fields}
        return SimpleNamespace(type=type_, neighbors=neighbors, **values)

    specs = [gaussian(2, ["H"], eta=0.5), gaussian(2, ["O"], eta=1.2, rs=0.8)]
    specs += [gaussian(3, ["C", "H"], eta=0.3, lambda_=-1.0, zeta=2.0), gaussian(9, ["H", "H"], eta=0.1)]
    specs += make_specs(20, WINDOWS[:3], [], PAIRS[20]) + make_specs(22, WINDOWS[3:6], ANGLES[:3], PAIRS[22])
    for kind in ("cluster", "periodic"):
        assert_same(specs, structure(kind, 5))


@pytest.mark.parametrize("type_", [22, 24])
def test_compiled_gradients_match_finite_differences(type_: int) -> None:
    specs = make_specs(type_, WINDOWS[:5], ANGLES[:4], PAIRS[type_])
    module = module_of(specs, [1, 6, 8])
    atoms = structure("cluster", 6)
    _, grad, _ = values_and_gradients(module, atoms, use_compiled=True)

    def projected(positions: np.ndarray) -> float:
        moved = atoms.copy()
        moved.positions = positions
        with torch.no_grad():
            batch = collate_structures([atoms_to_molecule(moved, targets=False)], module.cutoff)
            out = module.raw(batch, edge_vectors(batch))
        return float((out * torch.linspace(-1.0, 2.0, out.numel(), dtype=F64).view_as(out)).sum())

    h = 1e-4  # five-point central differences, error O(h^4)
    numeric = np.zeros_like(atoms.positions)
    for atom in range(len(atoms)):
        for c in range(3):
            step = np.zeros_like(atoms.positions)
            step[atom, c] = h
            f = [projected(atoms.positions + k * step) for k in (-2, -1, 1, 2)]
            numeric[atom, c] = (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * h)
    scale = float(grad.abs().max())
    assert scale > 1e-2
    np.testing.assert_allclose(grad.numpy(), numeric, rtol=1e-6, atol=1e-8 * scale)


@pytest.mark.parametrize("type_", [21, 22, 24])
@pytest.mark.parametrize("cores", ["mixed", "p2"])
def test_many_partners_per_edge(type_: int, cores: str) -> None:
    """A 48-atom cluster (0 to 13 partners per edge and neighbour pair: the walks run their
    partner loops to a multiple of 8 and must ignore the extra lanes, which hold other blocks'
    partners or padding) with angle windows of mixed cores (one loop per window) or of one core
    in a group of four (three windows per loop, then a short block)."""
    rng = np.random.default_rng(11)
    numbers = rng.choice([1, 6, 8], size=48, p=[0.5, 0.3, 0.2])
    positions = rng.random((48, 3)) * 6.0
    atoms = Atoms(numbers=numbers, positions=positions, pbc=False)
    windows = WINDOWS[:5] if cores == "mixed" else [w for w in WINDOWS if w[2] == "p2"]
    pairs = PAIRS[type_][:2]
    assert_same(make_specs(type_, windows, ANGLES[:4], pairs), atoms)
