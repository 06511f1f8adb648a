"""Issue 9, class 5: no NaN or unphysical result with exit status 0.

A scaling row that n2p2 would divide by zero is refused; a non-finite energy, force or property is
an error naming the structure, and MD stops before writing a non-finite frame; absurd inputs (atoms
on top of each other, a squeezed structure, a huge time step or temperature) get one warning line
each, and the real data sets get none.
"""

from __future__ import annotations

import shutil
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import covalent_radii
from ase.io import read, write
from ase.units import Bohr

from mpnn import cli
from mpnn.batch import Batch
from mpnn.data.atoms import read_structures
from mpnn.data.qm9_xyz import parse_xyz
from mpnn.data.xyz import parse_xyz_frames
from mpnn.errors import DataError
from mpnn.n2p2.convert import read_n2p2
from mpnn.n2p2.input_data import read_input_data
from mpnn.potentials.forces import evaluate
from mpnn.potentials.md import run_md
from mpnn.sanity import CLOSE_FRACTION, UnphysicalWarning, close_atoms
from mpnn.train.predict import predictions_csv

TINY = Path(__file__).parent / "fixtures" / "n2p2" / "tiny"  # H, O; cutoff 6 Angstrom
BUNDLED = Path(__file__).resolve().parents[1] / "src" / "mpnn" / "data" / "bundled" / "qm9_subset.xyz.tar.xz"
WATER = "3\nwater\nO 0 0 0.117\nH 0 0.757 -0.467\nH 0 -0.757 -0.467\n"


def _unphysical(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, UnphysicalWarning)]


def _stderr_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


# -- n2p2 scaling: min == max ---------------------------------------------------------------------
def test_scaling_row_with_min_equal_max_is_refused(tmp_path, capsys) -> None:
    # n2p2 (SymFnc::setScalingType) sets (Smax - Smin) / (Gmax - Gmin) = 1 / 0: every energy NaN or inf
    potential = tmp_path / "pot"
    shutil.copytree(TINY, potential)
    lines = (potential / "scaling.data").read_text().splitlines()
    row = lines[2].split()
    assert row[:2] == ["1", "1"]
    lines[2] = " ".join(row[:3] + [row[2]] + row[4:])  # max := min
    (potential / "scaling.data").write_text("\n".join(lines) + "\n")
    (tmp_path / "w.xyz").write_text(WATER)
    out = tmp_path / "out.extxyz"
    assert cli.main(["predict", str(potential), str(tmp_path / "w.xyz"), "-o", str(out)]) == 2
    err = _stderr_lines(capsys)
    assert len(err) == 1 and err[0].startswith("mpnn: error: ")
    assert "scaling.data:3: element H, symmetry function 1: min and max are both 0.1" in err[0]
    assert "divides by max - min" in err[0] and not out.exists()


def test_set_scaling_refuses_a_zero_divisor() -> None:
    model = read_n2p2(TINY)
    stats = model.symmetry_functions.statistics.clone()
    stats[0, 0, 3] = 0.0  # sigma of H's first function
    with pytest.raises(DataError, match="divides by zero"):
        model.symmetry_functions.set_scaling("sigma", list(stats))


# -- non-finite results ---------------------------------------------------------------------------
class _Broken(torch.nn.Module):
    """Energy = sum of z * |pos|, NaN for structure 1 of the batch (B,)."""

    cutoff = 3.0

    def forward(self, batch: Batch) -> torch.Tensor:
        energies = torch.zeros(batch.num_graphs, dtype=batch.pos.dtype).index_add(
            0, batch.batch, batch.z * batch.pos.norm(dim=1)
        )
        return energies * torch.tensor([1.0, float("nan")], dtype=energies.dtype)[: batch.num_graphs]


def test_evaluate_refuses_non_finite_energy_naming_the_structure() -> None:
    from mpnn.data.atoms import collate_structures

    batch = collate_structures([Atoms("H2", [[0, 0, 0], [0, 0, 0.74]])] * 2, 3.0)
    with pytest.raises(DataError, match=r"^b\.xyz#2: the model's energy is not finite"):
        evaluate(_Broken().double(), batch, names=["a.xyz#1", "b.xyz#2"])
    out = evaluate(_Broken().double(), collate_structures([Atoms("H2", [[0, 0, 0], [0, 0, 0.74]])], 3.0))
    assert torch.isfinite(out["forces"]).all()  # one structure: finite, no error


