"""n2p2 / RuNNer ``input.nn``: reading, writing, and n2p2's order of the symmetry functions.

``input.nn`` holds one keyword per line, ``keyword value ...``; text after ``#`` or ``!`` is a
comment. Keywords are case-sensitive and are the ones n2p2 knows (``Settings.cpp``, including the
4G and training keywords and their alternative names, e.g. ``nnp_generation``, ``symfunction``,
``short_force_fraction``; the table is in :mod:`mpnn.n2p2.keywords`). What a 2G prediction uses is
parsed; training and 4G-only keywords (which n2p2 ignores for a 2G potential) are kept verbatim in
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
(``ElementMap``); the two neighbours of an angular function are stored in that order. Each line
is read into a :class:`~mpnn.symmetry.spec.SymmetryFunctionSpec` (also importable from here),
the one type of a symmetry function, which refuses what n2p2 refuses.

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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mpnn.errors import DataError
from mpnn.files import read_text, write_text
from mpnn.n2p2.keywords import (
    _LAYOUT,
    _PASSED_THROUGH,
    ATOMIC_NUMBERS,
    CUTOFF_TYPES,
    SCALINGS,
    _check_keywords,
    _element,
    _elements,
    _err,
    _flag,
    _float,
    _generation,
    _int,
    _nargs,
    _normalization,
    _optional_float,
    _scaling,
    _single,
    _tokenize,
    _topology,
)
from mpnn.symmetry.spec import SYMMETRY_FUNCTION_TYPES, SymmetryFunctionSpec


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


def sort_symmetry_functions(
    specs: Iterable[SymmetryFunctionSpec], conv_length: float = 1.0
) -> list[SymmetryFunctionSpec]:
    """``specs`` in n2p2's order; ``conv_length`` as in ``input.nn`` when it normalises units."""
    return sorted(specs, key=lambda s: s.sort_key(conv_length))


def read_input_nn(path: str | Path) -> N2p2Settings:
    """Read an ``input.nn``; every problem raises a one-line :class:`DataError` naming file and line."""
    text = read_text(path, "an input.nn file")
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
        elements=elements,
        cutoff_type=cutoff_type,
        cutoff_alpha=alpha,
        scaling=_scaling(entries, source),
        scale_min=_optional_float(entries, "scale_min_short", 0.0, source),
        scale_max=_optional_float(entries, "scale_max_short", 1.0, source),
        nodes=nodes,
        activations=activations,
        normalize_nodes=_flag(entries, "normalize_nodes", source),
        mean_energy=mean_energy,
        conv_energy=conv_energy,
        conv_length=conv_length,
        atom_energy=atom_energy,
        symmetry_functions=sfs,
        nnp_generation=generation,
        path=source,
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
    out = [
        "# n2p2 settings (2G-HDNNP) written by mpnn",
        f"number_of_elements {len(elements)}",
        "elements " + " ".join(elements),
    ]
    normalization = (s.mean_energy, s.conv_energy, s.conv_length)
    if any(v is None for v in normalization) and any(v is not None for v in normalization):
        raise DataError(f"{s.path}: mean_energy, conv_energy and conv_length go together (all or none)")
    if s.mean_energy is not None:
        keys = ("mean_energy", "conv_energy", "conv_length")
        out += [f"{k} {float(v)!r}" for k, v in zip(keys, normalization, strict=True)]
    out += [f"atom_energy {e} {float(s.atom_energy[e])!r}" for e in elements if e in s.atom_energy]
    out.append(f"cutoff_type {int(s.cutoff_type)} {float(s.cutoff_alpha)!r}")
    out += {
        "none": [],
        "scale": ["scale_symmetry_functions"],
        "center": ["center_symmetry_functions"],
        "sigma": ["scale_symmetry_functions_sigma"],
        "scale_center": ["scale_symmetry_functions", "center_symmetry_functions"],
    }[s.scaling]
    out += [f"scale_min_short {float(s.scale_min)!r}", f"scale_max_short {float(s.scale_max)!r}"]
    out += ["normalize_nodes"] if s.normalize_nodes else []
    out += _format_topology(s, elements)
    out += [f"{word} {value}".rstrip() for word, value in s.extra_keywords]
    for e in elements:
        out += [_line(spec) for spec in sort_symmetry_functions(s.symmetry_functions.get(e, []))]
    text = "\n".join(out) + "\n"
    try:
        back = parse_input_nn(text, s.path)
    except DataError as error:
        raise DataError(f"{s.path}: unsupported: n2p2 could not read these settings back ({error})") from None
    _check_round_trip(s, back, elements)
    return text


