"""Checks every potential must pass: forces, stress and invariances (after NequIP's model tests).

A :class:`Case` is a model, a neighbour-list cutoff and a few structures (:class:`Molecule`, with
node features if the model reads them). The ``check_*`` functions raise AssertionError on failure.
References come from outside :func:`mpnn.potentials.forces.evaluate`'s derivatives:

* forces: fourth-order central differences of the energy, -(E(-2h) - 8E(-h) + 8E(h) - E(2h))/(12h),
  each displaced structure with its own, rebuilt neighbour list (truncation O(h^4));
* stress: the same differences of E along a symmetric strain applied to positions and cell,
  divided by the volume (ASE's ``calculate_numerical_stress`` convention);
* invariances: the same structure rotated, translated, permuted, or with atoms moved by lattice
  vectors must give the same energies (and forces transformed accordingly);
* smoothness at the cutoff: an atom moved across each radius where the model's terms switch on
  (its ``radii``, by default the cutoff) changes energy and forces continuously (MD conserves
  energy only then);
* isolated atoms: an atom alone has a finite energy and zero force, and an atom beyond the cutoff
  of every other adds its own energy and changes no force (locality).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from mpnn.batch import Molecule
from mpnn.data.atoms import collate_structures
from mpnn.potentials.forces import VOIGT, evaluate, to_voigt


@dataclass
class Case:
    """A model and the structures to check it on.

    ``atol``: absolute tolerance (eV, eV/A) of exact identities (invariances, batching);
    ``fd_atol``: of the finite-difference comparisons; ``h``: the displacement in Angstrom
    (strain for stress); ``fd_atoms``: how many atoms per structure the force check displaces.
    """

    name: str
    model: nn.Module
    cutoff: float
    structures: list[Molecule]
    atol: float = 1e-10
    fd_atol: float = 1e-7
    h: float = 1e-3
    fd_atoms: int = 3
    external_field: bool = False
    skip: set[str] = field(default_factory=set)
    radii: tuple[float, ...] = ()

    def switching_radii(self) -> tuple[float, ...]:
        """The radii where the model's terms switch on: ``radii``, the model's own (``radii()``,
        Angstrom), or its cutoff."""
        if self.radii:
            return self.radii
        if callable(getattr(self.model, "radii", None)):
            return tuple(self.model.radii())
        return (float(getattr(self.model, "cutoff", self.cutoff)),)


def run(case: Case, structures: list[Molecule], **kw) -> dict[str, torch.Tensor]:
    batch = collate_structures(structures, case.cutoff).to(dtype=torch.float64)
    return evaluate(case.model, batch, **kw)


def has_volume(mol: Molecule) -> bool:
    return mol.cell is not None and abs(float(torch.linalg.det(mol.cell))) > 1e-9


def _energy(case: Case, mol: Molecule) -> float:
    return float(run(case, [mol], forces=False)["energy"][0])


def _central(f: Callable[[float], float], h: float) -> float:
    """df/dx at 0 by the fourth-order central stencil."""
    return (f(-2 * h) - 8 * f(-h) + 8 * f(h) - f(2 * h)) / (12 * h)


def check_forces_fd(case: Case) -> None:
    """F = -dE/dr equals finite differences, for ``fd_atoms`` atoms of every structure."""
    for mol in case.structures:
        forces = run(case, [mol])["forces"]
        atoms = torch.linspace(0, mol.num_atoms - 1, min(case.fd_atoms, mol.num_atoms)).round().long()
        for i in atoms.tolist():
            for k in range(3):

                def energy(dx: float, i: int = i, k: int = k, mol: Molecule = mol) -> float:
                    pos = mol.pos.clone()
                    pos[i, k] += dx
                    return _energy(case, replace(mol, pos=pos))

                reference = -_central(energy, case.h)
                assert abs(float(forces[i, k]) - reference) <= case.fd_atol, (
                    f"{case.name}: atom {i} axis {k}: force {float(forces[i, k])} vs FD {reference}"
                )


def strained(mol: Molecule, eps: torch.Tensor) -> Molecule:
    """pos (I + eps), cell (I + eps)."""
    deform = torch.eye(3, dtype=torch.float64) + eps
    return replace(mol, pos=mol.pos @ deform, cell=None if mol.cell is None else mol.cell @ deform)


def check_stress_fd(case: Case) -> None:
    """Stress (Voigt) equals (1/V) dE/d(strain) by finite differences, for structures with a 3-D cell."""
    checked = 0
    for mol in case.structures:
        if not has_volume(mol):
            continue
        checked += 1
        stress = run(case, [mol], forces=False, stress=True)["stress"][0]
        volume = abs(float(torch.linalg.det(mol.cell)))
        for v, (a, b) in enumerate(VOIGT):

            def energy(x: float, a: int = a, b: int = b, mol: Molecule = mol) -> float:
                eps = torch.zeros(3, 3, dtype=torch.float64)
                eps[a, b] += x / 2
                eps[b, a] += x / 2
                return _energy(case, strained(mol, eps))

            reference = _central(energy, case.h) / volume
            assert abs(float(stress[v]) - reference) <= case.fd_atol, (
                f"{case.name}: stress component {v}: {float(stress[v])} vs FD {reference}"
            )
    assert checked, f"{case.name}: no structure with a 3-D cell to check the stress on"


def check_force_sum(case: Case) -> None:
    """Forces of each structure sum to zero (translation invariance), unless in an external field."""
    if case.external_field:
        return
    out = run(case, case.structures)
    for b, mol in enumerate(case.structures):
        total = out["forces"][out_slice(case, b)].sum(0)
        scale = max(1.0, float(out["forces"].abs().max()))
        assert total.abs().max() <= case.atol * scale * mol.num_atoms, f"{case.name}: sum of forces {total}"


def out_slice(case: Case, b: int) -> slice:
    sizes = [m.num_atoms for m in case.structures]
    return slice(sum(sizes[:b]), sum(sizes[: b + 1]))


def from_voigt(voigt: torch.Tensor) -> torch.Tensor:
    """(B, 6) -> (B, 3, 3) symmetric."""
    out = torch.zeros(voigt.shape[0], 3, 3, dtype=voigt.dtype)
    for v, (a, b) in enumerate(VOIGT):
        out[:, a, b] = out[:, b, a] = voigt[:, v]
    return out


def _compare(case: Case, got: dict, want: dict, what: str, maps: dict | None = None) -> None:
    """Every output in both ``got`` and ``want`` agrees, after ``maps[key]`` applied to ``want``."""
    maps = maps or {}
    for key in sorted(set(got) & set(want)):
        expected = maps.get(key, lambda x: x)(want[key])
        torch.testing.assert_close(
            got[key], expected, atol=case.atol, rtol=0, msg=f"{case.name}: {what}: {key}"
        )


def random_rotation(generator: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    return q if torch.det(q) > 0 else -q


def check_rotation(case: Case) -> None:
    """E(pos R^T, cell R^T) = E; F' = F R^T; the stress becomes R sigma R^T."""
    generator = torch.Generator().manual_seed(11)
    rot = random_rotation(generator)
    rotated = [
        replace(m, pos=m.pos @ rot.T, cell=None if m.cell is None else m.cell @ rot.T)
        for m in case.structures
    ]
    stress = all(map(has_volume, case.structures))
    want, got = run(case, case.structures, stress=stress), run(case, rotated, stress=stress)
    maps = {"forces": lambda f: f @ rot.T, "stress": lambda v: to_voigt(rot @ from_voigt(v) @ rot.T)}
    _compare(case, got, want, "rotation", maps)


