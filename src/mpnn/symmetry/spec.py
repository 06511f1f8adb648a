"""One atom-centred symmetry function: :class:`SymmetryFunctionSpec`, n2p2's fields and defaults.

The same object is a ``symfunction_short`` line of an ``input.nn`` (:mod:`mpnn.n2p2.input_nn`), a
function of a model (:class:`~mpnn.messages.symmetry_functions.SymmetryFunctions` and the
families of :mod:`mpnn.symmetry.families` read its fields) and, as :meth:`~SymmetryFunctionSpec.to_dict`,
an entry of a model's ``config.json`` (``model.symmetry_functions``). The fields of each type
(n2p2's ``SymFnc*`` classes; lengths in the model's unit, Angstrom for a model of ours, angles in
degrees)::

    2, 12       eta, rs, rc                          Gaussian radial (12: weighted by Z_j)
    3, 9, 13    eta, rs, rc, lambda_, zeta           Gaussian angular (3 narrow, 9 wide, 13 weighted)
    20, 23      rc, rl, subtype                      compact radial on [rl, rc] (23 weighted)
    21, 22      rc, rl, angle_left, angle_right,     compact angular (21 narrow, 22 wide;
    24, 25      subtype                              24, 25 weighted)

``neighbors`` holds one element symbol for types 2 and 20, two (ordered by atomic number) for
3, 9, 21 and 22, none for the weighted types. A field a type does not have keeps n2p2's default
(0, or "" for ``subtype``). ``element`` (the centre element), ``cutoff_type`` and
``cutoff_alpha`` (n2p2's one cutoff function of a potential) belong to the potential rather
than to one function: a model's ``config.json`` stores them once, not per function.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ase.data import chemical_symbols

from mpnn.errors import DataError

_GAUSSIAN_RADIAL = ("eta", "rs", "rc")
_GAUSSIAN_ANGULAR = ("eta", "rs", "rc", "lambda_", "zeta")
_COMPACT_RADIAL = ("rc", "rl", "subtype")
_COMPACT_ANGULAR = ("rc", "rl", "angle_left", "angle_right", "subtype")
#: Per n2p2 type: (number of neighbour elements, names of its parameters).
TYPES: dict[int, tuple[int, tuple[str, ...]]] = {
    2: (1, _GAUSSIAN_RADIAL),
    3: (2, _GAUSSIAN_ANGULAR),
    9: (2, _GAUSSIAN_ANGULAR),
    12: (0, _GAUSSIAN_RADIAL),
    13: (0, _GAUSSIAN_ANGULAR),
    20: (1, _COMPACT_RADIAL),
    21: (2, _COMPACT_ANGULAR),
    22: (2, _COMPACT_ANGULAR),
    23: (0, _COMPACT_RADIAL),
    24: (0, _COMPACT_ANGULAR),
    25: (0, _COMPACT_ANGULAR),
}
SYMMETRY_FUNCTION_TYPES = tuple(TYPES)
#: Every type's parameters, in the order :meth:`SymmetryFunctionSpec.to_dict` writes them.
_PARAMETERS = ("eta", "rs", "rc", "lambda_", "zeta", "rl", "angle_left", "angle_right", "subtype")
_FLOATS = (*_PARAMETERS[:-1], "cutoff_alpha")
#: Atomic number of every element symbol (n2p2 orders elements by it).
_ATOMIC_NUMBERS: dict[str, int] = {s: z for z, s in enumerate(chemical_symbols) if z}


def parse_subtype(subtype: str) -> tuple[str, bool]:
    """n2p2's compact-function subtype -> (core name "poly1".."poly4" or "exp", asymmetric).

    Accepts what n2p2's ``SymFncBaseComp::setCompactFunction`` accepts (``p1``..``p4``, an ``a``
    suffix for the asymmetric version, or ``e...``); anything else is a one-line DataError.
    """
    word = str(subtype)
    if len(word) in (2, 3) and word[0] == "p" and word[1] in "1234" and word[2:] in ("", "a"):
        return f"poly{word[1]}", word[2:] == "a"
    if 1 <= len(word) <= 3 and word[0] == "e":
        return "exp", False
    raise DataError(f"unknown compact function {word!r}: unsupported (n2p2 knows p1..p4, p1a..p4a or e)")


def angle_window_ok(left: float, right: float) -> bool:
    """Whether n2p2 takes the angle window [left, right] (degrees): left < right within [0, 180],
    or a window centred at 0 or 180 that reaches beyond (at most 360 wide)."""
    centre = (left + right) / 2.0
    outside = (left < 0.0 and centre != 0.0) or (right > 180.0 and centre != 180.0)
    return left < right and not outside and right - left <= 360.0


@dataclass(frozen=True, kw_only=True)
class SymmetryFunctionSpec:
    """One symmetry function with n2p2's fields and defaults (see the module docstring).

    Lengths (``rc``, ``rs``, ``rl``) in the model's or file's length unit, ``eta`` in its inverse
    square, angles in degrees. Every instance is checked on creation: a one-line
    :class:`~mpnn.errors.DataError` names the field that n2p2 would refuse or that would make the
    function infinite. ``neighbors`` is kept in element order (by atomic number); ``line`` (the
    1-based ``input.nn`` line it was read from) takes no part in comparisons.
    """

    type: int
    neighbors: tuple[str, ...] = ()
    eta: float = 0.0
    rs: float = 0.0
    rc: float
    lambda_: float = 0.0
    zeta: float = 0.0
    rl: float = 0.0
    angle_left: float = 0.0
    angle_right: float = 0.0
    subtype: str = ""
    element: str = ""
    cutoff_type: int = 0
    cutoff_alpha: float = 0.0
    line: int = field(default=0, compare=False)

    def __post_init__(self) -> None:
        _check_kinds(self)
        count, names = TYPES[self.type]
        neighbors = _neighbors(self.neighbors)
        if len(neighbors) != count:
            raise DataError(f"type {self.type} needs {count} neighbour element(s), found {len(neighbors)}")
        object.__setattr__(self, "neighbors", tuple(sorted(neighbors, key=_ATOMIC_NUMBERS.__getitem__)))
        for name in _PARAMETERS:
            value, default = getattr(self, name), _DEFAULTS[name]
            if name not in names and value != default:
                raise DataError(f"type {self.type} has no parameter {name} (found {value!r})")
        _check_values(self, names)

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        element: str | None = None,
        cutoff_type: int | None = None,
        cutoff_alpha: float | None = None,
    ) -> SymmetryFunctionSpec:
        """The spec of a dict as :meth:`to_dict` writes it (a model's ``config.json``).

        Fields a dict omits take n2p2's defaults. ``element``, ``cutoff_type`` and
        ``cutoff_alpha``, where given, are the model's (its list of elements, its one cutoff
        function) and take the place of any such field of the dict (older configurations repeat
        them per function). An unknown or missing field, a value of the wrong type or one that
        n2p2 refuses is a one-line :class:`~mpnn.errors.DataError` ``symmetry function {...}:
        <problem>`` that names the field.
        """
        shown = dict(data) if isinstance(data, Mapping) else data
        try:
            if not isinstance(data, Mapping):
                raise DataError("expected a mapping of n2p2's fields (type, neighbors, rc, eta, ...)")
            unknown = sorted(str(k) for k in set(data) - _FIELDS)
            if unknown:
                known = ", ".join(_FIELDS_ORDER)
                raise DataError(f"field(s) {unknown} have no n2p2 equivalent (known: {known})")
            missing = [name for name in ("type", "rc") if name not in data]
            if missing:
                raise DataError(f"no {' or '.join(missing)} given")
            fields = dict(data)
            context = {"element": element, "cutoff_type": cutoff_type, "cutoff_alpha": cutoff_alpha}
            fields.update({k: v for k, v in context.items() if v is not None})
            return cls(**fields)
        except DataError as error:
            raise DataError(f"symmetry function {shown}: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        """The function's own fields as a model's ``config.json`` stores them: ``type``,
        ``neighbors`` (a list; not for the weighted types) and the type's parameters, e.g.
        ``{"type": 2, "neighbors": ["H"], "eta": 0.5, "rs": 0.0, "rc": 6.0}``. ``element`` and
        the cutoff function are the model's (give them to :meth:`from_dict`)."""
        count, names = TYPES[self.type]
        out: dict[str, Any] = {"type": self.type}
        if count:
            out["neighbors"] = list(self.neighbors)
        out.update((name, getattr(self, name)) for name in _PARAMETERS if name in names)
        return out

    def sort_key(self, conv_length: float = 1.0) -> tuple:
        """n2p2's ``operator<`` of the ``SymFnc*`` classes as a tuple (centre element, type, then
        per type the fields of :mod:`mpnn.n2p2.input_nn`'s docstring), lengths times
        ``conv_length`` and eta divided by its square (n2p2's internal units when ``input.nn``
        normalises). Elements compare by atomic number (an unset ``element`` as 0)."""
        rc, rl, rs = self.rc * conv_length, self.rl * conv_length, self.rs * conv_length
        eta = self.eta / (conv_length * conv_length)
        z = tuple(_ATOMIC_NUMBERS[n] for n in self.neighbors)
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
        return (_ATOMIC_NUMBERS.get(self.element, 0), t, rest)


