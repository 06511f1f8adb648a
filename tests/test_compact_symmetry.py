"""n2p2's compact symmetry functions (types 20-25) against a per-triplet loop of n2p2's formulas.

The reference below is written from n2p2's ``SymFncCompRad*.cpp``, ``SymFncCompAng[nw]*.cpp``,
``SymFncBaseComp*.cpp``, ``CompactFunction.h`` and ``CoreFunction.h``: plain Python loops over
neighbours j and pairs j < k with n2p2's window tests, independent of the torch code.  The
gradients are checked against central finite differences (float64).
"""

from __future__ import annotations

import math
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from mpnn.batch import Batch
from mpnn.errors import DataError
from mpnn.messages.symmetry_functions import SymmetryFunctions
from mpnn.symmetry import compiled
from mpnn.symmetry.compact import CompactAngular, CompactRadial, parse_subtype, segment_outer_sum
from mpnn.symmetry.cutoffs import CutoffFunction
from mpnn.symmetry.families import FAMILIES
from mpnn.symmetry.triplets import pair_blocks, triplet_geometry

F64 = torch.float64
SYMBOLS = {1: "H", 6: "C", 8: "O"}

# ---------------------------------------------------------------- the reference (n2p2's formulas)


def ref_core(x: float, subtype: str, radial: bool) -> float:
    """CoreFunction::f; the "a" (asymmetric) flag only reaches the radial compact function."""
    if subtype[0] == "e":
        return math.e * math.exp(1.0 / (x * x - 1.0))
    if radial and subtype.endswith("a"):
        x = (2.0 - x) * x
    order = int(subtype[1])
    if order == 1:
        return (2.0 * x - 3.0) * x * x + 1.0
    if order == 2:
        return ((15.0 - 6.0 * x) * x - 10.0) * x * x * x + 1.0
    if order == 3:
        return (x * (x * (20.0 * x - 70.0) + 84.0) - 35.0) * x ** 4 + 1.0
    return (x * (x * ((315.0 - 70.0 * x) * x - 540.0) + 420.0) - 126.0) * x ** 5 + 1.0


def ref_compact(a: float, left: float, right: float, subtype: str, radial: bool) -> float:
    """CompactFunction::f after setLeftRight(left, right)."""
    centre, width = (right + left) / 2.0, (right - left) / 2.0
    return ref_core(abs((a - centre) * (1.0 / width)), subtype, radial)


def ref_symmetry_function(spec: SimpleNamespace, i: int, z: list[int], pos: list[list[float]]) -> float:
    """One symmetry function of atom i (a cluster: every other atom is a neighbour)."""
    neighbours = [j for j in range(len(z)) if j != i]
    d = {j: [pos[j][c] - pos[i][c] for c in range(3)] for j in neighbours}
    r = {j: math.sqrt(sum(x * x for x in d[j])) for j in neighbours}
    t, rl, rc, sub = spec.type, spec.rl, spec.rc, spec.subtype
    weighted = t in (23, 24, 25)
    wanted = [] if weighted else [SYMBOLS_INV[e] for e in spec.neighbors]
    total = 0.0
    if t in (20, 23):
        for j in neighbours:
            if (weighted or z[j] == wanted[0]) and rl < r[j] < rc:
                total += ref_compact(r[j], rl, rc, sub, True) * (z[j] if weighted else 1)
        return total
    e1, e2 = (None, None) if weighted else sorted(wanted)
    left, right = spec.angle_left * math.pi / 180.0, spec.angle_right * math.pi / 180.0
    r2l = rl * rl if rl > 0.0 else 0.0
    for a, j in enumerate(neighbours):
        if not (weighted or z[j] in (e1, e2)) or not rl < r[j] < rc:
            continue
        for k in neighbours[a + 1:]:
            if not (weighted or (z[j], z[k]) in ((e1, e2), (e2, e1))) or not rl < r[k] < rc:
                continue
            djk = [d[k][c] - d[j][c] for c in range(3)]
            rjk2 = sum(x * x for x in djk)
            if t in (21, 24) and (rjk2 >= rc * rc or rjk2 <= r2l):
                continue
            cos = sum(d[j][c] * d[k][c] for c in range(3)) / r[j] / r[k]
            if cos <= -1.0 or cos >= 1.0:
                continue
            theta = math.acos(cos)
            if theta <= left or theta >= right:
                continue
            term = ref_compact(r[j], rl, rc, sub, True) * ref_compact(r[k], rl, rc, sub, True)
            if t in (21, 24):
                term *= ref_compact(math.sqrt(rjk2), rl, rc, sub, True)
            term *= ref_compact(theta, left, right, sub, False)
            total += term * (z[j] * z[k] if weighted else 1)
    return total


