"""Committees of potentials: means and deviations against the members one by one; `mpnn select`."""

from __future__ import annotations

from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from small_potentials import TINY_POTENTIAL, TRICLINIC, labelled, small_hdnnp, spread

from mpnn import cli
from mpnn.errors import DataError
from mpnn.outputs import COMMITTEE, folder_kind
from mpnn.potentials.calculator import MpnnCalculator
from mpnn.potentials.committee import Committee
from mpnn.potentials.select import select_frames


def members(count: int = 3) -> list:
    return [small_hdnnp(("H", "O"), 3.0, 1, seed).double().eval() for seed in range(count)]


def cell_of_water() -> Atoms:
    box = np.asarray(TRICLINIC) * 1.6
    positions = spread(8, box, np.random.default_rng(3), [True] * 3, min_dist=1.0)
    return Atoms("OHHOHHOH", positions, cell=box, pbc=True)


def test_mean_and_deviations_equal_the_members_one_by_one() -> None:
    models = members(3)
    atoms = cell_of_water()
    one_by_one = []
    for model in models:
        copy = atoms.copy()
        copy.calc = MpnnCalculator(model)
        one_by_one.append(
            (copy.get_potential_energy(), copy.get_forces(), copy.get_stress(), copy.calc.results["energies"])
        )
    energies = np.array([e for e, _, _, _ in one_by_one])
    forces = np.stack([f for _, f, _, _ in one_by_one])
    stresses = np.stack([s for _, _, s, _ in one_by_one])
    atoms.calc = MpnnCalculator(Committee(models))
    assert atoms.get_potential_energy() == pytest.approx(energies.mean(), abs=1e-10)
    assert np.allclose(atoms.get_forces(), forces.mean(0), rtol=0, atol=1e-10)
    assert np.allclose(atoms.get_stress(), stresses.mean(0), rtol=0, atol=1e-12)
    atomic = np.stack([a for _, _, _, a in one_by_one]).mean(0)
    assert np.allclose(atoms.calc.results["energies"], atomic, rtol=0, atol=1e-10)
    results = atoms.calc.results
    assert results["energy_std"] == pytest.approx(
        np.sqrt(((energies - energies.mean()) ** 2).mean()), abs=1e-10
    )
    by_hand = np.sqrt(np.mean([((f - forces.mean(0)) ** 2).sum(1) for f in forces], axis=0))  # (n,)
    assert results["forces_std"].shape == (len(atoms),)
    assert np.allclose(results["forces_std"], by_hand, rtol=0, atol=1e-10)
    assert results["max_force_std"] == pytest.approx(by_hand.max(), abs=1e-10)
    assert np.allclose(results["stress_std"], stresses.std(0), rtol=0, atol=1e-12)
    assert results["energy_std"] > 0 and by_hand.min() > 0  # different members disagree


def test_identical_members_agree_exactly_and_bad_committees_are_refused() -> None:
    model = small_hdnnp(("H", "O"), 3.0, 1, 0).double().eval()
    atoms = cell_of_water()
    atoms.calc = MpnnCalculator(Committee([model, model]))
    atoms.get_forces()
    assert atoms.calc.results["energy_std"] == 0 and not atoms.calc.results["forces_std"].any()
    with pytest.raises(DataError, match="at least 2"):
        Committee([model])
    with pytest.raises(DataError, match="same elements"):
        Committee([model, small_hdnnp(("H", "C"), 3.0, 1, 0)])


def test_select_picks_the_band_and_the_largest_under_a_limit() -> None:
    frames = []
    for k, deviation in enumerate((0.01, 0.2, 0.5, 0.08, 0.12, 0.02)):
        atoms = Atoms("H2", [[0, 0, 0], [0, 0, 0.74]])
        atoms.info.update(max_force_std=deviation, energy_std=0.0, extrapolation_warnings=int(k == 5))
        frames.append(atoms)
    chosen = select_frames(frames, 0.05, 0.3)
    assert chosen.picked == [1, 3, 4] and chosen.too_far == 1 and chosen.agreed == 2
    assert select_frames(frames, 0.05, 0.3, limit=2).picked == [1, 4]
    assert select_frames(frames, 0.05, 0.3, extrapolating=True).picked == [1, 3, 4, 5]