# ---------------------------------------------------------------------------------------------- parsing


def _symmetry_function(
    args: list[str], elements: tuple[str, ...], cutoff_type: int, alpha: float, source: str, line: int
) -> SymmetryFunctionSpec:
    if len(args) < 2:
        raise _err(source, line, f"symmetry function needs an element and a type, found {len(args)} value(s)")
    element = _element(args[0], elements, source, line)
    sf_type = _int(args[1], source, line, "symmetry function type")
    if sf_type not in _LAYOUT:
        raise _err(
            source,
            line,
            f"unknown symmetry function type {sf_type} "
            f"(n2p2 knows {', '.join(map(str, SYMMETRY_FUNCTION_TYPES))})",
        )
    layout = _LAYOUT[sf_type]
    n_required = sum(not name.endswith("?") for name in layout)
    if not n_required <= len(args) - 2 <= len(layout):
        layout_text = " ".join(name.replace("?", "").rstrip("_") for name in layout)
        count = f"{n_required} or {len(layout)}" if n_required < len(layout) else f"{n_required}"
        raise _err(
            source,
            line,
            f"symmetry function type {sf_type} needs {count} values after the type "
            f"({layout_text}), found {len(args) - 2}",
        )
    values: dict = {}
    neighbors: list[str] = []
    for name, word in zip(layout, args[2:], strict=False):  # "rs?" may be absent (0)
        name = name.rstrip("?")
        if name in ("e1", "e2"):
            neighbors.append(_element(word, elements, source, line))
        else:
            values[name] = word if name == "subtype" else _float(word, source, line, name.rstrip("_"))
    try:
        return SymmetryFunctionSpec(
            element=element,
            type=sf_type,
            neighbors=tuple(neighbors),
            cutoff_type=cutoff_type,
            cutoff_alpha=alpha,
            line=line,
            **values,
        )
    except DataError as error:  # what n2p2 refuses, or what would make the function infinite
        raise _err(source, line, str(error)) from None


# ---------------------------------------------------------------------------------------------- writing


def _line(spec: SymmetryFunctionSpec) -> str:
    """The ``symfunction_short`` line n2p2 reads back as ``spec`` (floats exact)."""
    values = {"e1": spec.neighbors[:1], "e2": spec.neighbors[1:2]}
    words = ["symfunction_short", spec.element, str(spec.type)]
    for name in _LAYOUT[spec.type]:
        name = name.rstrip("?")
        value = values[name][0] if name in values else getattr(spec, name)
        words.append(value if isinstance(value, str) else repr(float(value)))
    return " ".join(words)


def _format_topology(s: N2p2Settings, elements: tuple[str, ...]) -> list[str]:
    """Global network keywords from the most common topology; per-element lines for the others."""
    try:
        tops = {e: (tuple(int(n) for n in s.nodes[e]), tuple(s.activations[e])) for e in elements}
    except KeyError as missing:
        raise DataError(f"{s.path}: no network topology for element {missing}") from None
    ref_nodes, ref_acts = max(tops.values(), key=list(tops.values()).count)
    out = [
        f"global_hidden_layers_short {len(ref_nodes)}",
        "global_nodes_short " + " ".join(map(str, ref_nodes)),
        "global_activation_short " + " ".join(ref_acts),
    ]
    for e in elements:
        nodes, acts = tops[e]
        if nodes != ref_nodes:
            out.append(f"element_nodes_short {e} " + " ".join(map(str, nodes)))
        if acts != ref_acts:
            out.append(f"element_activation_short {e} " + " ".join(acts))
    return out


def _check_round_trip(s: N2p2Settings, back: N2p2Settings, elements: tuple[str, ...]) -> None:
    want = dataclasses.replace(
        s,
        elements=elements,
        nodes={e: tuple(int(n) for n in s.nodes[e]) for e in elements},
        activations={e: tuple(s.activations[e]) for e in elements},
        symmetry_functions={
            e: sort_symmetry_functions(s.symmetry_functions.get(e, []), s.conv_length or 1.0)
            for e in elements
        },
    )
    for f in dataclasses.fields(N2p2Settings):
        if f.compare and getattr(want, f.name) != getattr(back, f.name):
            raise DataError(
                f"{s.path}: unsupported: {f.name} cannot be written so that n2p2 reads it back "
                "unchanged (e.g. symmetry functions whose cutoff differs from cutoff_type)"
            )
