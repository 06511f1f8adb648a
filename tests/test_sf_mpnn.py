"""SF-MPNN (:mod:`mpnn.models.sf_mpnn`): T = 1 is the HDNNP, the potential contract at T > 1, the cache
that training uses, the receptive field of T steps, and the command-line workflow of a trained one."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from potential_contract import CHECKS, Case, run_check
from small_potentials import TRICLINIC, labelled, mixed_structures, small_hdnnp, structure

from mpnn import cli
from mpnn.batch import Molecule
from mpnn.data.atoms import collate_structures
from mpnn.messages.symmetry_cache import jacobian
from mpnn.models import build_model
from mpnn.models.hdnnp import PotentialModel
from mpnn.potentials.forces import evaluate


def small_sf_mpnn(
    elements: tuple[str, ...],
    rc: float,
    cutoff_type: int,
    seed: int,
    steps: int,
    weighted: bool = False,
    **options,
) -> PotentialModel:
    """The small HDNNP of the same arguments with ``steps`` steps: random weights and offsets."""
    config = dict(small_hdnnp(elements, rc, cutoff_type, seed, weighted).config)
    config.update(model="sf_mpnn", steps=steps, features=8, embedding=[8], radial_basis=6, **options)
    torch.manual_seed(seed)
    model = build_model(config)
    with torch.no_grad():
        model.update.offsets.copy_(torch.randn(len(elements), dtype=torch.float64))
    return model


def as_one_step(hdnnp: PotentialModel) -> PotentialModel:
    """The SF-MPNN with T = 1 of an HDNNP's configuration, holding the HDNNP's weights."""
    model = build_model({**hdnnp.config, "model": "sf_mpnn", "steps": 1})
    state = {key.replace("net.updates.0.", "head."): value for key, value in hdnnp.state_dict().items()}
    model.load_state_dict(state)
    return model


# -- T = 1 is the HDNNP ----------------------------------------------------------------------------------
def one_step_cases() -> list[tuple[PotentialModel, list[Molecule]]]:
    molecules = [
        structure("OHH", np.eye(3) * 3.5, [False] * 3, 1),
        structure("OOHHH", np.eye(3) * 3.5, [False] * 3, 2),
    ]
    periodic = [
        structure("COH", TRICLINIC, [True] * 3, 4),
        structure("HCOH", np.array(TRICLINIC) * 1.1, [True] * 3, 5),
    ]
    return [
        (small_hdnnp(("H", "O"), rc=4.0, cutoff_type=2, seed=0), molecules),
        (small_hdnnp(("H", "C", "O"), rc=4.5, cutoff_type=6, seed=1, weighted=True), periodic),
    ]  # fmt: skip


@pytest.mark.parametrize("case", [0, 1])
def test_one_step_equals_the_hdnnp_to_1e_12(case: int) -> None:
    hdnnp, structures = one_step_cases()[case]
    model = as_one_step(hdnnp)
    assert model.config["model"] == "sf_mpnn" and model.net.steps == 1
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in hdnnp.parameters())
    batch = collate_structures(structures, hdnnp.cutoff).to(dtype=torch.float64)
    stress = all(m.cell is not None for m in structures)
    want = evaluate(hdnnp, batch, stress=stress, atomic=True)
    got = evaluate(model, batch, stress=stress, atomic=True)
    assert want["forces"].abs().max() > 1e-3  # not 0 = 0
    for key in want:
        torch.testing.assert_close(got[key], want[key], atol=1e-12, rtol=0, msg=key)


def test_the_command_line_knows_the_same_potentials() -> None:
    from mpnn.cli.train_potential import POTENTIALS as CLI_POTENTIALS
    from mpnn.models import MODELS, POTENTIALS

    assert CLI_POTENTIALS == POTENTIALS and set(POTENTIALS) <= set(MODELS)


def test_config_round_trips_and_radii() -> None:
    three = small_sf_mpnn(("H", "O"), 4.0, 6, seed=3, steps=3, message_cutoff=3.0)
    assert [type(m).__name__ for m in three.net.messages] == [
        "SymmetryFunctions",
        "RadialFilterMessage",
        "RadialFilterMessage",
    ]
    assert three.radii() == [3.0, 4.0]
    mol = structure("OHHOH", np.eye(3) * 4.0, [False] * 3, 8)
    batch = collate_structures([mol], 4.0).to(dtype=torch.float64)
    rebuilt = build_model(three.config)  # what a saved run reloads: config + state dict
    rebuilt.load_state_dict(three.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(batch), three(batch), atol=0, rtol=0)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"steps": 0}, "steps must be >= 1"),
        ({"update": "lstm"}, "update must be one of"),
        ({"message": "attention"}, "message must be one of"),
        ({"message_cutoff": 9.0}, "message_cutoff 9 must be in"),
        ({"radial_basis": 1}, "radial_basis >= 2"),
        ({"cutoff_type": 0}, "hard cutoff"),
        ({"features": 4096, "steps": 16}, "parameters, more than"),
        ({"embedding": [8] * 9}, "at most 8 embedding layers"),
    ],
)
def test_bad_settings_are_refused(options: dict, message: str) -> None:
    config = {**small_hdnnp(("H", "O"), 4.0, 6, 0).config, "model": "sf_mpnn", **options}
    with pytest.raises(ValueError, match=message):
        build_model(config)


# -- the potential contract at T > 1 ---------------------------------------------------------------------
def sf_molecules() -> Case:
    """T = 3, residual updates, messages within 3 A of the 4 A symmetry functions: two switching radii."""
    model = small_sf_mpnn(("H", "O"), rc=4.0, cutoff_type=2, seed=0, steps=3, message_cutoff=3.0)
    box = np.eye(3) * 3.5
    mols = [structure("OHH", box, [False] * 3, 1), structure("OOHHH", box, [False] * 3, 2),
            structure("HOHOHHO", box * 1.3, [False] * 3, 3)]  # fmt: skip
    skip = {"stress_fd", "periodic_images"}
    return Case("sf_molecules", model, model.cutoff, mols, fd_atol=1e-8, skip=skip, radii=(3.0, 4.0))


def sf_periodic() -> Case:
    """T = 2 with a GRU, weighted functions, triclinic cells of about 3 A with a 4.5 A cutoff."""
    model = small_sf_mpnn(
        ("H", "C", "O"), rc=4.5, cutoff_type=6, seed=1, steps=2, weighted=True, update="gru"
    )
    mols = [
        structure("COH", TRICLINIC, [True] * 3, 4),
        structure("HCOH", np.array(TRICLINIC) * 1.1, [True] * 3, 5),
    ]
    return Case("sf_periodic", model, model.cutoff, mols, fd_atol=1e-8, fd_atoms=2)  # fmt: skip


def sf_mixed() -> Case:
    """T = 3, pair messages, cosine cutoff: a slab, a wire and a molecule in one batch."""
    model = small_sf_mpnn(("H", "O"), rc=4.0, cutoff_type=1, seed=2, steps=3, message="pair")
    return Case("sf_mixed", model, model.cutoff, mixed_structures(), fd_atol=1e-8)


CASES = {"sf_molecules": sf_molecules, "sf_periodic": sf_periodic, "sf_mixed": sf_mixed}


def test_the_contract_catches_a_message_without_its_cutoff_function() -> None:
    """Learned messages whose filters lack f_c switch on with a jump at the message cutoff."""
    case = sf_molecules()
    for message in case.model.net.messages[1:]:
        message.cutoff_fn.forward = lambda r, rc: torch.ones_like(r)
    with pytest.raises(AssertionError, match="jumps by .* at r = 3 "):
        run_check(case, "cutoff_smoothness")


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("name", sorted(CASES))
def test_sf_mpnn_passes_the_potential_contract(name: str, check: str) -> None:
    run_check(CASES[name](), check)


@pytest.mark.parametrize("name", ["sf_molecules", "sf_mixed"])
def test_cached_functions_give_the_same_forces_and_weight_gradients(name: str) -> None:
    """Training reads the symmetry functions from the cache: the same energies, forces and gradient of a
    force loss with respect to every weight as the model computing them from the positions (filter
    messages within a shorter cutoff; pair messages on periodic structures)."""
    case = CASES[name]()
    model = case.model
    batch = collate_structures(case.structures, model.cutoff).to(dtype=torch.float64)
    g, dg = jacobian(model.symmetry_functions, batch, model.net.edge_input(batch))
    cached = replace(batch, descriptors=g, descriptor_grad=dg)
    outputs = []
    for b in (batch, cached):
        model.zero_grad()
        out = evaluate(model, b, create_graph=True)
        (out["forces"].square().sum() + out["energy"].sum()).backward()
        grads = [p.grad.clone() for p in model.parameters()]
        outputs.append((out["energy"].detach(), out["forces"].detach(), grads))
    (e1, f1, g1), (e2, f2, g2) = outputs
    torch.testing.assert_close(e2, e1, atol=1e-12, rtol=0)
    torch.testing.assert_close(f2, f1, atol=1e-12, rtol=0)
    assert len(g1) > 20
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(b, a, atol=1e-10, rtol=1e-10)


def test_an_atoms_energy_sees_t_cutoffs_far() -> None:
    """Atoms A, B, C on a line, A-B and B-C 3 A apart, A-C 6 A (beyond the 4 A cutoff): moving C changes
    A's energy through B's state when T >= 2, never for the HDNNP (T = 1)."""
    chain = Molecule(
        z=torch.tensor([8, 1, 8]),
        pos=torch.tensor([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [6.0, 0.0, 0.0]], dtype=torch.float64),
        x=torch.zeros(3, 0),
        bonds=torch.zeros(0, 2, dtype=torch.long),
        bond_type=torch.zeros(0, dtype=torch.long),
    )
    moved = replace(
        chain, pos=chain.pos + torch.tensor([[0.0, 0, 0], [0, 0, 0], [0.3, 0.2, 0]], dtype=torch.float64)
    )
    for steps, changes in ((1, False), (2, True)):
        model = small_sf_mpnn(("H", "O"), rc=4.0, cutoff_type=6, seed=4, steps=steps)
        a, b = (
            evaluate(model, collate_structures([m], 4.0), atomic=True)["energies"][0] for m in (chain, moved)
        )
        assert (abs(float(a - b)) > 1e-8) is changes, steps


# -- the command-line workflow ---------------------------------------------------------------------------
OPTIONS = (
    "--model sf_mpnn --steps 2 --features 8 --embedding 8 --radial-basis 4 --message-cutoff 3.5 "
    "--radial 3 --r-min 0.8 --angular 1 --angular-shifts 1 --zetas 1,4 --nodes 6 --cutoff 4.0 "
    "--batch-size 4 --float32 --quiet"
).split()


@pytest.fixture(autouse=True)
def threads(monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)


def run(*args: str | Path) -> None:
    assert cli.main([str(a) for a in args]) == 0, args


def test_train_resume_predict_md_calculator_and_no_n2p2_export(tmp_path: Path, capsys) -> None:
    from mpnn.potentials.calculator import MpnnCalculator
    from mpnn.potentials.load import load_potential

    train, test, out = tmp_path / "train.xyz", tmp_path / "test.xyz", tmp_path / "run"
    ase.io.write(train, labelled(12, 0), format="extxyz")
    ase.io.write(test, labelled(4, 1), format="extxyz")
    run("train-potential", train, "--test", test, "--out", out, "--epochs", "1", "--clip", "1.0", *OPTIONS)
    run("train-potential", train, "--test", test, "--out", out, "--epochs", "2", *OPTIONS)  # resumed
    assert len((out / "metrics.csv").read_text().strip().splitlines()) == 3  # header + 2 epochs
    assert json.loads((out / "config.json").read_text())["run"]["training"]["clip"] == 1.0
    model = load_potential(out)
    assert model.config["model"] == "sf_mpnn" and model.net.steps == 2

    run("predict", out, test, "-o", tmp_path / "p.extxyz")
    frames = ase.io.read(tmp_path / "p.extxyz", ":")
    structures = ase.io.read(test, ":")
    reference = evaluate(model, collate_structures(structures, model.cutoff).to(dtype=torch.float64))
    energies = np.array([a.get_potential_energy() for a in frames])
    np.testing.assert_allclose(energies, reference["energy"].numpy(), rtol=0, atol=1e-7)
    atoms = structures[-1].copy()
    atoms.calc = MpnnCalculator(model)
    assert atoms.get_potential_energy() == pytest.approx(energies[-1], abs=1e-7)
    np.testing.assert_allclose(atoms.get_forces(), frames[-1].get_forces(), rtol=0, atol=1e-7)

    run("md", out, test, "--steps", "3", "--timestep", "0.5", "--nve", "--init-temperature", "300",
        "--quiet", "-o", tmp_path / "traj.extxyz")  # fmt: skip
    assert len(ase.io.read(tmp_path / "traj.extxyz", ":")) == 4

    capsys.readouterr()
    assert cli.main(["export", str(out), str(tmp_path / "n2p2")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot be written as an n2p2 potential" in err, err
    assert "SF-MPNN's learned message-passing steps have no n2p2 form" in err, err
    assert not (tmp_path / "n2p2").exists()


def test_training_one_step_takes_the_hdnnps_steps(tmp_path: Path) -> None:
    """``--model sf_mpnn --steps 1`` draws the HDNNP's weights and trains through the same steps."""
    import csv

    from mpnn.potentials.load import load_potential

    train = tmp_path / "train.xyz"
    ase.io.write(train, labelled(12, 0), format="extxyz")
    common = [
        "--radial", "3", "--r-min", "0.8", "--angular", "1", "--angular-shifts", "1", "--zetas", "1,4",
        "--nodes", "6", "--cutoff", "4.0", "--batch-size", "4", "--epochs", "3", "--quiet",
    ]  # fmt: skip
    run("train-potential", train, "--out", tmp_path / "h", *common)
    run("train-potential", train, "--out", tmp_path / "s", "--model", "sf_mpnn", "--steps", "1", *common)
    rows = []
    for name in ("h", "s"):
        with open(tmp_path / name / "metrics.csv") as handle:
            rows.append([{k: v for k, v in r.items() if k != "elapsed_s"} for r in csv.DictReader(handle)])
    assert rows[0] == rows[1] and len(rows[0]) == 3
    hdnnp, one = load_potential(tmp_path / "h"), load_potential(tmp_path / "s")
    assert (hdnnp.config["model"], one.config["model"]) == ("hdnnp", "sf_mpnn")
    batch = collate_structures(ase.io.read(train, ":"), 4.0).to(dtype=torch.float64)
    a, b = evaluate(hdnnp, batch), evaluate(one, batch)
    torch.testing.assert_close(b["energy"], a["energy"], atol=1e-12, rtol=0)
    torch.testing.assert_close(b["forces"], a["forces"], atol=1e-12, rtol=0)


