"""Extrapolation warnings: counts against a hand count, n2p2's maxew stop, and the commands' reports."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from small_potentials import TINY_POTENTIAL, labelled

from mpnn import cli
from mpnn.data.atoms import collate_structures
from mpnn.models.hdnnp import HDNNPConfig, hdnnp
from mpnn.potentials.calculator import MpnnCalculator
from mpnn.potentials.committee import evaluate_potential
from mpnn.potentials.extrapolation import EPSILON, ExtrapolationError, count_extrapolation, has_ranges
from mpnn.potentials.load import load_potential

RC = 4.0
ELEMENTS = ("H", "O")
NUMBERS = {"H": 1, "O": 8}


def radial_potential():
    """An HDNNP of H and O with four radial functions (type 2, cos cutoff) per element."""
    torch.manual_seed(0)
    specs = [
        [
            dict(type=2, neighbors=[n], eta=eta, rs=rs, rc=RC)
            for n in ELEMENTS
            for eta, rs in ((0.5, 0.0), (2.0, 1.0))
        ]
        for _ in ELEMENTS
    ]
    config = HDNNPConfig(
        list(ELEMENTS), specs, cutoff_type=1, nodes=[[6]] * 2, activations=["tl"] * 2, scaling="none"
    )
    return hdnnp(config)


def hand_functions(model, atoms: Atoms) -> list[np.ndarray]:
    """Per atom, its raw functions in the model's column order, by the textbook formula
    G_i = sum_j exp(-eta (r_ij - rs)^2) * 0.5 (cos(pi r_ij / rc) + 1) over neighbours j of the
    function's element (a molecule: no images)."""
    functions = model.symmetry_functions
    out = []
    for i, z in enumerate(atoms.numbers):
        specs = functions.specs[functions.elements.index(int(z))]
        values = []
        for spec in specs:
            total = 0.0
            for j, zj in enumerate(atoms.numbers):
                r = float(np.linalg.norm(atoms.positions[j] - atoms.positions[i]))
                if j == i or r >= spec.rc or NUMBERS[spec.neighbors[0]] != zj:
                    continue
                total += (
                    math.exp(-spec.eta * (r - spec.rs) ** 2) * 0.5 * (math.cos(math.pi * r / spec.rc) + 1)
                )
            values.append(total)
        out.append(np.array(values))
    return out


def water(oh1: float, oh2: float, angle_deg: float) -> Atoms:
    half = math.radians(angle_deg) / 2
    return Atoms(
        "OHH",
        [
            [0, 0, 0],
            [oh1 * math.sin(half), 0, oh1 * math.cos(half)],
            [-oh2 * math.sin(half), 0, oh2 * math.cos(half)],
        ],
    )


@pytest.fixture(scope="module")
def trained_ranges():
    """The potential with the ranges of four training waters, computed by hand."""
    model = radial_potential()
    train = [water(0.96 + d, 0.97 - d, 104 + 4 * d * 100) for d in (-0.03, -0.01, 0.01, 0.03)]
    stats = []
    for z in (1, 8):
        pairs = [(g, zi) for a in train for g, zi in zip(hand_functions(model, a), a.numbers, strict=True)]
        values = np.array([g for g, zi in pairs if zi == z])
        low, high = values.min(0), values.max(0)
        stats.append(torch.tensor(np.stack([low, high, values.mean(0), np.ones_like(low)], axis=1)))
    model.symmetry_functions.set_scaling("none", stats)
    return model.double().eval(), train, stats


def expected_counts(model, atoms, stats) -> np.ndarray:
    """The hand count: per atom, its functions outside [min, max] of its element (n2p2's epsilon)."""
    counts = []
    for g, z in zip(hand_functions(model, atoms), atoms.numbers, strict=True):
        s = stats[(1, 8).index(int(z))].numpy()
        counts.append(int(((g + EPSILON < s[:, 0]) | (g - EPSILON > s[:, 1])).sum()))
    return np.array(counts)


def test_counts_equal_a_hand_count_out_of_range(trained_ranges) -> None:
    model, _, stats = trained_ranges
    outside = water(0.80, 1.15, 95.0)
    expected = expected_counts(model, outside, stats)
    assert expected.sum() >= 4 and (expected > 0).sum() >= 2  # the structure is pushed out of range
    outside.calc = MpnnCalculator(model)
    outside.get_potential_energy()
    results = outside.calc.results
    assert results["extrapolation"].tolist() == expected.tolist()
    assert results["extrapolation_warnings"] == int(expected.sum())
    batch = collate_structures([outside], model.cutoff).to(dtype=torch.float64)
    assert evaluate_potential(model, batch)["extrapolation"].tolist() == expected.tolist()


