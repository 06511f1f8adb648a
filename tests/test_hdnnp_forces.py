"""The HDNNP's autograd-free forces (mpnn.potentials.hdnnp_forces) against the autograd path."""

from __future__ import annotations

import itertools

import pytest
import torch
from small_potentials import TRICLINIC, mixed_structures, small_hdnnp, structure

from mpnn.data.atoms import collate_structures
from mpnn.potentials.forces import evaluate
from mpnn.potentials.hdnnp_forces import evaluate_hdnnp
from mpnn.symmetry import compiled

pytestmark = pytest.mark.skipif(not compiled.available(), reason="numba is not installed")


def _both(model, batch, **kwargs):
    """(fast path, autograd path with the PyTorch symmetry functions) of the same call."""
    fast = evaluate_hdnnp(model, batch, kwargs.get("forces", True), kwargs.get("stress", False), True)
    model.symmetry_functions.compiled = False  # evaluate cannot take the fast path now
    try:
        slow = evaluate(model, batch, atomic=True, **kwargs)
    finally:
        model.symmetry_functions.compiled = True
    return fast, slow


@pytest.mark.parametrize("one_walk", [True, False])
@pytest.mark.parametrize("cutoff_type", [1, 2, 6])
def test_energies_forces_and_stress_equal_autograd(cutoff_type, one_walk, monkeypatch):
    """Both fast paths: one walk per centre with its network (small networks), and two walks
    around the networks run per element (networks above ONE_WALK_MAX_WEIGHTS)."""
    from mpnn.potentials import hdnnp_forces, hdnnp_numpy

    if not one_walk:
        monkeypatch.setattr(hdnnp_numpy, "ONE_WALK_MAX_WEIGHTS", 0)
    model = small_hdnnp(("H", "O"), 3.2, cutoff_type, seed=cutoff_type, weighted=True).eval()
    model.net.edge_input.unit = 0.8  # lengths of the functions in a unit of 0.8 Angstrom
    assert hdnnp_forces._small(model.update) == one_walk  # the path under test is the one taken
    structures = [*mixed_structures(), structure("OHHOHH", TRICLINIC, [True] * 3, 9)]
    batch = collate_structures(structures, model.cutoff).to(dtype=torch.float64)
    fast, slow = _both(model, batch, stress=True)
    assert fast is not None and set(fast) == set(slow)
    for key in ("energy", "energies", "forces"):
        assert torch.allclose(fast[key], slow[key], rtol=1e-12, atol=1e-12), key
    # slab, wire and periodic cell have a 3-D cell (a stress); the molecule's row is NaN
    assert torch.isfinite(slow["stress"][[0, 1, 3]]).all() and torch.isnan(slow["stress"][2]).all()
    assert torch.allclose(fast["stress"], slow["stress"], rtol=1e-12, atol=1e-13, equal_nan=True)
    # one periodic structure alone (the calculator's call: the virial as one product)
    alone = collate_structures(structures[3:], model.cutoff).to(dtype=torch.float64)
    fast, slow = _both(model, alone, stress=True)
    assert torch.allclose(fast["stress"], slow["stress"], rtol=1e-12, atol=1e-13)
    assert torch.allclose(fast["forces"], slow["forces"], rtol=1e-12, atol=1e-12)


def test_it_declines_where_autograd_is_needed():
    model = small_hdnnp(("H", "O"), 3.2, 2, seed=0)
    batch = collate_structures(mixed_structures(), model.cutoff).to(dtype=torch.float64)
    assert evaluate_hdnnp(model, batch, True, False, True) is None  # training mode
    model.eval()
    assert evaluate_hdnnp(model, batch.to(dtype=torch.float32), True, False, True) is None
    assert evaluate_hdnnp(model.float(), batch, True, False, True) is None
    model.double()
    assert evaluate_hdnnp(model, batch, True, False, True) is not None


@pytest.mark.parametrize("one_walk", [True, False])
@pytest.mark.parametrize("letters,normalize", [("tsp", False), ("rgc", True), ("Seh", False), ("lll", True)])
def test_every_activation_backpropagates_as_autograd_does(letters, normalize, one_walk, monkeypatch):
    from mpnn.potentials import hdnnp_numpy

    if not one_walk:
        monkeypatch.setattr(hdnnp_numpy, "ONE_WALK_MAX_WEIGHTS", 0)
    model = small_hdnnp(("H", "O"), 3.2, 2, seed=4).eval()
    for network in model.update.networks:
        network.activations, network.normalize = letters, normalize
    batch = collate_structures(mixed_structures(), model.cutoff).to(dtype=torch.float64)
    fast, slow = _both(model, batch)
    for key in ("energy", "energies", "forces"):
        assert torch.allclose(fast[key], slow[key], rtol=1e-12, atol=1e-12), key


