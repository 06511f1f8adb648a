"""``mpnn predict`` of an n2p2 folder without PyTorch (mpnn.potentials.n2p2_predict): the same
numbers, bit for bit, as the PyTorch model of the same folder, and no PyTorch in the process."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from small_potentials import TRICLINIC, mixed_structures, small_hdnnp, structure

from mpnn import cli
from mpnn.data.atoms import collate_structures
from mpnn.n2p2.convert import model_to_n2p2, read_n2p2
from mpnn.n2p2.potential_files import write_potential
from mpnn.neighbors import numpy_edge_vectors
from mpnn.potentials import n2p2_predict
from mpnn.potentials.committee import evaluate_potential

BOHR, HARTREE = 0.529177210903, 27.211386245988


def _atoms(molecule) -> Atoms:
    periodic = molecule.pbc is not None
    return Atoms(
        numbers=molecule.z.numpy(),
        positions=molecule.pos.numpy(),
        cell=molecule.cell.numpy() if periodic else None,
        pbc=molecule.pbc.numpy() if periodic else False,
    )


def structures() -> list[Atoms]:
    """A slab, a wire, a molecule and a triclinic crystal of H and O (Angstrom)."""
    return [_atoms(m) for m in [*mixed_structures(), structure("OHHOHH", TRICLINIC, [True] * 3, 9)]]


def write_folder(folder: Path, scaling: str = "scale_center", normalize: bool = False, seed: int = 1) -> Path:
    """An n2p2 folder of a random potential with every Gaussian type (2, 3, 9, 12, 13), its
    ``scaling.data`` the ranges of :func:`structures` shrunk by 10 % (so that some values lie
    outside), energies shifted and scaled as n2p2's ``mean_energy`` and ``conv_energy`` do."""
    potential = model_to_n2p2(small_hdnnp(("H", "O"), 3.2, 6, seed=seed, weighted=True))
    write_potential(folder, potential)  # no ranges yet: the raw values come from this folder's model
    model = read_n2p2(folder).eval()
    batch = collate_structures(structures(), model.cutoff).to(dtype=torch.float64)
    source, centre = batch.edge_index.numpy()
    vectors = numpy_edge_vectors(
        batch.pos.numpy(), source, centre, batch.shift.numpy(), batch.cell.numpy(), batch.batch.numpy()
    )
    sf = model.symmetry_functions
    with torch.no_grad():
        raw = sf.raw(batch, torch.from_numpy(vectors)).numpy()
    species = sf.species(batch).numpy()
    rows = {}
    for k, e in enumerate(potential.settings.elements):
        values = raw[species == k, : sf.sizes[k]]
        low, high = values.min(0), values.max(0)
        span = np.maximum(high - low, 1e-3)
        rows[e] = np.stack([low + 0.1 * span, high - 0.1 * span, values.mean(0), values.std(0) + 0.1], 1)
    settings = dataclasses.replace(
        potential.settings,
        scaling=scaling,
        scale_min=-1.0,
        scale_max=1.0,
        normalize_nodes=normalize,
        mean_energy=-0.3,
        conv_energy=1.7,
    )
    write_potential(folder, dataclasses.replace(potential, settings=settings, scaling=rows))
    return folder


def torch_results(folder: Path, units, chunk: list[Atoms], names: list[str]) -> dict:
    model = read_n2p2(folder, units).double().eval()
    batch = collate_structures(chunk, model.cutoff).to(dtype=torch.float64)
    return evaluate_potential(model, batch, stress=batch.cell is not None, names=names)


@pytest.mark.parametrize("scaling,normalize", [("scale_center", False), ("sigma", True), ("none", False)])
@pytest.mark.parametrize("units", [(1.0, 1.0), (BOHR, HARTREE)])
def test_the_numbers_are_the_pytorch_models_to_the_last_bit(tmp_path, scaling, normalize, units) -> None:
    folder = write_folder(tmp_path / "nnp", scaling, normalize)
    predictor = n2p2_predict.n2p2_predictor(folder, units)
    assert predictor is not None
    model = read_n2p2(folder, units)
    assert predictor.elements == model.elements and predictor.cutoff == model.cutoff
    chunk = structures()
    names = [f"structure {k}" for k in range(len(chunk))]
    ours, ptr, stress = predictor.evaluate_structures(chunk, names)
    theirs = torch_results(folder, units, chunk, names)
    assert stress and ptr == np.cumsum([0, *map(len, chunk)]).tolist()
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        if key == "extrapolation_first":
            assert ours[key] == value
            continue
        np.testing.assert_array_equal(ours[key], value, err_msg=key)  # NaN rows (slab, wire) included
    assert ours["extrapolation"].sum() > 0  # the shrunk ranges: a count that could be wrong


