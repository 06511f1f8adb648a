"""n2p2 / RuNNer ``input.nn``: reading, writing, and n2p2's order of the symmetry functions.

``input.nn`` holds one keyword per line, ``keyword value ...``; text after ``#`` or ``!`` is a
comment. Keywords are case-sensitive and are the ones n2p2 knows (``Settings.cpp``, including
the 4G and training keywords and their alternative names, e.g. ``nnp_generation``,
``symfunction``, ``short_force_fraction``). What a 2G prediction uses is parsed; training and
4G-only keywords (which n2p2 ignores for a 2G potential) are kept verbatim in
``N2p2Settings.extra_keywords`` and written back. Symmetry-function lines (all values exactly as
written, in the physical units of the file; angles in degrees)::

    symfunction_short E  2 E1    eta rs rc                   exp(-eta (r-rs)^2) fc(r)
    symfunction_short E  3 E1 E2 eta lambda zeta rc [rs]     angular, narrow (with r_jk terms)
    symfunction_short E  9 E1 E2 eta lambda zeta rc [rs]     angular, wide (no r_jk terms)
    symfunction_short E 12       eta rs rc                   type 2 weighted by Z_j
    symfunction_short E 13       eta rs lambda zeta rc       type 3 weighted by Z_j Z_k
    symfunction_short E 20 E1    rl rc sub                   compact radial on [rl, rc]
    symfunction_short E 21 E1 E2 rl rc angle_l angle_r sub   compact angular narrow (22: wide)
    symfunction_short E 23       rl rc sub                   weighted forms of 20, 21, 22
    symfunction_short E 24       rl rc angle_l angle_r sub   (24 narrow, 25 wide)

``sub`` is the compact core function: ``p1``..``p4`` (polynomials), an ``a`` suffix for the
asymmetric version, or ``e...`` (exponential). Elements are ordered by atomic number
(``ElementMap``); the two neighbours of an angular function are stored in that order.

**Order.** n2p2 sorts each element's functions (``Element::sortSymmetryFunctions``, the
``operator<`` of the ``SymFnc*`` classes) after converting lengths to its internal units when
``mean_energy``/``conv_energy``/``conv_length`` are given (rc, rs, rl times conv_length, eta
divided by conv_length^2). The key is (centre element, type) and then, per type,

    2        cutoff_type, alpha, rc, eta, rs, e1
    3, 9     cutoff_type, alpha, rc, eta, rs, zeta, lambda, e1, e2
    12       cutoff_type, alpha, rc, eta, rs
    13       cutoff_type, alpha, rc, eta, rs, zeta, lambda
    20       sub, e1, rc, rl
    21, 22   sub, e1, e2, rc, rl, angle_l, angle_r
    23       sub, rc, rl
    24, 25   sub, rc, rl, angle_l, angle_r

with elements compared by atomic number and ``sub`` as a byte string. ``scaling.data`` rows and
the network inputs follow this order (:func:`sort_symmetry_functions`).

**Scaling** of a function value G with the ``scaling.data`` statistics (``scaling``; S_min, S_max
from ``scale_min_short``, ``scale_max_short``, default 0 and 1; n2p2's precedence when several
keywords are given): ``none`` G; ``scale`` S_min + (S_max - S_min)(G - G_min)/(G_max - G_min);
``center`` G - G_mean; ``scale_center`` S_min + (S_max - S_min)(G - G_mean)/(G_max - G_min);
``sigma`` S_min + (S_max - S_min)(G - G_mean)/G_sigma. With normalisation, the energy in file
units is E = E_NN / conv_energy + N mean_energy, plus ``atom_energy`` per atom of each element.

**Networks.** ``global_hidden_layers_short`` H, ``global_nodes_short`` n_1..n_H,
``global_activation_short`` a_1..a_H a_out (letters: l identity, t tanh, s logistic, p softplus,
r relu, g gaussian, c cos, S 1-logistic, e exp(-x), h x^2), per-element overrides as in n2p2's
``Mode::setupNeuralNetwork``. That code (n2p2 master) takes from ``element_nodes_short`` all but
the last hidden layer and from ``element_activation_short`` all but the output activation; a file
whose per-element values would be ignored that way raises an "unsupported" :class:`DataError`
rather than being read two different ways. Only 2G potentials are supported.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ase.data import chemical_symbols

from mpnn.errors import DataError
from mpnn.files import write_text

#: Elements n2p2's ``ElementMap`` knows (H .. No); their order is by atomic number.
KNOWN_ELEMENTS: tuple[str, ...] = tuple(chemical_symbols[1:103])
ATOMIC_NUMBERS: dict[str, int] = {s: z for z, s in enumerate(KNOWN_ELEMENTS, start=1)}
#: Every element's atomic number (n2p2's order extends to the elements beyond its table).
_ALL_NUMBERS: dict[str, int] = {s: z for z, s in enumerate(chemical_symbols) if z}
SYMMETRY_FUNCTION_TYPES = (2, 3, 9, 12, 13, 20, 21, 22, 23, 24, 25)
ACTIVATIONS = "ltsprgcSeh"
SCALINGS = ("none", "scale", "center", "scale_center", "sigma")
CUTOFF_TYPES = range(9)  # 0 hard, 1 cos, 2 tanhu, 3 tanh, 4 exp, 5-8 poly1-poly4
#: Bounds on the declared network size (checked before anything is allocated; n2p2's potentials
#: have a few hidden layers of tens of neurons).
MAX_LAYERS, MAX_NEURONS = 100, 100_000

# Fields after "E type" of each symmetry-function line; "rs?" is optional (default 0).
_LAYOUT: dict[int, tuple[str, ...]] = {
    2: ("e1", "eta", "rs", "rc"),
    3: ("e1", "e2", "eta", "lambda_", "zeta", "rc", "rs?"),
    9: ("e1", "e2", "eta", "lambda_", "zeta", "rc", "rs?"),
    12: ("eta", "rs", "rc"),
    13: ("eta", "rs", "lambda_", "zeta", "rc"),
    20: ("e1", "rl", "rc", "subtype"),
    21: ("e1", "e2", "rl", "rc", "angle_left", "angle_right", "subtype"),
    22: ("e1", "e2", "rl", "rc", "angle_left", "angle_right", "subtype"),
    23: ("rl", "rc", "subtype"),
    24: ("rl", "rc", "angle_left", "angle_right", "subtype"),
    25: ("rl", "rc", "angle_left", "angle_right", "subtype"),
}

_PREDICTION = frozenset(
    "number_of_elements elements atom_energy cutoff_type symfunction_short scale_symmetry_functions "
    "scale_min_short scale_max_short center_symmetry_functions scale_symmetry_functions_sigma "
    "global_hidden_layers_short global_nodes_short global_activation_short element_hidden_layers_short "
    "element_nodes_short element_activation_short normalize_nodes mean_energy conv_length conv_energy "
    "nnp_type".split()
)
_PASSED_THROUGH = frozenset(  # 4G-only (ignored by n2p2 for 2G) and training keywords
    "global_hidden_layers_electrostatic global_nodes_electrostatic global_activation_electrostatic "
    "element_hidden_layers_electrostatic element_nodes_electrostatic element_activation_electrostatic "
    "conv_charge fixed_gausswidth initial_hardness ewald_truncation_error_method ewald_prec kspace_solver "
    "screen_electrostatics four_pi_epsilon "
    "random_seed test_fraction test_fraction_exact epochs normalize_data_set use_short_forces "
    "rmse_threshold rmse_threshold_energy rmse_threshold_force rmse_threshold_charge rmse_threshold_trials "
    "rmse_threshold_trials_energy rmse_threshold_trials_force rmse_threshold_trials_charge energy_fraction "
    "force_fraction force_energy_ratio charge_fraction use_old_weights_short use_old_weights_charge "
    "weights_min weights_max nguyen_widrow_weights_short nguyen_widrow_weights_charge precondition_weights "
    "main_error_metric write_trainpoints write_trainforces write_traincharges write_weights_epoch "
    "write_neuronstats write_trainlog repeated_energy_update updater_type parallel_mode jacobian_mode "
    "update_strategy selection_mode selection_mode_energy selection_mode_force selection_mode_charge "
    "task_batch_size_energy task_batch_size_force task_batch_size_charge gradient_type gradient_eta "
    "gradient_adam_eta gradient_adam_beta1 gradient_adam_beta2 gradient_adam_epsilon kalman_type "
    "kalman_epsilon kalman_eta kalman_etatau kalman_etamax kalman_q0 kalman_qtau kalman_qmin "
    "kalman_lambda_short kalman_nue_short memorize_symfunc_results force_weight".split()
)
_ALIASES = {
    "symfunction": "symfunction_short", "nnp_generation": "nnp_type", "nnp_type_gen": "nnp_type",
    "nnp_gen": "nnp_type", "nn_type": "nnp_type", "short_energy_error_threshold": "rmse_threshold_energy",
    "short_force_error_threshold": "rmse_threshold_force", "short_energy_fraction": "energy_fraction",
    "short_force_fraction": "force_fraction",
}
_REPEATABLE = frozenset(
    {"symfunction_short", "atom_energy", "element_nodes_short", "fixed_gausswidth", "initial_hardness"}
)
_GENERATIONS = {"2": 2, "2G-HDNNP": 2, "3": 3, "3G-HDNNP": 3, "4": 4, "4G-HDNNP": 4, "10": 10, "Q-HDNNP": 10}
_UNSUPPORTED_GENERATION = {
    3: "3rd-generation potential (long-range charges and electrostatics)",
    4: "4th-generation potential (charges and electrostatics)",
    10: "Q-HDNNP potential (charges from a second network)",
}


@dataclass(frozen=True)
class SymmetryFunctionSpec:
    """One ``symfunction_short`` line; values exactly as written in ``input.nn`` (file units).

    ``neighbors`` is (E1,) for types 2 and 20, (E1, E2) in element order for 3, 9, 21, 22 and ()
    for the weighted types 12, 13, 23, 24, 25. ``rl`` and the angles (degrees) belong to the
    compact types 20-25, ``subtype`` is their core function; ``cutoff_type``/``cutoff_alpha`` come
    from the global ``cutoff_type`` keyword; ``line`` (1-based) takes no part in comparisons.
    """

    element: str
    type: int
    neighbors: tuple[str, ...]
    rc: float
    eta: float = 0.0
    rs: float = 0.0
    lambda_: float = 0.0
    zeta: float = 0.0
    rl: float = 0.0
    angle_left: float = 0.0
    angle_right: float = 0.0
    subtype: str = ""
    cutoff_type: int = 0
    cutoff_alpha: float = 0.0
    line: int = field(default=0, compare=False)

    def sort_key(self, conv_length: float = 1.0) -> tuple:
        """n2p2's ``operator<`` as a tuple, lengths in n2p2's internal units (see module docstring)."""
        rc, rl, rs = self.rc * conv_length, self.rl * conv_length, self.rs * conv_length
        eta = self.eta / (conv_length * conv_length)
        z = tuple(_ALL_NUMBERS[n] for n in self.neighbors)
        cut = (self.cutoff_type, self.cutoff_alpha)
        t = self.type
        if t in (2, 12):
            rest = (*cut, rc, eta, rs, *z)
        elif t in (3, 9, 13):
            rest = (*cut, rc, eta, rs, self.zeta, self.lambda_, *z)
        elif t in (20, 21, 22):
            rest = (self.subtype, *z, rc, rl) + ((self.angle_left, self.angle_right) if t != 20 else ())
        else:
            rest = (self.subtype, rc, rl) + ((self.angle_left, self.angle_right) if t != 23 else ())
        return (_ALL_NUMBERS[self.element], t, rest)

    def to_line(self) -> str:
        """The ``symfunction_short`` line n2p2 reads back as this function (floats exact)."""
        values = {"e1": self.neighbors[:1], "e2": self.neighbors[1:2]}
        words = ["symfunction_short", self.element, str(self.type)]
        for name in _LAYOUT[self.type]:
            name = name.rstrip("?")
            value = values[name][0] if name in values else getattr(self, name)
            words.append(value if isinstance(value, str) else repr(float(value)))
        return " ".join(words)


@dataclass
class N2p2Settings:
    """What a 2G n2p2 potential's ``input.nn`` says (see the module docstring)."""

    elements: tuple[str, ...]
    cutoff_type: int
    cutoff_alpha: float
    scaling: str
    scale_min: float
    scale_max: float
    nodes: dict[str, tuple[int, ...]]
    activations: dict[str, tuple[str, ...]]
    normalize_nodes: bool
    mean_energy: float | None
    conv_energy: float | None
    conv_length: float | None
    atom_energy: dict[str, float]
    symmetry_functions: dict[str, list[SymmetryFunctionSpec]]
    nnp_generation: int = 2
    path: str = field(default="input.nn", compare=False)
    extra_keywords: tuple[tuple[str, str], ...] = ()  # (keyword as written, value) kept verbatim

    def n_symmetry_functions(self) -> dict[str, int]:
        """Number of network inputs per element."""
        return {e: len(self.symmetry_functions.get(e, [])) for e in self.elements}


