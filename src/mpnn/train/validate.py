"""Typed checks of settings: one rule per field, one-line errors naming the field as written.

A settings dataclass (:class:`~mpnn.train.settings.TrainSettings`, :class:`~mpnn.train.data.DataSpec`,
...) declares ``RULES``, a dict of field name -> :class:`Rule`, and calls :func:`check_fields` in
``__post_init__``; a configuration file is checked with the same rules, key by key, before the
dataclass is built, so that the error names the file and the setting::

    u0.yaml: training.epochs: expected a positive integer, got 'ten'

Integers are ``int`` (not ``bool``, not ``1.5``), numbers are finite ``int`` or ``float`` (not
``bool``, not inf or NaN), and ranges are part of the rule. Model options are checked against the
type hints of the model's configuration dataclass (:func:`check_model_options`).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mpnn.errors import DataError

#: The largest seed (torch.manual_seed takes 64-bit integers).
MAX_SEED = 2**63 - 1
#: The largest learning rate of Adam: a step moves each weight by about ``lr``, so beyond 1 a
#: single step ruins a model of standardised inputs (and from about 1e38 float32 overflows).
MAX_LR = 1.0


@dataclass(frozen=True)
class Rule:
    """A field's check: ``test(value)`` must hold (None passes when ``optional``)."""

    expected: str
    test: Callable[[Any], bool]
    optional: bool = False

    def ok(self, value: Any) -> bool:
        if value is None:
            return self.optional
        try:
            return bool(self.test(value))
        except (TypeError, ValueError):
            return False