SYMBOLS_INV = {v: k for k, v in SYMBOLS.items()}

# ---------------------------------------------------------------- our model on a cluster


def make_specs(type_: int, windows: list[tuple[float, float, str]], angles: list[tuple[float, float]],
               pairs: list[tuple[str, ...]]) -> list[SimpleNamespace]:
    """Specs of one type: every radial window x every angle window (angular) x neighbour selection."""
    specs = []
    for neighbors in pairs:
        for rl, rc, sub in windows:
            for left, right in angles if type_ not in (20, 23) else [(0.0, 0.0)]:
                specs.append(SimpleNamespace(type=type_, neighbors=list(neighbors), rl=rl, rc=rc, subtype=sub,
                                             angle_left=left, angle_right=right))
    return specs


def cluster_batch(z: list[int], pos: torch.Tensor) -> Batch:
    n = len(z)
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    mask = i != j
    centre, source = i[mask], j[mask]  # sorted by centre, then source
    zeros = torch.zeros(centre.numel(), dtype=torch.long)
    return Batch(z=torch.tensor(z), pos=pos, x=torch.zeros(n, 0), edge_index=torch.stack([source, centre]),
                 edge_type=zeros, batch=torch.zeros(n, dtype=torch.long), ptr=torch.tensor([0, n]))


def symmetry_functions(specs: list[SimpleNamespace], elements: list[int]) -> SymmetryFunctions:
    return SymmetryFunctions(elements, [specs for _ in elements], cutoff_type=1).double()


def raw(module: SymmetryFunctions, z: list[int], pos: torch.Tensor) -> torch.Tensor:
    batch = cluster_batch(z, pos)
    source, centre = batch.edge_index
    return module.raw(batch, pos[source] - pos[centre])


