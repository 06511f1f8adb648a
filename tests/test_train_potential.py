"""Training HDNNPs on energies and forces: default symmetry functions, precomputed descriptors and
their Jacobians, energy terms, the loop (loss, resume), the run folder and ``train-potential``.

Reference values come from outside the code under test: the model's own full forward pass and
autograd forces (:func:`mpnn.potentials.forces.evaluate`), central finite differences, numpy brute
force, and ASE's EMT energies and forces of small Cu/Al clusters and a periodic cell (generated here).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from mpnn.cli import main_train_potential as main
from mpnn.data.atoms import atoms_to_molecule, collate_structures
from mpnn.errors import DataError
from mpnn.inputs import edge_vectors
from mpnn.models.hdnnp import set_energy_terms
from mpnn.potentials.forces import evaluate
from mpnn.symmetry.defaults import default_symmetry_functions, n2p2_order, sort_elements
from mpnn.train import potential_data as pdata
from mpnn.train.checkpoint import BEST, LAST, load_model
from mpnn.train.potential_inputs import read_set, split_indices
from mpnn.train.potential_run import PotentialSpec, fit_structures, new_model, train_potential
from mpnn.train.settings import potential_settings as PotentialSettings

SMALL = {
    "n_radial": 4,
    "r_min": 1.5,
    "n_angular": 1,
    "zetas": [1.0, 4.0],
    "angular_types": [3, 9],
    "angular_shifts": 1,
}
SMALL_OPTIONS = (
    "--radial 4 --r-min 1.5 --angular 1 --angular-shifts 1 --zetas 1,4 --angular-type 3,9 --nodes 8,8 "
    "--cutoff 4.0 --batch-size 4"
).split()


def emt(atoms: Atoms) -> Atoms:
    """``atoms`` with EMT's energy and forces frozen in a SinglePointCalculator."""
    atoms.calc = EMT()
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
    return atoms


def clusters(count: int, seed: int) -> list[Atoms]:
    """Cu/Al clusters of 3-4 atoms about 2.5 Angstrom apart, randomly distorted, with EMT labels."""
    rng = np.random.default_rng(seed)
    base = np.array([[0.0, 0.0, 0.0], [2.5, 0.0, 0.0], [1.25, 2.17, 0.0], [1.25, 0.72, 2.04]])
    out = []
    for _ in range(count):
        n = int(rng.integers(3, 5))
        symbols = rng.choice(["Cu", "Al"], n)
        out.append(emt(Atoms(list(symbols), positions=base[:n] + rng.normal(scale=0.12, size=(n, 3)))))
    return out


def periodic(seed: int) -> Atoms:
    """A rattled 4-atom fcc cell (3.6 Angstrom, smaller than twice the cutoff) with one Al."""
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms[0].symbol = "Al"
    atoms.rattle(0.08, seed=seed)
    return emt(atoms)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {"train": tmp_path / "train.xyz", "test": tmp_path / "test.xyz"}
    ase.io.write(paths["train"], clusters(30, 0), format="extxyz")
    ase.io.write(paths["test"], clusters(8, 1), format="extxyz")
    return paths


def small_model(seed: int = 0, cutoff: float = 4.0):
    spec = PotentialSpec(
        train="unused",
        cutoff=cutoff,
        nodes=[8, 8],
        symmetry=dict(SMALL),
        training=PotentialSettings(epochs=1, seed=seed),
    )
    return new_model(spec, ["Al", "Cu"])


def molecules(structures: list[Atoms]):
    return [atoms_to_molecule(a) for a in structures]