def test_mpnn_train_routes_sf_mpnn_and_option_errors_are_one_line(tmp_path: Path, capsys) -> None:
    train = tmp_path / "train.xyz"
    ase.io.write(train, labelled(8, 0), format="extxyz")
    run("train", "--model", "sf_mpnn", "--steps", "2", "--data", train, "--epochs", "1",
        "--out", tmp_path / "a", "--quiet")  # fmt: skip
    assert load_config_model(tmp_path / "a") == ("sf_mpnn", 2)
    capsys.readouterr()
    for argv, message in (
        (["--steps", "2"], "--steps: an option of --model sf_mpnn"),
        (
            ["--model", "sf_mpnn", "--message-cutoff", "9", "--cutoff", "4"],
            "message_cutoff: 9 Angstrom exceeds",
        ),
    ):
        code = cli.main(["train-potential", str(train), "--epochs", "1", "--out", str(tmp_path / "b"), *argv])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and message in err, err
        assert not (tmp_path / "b").exists()


def test_mpnn_train_range_errors_are_one_line(tmp_path: Path, capsys) -> None:
    train = tmp_path / "train.xyz"
    ase.io.write(train, labelled(4, 0), format="extxyz")
    capsys.readouterr()
    code = cli.main(
        ["train", "--model", "sf_mpnn", "--steps", "17", "--data", str(train), "--out", str(tmp_path / "a")]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--steps" in err and "[1, 16]" in err, err
    assert not (tmp_path / "a").exists()


def test_a_run_of_an_earlier_version_resumes_as_an_hdnnp(tmp_path: Path) -> None:
    """Run folders written before SF-MPNNs existed hold no ``model`` nor ``message_passing``: they are
    HDNNPs, and resume with or without ``--model hdnnp``, through both commands."""
    train, out = tmp_path / "train.xyz", tmp_path / "old"
    ase.io.write(train, labelled(8, 0), format="extxyz")
    small = ["--radial", "3", "--angular", "1", "--angular-shifts", "1", "--zetas", "1", "--nodes", "4",
             "--cutoff", "4.0", "--batch-size", "4", "--quiet"]  # fmt: skip
    run("train-potential", train, "--out", out, "--epochs", "1", *small)
    config = json.loads((out / "config.json").read_text())
    del config["run"]["model"], config["run"]["message_passing"]
    (out / "config.json").write_text(json.dumps(config))
    run("train-potential", train, "--out", out, "--epochs", "2", "--model", "hdnnp", *small)
    run("train", "--model", "hdnnp", "--data", train, "--out", out, "--epochs", "3", "--quiet")
    assert len((out / "metrics.csv").read_text().strip().splitlines()) == 4


def load_config_model(folder: Path) -> tuple[str, int]:
    model = json.loads((folder / "config.json").read_text())["model"]
    return model["model"], model["steps"]