def random_cluster(seed: int, n: int = 8, box: float = 3.2) -> tuple[list[int], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z = [(1, 6, 8)[int(k)] for k in torch.randint(0, 3, (n,), generator=g)]
    return z, torch.rand(n, 3, generator=g, dtype=F64) * box


WINDOWS = [(-3.0, 3.0, "p2"), (-2.5, 2.5, "p2a"), (0.0, 2.6, "p1"), (0.8, 3.1, "p3a"), (-1.8, 1.8, "p4"),
           (0.5, 2.9, "e"), (-2.2, 2.2, "p1a"), (1.0, 2.4, "p4a")]
ANGLES = [(-90.0, 90.0), (90.0, 270.0), (0.0, 180.0), (0.0, 120.0), (49.1, 169.1), (20.0, 75.0)]
PAIRS = {20: [("H",), ("C",), ("O",)], 21: [("H", "H"), ("C", "H"), ("O", "C"), ("O", "O")],
         22: [("H", "H"), ("H", "C"), ("C", "O"), ("H", "O")], 23: [()], 24: [()], 25: [()]}


def check_against_reference(specs: list[SimpleNamespace], z: list[int], pos: torch.Tensor) -> int:
    module = symmetry_functions(specs, sorted(set(z)))
    ours = raw(module, z, pos)
    plain = pos.tolist()
    nonzero = 0
    for i in range(len(z)):
        expected = torch.tensor([ref_symmetry_function(s, i, z, plain) for s in specs], dtype=F64)
        torch.testing.assert_close(ours[i, :len(specs)], expected, rtol=1e-12, atol=1e-12)
        nonzero += int((expected != 0).sum())
    return nonzero


# ---------------------------------------------------------------- tests


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Many tiny tensors: one thread is much faster (and steadier on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("type_", [20, 21, 22, 23, 24, 25])
def test_values_match_n2p2_loop(type_: int) -> None:
    specs = make_specs(type_, WINDOWS, ANGLES, PAIRS[type_])
    for seed in range(3):
        z, pos = random_cluster(seed)
        nonzero = check_against_reference(specs, z, pos)
        assert nonzero > len(specs)  # the structures do exercise the functions


@pytest.mark.parametrize("type_", [21, 22, 25])
def test_function_order_is_free(type_: int) -> None:
    """The n2p2 order (outer product of the factors), a shuffled grid (outer product, then permuted)
    and an incomplete grid (gathered products) all give n2p2's values.  (p2 and p2a share their
    angular core, so their functions form one grid, as in n2p2's SCAN potentials.)"""
    windows = [(-3.0, 3.0, "p2"), (0.0, 2.6, "p2"), (-2.5, 2.5, "p2a"), (0.8, 3.1, "p2a")]
    specs = make_specs(type_, windows, ANGLES[:4], PAIRS[type_][:1])
    shuffled = [specs[k] for k in torch.randperm(len(specs), generator=torch.Generator().manual_seed(7))]
    partial = shuffled[3:]
    layouts = []
    for variant in (specs, shuffled, partial):
        terms = FAMILIES[type_].build(variant, CutoffFunction(1))
        layouts.append((terms.grid, terms.grid and terms.permuted))
    assert layouts == [(True, False), (True, True), (False, False)]
    z, pos = random_cluster(11)
    for variant in (specs, shuffled, partial):
        check_against_reference(variant, z, pos)


def edge_cluster() -> tuple[list[int], torch.Tensor]:
    """Around atom 0: pairs 1e-3 inside rc = 2.5 and rl = 0.8, a pair at the centre of the window
    [0.8, 2.5], angles 1e-3 to 2e-3 rad from the edges 60, 90 and 120 degrees of the angle windows."""
    rad = math.pi / 180.0

    def polar(r: float, theta: float) -> tuple[float, float, float]:
        return (r * math.cos(theta), r * math.sin(theta), 0.0)

    points = [(0.0, 0.0, 0.0), polar(2.5 - 1e-3, 0.0), polar(0.8 + 1e-3, 90 * rad - 1e-3),
              polar(1.9, 120 * rad + 2e-3), polar(1.65, -100 * rad), polar(2.0, 60 * rad + 1e-3),
              (-0.7, -1.1, -1.2)]
    return [6, 1, 8, 1, 6, 8, 1], torch.tensor(points, dtype=F64)


EDGE_WINDOWS = [(-2.5, 2.5, "p2"), (0.8, 2.5, "p2a"), (0.8, 2.5, "p1"), (0.0, 2.5, "e"), (0.8, 3.2, "p4")]
EDGE_ANGLES = [(-90.0, 90.0), (90.0, 270.0), (0.0, 120.0), (60.0, 180.0)]


@pytest.mark.parametrize("type_", [20, 21, 22, 23, 24, 25])
def test_edges_of_the_windows(type_: int) -> None:
    z, pos = edge_cluster()
    specs = make_specs(type_, EDGE_WINDOWS, EDGE_ANGLES, PAIRS[type_])
    check_against_reference(specs, z, pos)


@pytest.mark.parametrize("type_", [20, 21, 22, 23, 24, 25])
@pytest.mark.parametrize("structure", ["random", "edges"])
def test_gradients_match_finite_differences(type_: int, structure: str) -> None:
    if structure == "random":
        z, pos = random_cluster(3, n=6, box=2.6)
        specs = make_specs(type_, WINDOWS[:6], ANGLES[:4], PAIRS[type_])
    else:
        z, pos = edge_cluster()
        specs = make_specs(type_, EDGE_WINDOWS, EDGE_ANGLES, PAIRS[type_])
    module = symmetry_functions(specs, sorted(set(z)))
    weights = torch.randn(raw(module, z, pos).shape, generator=torch.Generator().manual_seed(5), dtype=F64)

    def projected(p: torch.Tensor) -> torch.Tensor:
        return (raw(module, z, p) * weights).sum()

    p = pos.clone().requires_grad_()
    (grad,) = torch.autograd.grad(projected(p), p)
    h = 1e-4  # five-point central differences, error O(h^4); the steps stay inside the windows
    numeric = torch.zeros_like(pos)
    with torch.no_grad():
        for atom in range(pos.shape[0]):
            for c in range(3):
                step = torch.zeros_like(pos)
                step[atom, c] = h
                f = [projected(pos + k * step) for k in (-2, -1, 1, 2)]
                numeric[atom, c] = (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * h)
    scale = float(grad.abs().max())
    assert scale > 1e-2  # the structure does exercise the functions
    torch.testing.assert_close(grad, numeric, rtol=1e-7, atol=1e-9 * scale)


def test_collinear_and_window_centre_have_finite_gradients() -> None:
    """cos = -1 and cos = +1 contribute 0 (n2p2 skips them); a pair at a window centre (x = 0)."""
    z = [6, 6, 6, 6]
    pos = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [-1.5, 0.0, 0.0], [2.0, 0.0, 0.0]], dtype=F64)
    windows = [(-3.0, 3.0, "p2"), (0.0, 2.0, "p2a"), (0.0, 3.0, "e")]
    specs = make_specs(22, windows, [(-90.0, 90.0), (90.0, 270.0)], [("C", "C")])
    specs += make_specs(20, [(0.0, 2.0, "p1a"), (-3.0, 3.0, "e")], [], [("C",)])
    module = symmetry_functions(specs, [6])
    check_against_reference(specs, z, pos)
    p = pos.clone().requires_grad_()
    (grad,) = torch.autograd.grad(raw(module, z, p).sum(), p)
    assert bool(torch.isfinite(grad).all())
    # all angles are 0 or 180 degrees: only the radial functions are non-zero
    assert float(raw(module, z, pos)[:, :6].abs().max()) == 0.0