def test_training_structures_on_the_boundary_raise_none(trained_ranges) -> None:
    model, train, _ = trained_ranges
    batch = collate_structures(train, model.cutoff).to(dtype=torch.float64)
    with count_extrapolation(model) as counter:
        model(batch)
    assert counter is not None and counter.per_atom.shape == (12,) and not counter.per_atom.any()
    # one step past a boundary value by more than n2p2's epsilon is a warning
    assert has_ranges(model) and not has_ranges(radial_potential())


def test_max_extrapolation_warnings_stops_as_n2p2s_maxew(trained_ranges) -> None:
    model, _, stats = trained_ranges
    outside = water(0.80, 1.15, 95.0)
    total = int(expected_counts(model, outside, stats).sum())
    outside.calc = MpnnCalculator(model, max_extrapolation_warnings=total)  # total > maxew stops
    outside.get_potential_energy()
    assert outside.calc.extrapolation_total == total
    outside.positions[0, 0] += 1e-3  # a second call: the warnings add up past the limit
    added = f"{2 * total} extrapolation warnings over 2 calculations, more than"
    with pytest.raises(ExtrapolationError, match=added):
        outside.get_potential_energy()
    stopped = water(0.80, 1.15, 95.0)
    stopped.calc = MpnnCalculator(model, max_extrapolation_warnings=total - 1)
    with pytest.raises(ExtrapolationError, match=r"atom \d \([HO]\), symmetry function \d"):
        stopped.get_potential_energy()


def test_a_potential_without_ranges_counts_nothing() -> None:
    model = radial_potential().double().eval()
    atoms = water(0.8, 1.15, 95)
    atoms.calc = MpnnCalculator(model, max_extrapolation_warnings=0)
    atoms.get_potential_energy()
    assert "extrapolation" not in atoms.calc.results


# -- the commands, on a potential trained by `mpnn train-potential` ------------------------------------
POTENTIAL = TINY_POTENTIAL


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("extrapolation")
    paths = {"train": root / "train.xyz", "run": root / "run", "squeezed": root / "squeezed.xyz"}
    train = labelled(9, 0)
    ase.io.write(paths["train"], train, format="extxyz")
    torch.set_num_threads(1)
    assert cli.main(["train-potential", str(paths["train"]), "--out", str(paths["run"]), *POTENTIAL]) == 0
    squeezed = [a.copy() for a in train[:3]]
    for a in squeezed:
        a.positions *= 0.8
    ase.io.write(paths["squeezed"], squeezed, format="extxyz")
    return paths


