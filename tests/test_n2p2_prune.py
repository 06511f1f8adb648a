"""``mpnn prune`` (n2p2's ``nnp-prune``): range and sensitivity pruning of symmetry functions.

References come from outside the code under test: the radial functions of water dimers computed
here with numpy from their definition (``exp(-eta (r - rs)^2) fc(r)``, cosine cutoff), an angular
function that no atom can have (an O centre needs two other O atoms: 0 everywhere), the scaling
done by hand, and central finite differences of each element network's output with respect to
its scaled inputs (n2p2's ``dEdG``), averaged as ``nnp-dataset`` does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms
from small_potentials import water_dimers

from mpnn.cli import main
from mpnn.data.atoms import atoms_to_molecule
from mpnn.errors import DataError
from mpnn.models.hdnnp import hdnnp, set_energy_terms
from mpnn.n2p2 import prune
from mpnn.n2p2.convert import export_n2p2, hdnnp_config
from mpnn.n2p2.input_data import write_input_data
from mpnn.n2p2.input_nn import parse_input_nn, read_input_nn

HEAD = """\
number_of_elements 2
elements H O
cutoff_type 1
scale_symmetry_functions
center_symmetry_functions
global_hidden_layers_short 2
global_nodes_short 5 4
global_activation_short t t l
"""
#: (centre, neighbour, eta 1/A^2, rs A) of the radial functions; rc is RC.
RADIAL = [
    ("H", "H", 0.05, 0.0), ("H", "H", 2.0, 1.6), ("H", "O", 0.05, 0.0), ("H", "O", 4.0, 0.97),
    ("H", "O", 1.0, 3.0), ("H", "O", 8.0, 4.6), ("O", "H", 0.1, 0.0), ("O", "H", 3.0, 2.0),
    ("O", "O", 0.5, 2.9), ("O", "O", 6.0, 3.3),
]  # fmt: skip
RC = 5.0
INPUT_NN = (
    HEAD
    + "".join(f"symfunction_short {c} 2 {n} {eta} {rs} {RC}\n" for c, n, eta, rs in RADIAL)
    + f"symfunction_short O 3 O O 0.01 1.0 1.0 {RC}\n"
)
#: The 1-based line of each radial function, then of the angular one.
LINES = [HEAD.count("\n") + 1 + k for k in range(len(RADIAL) + 1)]


def dimers(count: int, seed: int = 0) -> list[Atoms]:
    """Distorted water dimers, Angstrom (energy and forces 0: not needed to prune)."""
    return water_dimers(count, seed, scale=0.15, emt=False)


def radial_by_hand(structures: list[Atoms]) -> dict[str, np.ndarray]:
    """Per element, (atoms, functions) values of RADIAL, then the angular one (0)."""
    rows: dict[str, list[list[float]]] = {"H": [], "O": []}
    for atoms in structures:
        pos, symbols = atoms.positions, atoms.get_chemical_symbols()
        for i, centre in enumerate(symbols):
            row = []
            for c, n, eta, rs in RADIAL:
                if c != centre:
                    continue
                total = 0.0
                for j, other in enumerate(symbols):
                    r = float(np.linalg.norm(pos[j] - pos[i]))
                    if j != i and other == n and r < RC:
                        total += np.exp(-eta * (r - rs) ** 2) * 0.5 * (np.cos(np.pi * r / RC) + 1.0)
                row.append(total)
            rows[centre].append(row + ([0.0] if centre == "O" else []))
    return {e: np.array(v) for e, v in rows.items()}


def lines_of(element: str) -> list[int]:
    """input.nn lines of the element's functions in the order of radial_by_hand."""
    own = [line for line, (c, *_) in zip(LINES, RADIAL, strict=False) if c == element]
    return own + ([LINES[-1]] if element == "O" else [])