def atomic_number(symbol: str) -> int:
    """Atomic number of an element symbol n2p2 knows; ``KeyError`` otherwise."""
    return ATOMIC_NUMBERS[symbol]


#: Fields of a spec dict (:attr:`mpnn.models.hdnnp.HDNNPConfig.symmetry_functions`) n2p2 expresses.
SPEC_FIELDS = frozenset(f.name for f in dataclasses.fields(SymmetryFunctionSpec))


def spec_from_dict(
    spec: Mapping[str, Any], element: str, cutoff_type: int = 0, cutoff_alpha: float = 0.0
) -> SymmetryFunctionSpec:
    """One symmetry function of centre ``element`` as a model stores it -> its ``symfunction_short``.

    ``spec``: a dict of :class:`SymmetryFunctionSpec` fields (``type``, ``neighbors`` as element
    symbols or atomic numbers, ``rc``, ``eta``, ...; lengths in the model's unit), as in
    :attr:`mpnn.models.hdnnp.HDNNPConfig.symmetry_functions` and
    :func:`mpnn.symmetry.defaults.default_symmetry_functions`. ``cutoff_type`` and ``cutoff_alpha``
    are the model's one cutoff function (the model applies it to every function, whatever a dict
    says). The two neighbours of an angular function are put in element order (the functions are
    symmetric in them). Raises a one-line :class:`DataError` for what n2p2 cannot express.
    """
    unknown = sorted(set(spec) - SPEC_FIELDS)
    if unknown:
        raise DataError(f"symmetry function {dict(spec)}: field(s) {unknown} have no n2p2 equivalent")
    kind = spec.get("type")
    if kind not in SYMMETRY_FUNCTION_TYPES or "rc" not in spec:
        raise DataError(f"symmetry function {dict(spec)}: n2p2 has no type {kind!r} (it knows "
                        f"{', '.join(map(str, SYMMETRY_FUNCTION_TYPES))}) or no rc is given")
    neighbors = []
    for n in spec.get("neighbors", ()):
        symbol = chemical_symbols[n] if isinstance(n, int) and 1 <= n < len(chemical_symbols) else n
        if symbol not in _ALL_NUMBERS:
            raise DataError(f"symmetry function {dict(spec)}: neighbour {n!r} is not an element")
        neighbors.append(symbol)
    wanted = sum(1 for name in _LAYOUT[kind] if name in ("e1", "e2"))
    if len(neighbors) != wanted:
        raise DataError(f"symmetry function {dict(spec)}: type {kind} needs {wanted} neighbour element(s)")
    fields = {**spec, "element": element, "cutoff_type": int(cutoff_type),
              "cutoff_alpha": float(cutoff_alpha),
              "neighbors": tuple(sorted(neighbors, key=_ALL_NUMBERS.__getitem__))}
    for name in ("rc", "eta", "rs", "lambda_", "zeta", "rl", "angle_left", "angle_right"):
        value = fields.get(name, 0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise DataError(f"symmetry function {dict(spec)}: {name} must be a finite number, not {value!r}")
        fields[name] = float(value)
    return SymmetryFunctionSpec(**fields)


def sort_symmetry_functions(
    specs: Iterable[SymmetryFunctionSpec], conv_length: float = 1.0
) -> list[SymmetryFunctionSpec]:
    """``specs`` in n2p2's order; ``conv_length`` as in ``input.nn`` when it normalises units."""
    return sorted(specs, key=lambda s: s.sort_key(conv_length))


def read_input_nn(path: str | Path) -> N2p2Settings:
    """Read an ``input.nn``; every problem raises a one-line :class:`DataError` naming file and line."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read: {error}") from None
    return parse_input_nn(text, str(path))


def write_input_nn(path: str | Path, settings: N2p2Settings) -> None:
    """Write ``settings`` as an ``input.nn`` that n2p2 and :func:`read_input_nn` read back unchanged."""
    write_text(format_input_nn(settings), path)


def parse_input_nn(text: str, source: str = "input.nn") -> N2p2Settings:
    """:func:`read_input_nn` on the text of a file; ``source`` names it in error messages."""
    entries = _tokenize(text)
    generation = _generation(entries, source)
    _check_keywords(entries, source)
    elements = _elements(entries, source)
    line, args = _single(entries, "cutoff_type", source, (1, 2), required=True)
    cutoff_type = _int(args[0], source, line, "cutoff type")
    if cutoff_type not in CUTOFF_TYPES:
        raise _err(source, line, f"unknown cutoff type {cutoff_type} (n2p2 knows 0 to 8)")
    alpha = _float(args[1], source, line, "cutoff alpha") if len(args) > 1 else 0.0
    if not 0.0 <= alpha < 1.0:
        raise _err(source, line, f"cutoff alpha must be in [0, 1), found {alpha!r}")
    mean_energy, conv_energy, conv_length = _normalization(entries, source)
    nodes, activations = _topology(entries, elements, source)
    sfs: dict[str, list[SymmetryFunctionSpec]] = {e: [] for e in elements}
    for line, _, args in entries.get("symfunction_short", []):
        spec = _symmetry_function(args, elements, cutoff_type, alpha, source, line)
        sfs[spec.element].append(spec)
    for e in elements:
        if not sfs[e]:
            raise _err(source, 0, f"element {e} has no symmetry functions")
        sfs[e] = sort_symmetry_functions(sfs[e], conv_length or 1.0)
    atom_energy: dict[str, float] = {}
    for line, _, args in entries.get("atom_energy", []):
        _nargs(args, (2,), "atom_energy", source, line)
        e = _element(args[0], elements, source, line)
        if e in atom_energy:
            raise _err(source, line, f"atom_energy for {e} given twice")
        atom_energy[e] = _float(args[1], source, line, "atom_energy")
    extra = sorted((ln, w, " ".join(a)) for k, v in entries.items() if k in _PASSED_THROUGH for ln, w, a in v)
    return N2p2Settings(
        elements=elements, cutoff_type=cutoff_type, cutoff_alpha=alpha, scaling=_scaling(entries, source),
        scale_min=_optional_float(entries, "scale_min_short", 0.0, source),
        scale_max=_optional_float(entries, "scale_max_short", 1.0, source),
        nodes=nodes, activations=activations, normalize_nodes=_flag(entries, "normalize_nodes", source),
        mean_energy=mean_energy, conv_energy=conv_energy, conv_length=conv_length, atom_energy=atom_energy,
        symmetry_functions=sfs, nnp_generation=generation, path=source,
        extra_keywords=tuple((w, v) for _, w, v in extra),
    )


def format_input_nn(settings: N2p2Settings) -> str:
    """The text :func:`write_input_nn` writes; raises "unsupported" what n2p2 cannot read back."""
    s = settings
    if s.nnp_generation != 2:
        raise DataError(f"{s.path}: unsupported: nnp_generation {s.nnp_generation} (only 2G is written)")
    if s.scaling not in SCALINGS:
        raise DataError(f"{s.path}: unknown scaling {s.scaling!r} (one of {', '.join(SCALINGS)})")
    elements = tuple(sorted(s.elements, key=lambda e: ATOMIC_NUMBERS.get(e, 10**6)))
    out = ["# n2p2 settings (2G-HDNNP) written by mpnn", f"number_of_elements {len(elements)}",
           "elements " + " ".join(elements)]
    normalization = (s.mean_energy, s.conv_energy, s.conv_length)
    if any(v is None for v in normalization) and any(v is not None for v in normalization):
        raise DataError(f"{s.path}: mean_energy, conv_energy and conv_length go together (all or none)")
    if s.mean_energy is not None:
        keys = ("mean_energy", "conv_energy", "conv_length")
        out += [f"{k} {float(v)!r}" for k, v in zip(keys, normalization, strict=True)]
    out += [f"atom_energy {e} {float(s.atom_energy[e])!r}" for e in elements if e in s.atom_energy]
    out.append(f"cutoff_type {int(s.cutoff_type)} {float(s.cutoff_alpha)!r}")
    out += {"none": [], "scale": ["scale_symmetry_functions"], "center": ["center_symmetry_functions"],
            "sigma": ["scale_symmetry_functions_sigma"],
            "scale_center": ["scale_symmetry_functions", "center_symmetry_functions"]}[s.scaling]
    out += [f"scale_min_short {float(s.scale_min)!r}", f"scale_max_short {float(s.scale_max)!r}"]
    out += ["normalize_nodes"] if s.normalize_nodes else []
    out += _format_topology(s, elements)
    out += [f"{word} {value}".rstrip() for word, value in s.extra_keywords]
    for e in elements:
        out += [spec.to_line() for spec in sort_symmetry_functions(s.symmetry_functions.get(e, []))]
    text = "\n".join(out) + "\n"
    try:
        back = parse_input_nn(text, s.path)
    except DataError as error:
        raise DataError(f"{s.path}: unsupported: n2p2 could not read these settings back ({error})") from None
    _check_round_trip(s, back, elements)
    return text


# ---------------------------------------------------------------------------------------------- parsing

_Entries = dict[str, list[tuple[int, str, list[str]]]]


def _err(source: str, line: int, what: str) -> DataError:
    return DataError(f"{source}:{line}: {what}" if line else f"{source}: {what}")


def _tokenize(text: str) -> _Entries:
    entries: _Entries = {}
    for lineno, raw in enumerate(text.splitlines(), start=1):
        words = raw.split("#", 1)[0].split("!", 1)[0].split()
        if words:
            entries.setdefault(_ALIASES.get(words[0], words[0]), []).append((lineno, words[0], words[1:]))
    return entries


def _generation(entries: _Entries, source: str) -> int:
    if "nnp_type" not in entries:
        return 2
    line, args = _single(entries, "nnp_type", source, (1,))
    generation = _GENERATIONS.get(args[0])
    if generation is None:
        raise _err(source, line, f"unknown nnp_generation {args[0]!r} (n2p2 knows 2, 4 and 10)")
    if generation != 2:
        raise _err(source, line, f"unsupported: {_UNSUPPORTED_GENERATION[generation]}")
    return generation


def _check_keywords(entries: _Entries, source: str) -> None:
    found = sorted((v[0][0], v[0][1], k) for k, v in entries.items())
    for line, word, key in found:
        if key not in _PREDICTION and key not in _PASSED_THROUGH:
            raise _err(source, line, f"unknown keyword {word!r}")
    for _, _, key in found:
        (first, word, _), *more = entries[key]
        for line, other, _ in more:
            if other != word:
                raise _err(source, line, f"{other!r} and its alternative {word!r} (line {first}) both used")
            if key not in _REPEATABLE:
                raise _err(source, line, f"keyword {word!r} given twice (first at line {first})")


def _single(entries: _Entries, key: str, source: str, nargs: tuple[int, ...],
            required: bool = False) -> tuple[int, list[str]]:
    if key not in entries:
        if required:
            raise _err(source, 0, f"missing keyword {key!r}")
        return 0, []
    line, word, args = entries[key][0]
    _nargs(args, nargs, word, source, line)
    return line, args


def _nargs(args: list[str], nargs: tuple[int, ...], word: str, source: str, line: int) -> None:
    if len(args) not in nargs:
        want = " or ".join(str(n) for n in nargs)
        raise _err(source, line, f"{word!r} needs {want} value(s), found {len(args)}")


def _float(word: str, source: str, line: int, what: str) -> float:
    try:
        value = float(word)
    except ValueError:
        raise _err(source, line, f"{what}: not a number: {word!r}") from None
    if not math.isfinite(value):
        raise _err(source, line, f"{what}: not a finite number: {word!r}")
    return value


def _int(word: str, source: str, line: int, what: str, minimum: int | None = None,
         maximum: int | None = None) -> int:
    try:
        value = int(word)
    except ValueError:
        raise _err(source, line, f"{what}: not an integer: {word!r}") from None
    if minimum is not None and value < minimum:
        raise _err(source, line, f"{what} must be at least {minimum}, found {value}")
    if maximum is not None and value > maximum:
        raise _err(source, line, f"{what} must be at most {maximum}, found {value}")
    return value


def _flag(entries: _Entries, key: str, source: str) -> bool:
    if key in entries:
        _single(entries, key, source, (0,))
    return key in entries


def _optional_float(entries: _Entries, key: str, default: float, source: str) -> float:
    line, args = _single(entries, key, source, (1,))
    return _float(args[0], source, line, key) if line else default


def _element(symbol: str, elements: tuple[str, ...], source: str, line: int) -> str:
    if symbol not in elements:
        raise _err(source, line, f"element {symbol!r} is not in 'elements' ({' '.join(elements)})")
    return symbol


def _elements(entries: _Entries, source: str) -> tuple[str, ...]:
    line, args = _single(entries, "elements", source, tuple(range(1, len(KNOWN_ELEMENTS) + 1)), required=True)
    for symbol in args:
        if symbol not in ATOMIC_NUMBERS:
            raise _err(source, line, f"unknown element {symbol!r}")
        if args.count(symbol) > 1:
            raise _err(source, line, f"element {symbol!r} listed twice")
    n_line, n_args = _single(entries, "number_of_elements", source, (1,), required=True)
    if _int(n_args[0], source, n_line, "number_of_elements") != len(args):
        raise _err(source, n_line, f"number_of_elements is {n_args[0]} but 'elements' lists {len(args)}")
    return tuple(sorted(args, key=ATOMIC_NUMBERS.__getitem__))


def _normalization(entries: _Entries, source: str) -> tuple[float | None, float | None, float | None]:
    keys = ("mean_energy", "conv_energy", "conv_length")
    given = [_single(entries, k, source, (1,)) for k in keys]
    if all(line for line, _ in given):
        values = [_float(args[0], source, line, k) for (line, args), k in zip(given, keys, strict=True)]
        for (line, _), k, v in zip(given[1:], keys[1:], values[1:], strict=True):
            if v <= 0.0:
                raise _err(source, line, f"{k} must be positive, found {v!r}")
        return values[0], values[1], values[2]
    lines = [line for line, _ in given] + [v[0][0] for k, v in entries.items() if k == "conv_charge"]
    if any(lines):
        raise _err(source, min(x for x in lines if x), "mean_energy, conv_energy and conv_length go together "
                   "(n2p2 uses all three or none)")
    return None, None, None


def _scaling(entries: _Entries, source: str) -> str:
    scale = _flag(entries, "scale_symmetry_functions", source)
    center = _flag(entries, "center_symmetry_functions", source)
    sigma = _flag(entries, "scale_symmetry_functions_sigma", source)
    if scale or center:  # precedence of Mode::setupSymmetryFunctionScaling
        return "scale_center" if scale and center else "scale" if scale else "center"
    return "sigma" if sigma else "none"


def _symmetry_function(args: list[str], elements: tuple[str, ...], cutoff_type: int, alpha: float,
                       source: str, line: int) -> SymmetryFunctionSpec:
    if len(args) < 2:
        raise _err(source, line, f"symmetry function needs an element and a type, found {len(args)} value(s)")
    element = _element(args[0], elements, source, line)
    sf_type = _int(args[1], source, line, "symmetry function type")
    if sf_type not in _LAYOUT:
        raise _err(source, line, f"unknown symmetry function type {sf_type} "
                   f"(n2p2 knows {', '.join(map(str, SYMMETRY_FUNCTION_TYPES))})")
    layout = _LAYOUT[sf_type]
    n_required = sum(not name.endswith("?") for name in layout)
    if not n_required <= len(args) - 2 <= len(layout):
        layout_text = " ".join(name.replace("?", "").rstrip("_") for name in layout)
        count = f"{n_required} or {len(layout)}" if n_required < len(layout) else f"{n_required}"
        raise _err(source, line, f"symmetry function type {sf_type} needs {count} values after the type "
                   f"({layout_text}), found {len(args) - 2}")
    values: dict = {"rs": 0.0}
    neighbors: list[str] = []
    for name, word in zip(layout, args[2:], strict=False):  # "rs?" may be absent
        name = name.rstrip("?")
        if name in ("e1", "e2"):
            neighbors.append(_element(word, elements, source, line))
        elif name == "subtype":
            values[name] = _subtype(word, source, line)
        else:
            values[name] = _float(word, source, line, name.rstrip("_"))
    rc = values.pop("rc")
    if rc <= 0.0:
        raise _err(source, line, f"cutoff radius must be positive, found {rc!r}")
    _check_shape_parameters(values, source, line)
    if sf_type >= 20:
        if values["rl"] >= rc:
            raise _err(source, line, f"lower radial bound rl={values['rl']!r} must be below rc={rc!r}")
        if "angle_left" in values:
            _check_angles(values["angle_left"], values["angle_right"], source, line)
    neighbors.sort(key=ATOMIC_NUMBERS.__getitem__)
    return SymmetryFunctionSpec(element, sf_type, tuple(neighbors), rc, cutoff_type=cutoff_type,
                                cutoff_alpha=alpha, line=line, **values)


def _check_shape_parameters(values: dict, source: str, line: int) -> None:
    """Parameters whose functions are not finite: eta < 0 (a growing exponential), lambda outside
    [-1, 1] (1 + lambda cos < 0 under a power) and zeta <= 0 (a pole where 1 + lambda cos = 0)."""
    if values.get("eta", 0.0) < 0.0:
        raise _err(source, line, f"eta must be >= 0, found {values['eta']!r}")
    if "lambda_" in values and not -1.0 <= values["lambda_"] <= 1.0:
        raise _err(source, line, f"lambda must be in [-1, 1] (n2p2 uses -1, 1), found {values['lambda_']!r}")
    if "zeta" in values and values["zeta"] <= 0.0:
        raise _err(source, line, f"zeta must be positive, found {values['zeta']!r}")


def _subtype(word: str, source: str, line: int) -> str:
    """The compact core function names n2p2 accepts (``SymFncBaseComp::setCompactFunction``)."""
    poly = len(word) in (2, 3) and word[0] == "p" and word[1] in "1234" and word[2:] in ("", "a")
    if not (poly or (word[0] == "e" and len(word) <= 3)):
        raise _err(source, line, f"unknown compact function {word!r} (p1..p4, p1a..p4a or e)")
    return word


def _check_angles(left: float, right: float, source: str, line: int) -> None:
    center = (left + right) / 2.0
    if left >= right:
        raise _err(source, line, f"left angle {left!r} must be below the right angle {right!r}")
    if (left < 0.0 and center != 0.0) or (right > 180.0 and center != 180.0) or right - left > 360.0:
        raise _err(source, line, f"angles [{left!r}, {right!r}] leave [0, 180], not centred on 0 or 180")


def _activations(words: list[str], source: str, line: int) -> list[str]:
    for w in words:
        if len(w) != 1 or w not in ACTIVATIONS:
            raise _err(source, line, f"unknown activation function {w!r} (one of {' '.join(ACTIVATIONS)})")
    return words


def _topology(entries: _Entries, elements: tuple[str, ...], source: str) -> tuple[dict, dict]:
    """Hidden-layer sizes and activations per element, as ``Mode::setupNeuralNetwork`` sets them."""
    g_line, g_args = _single(entries, "global_hidden_layers_short", source, (1,))
    g_layers = _int(g_args[0], source, g_line, "global_hidden_layers_short", 1, MAX_LAYERS) if g_line else 0
    layers = {e: g_layers for e in elements}
    for line, _, args in entries.get("element_hidden_layers_short", []):
        _nargs(args, (2,), "element_hidden_layers_short", source, line)
        e = _element(args[0], elements, source, line)
        layers[e] = _int(args[1], source, line, "hidden layers", 1, MAX_LAYERS)
    for e in elements:
        if layers[e] == 0:
            raise _err(source, 0, f"number of hidden layers unset for {e} (global_hidden_layers_short)")
    gn_line, gn_args = _single(entries, "global_nodes_short", source, (g_layers,) if g_layers else (0,))
    g_nodes = [_int(w, source, gn_line, "global_nodes_short", 1, MAX_NEURONS) for w in gn_args]
    ga_line, g_acts = _single(entries, "global_activation_short", source, (g_layers + 1,))
    _activations(g_acts, source, ga_line)
    nodes = {e: [0] * layers[e] for e in elements}
    acts = {e: [""] * (layers[e] + 1) for e in elements}
    for e in elements:
        if layers[e] == g_layers:
            nodes[e] = list(g_nodes) or nodes[e]
            acts[e] = list(g_acts) or acts[e]
    checks = []
    for key, size in (("element_nodes_short", 0), ("element_activation_short", 1)):
        for line, word, args in entries.get(key, []):
            if not args:
                raise _err(source, line, f"{word!r} needs an element and its values")
            e = _element(args[0], elements, source, line)
            _nargs(args, (layers[e] + 1 + size,), word, source, line)
            if size:
                values = _activations(args[1:], source, line)
                acts[e][:-1] = values[:-1]  # n2p2 master keeps the output activation of the global line
            else:
                values = [_int(w, source, line, "element_nodes_short", 1, MAX_NEURONS) for w in args[1:]]
                nodes[e][:-1] = values[:-1]  # n2p2 master keeps the last hidden layer of the global line
            checks.append((line, word, e, values[-1], acts[e] if size else nodes[e]))
    for line, word, e, wanted, got in checks:
        if got[-1] != wanted:
            kept = f"keeps {got[-1]!r} from the global keyword" if got[-1] else "leaves it unset"
            raise _err(source, line, f"unsupported: {word} sets the last value for {e} to {wanted!r}, "
                       f"which n2p2 ignores (it {kept})")
    for e in elements:
        if 0 in nodes[e] or "" in acts[e]:
            what = "number of neurons" if 0 in nodes[e] else "activation function"
            raise _err(source, 0, f"{what} unset for {e} (global_nodes_short, global_activation_short)")
    return ({e: tuple(nodes[e]) for e in elements}, {e: tuple(acts[e]) for e in elements})


# ---------------------------------------------------------------------------------------------- writing

def _format_topology(s: N2p2Settings, elements: tuple[str, ...]) -> list[str]:
    """Global network keywords from the most common topology; per-element lines for the others."""
    try:
        tops = {e: (tuple(int(n) for n in s.nodes[e]), tuple(s.activations[e])) for e in elements}
    except KeyError as missing:
        raise DataError(f"{s.path}: no network topology for element {missing}") from None
    ref_nodes, ref_acts = max(tops.values(), key=list(tops.values()).count)
    out = [f"global_hidden_layers_short {len(ref_nodes)}",
           "global_nodes_short " + " ".join(map(str, ref_nodes)),
           "global_activation_short " + " ".join(ref_acts)]
    for e in elements:
        nodes, acts = tops[e]
        if nodes != ref_nodes:
            out.append(f"element_nodes_short {e} " + " ".join(map(str, nodes)))
        if acts != ref_acts:
            out.append(f"element_activation_short {e} " + " ".join(acts))
    return out


def _check_round_trip(s: N2p2Settings, back: N2p2Settings, elements: tuple[str, ...]) -> None:
    want = dataclasses.replace(
        s, elements=elements,
        nodes={e: tuple(int(n) for n in s.nodes[e]) for e in elements},
        activations={e: tuple(s.activations[e]) for e in elements},
        symmetry_functions={e: sort_symmetry_functions(s.symmetry_functions.get(e, []), s.conv_length or 1.0)
                            for e in elements},
    )
    for f in dataclasses.fields(N2p2Settings):
        if f.compare and getattr(want, f.name) != getattr(back, f.name):
            raise DataError(f"{s.path}: unsupported: {f.name} cannot be written so that n2p2 reads it back "
                            "unchanged (e.g. symmetry functions whose cutoff differs from cutoff_type)")
