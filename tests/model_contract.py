"""Checks every model of the package must pass (after NequIP's shared model tests).

``check_*`` functions take a model factory and raise AssertionError on failure.  They work
in float64 on small random molecules, so tolerances can be tight.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mpnn.batch import Molecule, collate

ModelFactory = Callable[[], nn.Module]


def seeded_factory(build: Callable[[], nn.Module], seed: int = 0) -> ModelFactory:
    """A factory giving the float64 model ``build()`` makes after seeding torch with ``seed``."""

    def make() -> nn.Module:
        torch.manual_seed(seed)
        return build().double()

    return make


def random_molecule(n: int, generator: torch.Generator, num_features: int = 13) -> Molecule:
    """n atoms spread so no pair is closer than ~0.9 Å, a random spanning tree of bonds."""
    pos = torch.empty(0, 3, dtype=torch.float64)
    while pos.shape[0] < n:
        trial = torch.randn(1, 3, generator=generator, dtype=torch.float64) * (1.0 + 0.4 * n) ** 0.5
        if pos.shape[0] == 0 or torch.cdist(trial, pos).min() > 0.9:
            pos = torch.cat([pos, trial])
    parents = [int(torch.randint(0, i, (1,), generator=generator)) for i in range(1, n)]
    bonds = torch.tensor([[p, i] for i, p in enumerate(parents, start=1)], dtype=torch.long).view(-1, 2)
    return Molecule(
        z=torch.randint(1, 10, (n,), generator=generator),
        pos=pos,
        x=torch.rand(n, num_features, generator=generator),
        bonds=bonds,
        bond_type=torch.randint(0, 4, (n - 1,), generator=generator),
        y=torch.zeros(1, dtype=torch.float64),
    )


def molecules(sizes=(3, 5, 8, 12), seed: int = 0) -> list[Molecule]:
    generator = torch.Generator().manual_seed(seed)
    return [random_molecule(n, generator) for n in sizes]


def predict(model: nn.Module, mols: list[Molecule]) -> torch.Tensor:
    return model(collate(mols, graph=model.graph).to(dtype=torch.float64))


def transformed(mol: Molecule, rotation: torch.Tensor, shift: torch.Tensor) -> Molecule:
    return Molecule(mol.z, mol.pos @ rotation.T + shift, mol.x, mol.bonds, mol.bond_type, mol.y)


def permuted(mol: Molecule, perm: torch.Tensor) -> Molecule:
    """Atom i of the result is atom perm[i] of mol; bonds follow the atoms."""
    inverse = torch.argsort(perm)
    bonds = torch.sort(inverse[mol.bonds], dim=1).values
    return Molecule(mol.z[perm], mol.pos[perm], mol.x[perm], bonds, mol.bond_type, mol.y)


def random_rotation(generator: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


def check_rotation_translation(factory: ModelFactory, atol: float = 1e-10) -> None:
    model, mols = factory(), molecules()
    generator = torch.Generator().manual_seed(1)
    rotation = random_rotation(generator)
    shift = torch.randn(3, generator=generator, dtype=torch.float64) * 5
    before = predict(model, mols)
    after = predict(model, [transformed(m, rotation, shift) for m in mols])
    torch.testing.assert_close(after, before, atol=atol, rtol=0)


def check_permutation(factory: ModelFactory, atol: float = 1e-10) -> None:
    model, mols = factory(), molecules()
    generator = torch.Generator().manual_seed(2)
    shuffled = [permuted(m, torch.randperm(m.num_atoms, generator=generator)) for m in mols]
    torch.testing.assert_close(predict(model, shuffled), predict(model, mols), atol=atol, rtol=0)


def check_batch_consistency(factory: ModelFactory, atol: float = 1e-10) -> None:
    """A structure gives the same prediction alone as inside a batch, in any batch position."""
    model, mols = factory(), molecules()
    together = predict(model, mols)
    alone = torch.cat([predict(model, [m]) for m in mols])
    reversed_order = predict(model, mols[::-1]).flip(0)
    torch.testing.assert_close(together, alone, atol=atol, rtol=0)
    torch.testing.assert_close(reversed_order, alone, atol=atol, rtol=0)


def check_position_gradient(factory: ModelFactory) -> None:
    """d(prediction)/d(positions) by autograd equals central finite differences."""
    model = factory()
    mol = molecules(sizes=(5,), seed=3)[0]
    batch = collate([mol], graph=model.graph).to(dtype=torch.float64)

    def output(pos: torch.Tensor) -> torch.Tensor:
        batch.pos = pos
        return model(batch).sum()

    assert torch.autograd.gradcheck(output, (batch.pos.clone().requires_grad_(True),), eps=1e-6, atol=1e-7)


CHECKS = {
    "rotation_translation": check_rotation_translation,
    "permutation": check_permutation,
    "batch_consistency": check_batch_consistency,
    "position_gradient": check_position_gradient,
}