_FIELDS_ORDER = tuple(f.name for f in dataclasses.fields(SymmetryFunctionSpec) if f.compare)
_FIELDS = frozenset(_FIELDS_ORDER)
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(SymmetryFunctionSpec)}


def _neighbors(value: Any) -> tuple[str, ...]:
    """The element symbols of a ``neighbors`` field of symbols or atomic numbers."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise DataError(f"neighbors must be a list of element symbols, not {value!r}")
    out = []
    for n in value:
        is_number = isinstance(n, int) and not isinstance(n, bool)
        symbol = chemical_symbols[n] if is_number and 1 <= n < len(chemical_symbols) else n
        if not isinstance(symbol, str) or symbol not in _ATOMIC_NUMBERS:
            raise DataError(f"neighbors: {n!r} is not an element")
        out.append(symbol)
    return tuple(out)


def _check_kinds(spec: SymmetryFunctionSpec) -> None:
    """The Python type of each field (but ``neighbors``); numbers become float."""
    if isinstance(spec.type, bool) or not isinstance(spec.type, int) or spec.type not in TYPES:
        raise DataError(
            f"unknown symmetry function type {spec.type!r} "
            f"(n2p2 knows {', '.join(map(str, SYMMETRY_FUNCTION_TYPES))})"
        )
    for name in ("cutoff_type", "line"):
        value = getattr(spec, name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise DataError(f"{name} must be an integer, not {value!r}")
    for name in ("subtype", "element"):
        if not isinstance(getattr(spec, name), str):
            raise DataError(f"{name} must be a string, not {getattr(spec, name)!r}")
    if spec.element and spec.element not in _ATOMIC_NUMBERS:
        raise DataError(f"element: {spec.element!r} is not an element")
    for name in _FLOATS:
        value = getattr(spec, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DataError(f"{name} must be a number, not {value!r}")
        if not math.isfinite(value):
            raise DataError(f"{name} must be a finite number, not {value!r}")
        object.__setattr__(spec, name, float(value))


def _check_values(spec: SymmetryFunctionSpec, names: tuple[str, ...]) -> None:
    """What n2p2 refuses, or what makes the function infinite: rc <= 0, eta < 0 (a growing
    exponential), lambda outside [-1, 1] (1 + lambda cos < 0 under a power), zeta <= 0 (a pole
    where 1 + lambda cos = 0), an unknown compact function, rl >= rc, a bad angle window."""
    if "subtype" in names:
        parse_subtype(spec.subtype)
    if spec.rc <= 0.0:
        raise DataError(f"cutoff radius rc must be positive, found {spec.rc!r}")
    if "eta" in names and spec.eta < 0.0:
        raise DataError(f"eta must be >= 0, found {spec.eta!r}")
    if "lambda_" in names and not -1.0 <= spec.lambda_ <= 1.0:
        raise DataError(f"lambda must be in [-1, 1] (n2p2 uses -1, 1), found {spec.lambda_!r}")
    if "zeta" in names and spec.zeta <= 0.0:
        raise DataError(f"zeta must be positive, found {spec.zeta!r}")
    if "rl" in names and spec.rl >= spec.rc:
        raise DataError(f"lower radial bound rl={spec.rl!r} must be below rc={spec.rc!r}")
    left, right = spec.angle_left, spec.angle_right
    if "angle_left" in names and not angle_window_ok(left, right):
        if left >= right:
            raise DataError(f"left angle angle_left={left!r} must be below angle_right={right!r}")
        raise DataError(
            f"angles [{left!r}, {right!r}] (angle_left, angle_right) leave [0, 180], not centred on 0 or 180"
        )