def test_range_pruning_drops_exactly_the_functions_of_small_range(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    structures = dimers(12)
    write_input_data(tmp_path / "input.data", structures)
    (tmp_path / "input.nn").write_text(INPUT_NN)
    by_hand = radial_by_hand(structures)
    spans = {e: v.max(0) - v.min(0) for e, v in by_hand.items()}
    assert spans["O"][-1] == 0.0 and min(spans["H"]) > 0  # one constant function, others vary
    ordered = np.sort(np.concatenate(list(spans.values())))
    threshold = float(np.sqrt(ordered[3] * ordered[4]))  # four functions below, the rest above
    want = sorted(line for e in spans for line, s in zip(lines_of(e), spans[e], strict=True) if s < threshold)
    assert len(want) == 4
    out, report = tmp_path / "pruned.nn", tmp_path / "report.txt"
    args = [str(tmp_path / "input.data"), "--input-nn", str(tmp_path / "input.nn"), "--out", str(out)]
    assert main(["prune", "range", str(threshold), *args, "--report", str(report)]) == 0
    printed = capsys.readouterr().out
    lines = INPUT_NN.splitlines(keepends=True)
    assert out.read_text() == "".join(f"# {t}" if k + 1 in want else t for k, t in enumerate(lines))
    assert report.read_text() in printed and "dropped 4 of 11 symmetry functions" in printed
    rows = [r.split() for r in report.read_text().splitlines()[2:]]
    assert sorted(int(r[2]) for r in rows) == want
    for r in rows:  # the range reported is the hand-computed one
        element, line, value = r[0], int(r[2]), float(r[3])
        hand = spans[element][lines_of(element).index(line)]
        assert value == pytest.approx(hand, rel=1e-5, abs=1e-12)
    # the library's ranges equal the hand computation to rounding
    settings = parse_input_nn(INPUT_NN)
    model = hdnnp(hdnnp_config(settings, settings.elements, (1.0, 1.0)))
    got = prune.ranges(model, [atoms_to_molecule(a) for a in structures])
    order = {e: [lines_of(e).index(s.line) for s in settings.symmetry_functions[e]] for e in "HO"}
    for e, values in zip(settings.elements, got, strict=True):
        np.testing.assert_allclose(values.numpy(), spans[e][order[e]], rtol=1e-12, atol=1e-14)


def test_sensitivity_is_the_networks_derivative_and_prunes_below_the_threshold(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    structures = dimers(10, seed=3)
    write_input_data(tmp_path / "input.data", structures)
    settings = parse_input_nn(INPUT_NN)
    elements = list(settings.elements)
    torch.manual_seed(5)
    model = hdnnp(hdnnp_config(settings, elements, (1.0, 1.0)))
    gen = np.random.default_rng(1)
    stats = []
    for n in model.symmetry_functions.sizes:  # hand-chosen statistics: min, max, mean, sigma
        low = gen.uniform(0.0, 0.2, n)
        high = low + gen.uniform(0.5, 2.0, n)
        stats.append(np.stack([low, high, low + gen.uniform(0.1, 0.4, n), high - low], axis=1))
    model.symmetry_functions.set_scaling("scale_center", [torch.tensor(s) for s in stats], 0.0, 1.0)
    set_energy_terms(model, 0.37, [-13.6, -2041.0])
    export_n2p2(model, tmp_path / "potential")
    by_hand = radial_by_hand(structures)
    reference = {}
    h = 1e-5
    for s, e in enumerate(elements):
        order = [lines_of(e).index(spec.line) for spec in settings.symmetry_functions[e]]
        raw = by_hand[e][:, order]
        low, high, mean = stats[s][:, 0], stats[s][:, 1], stats[s][:, 2]
        x = torch.tensor((raw - mean) / (high - low))  # scale_center to [0, 1]
        grad = np.zeros_like(raw)
        with torch.no_grad():
            for j in range(raw.shape[1]):
                step = torch.zeros_like(x)
                step[:, j] = h
                network = model.update.networks[s]
                grad[:, j] = ((network(x + step) - network(x - step)) / (2 * h)).squeeze(1).numpy()
        msa, peak = np.sqrt((grad**2).mean(0)), np.abs(grad).max(0)
        reference[e] = (msa, peak, 100 * msa / msa.sum(), 100 * peak / peak.sum())
    got = prune.sensitivities(model, [atoms_to_molecule(a) for a in structures])
    for e, table in zip(elements, got, strict=True):
        for column, want in enumerate(reference[e]):
            np.testing.assert_allclose(table[:, column].numpy(), want, rtol=1e-6, atol=1e-12)
    # the command on the exported potential prunes below the threshold (percent of the max column)
    percent = {e: reference[e][3] for e in elements}
    ordered = np.sort(np.concatenate(list(percent.values())))
    threshold = float((ordered[2] + ordered[3]) / 2)
    want = {
        spec.line
        for e in elements
        for spec, p in zip(settings.symmetry_functions[e], percent[e], strict=True)
        if p < threshold
    }
    out = tmp_path / "pruned.nn"
    args = [str(tmp_path / "input.data"), "--potential", str(tmp_path / "potential"), "--max"]
    assert main(["prune", "sensitivity", str(threshold), *args, "--out", str(out)]) == 0
    assert "dropped 3 of 11" in capsys.readouterr().out
    # the potential's own input.nn (as exported), its pruned lines commented out
    exported = (tmp_path / "potential" / "input.nn").read_text().splitlines(keepends=True)
    pruned = out.read_text().splitlines(keepends=True)
    commented = [k for k, (a, b) in enumerate(zip(exported, pruned, strict=True)) if a != b]
    assert all(pruned[k] == f"# {exported[k]}" for k in commented)
    back = parse_input_nn("".join(exported))
    lines = {spec.line: spec for specs in back.symmetry_functions.values() for spec in specs}
    dropped_specs = {lines[k + 1] for k in commented}
    wanted_specs = {
        spec for specs in settings.symmetry_functions.values() for spec in specs if spec.line in want
    }
    assert dropped_specs == wanted_specs


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["range", "0.1", "{data}"], "prune range: needs --input-nn"),
        (["sensitivity", "0.1", "{data}", "--input-nn", "{nn}"], "needs --potential"),
        (["range", "-1", "{data}", "--input-nn", "{nn}"], "a number >= 0"),
        (["range", "0.1", "{data}", "--input-nn", "{nn}", "--scaling", "{nn}"], "DATA or --scaling"),
        (["range", "0.1", "--input-nn", "{nn}"], "DATA or --scaling FILE (one of them)"),
        (["sensitivity", "0.1", "--potential", "{tmp}"], "prune sensitivity: needs DATA"),
        (["range", "0.1", "{data}", "--input-nn", "{nn}", "--out", "{nn}"], "input.nn"),
        (["range", "0.1", "{data}", "--input-nn", "{nn}", "--out", "{tmp}/best.pt"], "name the output *.nn"),
        (["range", "0.1", "{data}", "--input-nn", "{nn}", "--max"], "--max: an option of prune sensitivity"),
    ],
)
def test_prune_refuses_in_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], message: str
) -> None:
    write_input_data(tmp_path / "input.data", dimers(2))
    (tmp_path / "input.nn").write_text(INPUT_NN)
    names = {"data": str(tmp_path / "input.data"), "nn": str(tmp_path / "input.nn"), "tmp": str(tmp_path)}
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["prune", *(a.format(**names) for a in argv)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mpnn: error:") and "\n" not in err and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "input.nn").read_text() == INPUT_NN


def test_range_on_n2p2s_water_example_agrees_with_its_scaling_data(
    n2p2_examples: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """n2p2's H2O_RPBE-D3 training example: its scaling.data (nnp-scaling on its 20 structures)
    read by hand decides what ``nnp-prune range 0.1`` drops (n2p2's own test threshold); the
    ranges computed here from the structures drop the same lines, and so does ``--scaling``."""
    folder = n2p2_examples / "nnp-train" / "H2O_RPBE-D3"
    data = n2p2_examples / "configuration-sets" / "input.data.H2O_RPBE-D3"
    rows = np.loadtxt(folder / "scaling.data", comments="#")  # e_index sf_index min max mean sigma
    low = [(int(r[0]), int(r[1])) for r in rows if abs(r[3] - r[2]) < 0.1]
    assert 0 < len(low) < len(rows)
    settings = read_input_nn(folder / "input.nn")  # n2p2's order: the rows of scaling.data
    lines = {settings.symmetry_functions[settings.elements[e - 1]][k - 1].line for e, k in low}
    text = (folder / "input.nn").read_text()
    want = "".join(f"# {r}" if k in lines else r for k, r in enumerate(text.splitlines(True), start=1))
    common = ["--input-nn", str(folder / "input.nn"), "--units", "bohr,hartree"]
    assert main(["prune", "range", "0.1", str(data), *common, "--out", str(tmp_path / "data.nn")]) == 0
    scaling = ["--scaling", str(folder / "scaling.data"), "--out", str(tmp_path / "s.nn")]
    assert main(["prune", "range", "0.1", *common, *scaling]) == 0
    assert f"dropped {len(low)} of {len(rows)}" in capsys.readouterr().out
    assert (tmp_path / "data.nn").read_text() == want == (tmp_path / "s.nn").read_text()


def test_a_network_that_ignores_its_inputs_is_refused_not_nan() -> None:
    """Zero first-layer weights: every sensitivity is 0, and its percentage of the sum 0/0; n2p2
    would write NaN and prune nothing. One line naming the element instead."""
    settings = parse_input_nn(INPUT_NN)
    model = hdnnp(hdnnp_config(settings, list(settings.elements), (1.0, 1.0)))
    first = next(m for m in model.update.networks[1].modules() if isinstance(m, torch.nn.Linear))
    with torch.no_grad():
        first.weight.zero_()
    molecules = [atoms_to_molecule(a) for a in dimers(3)]
    with pytest.raises(DataError, match=f"element {settings.elements[1]}: .* does not depend on"):
        prune.sensitivities(model, molecules)
    assert all(torch.isfinite(t).all() for t in prune.sensitivities(
        hdnnp(hdnnp_config(settings, list(settings.elements), (1.0, 1.0))), molecules))  # fmt: skip