# -- default symmetry functions --------------------------------------------------------------------
def test_default_functions_count_order_and_parameters():
    zetas = (1.0, 2.0, 8.0)
    specs = default_symmetry_functions(
        ["O", "H", "C"],
        6.0,
        n_radial=5,
        r_min=1.0,
        n_angular=3,
        zetas=zetas,
        angular_types=(3, 9),
        angular_shifts=2,
    )
    s = 3
    expected = s * 5 + s * (s + 1) // 2 * 2 * (3 + 2) * len(zetas) * 2
    assert [len(e) for e in specs] == [expected] * 3
    for element in specs:
        assert element == sorted(element, key=n2p2_order)
        assert len({json.dumps(x, sort_keys=True) for x in element}) == expected  # no duplicates
    radial = [x for x in specs[0] if x["type"] == 2 and x["neighbors"] == ["H"]]
    step = (6.0 - 1.0) / 5
    assert sorted(x["rs"] for x in radial) == pytest.approx([1.0 + k * step for k in range(5)])
    assert [x["eta"] for x in radial] == pytest.approx([1.0 / (2 * step * step)] * 5)
    angular = [x for x in specs[0] if x["type"] == 9 and x["neighbors"] == ["H", "O"] and x["rs"] == 0.0]
    widths = sorted((1.0 / (2 * x["eta"])) ** 0.5 for x in angular)
    assert sorted(set(np.round(widths, 9))) == pytest.approx([2.0, 4.0, 6.0])
    assert {(x["lambda_"], x["zeta"]) for x in angular} == {(lam, z) for lam in (-1.0, 1.0) for z in zetas}
    assert sort_elements(["O", "H", "C", "H"]) == ["H", "C", "O"]


@pytest.mark.parametrize(
    "kwargs", [{"cutoff": 0.4}, {"angular_types": (5,)}, {"zetas": (0.5,)}, {"n_radial": -1}]
)
def test_default_functions_reject_bad_settings(kwargs):
    with pytest.raises(DataError):
        default_symmetry_functions(["H"], **{"cutoff": 5.0, **kwargs})
    with pytest.raises(DataError, match="Xx"):
        default_symmetry_functions(["H", "Xx"], 5.0)


# -- descriptors -----------------------------------------------------------------------------------
def test_descriptors_equal_the_model_and_finite_differences():
    structures = clusters(3, 5) + [periodic(2)]
    model = small_model()
    mols = molecules(structures)
    cached = pdata.build_structures(model, mols, chunk=2).batch
    batch = collate_structures(mols, model.cutoff)
    full = model.symmetry_functions.raw(batch, edge_vectors(batch))  # all groups at once
    torch.testing.assert_close(cached.descriptors, full, rtol=1e-12, atol=1e-12)
    assert cached.edge_index.tolist() == batch.edge_index.tolist()
    # dG/dpos from the edge Jacobians vs central differences of the model's own functions
    source, target = cached.edge_index
    n, w = cached.descriptors.shape
    jac = torch.zeros(n, w, n, 3, dtype=torch.float64)
    for e in range(source.numel()):
        jac[target[e], :, source[e]] += cached.descriptor_grad[e]
        jac[target[e], :, target[e]] -= cached.descriptor_grad[e]
    h = 1e-5
    for atom, axis in [(0, 0), (4, 2), (11, 1), (13, 0)]:
        values = []
        for sign in (1.0, -1.0):
            pos = batch.pos.clone()
            pos[atom, axis] += sign * h
            moved = collate_structures(mols, model.cutoff)
            moved.pos = pos
            values.append(model.symmetry_functions.raw(moved, edge_vectors(moved)))
        torch.testing.assert_close(
            jac[:, :, atom, axis], (values[0] - values[1]) / (2 * h), rtol=1e-6, atol=1e-8
        )


def test_cached_forces_and_their_weight_gradients_equal_the_full_model():
    """The message reads the cache in place of its terms: energies, forces, and the gradient of a
    force loss with respect to the weights (a second backward pass) equal the uncached model's."""
    structures = clusters(4, 7) + [periodic(3), periodic(4)]
    mols = molecules(structures)
    model = small_model(seed=3)
    raw = pdata.build_structures(model, mols)
    sf = model.symmetry_functions
    sf.set_scaling("scale_center", pdata.statistics(raw, sf.sizes), -1.0, 1.0)
    set_energy_terms(model, 0.37, [-2.5, -3.25])
    results = []
    for batch in (raw.batch, collate_structures(mols, model.cutoff)):  # cached, then computed
        assert (batch.descriptors is None) == (batch is not raw.batch)
        out = evaluate(model, batch, create_graph=True)
        loss = out["forces"].square().sum() + out["energy"].square().sum()
        grads = torch.autograd.grad(loss, list(model.parameters()))
        results.append((out["energy"].detach(), out["forces"].detach(), grads))
    (e, f, g), (e_ref, f_ref, g_ref) = results
    torch.testing.assert_close(e, e_ref, rtol=1e-12, atol=1e-10)
    torch.testing.assert_close(f, f_ref, rtol=1e-10, atol=1e-10)
    for a, b in zip(g, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-10)
    assert f.abs().max() > 1e-3 and max(float(x.abs().max()) for x in g) > 1e-3  # not trivially zero