def test_predict_refuses_an_overflowing_potential(tmp_path, capsys) -> None:
    potential = tmp_path / "pot"
    shutil.copytree(TINY, potential)
    weights = potential / "weights.008.data"
    lines = weights.read_text().splitlines()
    weights.write_text("\n".join(
        line if line.lstrip().startswith("#") or not line.strip() else "1.7e308" for line in lines
    ) + "\n")  # the linear output layer sums two such terms: inf
    (tmp_path / "w.xyz").write_text(WATER)
    out = tmp_path / "out.extxyz"
    assert cli.main(["predict", str(potential), str(tmp_path / "w.xyz"), "-o", str(out)]) == 2
    err = _stderr_lines(capsys)
    assert len(err) == 1 and "input structure 0 (H2O)" in err[0] and "not finite" in err[0]
    assert not out.exists()


def test_property_predictions_are_never_written_non_finite() -> None:
    values = np.array([[1.0], [np.nan]])
    with pytest.raises(DataError, match=r"^mol2: the model's U0 prediction is not finite"):
        predictions_csv(["mol1", "mol2"], ["U0"], values)


class _Diverging(Calculator):
    """Harmonic forces toward the origin, NaN from the third call on (a model leaving its range)."""

    implemented_properties = ["energy", "forces"]

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        self.calls += 1
        pos = self.atoms.positions
        bad = np.nan if self.calls >= 3 else 0.0
        self.results = {"energy": float((pos**2).sum()), "forces": -2.0 * pos + bad}


def test_md_stops_before_writing_a_non_finite_frame(tmp_path) -> None:
    atoms = Atoms("O2", [[0, 0, 0], [0, 0, 1.3]])
    path = tmp_path / "traj.extxyz"
    path.write_text("an earlier trajectory\n")
    with pytest.raises(DataError, match=r"md: step 2: the momenta are no longer finite.*traj.extxyz.partial"):
        run_md(_Diverging(), atoms, steps=5, timestep_fs=0.5, trajectory_path=path)
    assert path.read_text() == "an earlier trajectory\n"  # a failed run leaves the old file as it was
    frames = read(tmp_path / "traj.extxyz.partial", ":", format="extxyz")
    assert [f.info["step"] for f in frames] == [0, 1]
    assert all(np.isfinite(f.positions).all() and np.isfinite(f.get_momenta()).all() for f in frames)


# -- warnings -------------------------------------------------------------------------------------
def test_atoms_too_close_warn_with_indices_elements_and_distance(tmp_path) -> None:
    path = tmp_path / "close.extxyz"
    write(path, Atoms("OHH", [[0, 0, 0], [0.026, 0, 0], [0, 0.96, 0]]))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        read_structures(path)
    found = _unphysical(record)
    ratio = 0.026 / (covalent_radii[8] + covalent_radii[1])  # 0.02, far below CLOSE_FRACTION
    assert ratio < CLOSE_FRACTION
    assert len(found) == 1
    assert f"{path}: structure 0: atoms 0 (O) and 1 (H) are 0.026 A apart ({ratio:.2f} x" in found[0]


def test_cli_prints_each_warning_as_one_line(tmp_path, capsys) -> None:
    (tmp_path / "w.xyz").write_text("3\nwater\nO 0 0 0\nH 0.026 0 0\nH 0 0.96 0\n")
    out = tmp_path / "traj.extxyz"
    args = ["md", str(TINY), str(tmp_path / "w.xyz"), "--steps", "0", "--timestep", "20", "--nve", "--quiet"]
    assert cli.main([*args, "--init-temperature", "2e6", "-o", str(out)]) == 0
    err = _stderr_lines(capsys)
    assert len(err) == 4 and all(line.startswith("mpnn: warning: ") for line in err), err
    assert "atoms 0 (O) and 1 (H) are 0.026 A apart" in err[0]
    assert "extrapolation warnings" in err[3]  # the tiny potential never saw atoms this close
    assert "time step 20 fs is above 1 fs" in err[1] and "(1.008 amu" in err[1]
    assert "initial temperature 2e+06 K is above 100000 K" in err[2]


def _water_box(n2p2_examples: Path) -> Atoms:
    return read_input_data(n2p2_examples / "nnp-predict" / "H2O_RPBE-D3" / "input.data", length=Bohr)[0]


def test_squeezed_structure_warns(n2p2_examples, tmp_path) -> None:
    atoms = _water_box(n2p2_examples)
    squeezed = atoms.copy()
    squeezed.set_cell(atoms.cell * 0.6, scale_atoms=True)  # every distance x 0.6: O-H 0.90 -> 0.54 A
    path = tmp_path / "squeezed.extxyz"
    write(path, squeezed)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        read_structures(path)
    found = _unphysical(record)
    assert len(found) == 1 and "(O) and" in found[0] and "(H) are 0.5" in found[0]
    molecule = parse_xyz(_qm9_texts()[0][1], "qm9")
    text = f"{len(molecule.symbols)}\nsqueezed\n" + "".join(
        f"{s} {x} {y} {z}\n" for s, (x, y, z) in zip(molecule.symbols, 0.6 * molecule.positions, strict=True)
    )
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        parse_xyz_frames(text, "squeezed.xyz")
    assert len(_unphysical(record)) == 1