# -- the commands, on two potentials trained by `mpnn train-potential` ---------------------------------
POTENTIAL = TINY_POTENTIAL


@pytest.fixture(scope="module")
def committee(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("committee")
    paths = {"train": root / "train.xyz", "folder": root / "committee", "test": root / "test.xyz"}
    ase.io.write(paths["train"], labelled(9, 0), format="extxyz")
    ase.io.write(paths["test"], labelled(3, 1), format="extxyz")
    torch.set_num_threads(1)
    for seed in (0, 1):
        out = paths["folder"] / f"seed{seed}"
        assert (
            cli.main(
                ["train-potential", str(paths["train"]), "--out", str(out), "--seed", str(seed), *POTENTIAL]
            )
            == 0
        )
    return paths


def test_predict_with_a_committee_folder(committee, tmp_path, capsys) -> None:
    folder = committee["folder"]
    assert folder_kind(folder) == COMMITTEE
    each = []
    for member in sorted(folder.iterdir()):
        out = tmp_path / f"{member.name}.extxyz"
        assert cli.main(["predict", str(member), str(committee["test"]), "-o", str(out)]) == 0
        each.append(ase.io.read(out, ":"))
    out = tmp_path / "committee.extxyz"
    assert cli.main(["predict", str(folder), str(committee["test"]), "-o", str(out)]) == 0
    for k, frame in enumerate(ase.io.read(out, ":")):
        energies = np.array([m[k].get_potential_energy() for m in each])
        forces = np.stack([m[k].get_forces() for m in each])
        assert frame.get_potential_energy() == pytest.approx(energies.mean(), abs=1e-6)
        assert frame.info["energy_std"] == pytest.approx(energies.std(), abs=1e-6)
        by_hand = np.sqrt(((forces - forces.mean(0)) ** 2).sum(2).mean(0))
        assert np.allclose(frame.arrays["forces_std"], by_hand, atol=1e-6)
        assert frame.info["max_force_std"] == pytest.approx(by_hand.max(), abs=1e-6)


def test_md_with_a_committee_then_select(committee, tmp_path, capsys) -> None:
    traj = tmp_path / "md.extxyz"
    args = ["md", str(committee["folder"]), str(committee["test"]), "--steps", "6", "--timestep", "0.5"]
    assert cli.main([*args, "--temperature", "600", "--quiet", "-o", str(traj)]) == 0
    assert "committee: largest force deviation" in capsys.readouterr().out
    frames = ase.io.read(traj, ":")
    deviations = np.array([f.info["max_force_std"] for f in frames])
    assert len(frames) == 7 and (deviations > 0).all()
    assert all(f.arrays["forces_std"].shape == (len(f),) for f in frames)

    low, high = np.quantile(deviations, [0.3, 0.8])
    picked = tmp_path / "picked.extxyz"
    assert cli.main(["select", str(committee["folder"]), str(traj), "--force-deviation", f"{low},{high}",
                     "-o", str(picked)]) == 0  # fmt: skip
    expected = [k for k, d in enumerate(deviations) if low <= d < high]
    chosen = ase.io.read(picked, ":")
    assert [a.info["frame"] for a in chosen] == expected
    for a in chosen:  # the structures as they were, without the committee's energies as labels
        assert np.allclose(a.positions, frames[a.info["frame"]].positions, atol=1e-7) and a.calc is None
    assert f"picked {len(expected)} of 7 frames" in capsys.readouterr().out


def test_select_errors_are_one_line(committee, tmp_path, capsys) -> None:
    member, both, test = str(committee["folder"] / "seed0"), str(committee["folder"]), str(committee["test"])
    for args, message in (
        ([member, test, "--force-deviation", "0.1"], "not a committee"),
        ([both, test], "say what to pick"),
        ([both, test, "--force-deviation", "0.3,0.1"], "LOW must be below"),
        ([both, test, "--force-deviation", "0.1", "-o", test], "test.xyz"),
    ):
        assert cli.main(["select", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("mpnn: error: ") and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "selected.extxyz").exists()


def test_committee_of_links_guards_its_members_and_refuses_a_member_twice(
    committee, tmp_path, capsys
) -> None:
    """A committee folder of symbolic links reads the members' folders: an output inside one of
    them is refused as for the member itself; two links to one potential are no committee."""
    seed0, seed1 = committee["folder"] / "seed0", committee["folder"] / "seed1"
    links, twice = tmp_path / "links", tmp_path / "twice"
    for folder, targets in ((links, (seed0, seed1)), (twice, (seed0, seed0))):
        folder.mkdir()
        for name, target in zip("ab", targets, strict=True):
            (folder / name).symlink_to(target, target_is_directory=True)
    test, md = str(committee["test"]), ["--steps", "1", "--timestep", "0.5", "--nve", "--quiet"]
    select = ["--force-deviation", "0", "-o", str(seed1 / "out.extxyz")]
    for args, message in (
        (["predict", str(links), test, "-o", str(seed0 / "out.extxyz")], "lies inside"),
        (["select", str(links), test, *select], "lies inside"),
        (["md", str(links), test, *md, "-o", str(seed0 / "md.extxyz")], "lies inside"),
        (
            ["relax", str(links), test, "--steps", "1", "--quiet", "-o", str(seed1 / "r.extxyz")],
            "lies inside",
        ),
        (
            ["mc", str(links), test, *md[:2], "--temperature", "300", "-o", str(seed0 / "mc.extxyz")],
            "lies inside",
        ),
        (["predict", str(twice), test, "-o", str(tmp_path / "twice.extxyz")], "same potential"),
    ):
        assert cli.main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("mpnn: error: ") and err.count("\n") == 1 and message in err, err
    assert not list(seed0.glob("*.extxyz")) and not list(seed1.glob("*.extxyz"))
    assert not (tmp_path / "twice.extxyz").exists()
    assert cli.main(["predict", str(links), test, "-o", str(tmp_path / "links.extxyz")]) == 0


def test_a_committee_with_one_readable_member_says_so(committee, tmp_path, capsys) -> None:
    folder = tmp_path / "one_left"
    (folder / "bad").mkdir(parents=True)
    (folder / "bad" / "config.json").write_text("{")
    (folder / "good").symlink_to(committee["folder"] / "seed0", target_is_directory=True)
    out = tmp_path / "out.extxyz"
    assert cli.main(["predict", str(folder), str(committee["test"]), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mpnn: error: ") and err.count("\n") == 1 and "only good is one" in err, err
    assert not out.exists()


def test_a_broken_member_is_named_not_left_out(committee, tmp_path, capsys) -> None:
    """Two readable members and a third whose config.json is cut short: leaving it out would make
    a smaller committee (a smaller spread) without a word; it is named instead."""
    folder = tmp_path / "three"
    for name in ("a", "b"):
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).symlink_to(committee["folder"] / f"seed{'ab'.index(name)}", target_is_directory=True)
    (folder / "c").mkdir()
    (folder / "c" / "config.json").write_text('{"run": ')
    out = tmp_path / "out.extxyz"
    assert cli.main(["predict", str(folder), str(committee["test"]), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mpnn: error: ") and err.count("\n") == 1 and "three/c" in err, err
    assert not out.exists()


def test_many_empty_subfolders_beside_the_members(committee, tmp_path, capsys) -> None:
    """1000 empty folders sorted before the two members: still a committee of those two."""
    folder = tmp_path / "crowded"
    for k in range(1000):
        (folder / f"empty{k:04d}").mkdir(parents=True)
    for name in ("seed0", "seed1"):
        (folder / name).symlink_to(committee["folder"] / name, target_is_directory=True)
    assert folder_kind(folder) == COMMITTEE
    out = tmp_path / "out.extxyz"
    assert cli.main(["predict", str(folder), str(committee["test"]), "-o", str(out)]) == 0
    assert all("energy_std" in frame.info for frame in ase.io.read(out, ":"))