def test_descriptors_leave_the_thread_count_alone():
    """numba's OpenMP layer would leave PyTorch on its own thread count (10-20x slower training)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pdata.build_structures(small_model(), molecules(clusters(2, 8)))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_evaluation_batches_are_bounded_and_give_the_same_numbers(monkeypatch):
    """Large structures are evaluated a few at a time (at most EVAL_EDGES pairs, EVAL_ATOMS atoms per
    batch): the energies and forces equal those of one batch of all, cached and from the file."""
    from mpnn.train import potential_eval

    mols = molecules(clusters(5, 11) + [periodic(5)])
    model = small_model()
    structures = pdata.build_structures(model, mols)
    whole = potential_eval.predict_set(model, structures)
    direct = potential_eval.evaluate_structures(model, mols)
    assert potential_eval.eval_batch_size(structures) == potential_eval.EVAL_BATCH  # small: not bounded
    most = int(structures.edge_ptr.diff().max())
    monkeypatch.setattr(potential_eval, "EVAL_EDGES", 2 * most)
    monkeypatch.setattr(potential_eval, "EVAL_ATOMS", max(m.num_atoms for m in mols))
    assert potential_eval.eval_batch_size(structures) == 2
    for got, want in zip(potential_eval.predict_set(model, structures), whole, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    for got, want in zip(potential_eval.evaluate_structures(model, mols), direct, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_select_equals_computing_the_subset():
    mols = molecules(clusters(5, 11) + [periodic(5)])
    model = small_model()
    part = pdata.build_structures(model, mols).select([5, 0, 3])
    direct = pdata.build_structures(model, [mols[5], mols[0], mols[3]]).batch
    for name in ("z", "pos", "descriptors", "descriptor_grad", "edge_index", "batch", "ptr", "y", "forces"):
        torch.testing.assert_close(getattr(part, name), getattr(direct, name), rtol=1e-13, atol=1e-13)
    for name in ("cell", "pbc", "shift"):  # the periodic cell among molecules
        torch.testing.assert_close(getattr(part, name), getattr(direct, name))


def test_statistics_pruning_and_keep_columns():
    structures = clusters(12, 2)
    for atoms in structures[:6]:  # a set with a single Al per structure: Al-Al functions of Al are constant
        atoms.symbols = ["Al"] + ["Cu"] * (len(atoms) - 1)
    structures = [emt(a) for a in structures[:6]]
    mols = molecules(structures)
    model = small_model()
    raw = pdata.build_structures(model, mols)
    stats = pdata.statistics(raw, model.symmetry_functions.sizes)
    g = raw.batch.descriptors.numpy()
    for s, n in enumerate(model.symmetry_functions.sizes):
        rows = g[raw.species.numpy() == s, :n]
        brute = np.stack([rows.min(0), rows.max(0), rows.mean(0), rows.std(0)], 1)
        np.testing.assert_allclose(stats[s].numpy(), brute, rtol=1e-12, atol=1e-14)
    keep = pdata.informative_columns(stats)
    al_specs = model.config["symmetry_functions"][0]
    dropped = [al_specs[c] for c in range(len(al_specs)) if c not in keep[0]]
    assert dropped and all("Al" in x["neighbors"] for x in dropped)
    assert len(keep[1]) < len(model.config["symmetry_functions"][1])  # Cu: Al-Al pairs never occur
    functions = [[model.config["symmetry_functions"][s][c] for c in k] for s, k in enumerate(keep)]
    spec = PotentialSpec(train="unused", cutoff=4.0, nodes=[8, 8], symmetry=dict(SMALL))
    pruned = new_model(spec, ["Al", "Cu"], functions)
    direct = pdata.build_structures(pruned, mols).batch
    sliced = pdata.keep_columns(raw, keep).batch
    torch.testing.assert_close(sliced.descriptors, direct.descriptors, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(sliced.descriptor_grad, direct.descriptor_grad, rtol=1e-13, atol=1e-13)


def test_energy_terms_least_squares():
    mols = molecules(clusters(10, 4))
    model = small_model()
    raw = pdata.build_structures(model, mols)
    counts = pdata.composition(raw, 2).numpy()
    assert counts.sum(1).tolist() == [m.num_atoms for m in mols]
    exact = counts @ np.array([-1.75, -3.5])
    raw.batch.y = torch.from_numpy(exact).unsqueeze(1)
    offsets, scale = pdata.energy_terms(raw, 2)
    np.testing.assert_allclose(offsets, [-1.75, -3.5], rtol=1e-10)
    rms = float(np.sqrt((raw.batch.forces.numpy() ** 2).mean()))
    assert scale == pytest.approx(rms)  # no spread: the RMS force times 1 Angstrom
    rng = np.random.default_rng(0)
    for noise in (0.01, 30.0):
        noisy = exact + rng.normal(scale=noise, size=exact.shape)
        raw.batch.y = torch.from_numpy(noisy).unsqueeze(1)
        offsets, scale = pdata.energy_terms(raw, 2)
        brute, *_ = np.linalg.lstsq(counts, noisy, rcond=None)
        np.testing.assert_allclose(offsets, brute, rtol=1e-9)
        spread = (noisy - counts @ brute).std() / np.sqrt(counts.sum(1).mean())
        assert scale == pytest.approx(max(spread, rms), rel=1e-9)
    assert spread > rms  # the large noise made the spread the larger one
    raw.batch.forces = torch.zeros_like(raw.batch.forces)
    raw.batch.y = torch.from_numpy(exact).unsqueeze(1)
    assert pdata.energy_terms(raw, 2)[1] == 1.0


# -- the loop ---------------------------------------------------------------------------------------
def prepared(files: dict[str, Path], seed: int = 0):
    everything = read_set(str(files["train"]), forces=True)
    split = split_indices(len(everything), 0.2, seed)
    model = small_model(seed)
    train = pdata.build_structures(model, [everything[i] for i in split["train"]])
    valid = pdata.build_structures(model, [everything[i] for i in split["valid"]])
    sf = model.symmetry_functions
    keep = pdata.informative_columns(pdata.statistics(train, sf.sizes))
    train, valid = pdata.keep_columns(train, keep), pdata.keep_columns(valid, keep)
    functions = [[model.config["symmetry_functions"][s][c] for c in k] for s, k in enumerate(keep)]
    spec = PotentialSpec(
        train="unused",
        cutoff=4.0,
        nodes=[8, 8],
        symmetry=dict(SMALL),
        training=PotentialSettings(epochs=1, seed=seed),
    )
    model = new_model(spec, ["Al", "Cu"], functions)
    model.symmetry_functions.set_scaling(
        "scale_center", pdata.statistics(train, model.symmetry_functions.sizes)
    )
    set_energy_terms(model, *reversed(pdata.energy_terms(train, 2)))
    return model, train, valid


def test_training_reduces_the_loss(files, tmp_path):
    model, train, valid = prepared(files)
    settings = PotentialSettings(epochs=25, batch_size=4, lr=3e-3, force_weight=1.0)
    history, best, reason = fit_structures(
        model, train, valid, settings, tmp_path / "run", show_progress=False
    )
    assert reason == "epochs" and len(history) == 25
    assert history[-1]["train_loss"] < 0.3 * history[0]["train_loss"]
    assert history[best - 1]["valid_force_mae"] < 0.6 * history[0]["valid_force_mae"]
    assert (tmp_path / "run" / BEST).is_file() and (tmp_path / "run" / LAST).is_file()


def test_resume_continues_exactly(files, tmp_path):
    settings = PotentialSettings(epochs=6, batch_size=4, lr=3e-3, schedule="linear")
    model, train, valid = prepared(files)
    straight, *_ = fit_structures(model, train, valid, settings, tmp_path / "a", show_progress=False)
    model, train, valid = prepared(files)
    fit_structures(model, train, valid, settings, tmp_path / "b", show_progress=False, stop_after=3)
    model, train, valid = prepared(files)  # a fresh process: new model, weights from last.pt
    resumed, *_ = fit_structures(model, train, valid, settings, tmp_path / "b", show_progress=False)
    assert len(resumed) == 6
    for a, b in zip(straight, resumed, strict=True):
        for key in a:
            if key != "elapsed_s":
                assert a[key] == b[key], key
    for key, value in torch.load(tmp_path / "a" / BEST, weights_only=True).items():
        assert torch.equal(value, torch.load(tmp_path / "b" / BEST, weights_only=True)[key])


# -- run folder and command line --------------------------------------------------------------------
def test_cli_trains_writes_files_and_the_model_reloads(files, tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        str(files["train"]),
        "--test",
        str(files["test"]),
        "--valid",
        "0.2",
        "--epochs",
        "3",
        "--out",
        str(out),
        *SMALL_OPTIONS,
        "--quiet",
    ]
    assert main(args) == 0
    for name in (
        "config.json",
        "split.pt",
        "best.pt",
        "last.pt",
        "metrics.csv",
        "test_metrics.csv",
        "parity_energy.png",
        "parity_forces.png",
    ):
        assert (out / name).is_file(), name
    with open(out / "metrics.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 3
    with open(out / "test_metrics.csv") as handle:
        rows = {r["split"]: r for r in csv.DictReader(handle)}
    assert set(rows) == {"train", "valid", "test"}
    model, config = load_model(out)
    assert config["model"]["model"] == "hdnnp"
    test = ase.io.read(files["test"], ":")
    result = evaluate(model, collate_structures(test, model.cutoff))
    true_e = np.array([a.get_potential_energy() for a in test])
    atoms = np.array([len(a) for a in test])
    e_mae = np.abs((result["energy"].numpy() - true_e) / atoms).mean() * 1e3
    f_mae = np.abs(result["forces"].numpy() - np.concatenate([a.get_forces() for a in test])).mean() * 1e3
    assert float(rows["test"]["energy_mae"]) == pytest.approx(e_mae, rel=1e-5)
    assert float(rows["test"]["force_mae"]) == pytest.approx(f_mae, rel=1e-5)
    printed = capsys.readouterr().out
    assert "test" in printed and "meV" in printed


def test_cli_resumes_and_refuses_changed_settings(files, tmp_path, capsys):
    out = tmp_path / "run"
    base = [str(files["train"]), "--out", str(out), *SMALL_OPTIONS, "--quiet"]
    assert main([*base, "--epochs", "2"]) == 0
    assert main([*base, "--epochs", "4"]) == 0
    with open(out / "metrics.csv") as handle:
        assert [int(r["epoch"]) for r in csv.DictReader(handle)] == [1, 2, 3, 4]
    capsys.readouterr()
    changed = [a if a != "4.0" else "3.5" for a in base]
    assert main([*changed, "--epochs", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and err[0].startswith("mpnn: error:") and "config.json" in err[0] and "cutoff" in err[0]
    )


def write_without(path: Path, structures: list[Atoms], drop: str) -> None:
    """``structures`` as extxyz with their energy or forces left out."""
    plain = []
    for a in structures:
        b = Atoms(a.symbols, positions=a.positions)
        if drop != "energy":
            b.info["energy"] = a.get_potential_energy()
        if drop != "forces":
            b.arrays["forces"] = a.get_forces()
        plain.append(b)
    ase.io.write(path, plain, format="extxyz")


@pytest.mark.parametrize("case", ["no energy", "no forces", "foreign element", "no file", "bad valid"])
def test_bad_data_gives_one_line_errors(files, tmp_path, capsys, case):
    data, extra = str(files["train"]), []
    if case in ("no energy", "no forces"):
        data = str(tmp_path / "bad.xyz")
        write_without(Path(data), clusters(4, 3), case.split()[1])
    elif case == "foreign element":
        odd = clusters(3, 9)
        odd[1] = emt(Atoms("CuNi", positions=[[0, 0, 0], [2.4, 0, 0]]))
        ase.io.write(tmp_path / "odd.xyz", odd, format="extxyz")
        extra = ["--test", str(tmp_path / "odd.xyz")]
    elif case == "no file":
        data = str(tmp_path / "missing.xyz")
    else:
        extra = ["--valid", "1.5"]
    assert (
        main([data, "--out", str(tmp_path / "run"), *SMALL_OPTIONS, "--epochs", "1", *extra, "--quiet"]) == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mpnn: error:")
    expected = {
        "no energy": "structure 0 has no energy",
        "no forces": "structure 0 has no forces",
        "foreign element": "structure 1, atom 1: element Ni",
        "no file": "missing.xyz",
        "bad valid": "--valid",
    }[case]
    assert expected in err[0]
    assert not (tmp_path / "run" / "config.json").exists()


def test_train_potential_api_on_a_validation_file(files, tmp_path):
    spec = PotentialSpec(
        train=str(files["train"]),
        valid=str(files["test"]),
        cutoff=4.0,
        nodes=[8, 8],
        symmetry=dict(SMALL),
        training=PotentialSettings(epochs=2, batch_size=8),
    )
    rows = train_potential(spec, tmp_path / "run", show_progress=False, echo=lambda _: None)
    assert [r.split for r in rows] == ["train", "valid"]
    assert rows[0].structures == 30 and rows[1].structures == 8
    assert not (tmp_path / "run" / "split.pt").exists()


def test_mpnn_train_on_structures_is_train_potential(files, tmp_path, capsys):
    """``mpnn train --data FILE`` (or ``--model hdnnp``) trains the same potential as
    ``mpnn train-potential FILE``; options of property models are refused in one line."""
    from mpnn import cli

    common = ["--epochs", "2", "--batch-size", "8", "--seed", "3", "--quiet"]
    assert cli.main(["train", "--data", str(files["train"]), *common, "--out", str(tmp_path / "a")]) == 0
    args = ["train-potential", str(files["train"]), *common, "--out", str(tmp_path / "b")]
    assert cli.main(args) == 0
    a = torch.load(tmp_path / "a" / BEST, weights_only=True)
    b = torch.load(tmp_path / "b" / BEST, weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    capsys.readouterr()
    bad = [
        "train",
        "--model",
        "hdnnp",
        "--data",
        str(files["train"]),
        "--dim",
        "8",
        "--out",
        str(tmp_path / "c"),
    ]
    assert cli.main(bad) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mpnn: error: --dim: not an option of a potential")
    assert (
        cli.main(["train", "--model", "gcn", "--data", str(files["train"]), "--out", str(tmp_path / "c")])
        == 2
    )
    assert "a property model" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_training_without_the_cache_takes_the_same_steps(files, tmp_path):
    """The cache changes where the functions come from, not the training: the same epochs through
    the model's own symmetry functions of the positions give the same weights (float64)."""
    from dataclasses import replace

    settings = PotentialSettings(epochs=2, batch_size=4, lr=3e-3, force_weight=1.0)
    model, train, valid = prepared(files)
    fit_structures(model, train, valid, settings, tmp_path / "cached", show_progress=False)
    model, train, valid = prepared(files)

    def uncached(structures):
        return replace(structures, batch=replace(structures.batch, descriptors=None, descriptor_grad=None))

    fit_structures(
        model, uncached(train), uncached(valid), settings, tmp_path / "direct", show_progress=False
    )
    a = torch.load(tmp_path / "cached" / LAST, weights_only=True)
    b = torch.load(tmp_path / "direct" / LAST, weights_only=True)
    assert a["state"]["step"] == b["state"]["step"] > 0
    for key, value in a["model"].items():
        torch.testing.assert_close(value, b["model"][key], rtol=1e-9, atol=1e-11, msg=key)