@pytest.mark.parametrize("cutoff_type", [2, 6])
def test_groups_of_many_functions_per_gaussian_and_cutoff_equal_autograd(cutoff_type):
    """The walks treat the functions of one (eta, rs) and rc together (a run in the tables): groups
    of several lambda, zeta per Gaussian, two Gaussians, two cutoffs in one group, narrow and
    wide, integer and fractional zeta; energies, forces and stress against the PyTorch path."""
    from itertools import combinations_with_replacement

    from mpnn.models.hdnnp import HDNNPConfig, hdnnp

    torch.manual_seed(cutoff_type)
    elements = ("H", "O")
    specs = []
    for _ in elements:
        mine = [dict(type=2, neighbors=[n], eta=eta, rs=rs, rc=3.2) for n in elements for eta, rs in
                ((0.3, 0.0), (1.0, 1.5))]  # fmt: skip
        for kind, pair in itertools.product((3, 9), combinations_with_replacement(elements, 2)):
            for (eta, rs), rc, (lam, zeta) in itertools.product(
                ((0.05, 0.0), (0.4, 0.9)), (3.2, 2.6), ((1.0, 1.0), (-1.0, 2.0), (1.0, 4.5))
            ):
                angular = dict(eta=eta, rs=rs, lambda_=lam, zeta=zeta, rc=rc)
                mine.append(dict(type=kind, neighbors=list(pair), **angular))
        specs.append(mine)
    config = HDNNPConfig(list(elements), specs, cutoff_type=cutoff_type, nodes=[[8, 6]] * 2,
                         activations=["ttl"] * 2, scaling="none")  # fmt: skip
    model = hdnnp(config).eval()
    structures = [*mixed_structures(), structure("OHHOHH", TRICLINIC, [True] * 3, 9)]
    batch = collate_structures(structures, model.cutoff).to(dtype=torch.float64)
    fast, slow = _both(model, batch, stress=True)
    for key in ("energy", "energies", "forces"):
        assert torch.allclose(fast[key], slow[key], rtol=1e-12, atol=1e-12), key
    assert torch.allclose(fast["stress"], slow["stress"], rtol=1e-12, atol=1e-13, equal_nan=True)
    assert slow["forces"].abs().max() > 1e-3  # the functions do move the atoms


def test_integer_zeta_up_to_64_equals_autograd():
    """Integer zeta up to 64 (the walks raise 1 + lambda cos to zeta - 1 by squaring, from the
    bits of zeta - 1: 16, 37 and 64 set one, three and six of them) and zeta just above 64 (the
    general power): energies and forces against the PyTorch path."""
    from mpnn.models.hdnnp import HDNNPConfig, hdnnp

    torch.manual_seed(5)
    elements = ("H", "O")
    mine = [dict(type=2, neighbors=["O"], eta=0.3, rs=0.0, rc=3.2)]
    for zeta, lam in itertools.product((5.0, 16.0, 37.0, 64.0, 65.0), (1.0, -1.0)):
        mine += [dict(type=kind, neighbors=["H", "O"], eta=0.1, rs=0.0, lambda_=lam, zeta=zeta, rc=3.2)
                 for kind in (3, 9)]  # fmt: skip
    config = HDNNPConfig(list(elements), [mine, mine], cutoff_type=2, nodes=[[8, 6]] * 2,
                         activations=["ttl"] * 2, scaling="none")  # fmt: skip
    model = hdnnp(config).eval()
    batch = collate_structures(mixed_structures(), model.cutoff).to(dtype=torch.float64)
    fast, slow = _both(model, batch, stress=False)
    for key in ("energy", "energies", "forces"):
        assert torch.allclose(fast[key], slow[key], rtol=1e-12, atol=1e-12), key
    assert slow["forces"].abs().max() > 1e-3


def test_networks_follow_their_weights_after_copies_and_replaced_storage():
    """The fast path's networks use the weights the model holds now: after an in-place update, in
    a deep copy whose weights then change, after a float32 round trip of the networks with new
    weights, and after ``parameter.data = ...`` (new memory, the parameter objects kept)."""
    import copy

    model = small_hdnnp(("H", "O"), 3.2, 2, seed=0).eval()
    other = small_hdnnp(("H", "O"), 3.2, 2, seed=1).eval()
    batch = collate_structures(mixed_structures(), model.cutoff).to(dtype=torch.float64)

    def check(m):
        fast, slow = _both(m, batch)
        assert torch.allclose(fast["energy"], slow["energy"], rtol=1e-12, atol=1e-12)
        assert torch.allclose(fast["forces"], slow["forces"], rtol=1e-12, atol=1e-12)

    check(model)  # the views are made here
    with torch.no_grad():  # an optimizer's step: in place
        model.update.networks[0].layers[0].weight.mul_(1.1)
    check(model)
    model.update.networks[1].layers[0].weight.data.mul_(1.2)  # PyTorch's version counter unchanged
    check(model)
    model.update.networks[0].layers[1].bias.detach().numpy()[:] *= 0.5  # through numpy
    check(model)
    twin = copy.deepcopy(model)
    twin.load_state_dict(other.state_dict())  # in place, in the copy
    check(twin)
    check(model)
    networks = model.update.networks  # (the networks only: the functions' tables keep float64 values)
    networks.float()
    networks.load_state_dict({k: v.float() for k, v in other.update.networks.state_dict().items()})
    networks.double()
    check(model)
    third = small_hdnnp(("H", "O"), 3.2, 2, seed=2)
    for mine, theirs in zip(model.parameters(), third.parameters(), strict=True):
        mine.data = theirs.data.clone()
    check(model)