def test_compact_windows_vanish_outside_and_at_the_bounds() -> None:
    windows = [(-2.0, 2.0, "p2a"), (0.5, 1.5, "p3"), (0.5, 1.5, "e")]
    module = CompactRadial(*zip(*windows, strict=True)).double()
    r = torch.tensor([0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5], dtype=F64)
    values = module(r, torch.ones_like(r))
    expected = torch.tensor([[ref_compact(x, lo, hi, s, True) if lo < x < hi else 0.0
                              for lo, hi, s in windows] for x in r.tolist()], dtype=F64)
    torch.testing.assert_close(values, expected, rtol=1e-14, atol=0.0)
    assert values[5:, 0].tolist() == [0.0, 0.0]  # r = rc and beyond
    assert values[:3, 1].tolist() == [0.0, 0.0, 0.0] and values[4:, 1].tolist() == [0.0, 0.0, 0.0]
    # at the window centres, C(0) = 1
    assert float(values[0, 0]) == 1.0 and float(values[3, 1]) == 1.0 and float(values[3, 2]) == 1.0


@pytest.mark.parametrize("word", ["p5", "p2b", "p", "q2", "poly2", "", "p1aa"])
def test_unknown_subtype_is_a_data_error(word: str) -> None:
    with pytest.raises(DataError, match="unsupported"):
        parse_subtype(word)
    spec = make_specs(20, [(0.0, 2.0, word)], [], [("H",)])[0]
    with pytest.raises(DataError, match="unsupported"):
        FAMILIES[20].build([spec], CutoffFunction(1))


def test_known_subtypes() -> None:
    assert parse_subtype("p2") == ("poly2", False)
    assert parse_subtype("p4a") == ("poly4", True)
    assert parse_subtype("e") == ("exp", False) and parse_subtype("exp") == ("exp", False)


def test_bad_windows_are_data_errors() -> None:
    for left, right in [(30.0, 30.0), (-20.0, 60.0), (100.0, 200.0), (-200.0, 200.0)]:
        with pytest.raises(DataError, match="angle window"):
            CompactAngular([0.0], [2.0], [left], [right], ["p2"], narrow=False)
    # windows centred at 0 or 180 degrees may reach beyond [0, 180]
    CompactAngular([0.0, 0.0], [2.0, 2.0], [-30.0, 150.0], [30.0, 210.0], ["p2", "p2"], narrow=False)
    for rl, rc in [(2.0, 2.0), (3.0, 2.0)]:
        with pytest.raises(DataError, match="rl = .* must be below rc"):
            CompactRadial([rl], [rc], ["p2"])
        with pytest.raises(DataError, match="rl = .* must be below rc"):
            CompactAngular([rl], [rc], [0.0], [180.0], ["p2"], narrow=True)


def test_registered_on_import_of_families() -> None:
    code = "from mpnn.symmetry.families import FAMILIES; print(sorted(t for t in FAMILIES if t >= 20))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[20, 21, 22, 23, 24, 25]"
    flags = {t: (FAMILIES[t].angular, FAMILIES[t].weighted) for t in range(20, 26)}
    assert flags == {20: (False, False), 21: (True, False), 22: (True, False), 23: (False, True),
                     24: (True, True), 25: (True, True)}
    built = {t: FAMILIES[t].build(make_specs(t, WINDOWS[:1], ANGLES[:1], PAIRS[t][:1]), CutoffFunction(1))
             for t in (21, 22, 24, 25)}
    narrow = {t: module.narrow for t, module in built.items()}
    assert narrow == {21: True, 22: False, 24: True, 25: False}