def check_translation(case: Case) -> None:
    generator = torch.Generator().manual_seed(12)
    shift = torch.randn(3, generator=generator, dtype=torch.float64) * 3.0
    moved = [replace(m, pos=m.pos + shift) for m in case.structures]
    stress = all(map(has_volume, case.structures))
    _compare(case, run(case, moved, stress=stress), run(case, case.structures, stress=stress), "translation")


def check_permutation(case: Case) -> None:
    """Atom i of the permuted structure is atom perm[i]: energies equal, forces permuted."""
    generator = torch.Generator().manual_seed(13)
    perms = [torch.randperm(m.num_atoms, generator=generator) for m in case.structures]
    shuffled = [
        replace(m, z=m.z[p], pos=m.pos[p], x=m.x[p]) for m, p in zip(case.structures, perms, strict=True)
    ]
    want = run(case, case.structures, atomic=True)
    got = run(case, shuffled, atomic=True)
    offsets = torch.tensor([0] + [m.num_atoms for m in case.structures]).cumsum(0)[:-1]
    index = torch.cat([p + o for p, o in zip(perms, offsets.tolist(), strict=True)])
    _compare(case, got, want, "permutation", {"forces": lambda f: f[index], "energies": lambda e: e[index]})


def check_periodic_images(case: Case) -> None:
    """Moving atoms by whole lattice vectors (periodic directions) changes nothing."""
    generator = torch.Generator().manual_seed(14)
    wrapped, any_periodic = [], False
    for m in case.structures:
        if m.pbc is None or not bool(m.pbc.any()):
            wrapped.append(m)
            continue
        any_periodic = True
        n = torch.randint(-2, 3, (m.num_atoms, 3), generator=generator).to(torch.float64) * m.pbc
        wrapped.append(replace(m, pos=m.pos + n @ m.cell))
    assert any_periodic, f"{case.name}: no periodic structure"
    stress = all(map(has_volume, case.structures))
    want = run(case, case.structures, stress=stress, atomic=True)
    _compare(case, run(case, wrapped, stress=stress, atomic=True), want, "periodic images")