@pytest.mark.parametrize(
    ("symbols", "timestep", "temperature", "expected"),
    [
        ("H2", 0.5, 300.0, []),
        ("O2", 3.9, 300.0, []),
        ("H2", 2.0, 300.0, ["time step 2 fs is above 1 fs"]),
        ("O2", 1e6, 300.0, ["time step 1e+06 fs is above 3.98 fs"]),
        ("O2", 1.0, 1e9, ["temperature 1e+09 K is above 100000 K"]),
    ],
)
def test_md_settings_warn(symbols, timestep, temperature, expected) -> None:
    model = read_n2p2(TINY)
    atoms = Atoms(symbols, [[0, 0, 0], [0, 0, 1.2]])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        run_md(model, atoms, steps=0, timestep_fs=timestep, temperature_K=temperature)
    found = _unphysical(record)
    assert len(found) == len(expected) and all(e in f for e, f in zip(expected, found, strict=True))


# -- real data: no warning ------------------------------------------------------------------------
def _qm9_texts() -> list[tuple[str, str]]:
    with tarfile.open(BUNDLED) as tar:
        return [(m.name, tar.extractfile(m).read().decode()) for m in tar.getmembers() if m.isfile()]


def test_bundled_qm9_subset_raises_no_warning() -> None:
    for name, text in _qm9_texts():
        record = parse_xyz(text, name)
        assert close_atoms(np.asarray([{"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}[s] for s in record.symbols]),
                           record.positions) is None, name


def test_n2p2_examples_raise_no_warning(n2p2_examples) -> None:
    files = sorted((n2p2_examples / "configuration-sets").glob("input.data.*"))
    files += sorted((n2p2_examples / "nnp-predict").glob("*/input.data"))
    assert len(files) == 12
    for path in files:
        angstrom = any(name in str(path) for name in ("Cu2S", "LJ"))
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            read_structures(path, units=(1.0 if angstrom else Bohr, 1.0))
        assert not _unphysical(record), path


# -- motion in the file ---------------------------------------------------------------------------
_WATER = 'Properties=species:S:1:pos:R:3:momenta:R:3:masses:R:1 pbc="F F F"'


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("nan 0 0 1.008", "atom 1: non-finite momentum [nan, 0.0, 0.0]"),
        ("1e200 0 0 1.008", "atom 1: momentum [1e+200, 0.0, 0.0]"),
        ("0 0 0 0", "atom 1: mass 0.0 amu is not a positive finite number"),
        ("0 0 0 -1", "atom 1: mass -1.0 amu is not a positive finite number"),
    ],
)
def test_md_refuses_bad_momenta_and_masses_naming_the_atom_and_leaves_no_file(
    tmp_path, capsys, row, expected
) -> None:
    path = tmp_path / "w.extxyz"
    path.write_text(f"3\n{_WATER}\nO 0 0 0 0 0 0 15.999\nH 0.96 0 0 {row}\nH -0.24 0.93 0 0 0 0 1.008\n")
    out = tmp_path / "t.extxyz"
    args = ["md", str(TINY), str(path), "--steps", "2", "--timestep", "0.5", "--nve", "-o", str(out)]
    args.append("--quiet")
    assert cli.main(args) == 2
    lines = _stderr_lines(capsys)
    assert lines == [f"mpnn: error: {path}: structure 0, {expected}" + lines[0].split(expected, 1)[1]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.extxyz"]  # no trajectory, no empty .partial


@pytest.mark.parametrize("option", [["--temperature", "300"], ["--nve", "--init-temperature", "300"]])
def test_md_refuses_a_temperature_for_one_atom(tmp_path, capsys, option) -> None:
    path = tmp_path / "h.extxyz"
    write(path, Atoms("H", [[0, 0, 0]]))
    out = tmp_path / "t.extxyz"
    args = ["md", str(TINY), str(path), "--steps", "2", "--timestep", "0.5", *option, "-o", str(out)]
    assert cli.main(args) == 2
    lines = _stderr_lines(capsys)
    assert len(lines) == 1 and "needs at least 2 atoms" in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.extxyz"]


def test_md_failing_at_step_0_leaves_no_partial_file_and_says_energy_is(tmp_path) -> None:
    path = tmp_path / "traj.extxyz"

    class NaNEnergy(_Diverging):
        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            self.results["energy"] = float("nan")

    with pytest.raises(DataError, match=r"^md: step 0: the energy is no longer finite") as caught:
        o2 = Atoms("O2", [[0, 0, 0], [0, 0, 1.3]])
        run_md(NaNEnergy(), o2, steps=3, timestep_fs=0.5, trajectory_path=path)
    assert ".partial" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []
