"""Forces and stress of ``mpnn.potentials.forces.evaluate``: the potential contract on small HDNNPs
(molecules, a periodic cell smaller than the cutoff, mixed periodicity), enn-s2s and n2p2's example
potentials; a Lennard-Jones model against ASE's own Lennard-Jones calculator."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.lj import LennardJones as AseLennardJones
from potential_contract import CHECKS, Case, run_check
from small_potentials import TRICLINIC, mixed_structures, small_hdnnp, structure
from torch import nn

from mpnn.batch import collate
from mpnn.data.atoms import atoms_to_molecule, collate_structures, read_structures
from mpnn.inputs import edge_vectors
from mpnn.models import EnnS2SConfig, enn_s2s
from mpnn.neighbors import neighbor_list
from mpnn.potentials.forces import evaluate
from mpnn.scatter import segment_sum

UNITS = {"H2O_RPBE-D3": "bohr,hartree", "Cu2S_PBE": "angstrom,ev", "Anisole_SCAN": "bohr,hartree",
         "DMABN_SCAN": "bohr,hartree", "Ethylbenzene_SCAN": "bohr,hartree"}  # fmt: skip


# -- small models with random weights (tests/small_potentials.py) ----------------------------------
def hdnnp_molecules() -> Case:
    model = small_hdnnp(("H", "O"), rc=4.0, cutoff_type=2, seed=0)
    box = np.eye(3) * 3.5
    mols = [structure("OHH", box, [False] * 3, 1), structure("OOHHH", box, [False] * 3, 2),
            structure("HOHOHHO", box * 1.3, [False] * 3, 3)]  # fmt: skip
    return Case(
        "hdnnp_molecules", model, model.cutoff, mols, fd_atol=1e-8, skip={"stress_fd", "periodic_images"}
    )


def hdnnp_periodic() -> Case:
    """A 3-atom and a 4-atom triclinic cell of about 3 A with a 4.5 A cutoff: many images of each atom."""
    model = small_hdnnp(("H", "C", "O"), rc=4.5, cutoff_type=6, seed=1, weighted=True)
    mols = [
        structure("COH", TRICLINIC, [True] * 3, 4),
        structure("HCOH", np.array(TRICLINIC) * 1.1, [True] * 3, 5),
    ]
    return Case("hdnnp_periodic", model, model.cutoff, mols, fd_atol=1e-8, fd_atoms=2)


def hdnnp_mixed() -> Case:
    """A slab (periodic in a, b), a wire (periodic in a) and a molecule, in one batch."""
    model = small_hdnnp(("H", "O"), rc=4.0, cutoff_type=1, seed=2)
    return Case("hdnnp_mixed", model, model.cutoff, mixed_structures(), fd_atol=1e-8)


def enn_s2s_case() -> Case:
    """enn-s2s with distance edges (its output (B, 1) is the energy): molecules with the complete graph
    (cutoff 100 A) and a periodic cell with 2.4 A edges (no pair within 0.05 A of the cutoff)."""
    torch.manual_seed(3)
    model = enn_s2s(EnnS2SConfig(dim=16, edge_hidden=[10], steps=2, set2set_steps=2)).double()
    box = np.eye(3) * 3.0
    mols = [
        structure("CHHO", box, [False] * 3, 9, features=13),
        structure("CCOHHN", box, [False] * 3, 10, features=13),
    ]
    periodic = structure("CHO", np.array(TRICLINIC) * 1.2, [True] * 3, 11, features=13)
    cutoff = 2.4
    i, j, s = neighbor_list(periodic.pos.numpy(), cutoff + 0.05, periodic.cell.numpy(), [True] * 3)
    d = np.linalg.norm(periodic.pos.numpy()[j] - periodic.pos.numpy()[i] + s @ periodic.cell.numpy(), axis=1)
    assert np.abs(d - cutoff).min() > 0.05  # finite differences never move a pair across the cutoff
    # the edge network's ReLUs have kinks: small steps (rounding error ~1e-16 / h stays below 1e-10)
    # enn-s2s is a property model: no cutoff function (an edge appears with its full weight) and a
    # set2set readout (not a sum over atoms): neither smooth at the cutoff nor additive
    skip = {"stress_fd", "periodic_images", "cutoff_smoothness", "isolated_atoms"}
    molecules = Case("enn_s2s", model, 100.0, mols, fd_atol=1e-8, h=1e-5, fd_atoms=2, skip=skip)
    periodic_case = Case(
        "enn_s2s_periodic", model, cutoff, [periodic], fd_atol=1e-8, h=1e-5,
        skip={"cutoff_smoothness", "isolated_atoms"},
    )  # fmt: skip
    return molecules, periodic_case


CASES = {
    "hdnnp_molecules": hdnnp_molecules,
    "hdnnp_periodic": hdnnp_periodic,
    "hdnnp_mixed": hdnnp_mixed,
    "enn_s2s": lambda: enn_s2s_case()[0],
    "enn_s2s_periodic": lambda: enn_s2s_case()[1],
}


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("name", sorted(CASES))
def test_small_models_pass_the_potential_contract(name: str, check: str) -> None:
    run_check(CASES[name](), check)


def test_the_contract_catches_wrong_forces_and_a_broken_model() -> None:
    """The checks must be able to fail: a model that reads raw coordinates, forces of the wrong sign."""

    class ReadsCoordinates(nn.Module):
        cutoff = 2.4

        def forward(self, batch):
            x = batch.pos[:, 0]
            return segment_sum(x + x**2, batch.batch, batch.num_graphs)

    case = hdnnp_molecules()
    broken = replace(case, model=ReadsCoordinates())
    for check in ("rotation", "translation", "force_sum"):
        with pytest.raises(AssertionError):
            run_check(broken, check)

    class Flipped(nn.Module):
        """Energy -E with the forces of +E: evaluate's forces compared to FD must fail."""

        def __init__(self, inner):
            super().__init__()
            self.inner, self.cutoff = inner, inner.cutoff

        def forward(self, batch):
            energy = self.inner(batch)
            return energy.detach() * 2 - energy

    with pytest.raises(AssertionError):
        run_check(replace(case, model=Flipped(case.model)), "forces_fd")

    # a hard cutoff (n2p2's type 0): the energy jumps when an atom crosses it
    hard = small_hdnnp(("H", "O"), rc=4.0, cutoff_type=0, seed=0)
    with pytest.raises(AssertionError, match="energy jumps"):
        run_check(replace(case, model=hard), "cutoff_smoothness")
    # set2set reads all atoms at once: a far atom changes the others' energy
    with pytest.raises(AssertionError, match="not additive"):
        CHECKS["isolated_atoms"](replace(enn_s2s_case()[0], radii=(3.0,)))


