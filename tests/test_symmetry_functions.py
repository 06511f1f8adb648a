"""Symmetry functions of the engine against a direct per-atom loop over n2p2's formulas.

The reference below is written from n2p2's definitions (SymFncExpRad, SymFncExpAngn/Angw and
their weighted forms; CutoffFunction), one atom, neighbour and pair at a time, in float64.
Both the PyTorch path and the compiled kernels are compared with it, and their gradients with
finite differences.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from mpnn.batch import Batch
from mpnn.inputs import edge_vectors
from mpnn.messages.symmetry_functions import SymmetryFunctions
from mpnn.symmetry import compiled
from mpnn.symmetry.cutoffs import CutoffFunction
from mpnn.symmetry.spec import SymmetryFunctionSpec

TANH1 = math.tanh(1.0)


def reference_cutoff(kind: int, r: float, rc: float, alpha: float) -> float:
    if r >= rc:
        return 0.0
    if kind == 0:
        return 1.0
    if kind == 2:
        return math.tanh(1 - r / rc) ** 3
    if kind == 3:
        return (math.tanh(1 - r / rc) / TANH1) ** 3
    if r < alpha * rc:
        return 1.0
    x = (r - alpha * rc) / (rc - alpha * rc)
    return {
        1: lambda: 0.5 * (math.cos(math.pi * x) + 1),
        4: lambda: math.exp(1 - 1 / (1 - x * x)),
        5: lambda: (2 * x - 3) * x * x + 1,
        6: lambda: ((15 - 6 * x) * x - 10) * x**3 + 1,
        7: lambda: (x * (x * (20 * x - 70) + 84) - 35) * x**4 + 1,
        8: lambda: (x * (x * ((315 - 70 * x) * x - 540) + 420) - 126) * x**5 + 1,
    }[kind]()


@pytest.mark.parametrize("kind", range(9))
def test_cutoff_functions_match_n2p2_formulas(kind):
    alpha = 0.3 if kind in (1, 4, 5, 6, 7, 8) else 0.0
    rc = 4.5
    r = torch.linspace(0.01, 5.0, 301, dtype=torch.float64)
    ours = CutoffFunction(kind, alpha)(r, rc)
    expected = torch.tensor([reference_cutoff(kind, float(x), rc, alpha) for x in r], dtype=torch.float64)
    assert torch.allclose(ours, expected, rtol=1e-14, atol=1e-15)


def _structure(seed: int = 0, n: int = 9) -> Batch:
    g = np.random.default_rng(seed)
    pos = g.uniform(0, 4.0, size=(n, 3))
    z = torch.tensor(g.choice([1, 8], size=n))
    pairs = [(j, i) for i in range(n) for j in range(n) if i != j]  # (source, target), sorted by target
    pairs.sort(key=lambda p: (p[1], p[0]))
    return Batch(
        z=z,
        pos=torch.tensor(pos),
        x=torch.zeros(n, 0),
        edge_index=torch.tensor(pairs).T,
        edge_type=torch.zeros(len(pairs), dtype=torch.long),
        batch=torch.zeros(n, dtype=torch.long),
        ptr=torch.tensor([0, n]),
    )


SPECS = [
    dict(type=2, neighbors=["H"], eta=0.5, rs=0.8, rc=3.5),
    dict(type=2, neighbors=["O"], eta=0.2, rs=0.0, rc=4.0),
    dict(type=12, neighbors=[], eta=0.3, rs=0.5, rc=3.8),
    dict(type=3, neighbors=["H", "O"], eta=0.1, rs=0.0, lambda_=1.0, zeta=2.0, rc=3.6),
    dict(type=3, neighbors=["H", "H"], eta=0.05, rs=0.7, lambda_=-1.0, zeta=1.0, rc=4.0),
    dict(type=3, neighbors=["O", "O"], eta=0.05, rs=0.0, lambda_=1.0, zeta=4.5, rc=3.9),
    dict(type=9, neighbors=["H", "O"], eta=0.2, rs=0.3, lambda_=-1.0, zeta=3.0, rc=3.7),
    dict(type=9, neighbors=["O", "O"], eta=0.01, rs=0.0, lambda_=1.0, zeta=1.0, rc=3.0),
    dict(type=13, neighbors=[], eta=0.02, rs=0.2, lambda_=1.0, zeta=2.0, rc=3.8),
]


def reference_values(batch: Batch, specs, kind: int, alpha: float) -> np.ndarray:
    pos, z = batch.pos.numpy(), batch.z.numpy()
    symbol = {1: "H", 8: "O"}
    out = np.zeros((len(z), len(specs)))
    for i, (f, s) in itertools.product(range(len(z)), enumerate(specs)):
        others = [j for j in range(len(z)) if j != i]

        def fc(r, s=s):
            return reference_cutoff(kind, r, s["rc"], alpha)

        if s["type"] in (2, 12):
            for j in others:
                r = np.linalg.norm(pos[j] - pos[i])
                if r < s["rc"] and (s["type"] == 12 or symbol[z[j]] == s["neighbors"][0]):
                    w = z[j] if s["type"] == 12 else 1.0
                    out[i, f] += w * math.exp(-s["eta"] * (r - s["rs"]) ** 2) * fc(r)
            continue
        for j, k in itertools.combinations(others, 2):
            if s["type"] != 13 and sorted([symbol[z[j]], symbol[z[k]]]) != sorted(s["neighbors"]):
                continue
            u, v = pos[j] - pos[i], pos[k] - pos[i]
            rij, rik, rjk = np.linalg.norm(u), np.linalg.norm(v), np.linalg.norm(v - u)
            if rij >= s["rc"] or rik >= s["rc"]:
                continue
            narrow = s["type"] in (3, 13)
            if narrow and rjk >= s["rc"]:
                continue
            base = 1.0 + s["lambda_"] * u @ v / (rij * rik)
            if base <= 0.0:
                continue
            square = (rij - s["rs"]) ** 2 + (rik - s["rs"]) ** 2 + (narrow * (rjk - s["rs"]) ** 2)
            term = 2 ** (1 - s["zeta"]) * base ** s["zeta"] * math.exp(-s["eta"] * square) * fc(rij) * fc(rik)
            if narrow:
                term *= fc(rjk)
            out[i, f] += term * (z[j] * z[k] if s["type"] == 13 else 1.0)
    return out


def _module(kind: int, alpha: float, use_compiled: bool | str) -> SymmetryFunctions:
    """``use_compiled``: False (PyTorch), True (the per-group angular kernels of training mode) or
    ``"fused"`` (eval mode: every Gaussian family in one compiled call, :mod:`mpnn.symmetry.fused`)."""
    specs = [SymmetryFunctionSpec.from_dict(s) for s in SPECS]
    module = SymmetryFunctions([1, 8], [specs, specs], kind, alpha)
    module.compiled = bool(use_compiled)
    module.train(use_compiled != "fused")
    return module


PATHS = [False] + ([True, "fused"] if compiled.available() else [])


@pytest.mark.parametrize("use_compiled", PATHS)
@pytest.mark.parametrize("kind,alpha", [(0, 0.0), (1, 0.2), (2, 0.0), (3, 0.0), (4, 0.1), (6, 0.0), (8, 0.4)])
def test_values_match_the_reference_loop(kind, alpha, use_compiled):
    batch = _structure(seed=kind)
    module = _module(kind, alpha, use_compiled)
    ours = module.raw(batch, edge_vectors(batch)).detach().numpy()
    expected = reference_values(batch, SPECS, kind, alpha)
    assert np.abs(ours - expected).max() <= 1e-12 * max(1.0, np.abs(expected).max())


@pytest.mark.parametrize("use_compiled", PATHS)
@pytest.mark.parametrize("kind", [1, 2, 6])
def test_gradients_match_finite_differences(kind, use_compiled):
    batch = _structure(seed=10 + kind, n=7)
    module = _module(kind, 0.1 if kind == 1 else 0.0, use_compiled)
    weights = torch.randn(7, len(SPECS), dtype=torch.float64, generator=torch.Generator().manual_seed(kind))

    def loss(pos: torch.Tensor) -> torch.Tensor:
        b = Batch(**{**batch.__dict__, "pos": pos})
        return (module.raw(b, edge_vectors(b)) * weights).sum()

    pos = batch.pos.clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss(pos), pos)
    h = 1e-5
    numeric = torch.zeros_like(grad)
    for i, x in itertools.product(range(7), range(3)):
        step = torch.zeros_like(pos)
        step[i, x] = h
        with torch.no_grad():
            numeric[i, x] = (loss(batch.pos + step) - loss(batch.pos - step)) / (2 * h)
    assert torch.allclose(grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
def test_compiled_backward_falls_back_when_differentiated_twice():
    """Training on forces differentiates the backward pass; the compiled path hands it to PyTorch."""
    batch = _structure(seed=3, n=6)
    results = []
    for use_compiled in (True, "fused", False):
        module = _module(2, 0.0, use_compiled)
        pos = batch.pos.clone().requires_grad_()
        weights = torch.ones(6, len(SPECS), dtype=torch.float64, requires_grad=True)
        b = Batch(**{**batch.__dict__, "pos": pos})
        energy = (module.raw(b, edge_vectors(b)) * weights).sum()
        (force,) = torch.autograd.grad(energy, pos, create_graph=True)
        (dweights,) = torch.autograd.grad(force.square().sum(), weights)
        results.append(dweights)
    assert torch.allclose(results[0], results[2], rtol=1e-12, atol=1e-14)
    assert torch.allclose(results[1], results[2], rtol=1e-12, atol=1e-14)


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed")
def test_fused_gradients_of_two_live_graphs_are_their_own():
    """Two forward passes before their backward passes (each backward walks its own edges
    again): each gradient equals the one computed alone with the PyTorch path."""
    fused, reference = _module(2, 0.0, "fused"), _module(2, 0.0, False)
    batches = [_structure(seed=20, n=8), _structure(seed=21, n=6)]
    energies, inputs = [], []
    for batch in batches:
        pos = batch.pos.clone().requires_grad_()
        b = Batch(**{**batch.__dict__, "pos": pos})
        energies.append(fused.raw(b, edge_vectors(b)).sum())
        inputs.append(pos)
    for batch, energy, pos in zip(batches, energies, inputs, strict=True):
        (grad,) = torch.autograd.grad(energy, pos)
        alone = batch.pos.clone().requires_grad_()
        b = Batch(**{**batch.__dict__, "pos": alone})
        (expected,) = torch.autograd.grad(reference.raw(b, edge_vectors(b)).sum(), alone)
        assert torch.allclose(grad, expected, rtol=1e-12, atol=1e-14)