def test_molecules_alone_have_no_stress(tmp_path) -> None:
    folder = write_folder(tmp_path / "nnp")
    chunk = [a for a in structures() if not a.pbc.any()]
    ours, _, stress = n2p2_predict.n2p2_predictor(folder).evaluate_structures(chunk, ["m"])
    theirs = torch_results(folder, (1.0, 1.0), chunk, ["m"])
    assert not stress and "stress" not in ours and "stress" not in theirs
    np.testing.assert_array_equal(ours["forces"], theirs["forces"])


def test_other_potentials_take_the_pytorch_path(tmp_path, monkeypatch) -> None:
    from mpnn.potentials import hdnnp_numpy

    folder = write_folder(tmp_path / "nnp")
    assert n2p2_predict.n2p2_predictor(tmp_path) is None  # not a potential folder
    committee = tmp_path / "committee"
    for k in range(2):
        write_folder(committee / f"m{k}", seed=k)
    assert n2p2_predict.n2p2_predictor(committee) is None
    monkeypatch.setattr(hdnnp_numpy, "ONE_WALK_MAX_WEIGHTS", 10)  # networks too large for the walk
    assert n2p2_predict.n2p2_predictor(folder) is None


def test_a_compact_potential_takes_the_pytorch_path(n2p2_examples) -> None:
    assert n2p2_predict.n2p2_predictor(n2p2_examples / "nnp-predict" / "Anisole_SCAN") is None


def _predict(folder: Path, inputs: Path, out: Path, *more: str) -> int:
    return cli.main(["predict", str(folder), str(inputs), "-o", str(out), *more])


def test_the_command_writes_the_pytorch_paths_file_without_importing_pytorch(tmp_path, monkeypatch) -> None:
    """``python -m mpnn.cli predict`` as users run it; ``-X importtime`` lists every module the
    process imports."""
    from ase.io import write

    folder = write_folder(tmp_path / "nnp")
    write(tmp_path / "in.extxyz", structures(), format="extxyz")
    lean, slow = tmp_path / "lean.extxyz", tmp_path / "torch.extxyz"
    command = [sys.executable, "-X", "importtime", "-m", "mpnn.cli", "predict", str(folder)]
    command += [str(tmp_path / "in.extxyz"), "-o", str(lean), "--units", "angstrom,ev"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    imported = {
        line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")
    }
    assert "numba" in imported and "ase" in imported  # the listing is complete enough to trust
    # (a refused attempt logs its name alone: vesin's optional "import torch" fails at once here;
    # PyTorch loaded would bring hundreds of torch.* modules, torch._C first)
    assert not {name for name in imported if name.startswith("torch.")}
    assert "extrapolation" in done.stderr  # the warning line, as on the PyTorch path
    monkeypatch.setattr(n2p2_predict, "n2p2_predictor", lambda *args: None)
    assert _predict(folder, tmp_path / "in.extxyz", slow) == 0
    assert lean.read_bytes() == slow.read_bytes()


@pytest.mark.parametrize("how", ["command", "library"])
def test_an_in_process_call_leaves_the_callers_pytorch_threads_alone(tmp_path, how) -> None:
    """numba starting its threads sets OpenMP's count, which PyTorch shares: a fresh process, so
    that numba's first parallel call happens inside ``main`` or the predictor."""
    from ase.io import write

    folder = write_folder(tmp_path / "nnp")
    write(tmp_path / "in.extxyz", structures(), format="extxyz")
    call = {
        "command": "from mpnn.cli.app import main\n"
        f"assert main(['predict', {str(folder)!r}, {str(tmp_path / 'in.extxyz')!r}, '-o', "
        f"{str(tmp_path / 'out.extxyz')!r}]) == 0\n",
        "library": "from ase.io import read\nfrom mpnn.potentials.n2p2_predict import n2p2_predictor\n"
        f"structures = read({str(tmp_path / 'in.extxyz')!r}, ':')\n"
        f"n2p2_predictor({str(folder)!r}).evaluate_structures(structures, ['s'] * len(structures))\n",
    }[how]
    script = (
        "import torch\ntorch.set_num_threads(1)\n(torch.ones(64, 64) @ torch.ones(64, 64)).sum()\n"
        f"{call}assert torch.get_num_threads() == 1, torch.get_num_threads()\n"
    )
    env = {
        key: value for key, value in os.environ.items() if key not in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")
    }
    env["OMP_NUM_THREADS"] = "2"  # the command's count, unlike the caller's
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=env
    )
    assert done.returncode == 0, done.stderr


