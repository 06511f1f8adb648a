"""The one symmetry-function type (:class:`mpnn.symmetry.spec.SymmetryFunctionSpec`): its dict form
(a model's ``config.json``), n2p2's defaults, its checks, and its agreement with the n2p2 reader."""

from __future__ import annotations

import json
import math

import pytest

from mpnn.errors import DataError
from mpnn.models.hdnnp import HDNNPConfig, hdnnp
from mpnn.n2p2.input_nn import parse_input_nn
from mpnn.n2p2.keywords import _LAYOUT
from mpnn.symmetry.families import FAMILIES
from mpnn.symmetry.spec import TYPES, SymmetryFunctionSpec

#: One function of every type, as a model's config.json stores it (lengths in Angstrom).
EXAMPLES = {
    2: {"type": 2, "neighbors": ["H"], "eta": 0.5, "rs": 0.8, "rc": 3.5},
    3: {"type": 3, "neighbors": ["H", "O"], "eta": 0.1, "rs": 0.0, "rc": 3.6, "lambda_": 1.0, "zeta": 2.0},
    9: {"type": 9, "neighbors": ["O", "O"], "eta": 0.2, "rs": 0.3, "rc": 3.7, "lambda_": -1.0, "zeta": 3.0},
    12: {"type": 12, "eta": 0.3, "rs": 0.5, "rc": 3.8},
    13: {"type": 13, "eta": 0.02, "rs": 0.2, "rc": 3.8, "lambda_": 1.0, "zeta": 2.0},
    20: {"type": 20, "neighbors": ["O"], "rc": 3.0, "rl": -3.0, "subtype": "p2a"},
    21: {"type": 21, "neighbors": ["H", "O"], "rc": 3.5, "rl": 0.0, "angle_left": 0.0, "angle_right": 90.0,
         "subtype": "p2"},
    22: {"type": 22, "neighbors": ["H", "H"], "rc": 3.5, "rl": 0.5, "angle_left": 60.0, "angle_right": 180.0,
         "subtype": "e"},
    23: {"type": 23, "rc": 3.2, "rl": 0.2, "subtype": "p4"},
    24: {"type": 24, "rc": 3.4, "rl": 0.0, "angle_left": -30.0, "angle_right": 30.0, "subtype": "p1"},
    25: {"type": 25, "rc": 3.4, "rl": 0.0, "angle_left": 90.0, "angle_right": 180.0, "subtype": "p3a"},
}  # fmt: skip


def test_every_family_type_has_an_example() -> None:
    assert sorted(EXAMPLES) == sorted(FAMILIES) == sorted(TYPES)


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_dict_round_trip(kind: int) -> None:
    d = EXAMPLES[kind]
    spec = SymmetryFunctionSpec.from_dict(d)
    assert spec.to_dict() == d and list(spec.to_dict()) == list(d)  # the same keys, in the same order
    assert SymmetryFunctionSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    # the centre element and the cutoff function are the model's, given to from_dict
    full = SymmetryFunctionSpec.from_dict(d, "O", 6, 0.1)
    assert (full.element, full.cutoff_type, full.cutoff_alpha) == ("O", 6, 0.1)
    assert full.to_dict() == d and SymmetryFunctionSpec.from_dict(full.to_dict(), "O", 6, 0.1) == full


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_the_n2p2_reader_gives_the_same_spec(kind: int) -> None:
    """A ``symfunction_short`` line and the dict of the same function are one and the same spec."""
    d = EXAMPLES[kind]
    words = []
    for name in _LAYOUT[kind]:
        name = name.rstrip("?")
        value = d["neighbors"][int(name[1]) - 1] if name in ("e1", "e2") else d[name]
        words.append(str(value))
    text = (
        "number_of_elements 2\nelements H O\ncutoff_type 6 0.1\nglobal_hidden_layers_short 1\n"
        "global_nodes_short 2\nglobal_activation_short t l\n"
        f"symfunction_short O {kind} {' '.join(words)}\nsymfunction_short H 2 H 1.0 0.0 6.0\n"
    )
    (read,) = parse_input_nn(text).symmetry_functions["O"]
    assert read == SymmetryFunctionSpec.from_dict(d, "O", 6, 0.1)
    assert read.line == 7 and read.to_dict() == d
    assert [n for n in _LAYOUT[kind] if n in ("e1", "e2")] == ["e1", "e2"][: TYPES[kind][0]]
    assert {n.rstrip("?") for n in _LAYOUT[kind]} - {"e1", "e2"} == set(TYPES[kind][1])


