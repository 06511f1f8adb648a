"""n2p2 potential files: input.nn (keywords, n2p2's symmetry-function order), scaling.data, weights.

Reference values come from outside the code under test: the order worked out by hand from the
``operator<`` of n2p2's ``SymFnc*.cpp`` classes, the weights layout of ``NeuralNetwork.cpp``
(``setConnections``) applied by hand to hand-written files, the row counts of n2p2's own
``scaling.data`` files, and a physical property of the scaling statistics (a symmetry function
that is pointwise smaller has a smaller maximum and mean over any data set).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from mpnn import files
from mpnn.errors import DataError
from mpnn.n2p2.input_nn import (
    parse_input_nn,
    read_input_nn,
    sort_symmetry_functions,
    write_input_nn,
)
from mpnn.n2p2.potential_files import (
    N2p2Potential,
    read_potential,
    read_scaling,
    read_weights,
    write_potential,
    write_scaling,
    write_weights,
)

FIXTURES = Path(__file__).parent / "fixtures" / "n2p2"
PREDICT = ("H2O_RPBE-D3", "Cu2S_PBE", "Anisole_SCAN", "DMABN_SCAN", "Ethylbenzene_SCAN")
#: Lines of all_types.nn in n2p2's order, worked out by hand from the SymFnc*::operator< rules.
EXPECTED_H = [36, 24, 29, 20, 18,  # 2: rc, eta, rs, e1
              31, 26, 22, 44, 38,  # 3: rc, eta, rs, zeta, lambda, e1, e2
              42, 32, 39, 28, 43, 21,  # 9: rc first; 12: eta; 13: lambda after zeta
              47, 41, 30, 23, 35,  # 20: subtype ("e" < "p2" < "p2a"), e1, rc, rl
              40, 27, 45, 34, 19,  # 21, 22: angle_left, angle_right last
              37, 46, 48, 33, 49, 25]  # 23: rl after rc; 24: rc; 25: subtype
EXPECTED_O = [52, 51, 50]


def _write(tmp_path: Path, text: str, name: str = "input.nn") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------- input.nn

def test_all_types_fixture_is_read_in_n2p2_order() -> None:
    s = read_input_nn(FIXTURES / "all_types.nn")
    assert s.elements == ("H", "O")
    assert [f.line for f in s.symmetry_functions["H"]] == EXPECTED_H
    assert [f.line for f in s.symmetry_functions["O"]] == EXPECTED_O
    assert (s.cutoff_type, s.cutoff_alpha, s.scaling) == (1, 0.1, "scale")
    assert (s.scale_min, s.scale_max) == (-1.0, 1.0)
    assert s.nodes == {"H": (4, 3), "O": (4, 3)} and s.activations["O"] == ("t", "s", "l")
    assert s.normalize_nodes and s.atom_energy == {"H": -0.5, "O": -75.0} and s.conv_length is None
    assert s.extra_keywords == (("epochs", "10"), ("short_force_fraction", "0.1"))
    by_line = {f.line: f for f in s.symmetry_functions["H"]}
    assert by_line[22].neighbors == ("H", "O")  # "O H" stored in element order
    assert (by_line[38].eta, by_line[38].lambda_, by_line[38].zeta, by_line[38].rc, by_line[38].rs) == (
        0.1, 1.0, 2.0, 6.0, 0.5)
    assert (by_line[19].rl, by_line[19].angle_left, by_line[19].angle_right, by_line[19].subtype) == (
        -6.0, 60.0, 180.0, "p3")
    assert by_line[18].cutoff_type == 1 and by_line[18].cutoff_alpha == 0.1


def test_sorting_shuffled_specs_gives_the_hand_derived_order() -> None:
    specs = read_input_nn(FIXTURES / "all_types.nn").symmetry_functions["H"]
    rng = random.Random(7)
    for _ in range(20):
        shuffled = specs[:]
        rng.shuffle(shuffled)
        assert [f.line for f in sort_symmetry_functions(shuffled)] == EXPECTED_H


def test_input_nn_round_trip(tmp_path: Path) -> None:
    s = read_input_nn(FIXTURES / "all_types.nn")
    write_input_nn(tmp_path / "input.nn", s)
    back = read_input_nn(tmp_path / "input.nn")
    assert back == s and back.symmetry_functions["H"] == s.symmetry_functions["H"]
    assert not list(tmp_path.glob(".*tmp"))


def test_example_settings_round_trip_and_counts_match_scaling(n2p2_examples: Path, tmp_path: Path) -> None:
    files = sorted(n2p2_examples.glob("nnp-*/*/input.nn*"))
    assert len(files) == 10
    for path in files:
        if "4G" in str(path):
            continue
        s = read_input_nn(path)
        write_input_nn(tmp_path / "input.nn", s)
        assert read_input_nn(tmp_path / "input.nn") == s, path
        scaling = path.parent / "scaling.data"
        if path.name == "input.nn" and scaling.is_file():
            e_index = [int(line.split()[0]) for line in scaling.read_text().splitlines()
                       if line.strip() and not line.startswith("#")]
            counts = [e_index.count(i + 1) for i in range(len(s.elements))]
            assert counts == [len(s.symmetry_functions[e]) for e in s.elements], path


def test_example_elements_follow_atomic_number(n2p2_examples: Path) -> None:
    assert read_input_nn(n2p2_examples / "nnp-predict/Cu2S_PBE/input.nn").elements == ("S", "Cu")
    assert read_input_nn(n2p2_examples / "nnp-predict/Anisole_SCAN/input.nn").elements == ("H", "C", "O")
    s = read_input_nn(n2p2_examples / "nnp-predict/H2O_RPBE-D3/input.nn")
    assert (s.mean_energy, s.conv_energy, s.conv_length) == (
        -2.5521343547039809e01, 2.4265748255366972e02, 5.8038448995319847e00)


def test_4g_example_is_unsupported(n2p2_examples: Path) -> None:
    with pytest.raises(DataError, match=r"input\.nn:10: unsupported: 4th-generation potential"):
        read_input_nn(n2p2_examples / "nnp-predict/H2O_RPBE-D3_4G/input.nn")
    with pytest.raises(DataError, match="unsupported: 4th-generation"):
        read_potential(n2p2_examples / "nnp-predict/H2O_RPBE-D3_4G")


def _violations(specs: list, table: np.ndarray) -> tuple[int, int]:
    """Pairs of functions where one is pointwise >= the other but its max or mean is smaller.

    exp(-eta (r - rs)^2) falls with eta at every r (types 2, 3, 9, 12, 13 at equal other
    parameters); a compact function centred on 0 (rl = -rc) grows with rc at every r.
    """
    groups: dict[tuple, list] = {}
    for spec, row in zip(specs, table, strict=True):
        if spec.type < 20:
            key = (spec.type, spec.neighbors, spec.rs, spec.rc, spec.lambda_, spec.zeta)
            groups.setdefault(key, []).append((-spec.eta, row))
        elif spec.rl == -spec.rc:
            key = (spec.type, spec.subtype, spec.neighbors, spec.angle_left, spec.angle_right)
            groups.setdefault(key, []).append((spec.rc, row))
    bad = checked = 0
    for members in groups.values():
        members.sort(key=lambda m: m[0])
        for (a, small), (b, large) in zip(members, members[1:], strict=False):
            if b > a:
                checked += 1
                bad += not (large[1] >= small[1] and large[2] >= small[2])
    return bad, checked


def test_sorted_order_makes_scaling_statistics_consistent(n2p2_examples: Path) -> None:
    for name in PREDICT:
        potential = read_potential(n2p2_examples / "nnp-predict" / name)
        s = potential.settings
        for e in s.elements:
            bad, checked = _violations(s.symmetry_functions[e], potential.scaling[e])
            assert checked >= 10 and bad == 0, (name, e, bad, checked)
            in_file_order = sorted(s.symmetry_functions[e], key=lambda f: f.line)
            assert _violations(in_file_order, potential.scaling[e])[0] > 0  # the check can fail


BAD_INPUT_NN = [
    ("foo 1\n", "input.nn:5: unknown keyword 'foo'"),
    ("symfunction_short H 7 H 1.0 0.0 6.0\n", "input.nn:5: unknown symmetry function type 7"),
    ("symfunction_short H 2 H 1.0 6.0\n", "input.nn:5: symmetry function type 2 needs 4 values"),
    ("symfunction_short H 3 H H 1 1 1 6 0 1\n", "input.nn:5: symmetry function type 3 needs 6 or 7"),
    ("symfunction_short H 2 C 1.0 0.0 6.0\n", "input.nn:5: element 'C' is not in 'elements'"),
    ("symfunction_short C 2 H 1.0 0.0 6.0\n", "input.nn:5: element 'C' is not in 'elements'"),
    ("symfunction_short H 2 H abc 0.0 6.0\n", "input.nn:5: eta: not a number: 'abc'"),
    ("symfunction_short H 2 H nan 0.0 6.0\n", "input.nn:5: eta: not a finite number"),
    ("symfunction_short H 20 H 6.0 6.0 p2\n", "input.nn:5: lower radial bound"),
    ("symfunction_short H 20 H -6.0 6.0 q2\n", "input.nn:5: unknown compact function 'q2'"),
    ("symfunction_short H 21 H H 0.0 6.0 -10.0 180.0 p2\n", "input.nn:5: angles"),
    ("nnp_generation 4\n", "input.nn:5: unsupported: 4th-generation potential (charges and electrostatics)"),
    ("nnp_type 3G-HDNNP\n", "input.nn:5: unsupported: 3rd-generation potential"),
    ("nnp_generation 10\n", "input.nn:5: unsupported: Q-HDNNP"),
    ("nnp_generation 7\n", "input.nn:5: unknown nnp_generation '7'"),
    ("cutoff_type 2\n", "input.nn:5: keyword 'cutoff_type' given twice (first at line 3)"),
    ("symfunction H 2 H 1 0 6\n", "input.nn:7: 'symfunction_short' and its alternative 'symfunction' (line"),
    ("mean_energy 1.0\n", "input.nn:5: mean_energy, conv_energy and conv_length go together"),
    ("global_activation_short t x\n", "input.nn:5: unknown activation function 'x'"),
    ("atom_energy H 1.0\natom_energy H 2.0\n", "input.nn:6: atom_energy for H given twice"),
    ("scale_symmetry_functions 1\n", "input.nn:5: 'scale_symmetry_functions' needs 0 value(s), found 1"),
]
HEAD = "number_of_elements 1\nelements H\ncutoff_type 2\nglobal_hidden_layers_short 1\n"
TAIL = "global_nodes_short 2\nsymfunction_short H 2 H 1.0 0.0 6.0\n"


@pytest.mark.parametrize(("line", "message"), BAD_INPUT_NN)
def test_input_nn_errors_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    text = HEAD + line + TAIL + ("" if "global_activation" in line else "global_activation_short t l\n")
    with pytest.raises(DataError) as error:
        read_input_nn(_write(tmp_path, text))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_input_nn_whole_file_errors(tmp_path: Path) -> None:
    body = "global_hidden_layers_short 1\nglobal_nodes_short 2\nglobal_activation_short t l\n"
    cases = [
        ("number_of_elements 2\nelements H\ncutoff_type 2\n", "input.nn:1: number_of_elements is 2"),
        ("number_of_elements 1\nelements H\n", "input.nn: missing keyword 'cutoff_type'"),
        ("number_of_elements 1\nelements Xx\ncutoff_type 2\n", "input.nn:2: unknown element 'Xx'"),
        ("number_of_elements 1\nelements H\ncutoff_type 9\n", "input.nn:3: unknown cutoff type 9"),
        ("number_of_elements 1\nelements H\ncutoff_type 2 1\n", "input.nn:3: cutoff alpha must be in [0, 1)"),
    ]
    for head, message in cases:
        with pytest.raises(DataError, match=message.replace("[", r"\[").replace(")", r"\)")):
            read_input_nn(_write(tmp_path, head + body + "symfunction_short H 2 H 1.0 0.0 6.0\n"))
    with pytest.raises(DataError, match="input.nn: element O has no symmetry functions"):
        read_input_nn(_write(tmp_path, "number_of_elements 2\nelements H O\ncutoff_type 2\n" + body
                             + "symfunction_short H 2 H 1.0 0.0 6.0\n"))


def test_per_element_networks_follow_n2p2(tmp_path: Path) -> None:
    head = ("number_of_elements 2\nelements H O\ncutoff_type 2\nglobal_hidden_layers_short 2\n"
            "global_nodes_short 5 4\nglobal_activation_short t t l\n"
            "symfunction_short H 2 H 1.0 0.0 6.0\nsymfunction_short O 2 H 1.0 0.0 6.0\n")
    s = parse_input_nn(head + "element_nodes_short O 7 4\nelement_activation_short O p s l\n")
    assert s.nodes == {"H": (5, 4), "O": (7, 4)}
    assert s.activations == {"H": ("t", "t", "l"), "O": ("p", "s", "l")}
    write_input_nn(tmp_path / "input.nn", s)
    assert read_input_nn(tmp_path / "input.nn") == s
    # n2p2 (Mode::setupNeuralNetwork) ignores the last per-element hidden layer and output activation.
    with pytest.raises(DataError, match=r"input\.nn:9: unsupported: element_nodes_short .* 9"):
        parse_input_nn(head + "element_nodes_short O 7 9\n")
    with pytest.raises(DataError, match=r"input\.nn:9: unsupported: element_activation_short .* 't'"):
        parse_input_nn(head + "element_activation_short O p s t\n")
    s.activations["O"] = ("p", "s", "t")
    with pytest.raises(DataError, match="unsupported"):
        write_input_nn(tmp_path / "input.nn", s)


# ------------------------------------------------------------------------------------ scaling, weights

def test_tiny_fixture_hand_checked() -> None:
    p = read_potential(FIXTURES / "tiny")
    assert [(f.type, f.neighbors, f.eta) for f in p.settings.symmetry_functions["H"]] == [
        (2, ("O",), 0.1), (2, ("H",), 0.5), (3, ("H", "O"), 0.1)]
    np.testing.assert_array_equal(p.scaling["H"][:, 0], [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(p.scaling["O"][1], [0.5, 6.0, 4.5, 0.9])
    (w1, b1), (w2, b2) = p.weights["H"]  # values 1..11: w[j][k] with source j outer, target k inner
    np.testing.assert_array_equal(w1, [[1.0, 3.0, 5.0], [2.0, 4.0, 6.0]])
    np.testing.assert_array_equal(b1, [7.0, 8.0])
    np.testing.assert_array_equal(w2, [[9.0, 10.0]])
    np.testing.assert_array_equal(b2, [11.0])
    (w1, b1), (w2, b2) = p.weights["O"]
    np.testing.assert_array_equal(w1, [[0.1, 0.3], [0.2, 0.4]])
    np.testing.assert_array_equal(np.concatenate([b1, w2[0], b2]), [0.5, 0.6, 0.7, 0.8, 0.9])


def test_weights_round_trip_is_exact(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    layers = [(rng.normal(size=(5, 7)) * 10.0 ** rng.integers(-300, 300, size=(5, 7)), rng.normal(size=5)),
              (np.array([[5e-324, -1.7976931348623157e308, 1 / 3, -0.0, 1e-7]]), np.array([np.pi]))]
    write_weights(tmp_path / "weights.008.data", layers)
    back = read_weights(tmp_path / "weights.008.data", 7, (5, 1))
    for (w, b), (w2, b2) in zip(layers, back, strict=True):
        assert w2.shape == w.shape and np.array_equal(w, w2) and np.array_equal(b, b2)


def test_weights_errors(tmp_path: Path) -> None:
    path = tmp_path / "weights.008.data"
    path.write_text("".join(f"{v} a\n" for v in range(10)))
    with pytest.raises(DataError, match=r"weights\.008\.data: expected 11 values, found 10$"):
        read_weights(path, 3, (2, 1))
    path.write_text("".join(f"{v}\n" for v in range(10)) + "x\n")
    with pytest.raises(DataError, match=r"weights\.008\.data:11: not a number: 'x'"):
        read_weights(path, 3, (2, 1))
    path.write_text("".join(f"{v} a\n" for v in range(11)))
    with pytest.raises(DataError, match=r"weights\.008\.data:7: expected a bias \('b'\)"):
        read_weights(path, 3, (2, 1))
    with pytest.raises(DataError, match="do not chain"):
        write_weights(path, [(np.zeros((2, 3)), np.zeros(2)), (np.zeros((1, 3)), np.zeros(1))])


def test_scaling_errors(tmp_path: Path) -> None:
    s = read_input_nn(FIXTURES / "tiny" / "input.nn")
    rows = (FIXTURES / "tiny" / "scaling.data").read_text().splitlines()
    cases = [
        (rows[:4] + rows[5:], "element H has 2 rows, expected 3"),
        (rows[:6], "element O has 1 rows, expected 2"),
        (rows + ["2 3 0 1 0.5 0.1"], ":8: function index 3 out of range 1..2 for O"),
        (rows[:2] + ["3 1 0 1 0.5 0.1"] + rows[3:], ":3: element index 3 out of range 1..2"),
        (rows[:2] + ["1 1 0 x 0.5 0.1"] + rows[3:], ":3: not a number: 'x'"),
        (rows[:2] + ["1 1 0 1"] + rows[3:], ":3: expected 5 or 6 columns"),
        (rows[:2] + [rows[3], rows[2]] + rows[4:], "rows are not in n2p2's order"),
    ]
    for lines, message in cases:
        path = _write(tmp_path, "\n".join(lines) + "\n", "scaling.data")
        with pytest.raises(DataError, match=message):
            read_scaling(path, s)
    s.scaling = "sigma"
    five = [" ".join(r.split()[:5]) if not r.startswith("#") else r for r in rows]
    with pytest.raises(DataError, match=":3: no sigma column"):
        read_scaling(_write(tmp_path, "\n".join(five) + "\n", "scaling.data"), s)


def test_example_potentials_round_trip_exactly(n2p2_examples: Path, tmp_path: Path) -> None:
    for name in PREDICT:
        p = read_potential(n2p2_examples / "nnp-predict" / name)
        counts = p.settings.n_symmetry_functions()
        for e in p.settings.elements:
            sizes = (counts[e], *p.settings.nodes[e], 1)
            assert [w.shape for w, _ in p.weights[e]] == list(zip(sizes[1:], sizes[:-1], strict=True))
        write_potential(tmp_path / name, p)
        back = read_potential(tmp_path / name)
        assert back.settings == p.settings
        for e in p.settings.elements:
            assert np.array_equal(back.scaling[e], p.scaling[e])
            for (w, b), (w2, b2) in zip(p.weights[e], back.weights[e], strict=True):
                assert np.array_equal(w, w2) and np.array_equal(b, b2)
        write_scaling(tmp_path / "scaling.data", p.settings, p.scaling)
        assert np.array_equal(read_scaling(tmp_path / "scaling.data", p.settings)[p.settings.elements[0]],
                              p.scaling[p.settings.elements[0]])
    assert not list(tmp_path.rglob(".*tmp"))


def test_write_potential_writes_all_or_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = read_potential(FIXTURES / "tiny")
    write_potential(tmp_path, p)
    before = {f.name: f.read_bytes() for f in tmp_path.iterdir()}
    assert sorted(before) == ["input.nn", "scaling.data", "weights.001.data", "weights.008.data"]
    bad = N2p2Potential(p.settings, p.scaling, {"H": p.weights["H"], "O": p.weights["H"]})
    with pytest.raises(DataError, match=r"weights\.008\.data: weight shapes"):
        write_potential(tmp_path, bad)
    calls = []
    real = files.stage

    def failing(path: Path, write) -> Path:
        calls.append(path.name)
        if len(calls) == 3:
            raise OSError("disk full")
        return real(path, write)

    monkeypatch.setattr(files, "stage", failing)
    p.weights["H"][0][0][0, 0] = 42.0
    with pytest.raises(OSError, match="disk full"):
        write_potential(tmp_path, p)
    assert {f.name: f.read_bytes() for f in tmp_path.iterdir()} == before  # untouched, no temporary left