def check_batch_consistency(case: Case) -> None:
    """A structure alone, in a batch, and in the reversed batch: same energies, forces and stress."""
    stress = all(map(has_volume, case.structures))
    together = run(case, case.structures, stress=stress, atomic=True)
    reverse = run(case, case.structures[::-1], stress=stress, atomic=True)
    count = len(case.structures)
    for b, mol in enumerate(case.structures):
        alone = run(case, [mol], stress=stress, atomic=True)
        rb = count - 1 - b
        sizes = [m.num_atoms for m in case.structures[::-1]]
        rslice = slice(sum(sizes[:rb]), sum(sizes[: rb + 1]))
        for key, value in alone.items():
            per_atom = key in ("forces", "energies")
            mine = together[key][out_slice(case, b)] if per_atom else together[key][b : b + 1]
            theirs = reverse[key][rslice] if per_atom else reverse[key][rb : rb + 1]
            torch.testing.assert_close(mine, value, atol=case.atol, rtol=0, msg=f"{case.name}: {key} {b}")
            torch.testing.assert_close(theirs, value, atol=case.atol, rtol=0, msg=f"{case.name}: {key} {b}")


def cluster(mol: Molecule) -> Molecule:
    """The structure's atoms as a molecule (no cell)."""
    return replace(mol, cell=None, pbc=None)


def with_atom(mol: Molecule, source: int, position: torch.Tensor) -> Molecule:
    """``mol`` with one more atom at ``position``, a copy of atom ``source`` (element, features)."""
    return replace(
        mol,
        z=torch.cat([mol.z, mol.z[source : source + 1]]),
        pos=torch.cat([mol.pos, position.view(1, 3).to(mol.pos.dtype)]),
        x=torch.cat([mol.x, mol.x[source : source + 1]]),
        forces=None,
    )


def lone_atom(mol: Molecule, source: int) -> Molecule:
    """Atom ``source`` of ``mol`` alone (element, position, features)."""
    return Molecule(
        z=mol.z[source : source + 1],
        pos=mol.pos[source : source + 1],
        x=mol.x[source : source + 1],
        bonds=torch.zeros((0, 2), dtype=torch.long),
        bond_type=torch.zeros(0, dtype=torch.long),
    )


def one_of_each_element(mol: Molecule) -> list[int]:
    """The first atom of each element of ``mol``."""
    return sorted(int((mol.z == z).nonzero()[0]) for z in mol.z.unique().tolist())