def test_defaults_are_n2p2s_and_applied_once() -> None:
    """Omitted fields take n2p2's defaults (rs of the angular types is optional there, 0);
    ``to_dict`` then writes them, so a stored config holds every parameter of its type."""
    short = {"type": 3, "neighbors": ["O", "H"], "eta": 0.1, "rc": 3.6, "lambda_": 1.0, "zeta": 2.0}
    spec = SymmetryFunctionSpec.from_dict(short)
    assert spec.rs == 0.0 and spec.rl == 0.0 and spec.subtype == "" and spec.neighbors == ("H", "O")
    assert spec.to_dict() == {**short, "neighbors": ["H", "O"], "rs": 0.0}
    assert SymmetryFunctionSpec(type=2, neighbors=("H",), rc=6.0).to_dict() == {
        "type": 2, "neighbors": ["H"], "eta": 0.0, "rs": 0.0, "rc": 6.0,
    }  # fmt: skip
    # neighbours by atomic number, in any order; a weighted type's empty list
    assert SymmetryFunctionSpec.from_dict({**short, "neighbors": [8, 1]}) == spec
    assert SymmetryFunctionSpec.from_dict(
        {**EXAMPLES[12], "neighbors": []}
    ) == SymmetryFunctionSpec.from_dict(EXAMPLES[12])


def test_older_dicts_with_every_field_still_load() -> None:
    """Models read from n2p2 files stored every field, with the centre element and cutoff
    function per function; the model's own values are used."""
    old = {
        "element": "O", "type": 9, "neighbors": ["O", "O"], "rc": 3.7, "eta": 0.2, "rs": 0.3, "lambda_": -1.0,
        "zeta": 3.0, "rl": 0.0, "angle_left": 0.0, "angle_right": 0.0, "subtype": "", "cutoff_type": 1,
        "cutoff_alpha": 0.0,
    }  # fmt: skip
    spec = SymmetryFunctionSpec.from_dict(old, "O", 6, 0.1)
    assert spec == SymmetryFunctionSpec.from_dict(EXAMPLES[9], "O", 6, 0.1)
    assert spec.to_dict() == EXAMPLES[9]


def test_the_model_converts_its_dicts_once() -> None:
    functions = [[EXAMPLES[2], EXAMPLES[13]], [dict(EXAMPLES[9], neighbors=[8, 8]), EXAMPLES[24]]]
    config = HDNNPConfig(["H", "O"], functions, cutoff_type=6, cutoff_alpha=0.1, nodes=[[3]] * 2,
                         activations=["tl"] * 2)  # fmt: skip
    model = hdnnp(config)
    specs = model.symmetry_functions.specs
    assert all(isinstance(s, SymmetryFunctionSpec) for e in specs for s in e)
    assert [s.element for s in specs[1]] == ["O", "O"] and {s.cutoff_type for e in specs for s in e} == {6}
    assert model.config["symmetry_functions"] == [[EXAMPLES[2], EXAMPLES[13]], [EXAMPLES[9], EXAMPLES[24]]]


def test_sort_key_is_n2p2s_order() -> None:
    a = SymmetryFunctionSpec.from_dict(EXAMPLES[2], "H")
    b = SymmetryFunctionSpec.from_dict({**EXAMPLES[2], "rc": 3.0}, "H")
    c = SymmetryFunctionSpec.from_dict(EXAMPLES[2], "O")
    assert sorted([c, a, b], key=SymmetryFunctionSpec.sort_key) == [b, a, c]  # element, type, then rc first
    # conv_length: lengths times it, eta divided by its square
    assert a.sort_key(2.0)[2] == (0, 0.0, 7.0, 0.125, 1.6, 1)


