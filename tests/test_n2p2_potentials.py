"""n2p2's example potentials loaded into the engine reproduce n2p2's own numbers.

Reference: ``n2p2_reference_predictions.json`` (n2p2's regression test values) for each
``nnp-predict`` example: energy to 1e-10 relative, every force component to 1e-8 absolute, in
the files' units, float64.  Both the compiled angular kernels and the PyTorch path are checked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mpnn.data.atoms import collate_structures, read_structures
from mpnn.errors import DataError
from mpnn.n2p2.convert import export_n2p2, parse_units
from mpnn.potentials.forces import evaluate
from mpnn.potentials.load import load_potential
from mpnn.symmetry import compiled

GAUSSIAN = ["H2O_RPBE-D3", "Cu2S_PBE"]
COMPACT = ["Anisole_SCAN", "DMABN_SCAN", "Ethylbenzene_SCAN"]


def _predict(folder, use_compiled: bool = True):
    model = load_potential(folder)
    model.symmetry_functions.compiled = use_compiled
    structure = read_structures(folder / "input.data")
    batch = collate_structures(structure, model.cutoff)
    return model, evaluate(model, batch)


def _check(result, reference) -> None:
    energy = float(result["energy"][0])
    assert abs(energy - reference["energy"]) <= 1e-10 * abs(reference["energy"])
    forces = result["forces"].numpy()
    expected = np.array(reference["forces"], dtype=np.float64)
    assert forces.shape == expected.shape == (reference["n_atoms"], 3)
    assert np.abs(forces - expected).max() < 1e-8


@pytest.mark.parametrize("name", GAUSSIAN + COMPACT)
def test_reproduces_n2p2(name, n2p2_examples, n2p2_reference):
    _, result = _predict(n2p2_examples / "nnp-predict" / name)
    _check(result, n2p2_reference[name])


@pytest.mark.skipif(not compiled.available(), reason="numba is not installed: only one path exists")
def test_pytorch_path_reproduces_n2p2(n2p2_examples, n2p2_reference):
    _, result = _predict(n2p2_examples / "nnp-predict" / "H2O_RPBE-D3", use_compiled=False)
    _check(result, n2p2_reference["H2O_RPBE-D3"])


def test_fourth_generation_is_unsupported(n2p2_examples):
    with pytest.raises(DataError, match="unsupported"):
        load_potential(n2p2_examples / "nnp-predict" / "H2O_RPBE-D3_4G")


@pytest.mark.parametrize("name", ["Cu2S_PBE", "DMABN_SCAN"])
def test_export_reloads_to_the_same_numbers(name, n2p2_examples, tmp_path):
    folder = n2p2_examples / "nnp-predict" / name
    model, before = _predict(folder)
    export_n2p2(model, tmp_path / "exported")
    again = load_potential(tmp_path / "exported")
    batch = collate_structures(read_structures(folder / "input.data"), again.cutoff)
    after = evaluate(again, batch)
    assert torch.allclose(after["energy"], before["energy"], rtol=1e-12, atol=0)
    assert (after["forces"] - before["forces"]).abs().max() < 1e-12


def test_units_convert_to_ev_and_angstrom(n2p2_examples, n2p2_reference):
    folder = n2p2_examples / "nnp-predict" / "H2O_RPBE-D3"
    length, energy = parse_units("bohr,hartree")
    model = load_potential(folder, (length, energy))
    atoms = read_structures(folder / "input.data")[0]
    atoms.positions *= length
    atoms.cell *= length
    result = evaluate(model, collate_structures([atoms], model.cutoff))
    ref = n2p2_reference["H2O_RPBE-D3"]
    assert abs(float(result["energy"][0]) / energy - ref["energy"]) <= 1e-10 * abs(ref["energy"])
    forces = result["forces"].numpy() * length / energy
    assert np.abs(forces - np.array(ref["forces"])).max() < 1e-8


def test_parse_units_rejects_unknown():
    with pytest.raises(DataError, match="--units"):
        parse_units("furlong,ev")


def test_cli_export_round_trip(tmp_path):
    """``mpnn export`` of a potential reloads to the same energies and forces (no shared data needed)."""
    from ase.build import molecule

    from mpnn.cli import main

    fixture = Path(__file__).parent / "fixtures" / "n2p2" / "tiny"
    assert main(["export", str(fixture), str(tmp_path / "out")]) == 0
    water = molecule("H2O")
    water.positions *= 1.3
    results = []
    for folder in (fixture, tmp_path / "out"):
        model = load_potential(folder)
        results.append(evaluate(model, collate_structures([water, water.copy()], model.cutoff)))
    assert torch.allclose(results[0]["energy"], results[1]["energy"], rtol=1e-13, atol=0)
    assert torch.allclose(results[0]["forces"], results[1]["forces"], rtol=0, atol=1e-13)
    assert results[0]["forces"].abs().max() > 1e-6  # the structure is not at a stationary point


def test_cli_export_errors_are_one_line(tmp_path, capsys):
    from mpnn.cli import main

    assert main(["export", str(tmp_path / "missing"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mpnn: error:") and "\n" not in err
    assert not (tmp_path / "out").exists()