def test_predict_reports_per_structure_and_stops_before_writing(run_folder, tmp_path, capsys) -> None:
    from mpnn.potentials.load import load_potential
    from mpnn.train.checkpoint import load_split_file

    out = tmp_path / "train.extxyz"
    assert cli.main(["predict", str(run_folder["run"]), str(run_folder["train"]), "-o", str(out)]) == 0
    capsys.readouterr()
    train = load_split_file(run_folder["run"] / "split.pt", ("train",), 9)["train"]
    counts = [a.info["extrapolation_warnings"] for a in ase.io.read(out, ":")]
    assert all(counts[k] == 0 for k in train)  # the ranges are those of its training structures

    squeezed = tmp_path / "squeezed.extxyz"
    assert (
        cli.main(["predict", str(run_folder["run"]), str(run_folder["squeezed"]), "-o", str(squeezed)]) == 0
    )
    err = capsys.readouterr().err
    frames = ase.io.read(squeezed, ":")
    model = load_potential(run_folder["run"])
    for frame in frames:  # the file's counts are the calculator's, atom by atom
        atoms = Atoms(frame.numbers, frame.positions)
        atoms.calc = MpnnCalculator(model)
        atoms.get_potential_energy()
        assert frame.arrays["extrapolation"].tolist() == atoms.calc.results["extrapolation"].tolist()
        assert frame.info["extrapolation_warnings"] == int(frame.arrays["extrapolation"].sum())
    total = sum(a.info["extrapolation_warnings"] for a in frames)
    assert (
        total > 0
        and err.startswith(f"mpnn: warning: {total} extrapolation warnings")
        and err.count("\n") == 1
    )

    stopped = tmp_path / "stopped.extxyz"
    args = ["predict", str(run_folder["run"]), str(run_folder["squeezed"]), "-o", str(stopped)]
    assert cli.main([*args, "--max-extrapolation-warnings", str(total - 1)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mpnn: error: ") and "--max-extrapolation-warnings" in err and err.count("\n") == 1
    assert not stopped.exists()
    assert cli.main([*args, "--max-extrapolation-warnings", str(total)]) == 0 and stopped.exists()


def test_md_stops_at_the_limit_and_writes_counts_per_frame(run_folder, tmp_path, capsys) -> None:
    traj = tmp_path / "md.extxyz"
    args = ["md", str(run_folder["run"]), str(run_folder["squeezed"]), "--steps", "3", "--timestep", "0.1"]
    args += ["--nve", "--quiet", "-o", str(traj)]
    assert cli.main(args) == 0
    frames = ase.io.read(traj, ":")
    assert len(frames) == 4 and all(f.info["extrapolation_warnings"] > 0 for f in frames)
    err = capsys.readouterr().err
    assert "extrapolation warnings" in err and "in 4 of 4 steps" in err
    again = tmp_path / "again.extxyz"
    assert cli.main([*args[:-1], str(again), "--max-extrapolation-warnings", "0"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("mpnn: error: ")
        and err.count("\n") == 1
        and "more than --max-extrapolation-warnings 0" in err
    )
    assert not again.exists()


def test_relax_and_mc_count_per_frame_and_stop_at_the_limit(run_folder, tmp_path, capsys) -> None:
    squeezed = str(run_folder["squeezed"])
    out, traj = tmp_path / "relaxed.extxyz", tmp_path / "relax_traj.extxyz"
    args = ["relax", str(run_folder["run"]), squeezed, "--steps", "3", "--quiet", "-o", str(out)]
    assert cli.main([*args, "--trajectory", str(traj)]) in (0, 1)
    frames = ase.io.read(traj, ":")
    assert frames[0].info["extrapolation_warnings"] > 0
    assert all(f.info["extrapolation_warnings"] == int(f.arrays["extrapolation"].sum()) for f in frames)
    assert "extrapolation warnings" in capsys.readouterr().err

    mc = tmp_path / "mc.extxyz"
    base = ["mc", str(run_folder["run"]), squeezed, "--temperature", "300", "--steps", "5", "--quiet"]
    assert cli.main([*base, "--interval", "1", "-o", str(mc)]) == 0
    frames = ase.io.read(mc, ":")
    for frame in frames:  # the counts of the structure in the frame, not of a rejected trial
        atoms = Atoms(frame.numbers, frame.positions)
        atoms.calc = MpnnCalculator(load_potential(run_folder["run"]))
        atoms.get_potential_energy()
        assert frame.arrays["extrapolation"].tolist() == atoms.calc.results["extrapolation"].tolist()
    capsys.readouterr()
    stopped = tmp_path / "stopped.extxyz"
    assert cli.main([*base, "--max-extrapolation-warnings", "0", "-o", str(stopped)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mpnn: error: ") and err.count("\n") == 1 and not stopped.exists()


def test_atoms_brought_too_close_during_a_run_are_warned_once(trained_ranges) -> None:
    from mpnn.sanity import CLOSE_FRACTION, UnphysicalWarning

    model, _, _ = trained_ranges
    atoms = water(0.96, 0.97, 104.0)
    atoms.calc = MpnnCalculator(model)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        atoms.get_potential_energy()
        assert atoms.calc.results["close_pairs"] == 0
        # O-H below 0.6 x (0.66 + 0.31) A = 0.582 A: one pair, counted by hand
        atoms.positions[1] = atoms.positions[0] + (atoms.positions[1] - atoms.positions[0]) * 0.55 / 0.96
        atoms.get_potential_energy()
        assert atoms.calc.results["close_pairs"] == 1 and CLOSE_FRACTION == 0.6
        atoms.positions[2] = atoms.positions[0] + (atoms.positions[2] - atoms.positions[0]) * 0.5 / 0.97
        atoms.get_potential_energy()
        assert atoms.calc.results["close_pairs"] == 2
    close = [w for w in record if issubclass(w.category, UnphysicalWarning)]
    assert len(close) == 1 and "calculation 2: 1 pairs of atoms came closer" in str(close[0].message)


def test_counters_of_two_threads_on_one_model_stay_apart(trained_ranges) -> None:
    """Two threads counting on the same model, their blocks interleaved: each counter gets its own
    evaluation, and no monitor is left behind once both blocks are closed."""
    import threading

    model, train, stats = trained_ranges
    outside = water(0.80, 1.15, 95.0)
    expected = expected_counts(model, outside, stats)
    inside_batch = collate_structures(train[:1], model.cutoff).to(dtype=torch.float64)
    outside_batch = collate_structures([outside], model.cutoff).to(dtype=torch.float64)
    entered_a, entered_b, done_a = threading.Event(), threading.Event(), threading.Event()
    counters: dict[str, object] = {}

    def first() -> None:  # enters first, evaluates once the other has entered, leaves first
        with count_extrapolation(model) as counter:
            entered_a.set()
            entered_b.wait(10)
            model(inside_batch)
            counters["a"] = counter
        done_a.set()

    def second() -> None:
        entered_a.wait(10)
        with count_extrapolation(model) as counter:
            entered_b.set()
            done_a.wait(10)
            model(outside_batch)
            counters["b"] = counter

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert counters["a"].per_atom.tolist() == [0, 0, 0]
    assert counters["b"].per_atom.tolist() == expected.tolist() and expected.any()
    assert model.symmetry_functions.monitor is None


def test_float32_evaluation_of_the_training_structures_raises_none(trained_ranges) -> None:
    """In float32 the functions of a boundary structure differ from the float64 range by rounding
    (a few units in the last place); that is no extrapolation. Far outside still counts."""
    import copy

    model, train, stats = trained_ranges
    single = copy.deepcopy(model)
    calc = MpnnCalculator(single, dtype=torch.float32)
    for atoms in train:
        atoms = atoms.copy()
        atoms.calc = calc
        atoms.get_potential_energy()
        assert atoms.calc.results["extrapolation_warnings"] == 0
    outside = water(0.80, 1.15, 95.0)
    outside.calc = calc
    outside.get_potential_energy()
    assert outside.calc.results["extrapolation"].tolist() == expected_counts(model, outside, stats).tolist()


@pytest.mark.parametrize("limit", [-1, 1.5, math.nan, True])
def test_a_limit_that_is_no_count_is_refused_at_once(limit) -> None:
    """Not a count of warnings: a ValueError when the calculator is made, not a stop (or none) later."""
    with pytest.raises(ValueError, match="max_extrapolation_warnings"):
        MpnnCalculator(radial_potential(), max_extrapolation_warnings=limit)


def test_a_single_potential_leaves_no_stale_committee_keys(run_folder, tmp_path) -> None:
    """Structures written by a committee run (deviations, counts, close pairs in their info and
    arrays), evaluated again by one potential (predict, md, relax): the outputs carry this
    potential's results only."""
    stale = []
    for atoms in ase.io.read(run_folder["train"], ":3"):
        atoms.info.update(energy_std=1.5, max_force_std=2.5, close_pairs=7, extrapolation_warnings=99)
        atoms.arrays["forces_std"] = np.full(len(atoms), 2.5)
        atoms.arrays["extrapolation"] = np.full(len(atoms), 33)
        stale.append(atoms)
    source = tmp_path / "from_a_committee.extxyz"
    ase.io.write(source, stale, format="extxyz")
    out, traj = tmp_path / "predicted.extxyz", tmp_path / "md.extxyz"
    assert cli.main(["predict", str(run_folder["run"]), str(source), "-o", str(out)]) == 0
    md = ["md", str(run_folder["run"]), str(source), "--steps", "1", "--timestep", "0.1", "--nve", "--quiet"]
    assert cli.main([*md, "-o", str(traj)]) == 0
    relaxed = tmp_path / "relaxed.extxyz"
    assert cli.main(
        ["relax", str(run_folder["run"]), str(source), "--steps", "1", "--quiet", "-o", str(relaxed)]
    ) in (0, 1)
    for frame in [*ase.io.read(out, ":"), *ase.io.read(traj, ":"), *ase.io.read(relaxed, ":")]:
        assert not {"energy_std", "max_force_std", "close_pairs"} & set(frame.info), frame.info
        assert "forces_std" not in frame.arrays
        if "extrapolation" in frame.arrays or "extrapolation_warnings" in frame.info:  # this potential's
            assert frame.info["extrapolation_warnings"] == int(frame.arrays["extrapolation"].sum()) < 99