def test_a_call_leaves_torch_threads_as_they_were_when_numba_has_fewer():
    """numba starting its threads (at the first kernel call of a process) sets the OpenMP thread
    count to numba's own (NUMBA_NUM_THREADS); torch's count, larger here, must come back."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import sys, torch\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from small_potentials import mixed_structures, small_hdnnp\n"
        "from mpnn.data.atoms import collate_structures\n"
        "from mpnn.potentials.forces import evaluate\n"
        "model = small_hdnnp(('H', 'O'), 3.2, 2, seed=0).eval()\n"
        "batch = collate_structures(mixed_structures(), model.cutoff).to(dtype=torch.float64)\n"
        "torch.set_num_threads(2)\n"
        "evaluate(model, batch, forces=True)\n"
        "print(torch.get_num_threads())\n"
    )
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "2"}
    command = [sys.executable, "-c", script]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2"]


def test_the_walk_follows_function_parameters_loaded_after_a_call():
    """The compiled walk's tables come from the function modules' buffers: loading a state with
    other eta, rs (same architecture) or converting the model must not leave the old tables."""
    model = small_hdnnp(("H", "O"), 3.2, 2, seed=5).eval()
    batch = collate_structures(mixed_structures(), model.cutoff).to(dtype=torch.float64)
    evaluate_hdnnp(model, batch, True, False, True)  # tables built from the first values
    state = {k: v.clone() for k, v in model.state_dict().items()}
    changed = [k for k in state if k.endswith((".eta", ".rs", ".radial"))]
    assert changed  # the functions' parameters are buffers of the state
    for k in changed:
        state[k] = state[k] * 1.3 + 0.05
    model.load_state_dict(state)
    fast, slow = _both(model, batch)
    for key in ("energy", "forces"):
        assert torch.allclose(fast[key], slow[key], rtol=1e-12, atol=1e-12), key
    model.float().double()  # converted buffers: tables from the converted values
    fast, slow = _both(model, batch)
    assert torch.allclose(fast["forces"], slow["forces"], rtol=1e-12, atol=1e-12)


def test_numpy_edge_vectors_equal_torch_edge_vectors():
    """The fast path's numpy edge vectors (and the calculator's close-pair check's) against
    :func:`mpnn.inputs.edge_vectors`: a batch of a molecule and two periodic cells (one
    triclinic), and one periodic structure alone (the single-cell product)."""
    from mpnn.inputs import edge_vectors, numpy_edge_vectors

    cases = [mixed_structures(), [structure("OHHOHH", TRICLINIC, [True] * 3, 9)]]
    for structures in cases:
        batch = collate_structures(structures, 3.0).to(dtype=torch.float64)
        assert batch.cell is not None and batch.shift.abs().sum() > 0  # images are exercised
        source, target = batch.edge_index.numpy()
        ours = numpy_edge_vectors(
            batch.pos.numpy(), source, target, batch.shift.numpy(), batch.cell.numpy(), batch.batch.numpy()
        )
        expected = edge_vectors(batch).numpy()
        assert abs(ours - expected).max() <= 1e-14 * abs(expected).max()


def test_dense_cells_equal_autograd():
    """The one-walk path (functions, networks and gradient per centre) keeps each centre's blocks
    of partners in buffers that grow as needed: a dense cell, whose centres keep more partners
    than the buffers' first size (296 columns, 16 blocks), against the PyTorch path."""
    model = small_hdnnp(("H", "O"), 3.2, 2, seed=7, weighted=True).eval()
    dense = structure("OHHOHH" * 3, TRICLINIC, [True] * 3, 11)
    batch = collate_structures([dense, *mixed_structures()], model.cutoff).to(dtype=torch.float64)
    edges_per_centre = torch.bincount(batch.edge_index[1], minlength=batch.pos.shape[0])
    assert int(edges_per_centre[:18].min()) > 40  # the dense cell: hundreds of pairs per centre
    fast, slow = _both(model, batch, stress=True)
    for key in ("energy", "energies", "forces"):
        assert torch.allclose(fast[key], slow[key], rtol=1e-12, atol=1e-12), key
    assert torch.allclose(fast["stress"][0], slow["stress"][0], rtol=1e-12, atol=1e-13)