def is_int(value: Any) -> bool:
    """An integer (``int``, numpy integers), not a ``bool``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite real number (``int`` or ``float``), not a ``bool``."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def integer(low: int | None = None, high: int | None = None, *, optional: bool = False) -> Rule:
    """An integer in [low, high]."""
    if low == 1 and high is None:
        expected = "a positive integer"
    elif high is None:
        expected = "an integer" if low is None else f"an integer >= {low}"
    else:
        expected = f"an integer in [{low}, {high}]"
    return Rule(
        expected,
        lambda v: is_int(v) and (low is None or v >= low) and (high is None or v <= high),
        optional,
    )


def number(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
) -> Rule:
    """A finite number between ``low`` and ``high`` (bounds excluded where ``*_open``)."""
    if high is None:
        if low is None:
            expected = "a finite number"
        elif low == 0 and low_open:
            expected = "a positive number"
        else:
            expected = f"a number {'>' if low_open else '>='} {low:g}"
    else:
        expected = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"

    def test(v: Any) -> bool:
        if not is_number(v):
            return False
        above = low is None or (v > low if low_open else v >= low)
        below = high is None or (v < high if high_open else v <= high)
        return above and below

    return Rule(expected, test, optional)


def choice(options: typing.Iterable[str], *, optional: bool = False) -> Rule:
    """One of ``options`` (strings)."""
    options = tuple(options)
    return Rule(f"one of {', '.join(options)}", lambda v: isinstance(v, str) and v in options, optional)


def text(*, optional: bool = False) -> Rule:
    """A string."""
    return Rule("a string", lambda v: isinstance(v, str), optional)


def seed_rule(*, optional: bool = False) -> Rule:
    """A random seed: an integer in [0, 2**63)."""
    return Rule("an integer >= 0 (below 2**63)", lambda v: is_int(v) and 0 <= v <= MAX_SEED, optional)


BOOL = Rule("true or false", lambda v: isinstance(v, bool))


def learning_rate() -> Rule:
    """A learning rate of Adam: a number in (0, :data:`MAX_LR`]."""
    return number(0, MAX_LR, low_open=True)


def check_fields(values: Any, rules: Mapping[str, Rule], prefix: str = "") -> None:
    """Check ``values`` (a mapping, or a dataclass instance) against ``rules``.

    Only the names that have a rule are checked; the error is a :class:`DataError`
    ``"<prefix><name>: expected <what>, got <value>"``.
    """
    if dataclasses.is_dataclass(values) and not isinstance(values, type):
        values = {f.name: getattr(values, f.name) for f in dataclasses.fields(values)}
    for name, value in values.items():
        rule = rules.get(name)
        if rule is not None and not rule.ok(value):
            raise DataError(f"{prefix}{name}: expected {rule.expected}, got {value!r}")


def list_of(item: Rule, *, size: int | None = None) -> Rule:
    """A non-empty list (of ``size`` items if given) whose items pass ``item``."""
    words = item.expected.split(" ", 1)[1] if item.expected.startswith(("a ", "an ")) else item.expected
    for noun in ("integer", "number", "string"):
        words = words.replace(noun, noun + "s", 1)
    count = "non-empty" if size is None else f"{size}-item"
    return Rule(
        f"a {count} list of {words}",
        lambda v: (
            isinstance(v, (list, tuple))
            and bool(v)
            and (size is None or len(v) == size)
            and all(item.ok(x) for x in v)
        ),
    )


def potential_spec_rules() -> tuple[dict[str, Rule], dict[str, Rule], dict[str, Rule]]:
    """The rules of :class:`~mpnn.train.potential_run.PotentialSpec`, of its ``symmetry``
    options (:func:`~mpnn.symmetry.defaults.default_symmetry_functions`) and of its
    ``message_passing`` options (:class:`~mpnn.models.sf_mpnn.SFMPNNConfig`)."""
    from mpnn.models import POTENTIALS
    from mpnn.models.sf_mpnn import MAX_EMBEDDING_LAYERS, MESSAGES, UPDATES

    spec = {
        "train": text(),
        "valid": Rule(
            "a fraction in (0, 1) or a file",
            lambda v: isinstance(v, str) or (is_number(v) and 0 < v < 1),
        ),
        "test": text(optional=True),
        "model": choice(POTENTIALS),
        "cutoff": number(0, low_open=True),
        "nodes": list_of(integer(1)),
        "activation": choice("tspgcr"),
        "scaling": choice(("scale_center", "scale", "center", "sigma", "none")),
        "symmetry": Rule("a mapping", lambda v: isinstance(v, dict)),
        "units": list_of(number(0, low_open=True), size=2),
        "message_passing": Rule("a mapping", lambda v: isinstance(v, dict)),
        "input_nn": text(optional=True),
    }
    angular_type = Rule("3 or 9", lambda v: is_int(v) and v in (3, 9))
    symmetry = {
        "n_radial": integer(0),
        "r_min": number(0),
        "n_angular": integer(0),
        "zetas": list_of(number(1)),
        "angular_types": list_of(angular_type),
        "angular_shifts": integer(0),
    }
    message_passing = {
        "steps": integer(1, 16),
        "features": integer(1, 4096),
        "embedding": Rule(
            f"a list of 1 to {MAX_EMBEDDING_LAYERS} integers in [1, 4096]",
            lambda v: (
                isinstance(v, list)
                and 1 <= len(v) <= MAX_EMBEDDING_LAYERS
                and all(is_int(x) and 1 <= x <= 4096 for x in v)
            ),
        ),
        "message_cutoff": number(0, low_open=True, optional=True),
        "radial_basis": integer(2, 1024),
        "message": choice(MESSAGES),
        "update": choice(UPDATES),
    }
    return spec, symmetry, message_passing


# -- model options ------------------------------------------------------------------------------
def check_model_options(options: Mapping[str, Any], prefix: str = "model.") -> None:
    """Check the options of ``{"model": name, **options}`` against the type hints of the model's
    configuration dataclass (:data:`mpnn.models.MODELS`): ints are ints, floats finite numbers,
    bools bools, strings strings, lists lists of those. Unknown models and keys are left to
    :func:`mpnn.models.build_model` (which names them)."""
    from mpnn.models import MODELS

    name = options.get("model")
    if not isinstance(name, str) or name not in MODELS:
        return
    config_type = MODELS[name][0]
    try:
        hints = typing.get_type_hints(config_type)
    except Exception:  # an annotation that cannot be resolved: leave it to the model
        return
    for key, value in options.items():
        if key == "model" or key not in hints:
            continue
        expected = _describe(hints[key])
        if expected is not None and not _fits(value, hints[key]):
            raise DataError(f"{prefix}{key}: expected {expected}, got {value!r}")


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the type ``hint`` (plain data types; anything else passes)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return is_int(value)
    if hint is float:
        return is_number(value)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            args = args[:1]
        if origin is tuple and len(args) > 1:
            return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args, strict=True))
        return not args or all(_fits(v, args[0]) for v in value)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True


def _describe(hint: Any) -> str | None:
    """Words for ``hint`` (None for a type :func:`_fits` does not check)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    simple = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string"}
    if hint in simple:
        return simple[hint]
    if origin in (typing.Union, types.UnionType):
        words = [_describe(a) if a is not type(None) else "null" for a in args]
        return None if None in words else " or ".join(w for w in words if w)
    if origin in (list, tuple) or hint in (list, tuple):
        inner = _describe(args[0]) if args else None
        return f"a list of {inner.split(' ', 1)[1]}s" if inner and inner.startswith("a") else "a list"
    if origin is dict or hint is dict:
        return "a mapping"
    return None