BAD = [
    ({**EXAMPLES[2], "colour": "red"}, "field(s) ['colour'] have no n2p2 equivalent"),
    ({k: v for k, v in EXAMPLES[2].items() if k != "type"}, "no type given"),
    ({k: v for k, v in EXAMPLES[2].items() if k != "rc"}, "no rc given"),
    ({**EXAMPLES[2], "type": 7}, "unknown symmetry function type 7"),
    ({**EXAMPLES[2], "type": "2"}, "unknown symmetry function type '2'"),
    ({**EXAMPLES[2], "type": True}, "unknown symmetry function type True"),
    ({**EXAMPLES[2], "rc": "6"}, "rc must be a number, not '6'"),
    ({**EXAMPLES[2], "eta": None}, "eta must be a number, not None"),
    ({**EXAMPLES[2], "rs": math.nan}, "rs must be a finite number, not nan"),
    ({**EXAMPLES[2], "rc": math.inf}, "rc must be a finite number, not inf"),
    ({**EXAMPLES[2], "rc": -1.0}, "cutoff radius rc must be positive, found -1.0"),
    ({**EXAMPLES[2], "eta": -0.5}, "eta must be >= 0, found -0.5"),
    ({**EXAMPLES[3], "zeta": 0.0}, "zeta must be positive, found 0.0"),
    ({**EXAMPLES[3], "lambda_": 2.0}, "lambda must be in [-1, 1]"),
    ({**EXAMPLES[20], "rl": 3.0}, "lower radial bound rl=3.0 must be below rc=3.0"),
    ({**EXAMPLES[21], "angle_left": 90.0}, "left angle angle_left=90.0 must be below angle_right=90.0"),
    ({**EXAMPLES[21], "angle_right": 200.0}, "angles [0.0, 200.0] (angle_left, angle_right) leave [0, 180]"),
    ({**EXAMPLES[20], "subtype": "q2"}, "unknown compact function 'q2'"),
    ({**EXAMPLES[20], "subtype": 2}, "subtype must be a string, not 2"),
    ({**EXAMPLES[2], "neighbors": "H"}, "neighbors must be a list of element symbols, not 'H'"),
    ({**EXAMPLES[2], "neighbors": ["Xx"]}, "neighbors: 'Xx' is not an element"),
    ({**EXAMPLES[2], "neighbors": [0]}, "neighbors: 0 is not an element"),
    ({**EXAMPLES[2], "neighbors": ["H", "O"]}, "type 2 needs 1 neighbour element(s), found 2"),
    ({**EXAMPLES[12], "neighbors": ["H"]}, "type 12 needs 0 neighbour element(s), found 1"),
    ({**EXAMPLES[2], "zeta": 2.0}, "type 2 has no parameter zeta (found 2.0)"),
    ({**EXAMPLES[2], "cutoff_type": 1.5}, "cutoff_type must be an integer, not 1.5"),
    ({**EXAMPLES[2], "element": "Q"}, "element: 'Q' is not an element"),
    (["type", 2], "expected a mapping of n2p2's fields"),
]


@pytest.mark.parametrize(
    ("data", "message"), BAD, ids=[m.split(" ")[0] + str(i) for i, (_, m) in enumerate(BAD)]
)
def test_bad_dicts_are_one_line_naming_the_field(data, message: str) -> None:
    with pytest.raises(DataError) as error:
        SymmetryFunctionSpec.from_dict(data)
    text = str(error.value)
    assert text.startswith("symmetry function ") and message in text and "\n" not in text, text


def test_a_bad_spec_stops_the_model_build_with_one_line() -> None:
    config = HDNNPConfig(["H"], [[{**EXAMPLES[2], "eta": -1.0}]], nodes=[[3]], activations=["tl"])
    with pytest.raises(DataError, match=r"^symmetry function \{.*\}: eta must be >= 0, found -1.0$"):
        hdnnp(config)


def test_specs_are_frozen_and_checked_on_creation() -> None:
    spec = SymmetryFunctionSpec(type=2, neighbors=["H"], rc=6)
    assert spec.neighbors == ("H",) and isinstance(spec.rc, float)
    with pytest.raises(AttributeError):
        spec.rc = 1.0  # type: ignore[misc]
    with pytest.raises(DataError, match="zeta must be positive"):
        SymmetryFunctionSpec(type=9, neighbors=("H", "H"), rc=6.0, lambda_=1.0)  # zeta's default 0