def test_elements_the_potential_lacks_are_refused(tmp_path) -> None:
    from mpnn.errors import DataError

    predictor = n2p2_predict.n2p2_predictor(write_folder(tmp_path / "nnp"))
    copper = Atoms("CuH2", positions=[[0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]])
    with pytest.raises(DataError, match=r"Z = \[29\] are not covered"):
        predictor.evaluate_structures([copper], ["c"])
    with pytest.raises(DataError, match="no structures"):
        predictor.evaluate_structures([], [])


def test_a_broken_folder_is_a_one_line_error_and_an_output_inside_it_is_refused_first(
    tmp_path, capsys
) -> None:
    from ase.io import write

    from mpnn.errors import DataError

    folder = write_folder(tmp_path / "nnp")
    (folder / "weights.001.data").unlink()
    with pytest.raises(DataError, match="weights.001.data"):  # not None: no fallback to PyTorch
        n2p2_predict.n2p2_predictor(folder)
    write(tmp_path / "in.extxyz", structures(), format="extxyz")
    assert _predict(folder, tmp_path / "in.extxyz", folder / "out.extxyz") == 2
    err = capsys.readouterr().err
    assert "weights" not in err and "out.extxyz" in err  # the output's error, before the folder is read
    assert _predict(folder, tmp_path / "in.extxyz", tmp_path / "out.extxyz") == 2
    assert "weights.001.data" in capsys.readouterr().err


def test_the_extrapolation_limit_stops_both_paths_alike(tmp_path, monkeypatch, capsys) -> None:
    from ase.io import write

    folder = write_folder(tmp_path / "nnp")
    write(tmp_path / "in.extxyz", structures(), format="extxyz")
    messages = []
    for lean in (True, False):
        if not lean:
            monkeypatch.setattr(n2p2_predict, "n2p2_predictor", lambda *args: None)
        out = tmp_path / f"out{lean}.extxyz"
        assert _predict(folder, tmp_path / "in.extxyz", out, "--max-extrapolation-warnings", "0") == 2
        assert not out.exists()
        messages.append(capsys.readouterr().err)
    assert messages[0] == messages[1] and "--max-extrapolation-warnings 0" in messages[0]


def test_a_non_finite_energy_names_the_structure_on_both_paths(tmp_path, monkeypatch, capsys) -> None:
    from ase.io import write

    from mpnn.n2p2.potential_files import read_potential

    folder = write_folder(tmp_path / "nnp", scaling="none")
    potential = read_potential(folder)
    weights = {
        e: [(np.full_like(w, 1.7e308), b) for w, b in layers] for e, layers in potential.weights.items()
    }
    write_potential(folder, dataclasses.replace(potential, weights=weights))
    write(tmp_path / "in.extxyz", structures(), format="extxyz")
    messages = []
    for lean in (True, False):
        if not lean:
            monkeypatch.setattr(n2p2_predict, "n2p2_predictor", lambda *args: None)
        assert _predict(folder, tmp_path / "in.extxyz", tmp_path / "out.extxyz") == 2
        messages.append(capsys.readouterr().err)
    assert messages[0] == messages[1] and "is not finite" in messages[0]
    assert not (tmp_path / "out.extxyz").exists()