def _probe(mol: Molecule, radius: float, radii: tuple[float, ...], seed: int) -> tuple[int, torch.Tensor]:
    """An atom B of ``mol`` and a unit vector u such that the point B + radius u is at least 1e-3
    from every radius of every other atom (so that only the pair with B crosses ``radius``)."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(200):
        u = torch.randn(3, generator=generator, dtype=torch.float64)
        u = u / u.norm()
        b = int((mol.pos @ u).argmax())  # every other atom lies behind B along u: farther than radius
        point = mol.pos[b] + radius * u
        others = torch.cat([mol.pos[:b], mol.pos[b + 1 :]])
        distances = (others - point).norm(dim=1)
        gaps = (distances.unsqueeze(1) - torch.tensor(radii, dtype=torch.float64)).abs()
        if others.numel() == 0 or float(gaps.min()) > 1e-3:
            return b, u
    raise AssertionError("no probe direction away from every radius")


def check_cutoff_smoothness(case: Case) -> None:
    """A probe atom at r_c - delta and r_c + delta from atom B (delta = 1e-6 A), for every switching
    radius r_c and every element of the probe: energies within 1e-8 eV and forces within 1e-4 eV/A of
    each other. A term that jumps at r_c changes the energy by its size; one whose derivative jumps,
    the forces."""
    radii = case.switching_radii()
    delta = 1e-6
    for k, mol in enumerate(case.structures[:2]):
        base = cluster(mol)
        for radius in radii:
            b, u = _probe(base, radius, radii, seed=20 + k)
            for element in one_of_each_element(base):  # the probe: a copy of this atom
                inside, outside = (
                    run(case, [with_atom(base, element, base.pos[b] + (radius + s * delta) * u)])
                    for s in (-1.0, 1.0)
                )
                what = f"r = {radius:g} between Z = {int(base.z[b])} and Z = {int(base.z[element])}"
                jump = abs(float(inside["energy"][0] - outside["energy"][0]))
                assert jump <= 1e-8, f"{case.name}: energy jumps by {jump:.3g} eV at {what}"
                kink = float((inside["forces"] - outside["forces"]).abs().max())
                assert kink <= 1e-4, f"{case.name}: forces jump by {kink:.3g} eV/A at {what}"


def check_isolated_atoms(case: Case) -> None:
    """An atom alone: finite energy, zero force. An atom 1 A beyond the cutoff of the nearest atom of
    a cluster: the energy is the cluster's plus the lone atom's, the cluster's forces unchanged."""
    mol = cluster(case.structures[0])
    far = max(case.switching_radii()) + 1.0
    for b in one_of_each_element(mol):
        single = run(case, [lone_atom(mol, b)])
        assert torch.isfinite(single["energy"]).all(), f"{case.name}: lone atom Z={int(mol.z[b])}: energy"
        assert float(single["forces"].abs().max()) == 0.0, f"{case.name}: lone atom: force"
        u = torch.tensor([0.6, -0.48, 0.64], dtype=torch.float64)
        start = int((mol.pos @ u).argmax())
        joined = with_atom(mol, b, mol.pos[start] + far * u)
        together, apart = run(case, [joined]), run(case, [mol])
        torch.testing.assert_close(
            together["energy"], apart["energy"] + single["energy"], atol=case.atol, rtol=0,
            msg=f"{case.name}: cluster + lone atom Z={int(mol.z[b])}: energy not additive",
        )  # fmt: skip
        torch.testing.assert_close(together["forces"][:-1], apart["forces"], atol=case.atol, rtol=0)
        assert float(together["forces"][-1].abs().max()) == 0.0, f"{case.name}: far atom: force"


CHECKS: dict[str, Callable[[Case], None]] = {
    "forces_fd": check_forces_fd,
    "stress_fd": check_stress_fd,
    "force_sum": check_force_sum,
    "rotation": check_rotation,
    "translation": check_translation,
    "permutation": check_permutation,
    "periodic_images": check_periodic_images,
    "batch_consistency": check_batch_consistency,
    "cutoff_smoothness": check_cutoff_smoothness,
    "isolated_atoms": check_isolated_atoms,
}


def run_check(case: Case, check: str) -> None:
    """Run one named check unless the case opts out of it (e.g. no periodic structure)."""
    if check not in case.skip:
        CHECKS[check](case)
