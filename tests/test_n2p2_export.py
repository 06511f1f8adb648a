"""Writing potentials of ours as n2p2 folders (:func:`mpnn.n2p2.convert.export_n2p2`).

Reference values come from outside the code under test: the model's own forward pass and autograd
forces in float64 before it is written; the written folder is read back by the n2p2 reader
(:func:`mpnn.potentials.load.load_potential`), which builds a new model from the files alone.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import molecule

from mpnn.data.atoms import collate_structures
from mpnn.errors import DataError
from mpnn.models.hdnnp import HDNNPConfig, PotentialModel, hdnnp, set_energy_terms
from mpnn.n2p2.convert import export_n2p2
from mpnn.n2p2.input_nn import read_input_nn
from mpnn.potentials.forces import evaluate
from mpnn.potentials.load import load_potential
from mpnn.symmetry.defaults import default_symmetry_functions, n2p2_order

ELEMENTS = ["H", "C", "O"]
FILES = ("input.nn", "scaling.data", "weights.001.data", "weights.006.data", "weights.008.data")


def structures(seed: int = 0) -> list:
    """Distorted methanol, water and CO2 (Angstrom)."""
    rng = np.random.default_rng(seed)
    out = []
    for name in ("CH3OH", "H2O", "CO2"):
        atoms = molecule(name)
        atoms.positions += rng.normal(scale=0.1, size=atoms.positions.shape)
        out.append(atoms)
    return out


def shuffled_model(seed: int = 0, elements: list[str] = ELEMENTS) -> PotentialModel:
    """An HDNNP whose functions are NOT in n2p2's order (angular neighbours reversed too), with
    random weights, scaling statistics and energy terms, a smooth polynomial cutoff with alpha."""
    functions = default_symmetry_functions(
        elements, 4.0, n_radial=3, r_min=0.8, n_angular=1, zetas=[1.0, 4.0], angular_types=[3, 9],
        angular_shifts=1,
    )  # fmt: skip
    rng = random.Random(seed)
    shuffled = []
    for specs in functions:
        specs = [{**s, "neighbors": s["neighbors"][::-1]} for s in rng.sample(specs, len(specs))]
        shuffled.append(specs)
    config = HDNNPConfig(
        elements, shuffled, cutoff_type=6, cutoff_alpha=0.1, nodes=[[5, 4]] * len(elements),
        activations=["psl"] * len(elements), scaling="scale_center", scale_min=-1.0,
        scale_max=1.0,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = hdnnp(config)
    gen = np.random.default_rng(seed)
    stats = []
    for size in model.symmetry_functions.sizes:
        low = gen.uniform(0.0, 0.5, size)
        high = low + gen.uniform(0.5, 3.0, size)
        stats.append(torch.tensor(np.stack([low, high, (low + high) / 2, high - low], axis=1)))
    model.symmetry_functions.set_scaling("scale_center", stats, -1.0, 1.0)
    set_energy_terms(model, 0.731, [-13.6 - k for k in range(len(elements))])
    return model.eval()


def energies_and_forces(model: PotentialModel) -> dict[str, torch.Tensor]:
    batch = collate_structures(structures(), model.cutoff).to(dtype=torch.float64)
    return evaluate(model, batch)


def test_a_model_in_any_order_exports_and_reloads_to_its_numbers(tmp_path: Path) -> None:
    model = shuffled_model()
    for specs in model.config["symmetry_functions"]:
        assert specs != sorted(specs, key=n2p2_order)  # the test needs the model's own order to differ
    before = energies_and_forces(model)
    export_n2p2(model, tmp_path / "n2p2")
    assert sorted(p.name for p in (tmp_path / "n2p2").iterdir()) == sorted(FILES)
    again = load_potential(tmp_path / "n2p2")
    after = energies_and_forces(again)
    assert torch.allclose(after["energy"], before["energy"], rtol=0, atol=1e-10)
    assert (after["forces"] - before["forces"]).abs().max() < 1e-10
    settings = read_input_nn(tmp_path / "n2p2" / "input.nn")
    assert (settings.cutoff_type, settings.cutoff_alpha) == (6, 0.1)
    assert [len(settings.symmetry_functions[e]) for e in ELEMENTS] == model.symmetry_functions.sizes

    # an exported folder exports to the same files, byte for byte
    export_n2p2(again, tmp_path / "twice", source=tmp_path / "n2p2")
    for name in FILES:
        assert (tmp_path / "twice" / name).read_bytes() == (tmp_path / "n2p2" / name).read_bytes(), name


def write_old(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "input.nn").write_text("# an older potential\n")
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("case", ["element", "energy scale", "field"])
def test_a_model_n2p2_cannot_express_is_one_line_naming_the_potential(tmp_path: Path, case: str) -> None:
    if case == "element":  # lawrencium (Z = 103) is beyond n2p2's element table (H to No)
        model, reason = shuffled_model(elements=["H", "Lr"]), "element(s) ['Lr'] beyond n2p2's (H to No)"
    elif case == "energy scale":
        model, reason = shuffled_model(), "energy scale 0.0"
        model.update.energy_scale.fill_(0.0)
    else:
        model, reason = shuffled_model(), "field(s) ['colour'] have no n2p2 equivalent"
        model.config["symmetry_functions"][1][0]["colour"] = "red"
    old = write_old(tmp_path / "out")
    with pytest.raises(DataError) as error:
        export_n2p2(model, tmp_path / "out", source="runs/mine")
    message = str(error.value)
    assert message.startswith("runs/mine: cannot be written as an n2p2 potential: ") and reason in message
    assert "\n" not in message
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == old  # left as it was
    with pytest.raises(DataError):
        export_n2p2(model, tmp_path / "new")
    assert not (tmp_path / "new").exists()  # nothing is created before everything is checked


def test_export_never_writes_into_its_source_or_a_training_run(tmp_path: Path) -> None:
    model = shuffled_model()
    export_n2p2(model, tmp_path / "n2p2")
    files = {name: (tmp_path / "n2p2" / name).read_bytes() for name in FILES}
    with pytest.raises(DataError, match="this output folder is the input"):
        export_n2p2(load_potential(tmp_path / "n2p2"), tmp_path / "n2p2" / ".", source=tmp_path / "n2p2")
    with pytest.raises(DataError, match="lies inside"):
        export_n2p2(model, tmp_path / "n2p2" / "sub", source=tmp_path / "n2p2")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"model": {"model": "hdnnp"}, "run": {}}')  # a potential run
    with pytest.raises(DataError, match="holds a `mpnn train-potential` run"):
        export_n2p2(model, run)
    assert sorted(p.name for p in run.iterdir()) == ["config.json"]
    assert {name: (tmp_path / "n2p2" / name).read_bytes() for name in FILES} == files
