"""n2p2's ``input.nn`` keyword table and the reading of single keyword lines.

The table: the elements n2p2 knows (``ElementMap``, ordered by atomic number), the fields of each
type's ``symfunction_short`` line, the activation functions, scalings and cutoff types, the
keywords a 2G prediction uses, the 4G-only and training keywords that are passed through verbatim,
the alternative names of keywords (``Settings.cpp``), the keywords that may repeat and the
``nnp_generation`` values. The readers split a file into keyword lines and read one keyword's
values (numbers, flags, elements, normalisation, scaling, network topology; the values of a
symmetry function are checked by :class:`~mpnn.symmetry.spec.SymmetryFunctionSpec`); every
problem raises a one-line :class:`~mpnn.errors.DataError` naming file and line.
:mod:`mpnn.n2p2.input_nn` builds the settings from them and describes the format.
"""

from __future__ import annotations

import math

from ase.data import chemical_symbols

from mpnn.errors import DataError

#: Elements n2p2's ``ElementMap`` knows (H .. No); their order is by atomic number.
KNOWN_ELEMENTS: tuple[str, ...] = tuple(chemical_symbols[1:103])
ATOMIC_NUMBERS: dict[str, int] = {s: z for z, s in enumerate(KNOWN_ELEMENTS, start=1)}
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
    "symfunction": "symfunction_short",
    "nnp_generation": "nnp_type",
    "nnp_type_gen": "nnp_type",
    "nnp_gen": "nnp_type",
    "nn_type": "nnp_type",
    "short_energy_error_threshold": "rmse_threshold_energy",
    "short_force_error_threshold": "rmse_threshold_force",
    "short_energy_fraction": "energy_fraction",
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


def _single(
    entries: _Entries, key: str, source: str, nargs: tuple[int, ...], required: bool = False
) -> tuple[int, list[str]]:
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


def _int(
    word: str, source: str, line: int, what: str, minimum: int | None = None, maximum: int | None = None
) -> int:
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
        raise _err(
            source,
            min(x for x in lines if x),
            "mean_energy, conv_energy and conv_length go together (n2p2 uses all three or none)",
        )
    return None, None, None


def _scaling(entries: _Entries, source: str) -> str:
    scale = _flag(entries, "scale_symmetry_functions", source)
    center = _flag(entries, "center_symmetry_functions", source)
    sigma = _flag(entries, "scale_symmetry_functions_sigma", source)
    if scale or center:  # precedence of Mode::setupSymmetryFunctionScaling
        return "scale_center" if scale and center else "scale" if scale else "center"
    return "sigma" if sigma else "none"


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
            raise _err(
                source,
                line,
                f"unsupported: {word} sets the last value for {e} to {wanted!r}, "
                f"which n2p2 ignores (it {kept})",
            )
    for e in elements:
        if 0 in nodes[e] or "" in acts[e]:
            what = "number of neurons" if 0 in nodes[e] else "activation function"
            raise _err(source, 0, f"{what} unset for {e} (global_nodes_short, global_activation_short)")
    return ({e: tuple(nodes[e]) for e in elements}, {e: tuple(acts[e]) for e in elements})