# -- against ASE's Lennard-Jones ---------------------------------------------------------------------
class LennardJones(nn.Module):
    """E = 1/2 sum_{i != j} 4 eps [(s/r)^12 - (s/r)^6] - e(rc) over pairs closer than rc (ASE's form)."""

    def __init__(self, sigma: float, epsilon: float, rc: float) -> None:
        super().__init__()
        self.sigma, self.epsilon, self.cutoff = sigma, epsilon, rc
        self.register_buffer("dummy", torch.zeros((), dtype=torch.float64))

    def pair(self, r):
        return 4 * self.epsilon * ((self.sigma / r) ** 12 - (self.sigma / r) ** 6)

    def atomic_energies(self, batch):
        r = edge_vectors(batch).norm(dim=1)
        e = 0.5 * (self.pair(r) - self.pair(torch.tensor(self.cutoff, dtype=r.dtype)))
        return segment_sum(e, batch.edge_index[1], batch.num_atoms)

    def forward(self, batch):
        return segment_sum(self.atomic_energies(batch), batch.batch, batch.num_graphs)


def test_lennard_jones_matches_ase_energies_forces_and_stress() -> None:
    atoms = bulk("Ar", "fcc", a=5.3) * (2, 2, 1)
    atoms.rattle(0.1, seed=0)
    strain = np.array([[0.02, 0.01, 0.0], [0.01, -0.03, 0.02], [0.0, 0.02, 0.01]])
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)
    ase_lj = AseLennardJones(sigma=3.4, epsilon=0.0104, rc=8.0)
    atoms.calc = ase_lj
    model = LennardJones(3.4, 0.0104, 8.0)
    out = evaluate(model, collate_structures([atoms], 8.0), stress=True, atomic=True)
    np.testing.assert_allclose(out["energy"].numpy(), [atoms.get_potential_energy()], rtol=1e-12, atol=0)
    np.testing.assert_allclose(
        out["energies"].numpy(), atoms.get_potential_energies(), rtol=1e-10, atol=1e-14
    )
    np.testing.assert_allclose(out["forces"].numpy(), atoms.get_forces(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(out["stress"][0].numpy(), atoms.get_stress(), rtol=0, atol=1e-13)
    assert np.abs(atoms.get_stress()).max() > 1e-4  # a strained cell: the comparison is not 0 = 0


# -- evaluate's interface ----------------------------------------------------------------------------
def test_outputs_shapes_dtypes_and_stress_of_molecules_is_nan() -> None:
    case = hdnnp_mixed()
    out = evaluate(case.model, collate_structures(case.structures, case.cutoff), stress=True, atomic=True)
    n = sum(m.num_atoms for m in case.structures)
    assert out["energy"].shape == (3,) and out["forces"].shape == (n, 3) and out["stress"].shape == (3, 6)
    assert out["energies"].shape == (n,) and all(v.dtype == torch.float64 for v in out.values())
    torch.testing.assert_close(segment_sum(out["energies"], torch.repeat_interleave(torch.arange(3),
                               torch.tensor([4, 3, 5])), 3), out["energy"])  # fmt: skip
    assert torch.isfinite(out["stress"][:2]).all() and torch.isnan(out["stress"][2]).all()
    assert not any(v.requires_grad for v in out.values())
    with torch.no_grad():  # forces and stress do not depend on the caller's grad mode
        quiet = evaluate(
            case.model, collate_structures(case.structures, case.cutoff), stress=True, atomic=True
        )
    for key, value in out.items():
        torch.testing.assert_close(quiet[key], value, atol=0, rtol=0, equal_nan=True)
    assert out["forces"].abs().max() > 0.01
    only = evaluate(case.model, collate_structures(case.structures, case.cutoff), forces=False)
    assert set(only) == {"energy"}
    torch.testing.assert_close(only["energy"], out["energy"], atol=1e-12, rtol=0)


def test_a_model_with_several_outputs_is_refused() -> None:
    torch.manual_seed(0)
    model = enn_s2s(EnnS2SConfig(dim=16, edge_hidden=[8], num_targets=2)).double()
    mol = structure("CHO", np.eye(3) * 3, [False] * 3, 0, features=13)
    with pytest.raises(ValueError, match="2 values per structure"):
        evaluate(model, collate([mol]))


@pytest.mark.parametrize("name", ["enn_s2s", "hdnnp_periodic"])
def test_create_graph_trains_on_forces(name: str) -> None:
    """With create_graph, d(sum F^2)/d(weight) by autograd equals central differences in one weight."""
    if name == "enn_s2s":
        torch.manual_seed(0)
        model = enn_s2s(EnnS2SConfig(dim=16, edge_hidden=[8], steps=2, set2set_steps=1)).double()
        batch = collate([structure("CHHO", np.eye(3) * 3, [False] * 3, 1, features=13)])
    else:
        case = hdnnp_periodic()
        model, batch = case.model, collate_structures(case.structures, case.cutoff)

    def loss() -> torch.Tensor:
        return (evaluate(model, batch, stress=True, create_graph=True)["forces"] ** 2).sum()

    value = loss()
    assert value.requires_grad
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(value, params, allow_unused=True, materialize_grads=True)
    largest = [float(g.abs().max()) for g in grads]
    k = max(range(len(params)), key=largest.__getitem__)  # the weight the loss depends on most
    flat, i = params[k].view(-1), int(grads[k].abs().view(-1).argmax())
    exact, h = float(grads[k].view(-1)[i]), 1e-6
    with torch.no_grad():
        flat[i] += h
        up = float(loss())
        flat[i] -= 2 * h
        down = float(loss())
        flat[i] += h
    assert exact != 0.0
    assert abs(exact - (up - down) / (2 * h)) < 1e-6 * abs(exact)


# -- n2p2's example potentials ------------------------------------------------------------------------
def small_cut(atoms: Atoms, target: int = 30, min_dist: float = 0.8) -> Atoms:
    """About ``target`` atoms: a periodic sub-cell (fraction f of each lattice vector) whose atoms and
    images are at least ``min_dist`` A apart, or the ``target`` atoms nearest the centre of a molecule."""
    if not atoms.pbc.any():
        centre = atoms.positions.mean(0)
        order = np.argsort(np.linalg.norm(atoms.positions - centre, axis=1))
        return atoms[np.sort(order[:target])]
    f = (target / len(atoms)) ** (1 / 3)
    frac = atoms.get_scaled_positions()
    for origin in np.linspace(0.0, 1.0, 7, endpoint=False):
        inside = ((frac - origin) % 1.0 < f).all(axis=1)
        cut = Atoms(atoms.numbers[inside], cell=atoms.cell.array * f, pbc=True)
        cut.set_scaled_positions(((frac[inside] - origin) % 1.0) / f)
        if len(neighbor_list(cut.positions, min_dist, cut.cell.array, cut.pbc)[0]) == 0:
            return cut
    raise AssertionError("no clean cut")


#: Potentials with compact angular functions (types 21, 22) are checked on clusters: n2p2 sets a triplet
#: with |cos theta| = 1 to 0 (SymFncCompAngw.cpp) although windows centred at 0 or 180 degrees are 1
#: there, so in a periodic cell shorter than the cutoff the exactly collinear triplet (image -a, atom,
#: image +a) of every atom makes the energy depend on the rounding of cos theta (rotations change it).
COMPACT = {"Anisole_SCAN", "DMABN_SCAN", "Ethylbenzene_SCAN"}


@pytest.fixture(scope="module")
def n2p2_cases(n2p2_examples) -> dict[str, Case]:
    from mpnn.cli.options import parse_units
    from mpnn.potentials.load import load_potential

    cases = {}
    for name, units in UNITS.items():
        folder = n2p2_examples / "nnp-predict" / name
        unit = parse_units(units)
        model = load_potential(folder, units=unit)
        atoms = read_structures(folder / "input.data", units=unit)[0]
        if name in COMPACT:
            atoms.pbc = False
        cut = atoms_to_molecule(small_cut(atoms, target=14 if name in COMPACT else 30))
        shifted = replace(cut, pos=cut.pos + 0.05 * torch.sin(torch.arange(cut.num_atoms * 3.0)).view(-1, 3))
        skip = set() if atoms.pbc.any() else {"stress_fd", "periodic_images"}
        # the compact polynomials have discontinuous higher derivatives: a smaller finite-difference step
        h = 1e-4 if name in COMPACT else 1e-3
        cases[name] = Case(
            name, model, model.cutoff, [cut, shifted], atol=1e-9, fd_atol=2e-6, h=h, fd_atoms=2, skip=skip
        )
    return cases


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("name", sorted(UNITS))
def test_n2p2_potentials_pass_the_potential_contract(n2p2_cases, name: str, check: str) -> None:
    run_check(n2p2_cases[name], check)