@pytest.mark.parametrize("uneven", [False, True])
def test_segment_outer_sum_against_a_loop(uneven: bool) -> None:
    g = torch.Generator().manual_seed(3)
    segment = torch.randint(0, 6, (40,), generator=g)  # unsorted, segment 6 and maybe others empty
    if uneven:  # one long segment: the padded product would waste too much, the fallback is used
        segment = torch.cat([segment, torch.full((3000,), 2)])
    left = torch.randn(segment.numel(), 3, generator=g, dtype=F64)
    right = torch.randn(segment.numel(), 4, generator=g, dtype=F64)
    expected = torch.zeros(7, 3, 4, dtype=F64)
    for t in range(segment.numel()):
        expected[segment[t]] += torch.outer(left[t], right[t])
    torch.testing.assert_close(segment_outer_sum(left, right, segment, 7), expected, rtol=1e-12, atol=1e-12)
    empty = segment_outer_sum(left[:0], right[:0], segment[:0], 7)
    assert empty.shape == (7, 3, 4) and float(empty.abs().sum()) == 0.0


@pytest.mark.parametrize("type_", [21, 22, 24, 25])
@pytest.mark.parametrize("subset", [False, True])
def test_triplet_sums_equal_the_summed_terms(type_: int, subset: bool) -> None:
    """``triplet_sums`` (per-centre matrix products) = the engine's index_add of ``forward``, values
    and gradients; ``subset``: few triplets, so the radial factors are computed per triplet."""
    z, pos = random_cluster(5, n=8, box=3.0)
    specs = make_specs(type_, WINDOWS, ANGLES, PAIRS[type_][:2])
    terms = FAMILIES[type_].build(specs, CutoffFunction(1)).double()
    batch = cluster_batch(z, pos)
    source, centre = batch.edge_index
    a, b = pair_blocks(centre, torch.arange(centre.numel()), None, len(z))
    if subset:
        a, b = a[::9], b[::9]
        assert 2 * a.numel() < centre.numel()
    weights = batch.z[source].to(F64)
    sums = []
    for use_sums in (False, True):
        vectors = (pos[source] - pos[centre]).requires_grad_()
        if use_sums:
            out = terms.triplet_sums(vectors, a, b, centre, weights, len(z))
        else:
            values = terms(*triplet_geometry(vectors, a, b), weights[a], weights[b])
            out = torch.zeros(len(z), len(specs), dtype=F64).index_add(0, centre[a], values)
        projection = torch.linspace(-1.0, 2.0, out.numel(), dtype=F64).view_as(out)
        (grad,) = torch.autograd.grad((out * projection).sum(), vectors)
        sums.append((out.detach(), grad))
    assert float(sums[0][0].abs().max()) > 0.1
    torch.testing.assert_close(sums[1][0], sums[0][0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sums[1][1], sums[0][1], rtol=1e-12, atol=1e-11)


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
@pytest.mark.parametrize("type_", [20, 21, 22, 23, 24, 25])
def test_compiled_kernel_equals_the_pytorch_path(type_: int) -> None:
    """Values, gradients and the gradient of a force loss (the PyTorch path's backward) of the
    compiled kernel (mpnn.symmetry.compact_kernels) against the tensor path."""
    z, pos = random_cluster(11, n=9, box=3.0)
    specs = make_specs(type_, WINDOWS, ANGLES[:4], PAIRS[type_])
    results = []
    for use_compiled in (True, False):
        module = symmetry_functions(specs, sorted(set(z)))
        module.compiled = use_compiled
        weights = torch.randn(len(z), module.width, generator=torch.Generator().manual_seed(2), dtype=F64)
        scale = torch.ones((), dtype=F64, requires_grad=True)
        p = pos.clone().requires_grad_()
        values = raw(module, z, p)
        (grad,) = torch.autograd.grad((values * weights).sum() * scale, p, create_graph=True)
        (second,) = torch.autograd.grad(grad.square().sum(), scale)
        with torch.no_grad():
            plain = raw(module, z, pos)
        results.append((values.detach(), plain, grad.detach(), second))
    for ours, theirs in zip(*results, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
