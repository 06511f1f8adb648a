"""Run configurations: RunSpec-like dicts from JSON or YAML files and command lines.

A *configuration* is a RunSpec-like dict, e.g. from a JSON or YAML file (:func:`load_config`)::

    {"targets": "U0,gap", "joint": false, "data": {"subset": 1000},
     "model": {"model": "enn_s2s", "dim": 128}, "training": {"epochs": 50}}

every section optional; ``model`` is a registered model name, a preset name
(:mod:`mpnn.models.presets`) or a dict. Configurations are layered by :func:`merge_configs`
(a layer whose ``model`` names a model replaces the model, else its options are merged).
"""

from __future__ import annotations

import copy
from dataclasses import fields
from pathlib import Path
from typing import Any

from mpnn.data.qm9 import TARGETS
from mpnn.errors import DataError
from mpnn.models import MODELS
from mpnn.train.data import DataSpec
from mpnn.train.run import RunSpec, parse_targets
from mpnn.train.settings import TrainSettings
from mpnn.train.settings_files import load_settings
from mpnn.train.validate import check_fields, check_model_options

SECTIONS = ("targets", "joint", "data", "model", "training")
_PATH_KEYS = ("source", "uncharacterized", "atomref")


def load_config(path: str | Path) -> dict[str, Any]:
    """The mapping in a JSON file, or a YAML file (``.yaml``/``.yml``); errors name the file
    (:func:`mpnn.train.settings_files.load_settings`: a regular file, bounded in size and nesting)."""
    data = load_settings(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    return data


def model_presets() -> dict[str, dict[str, Any]]:
    """:data:`mpnn.models.presets.PRESETS` (name -> model config), or {} without that module."""
    try:
        from mpnn.models import presets
    except ModuleNotFoundError as error:
        if error.name != "mpnn.models.presets":
            raise
        return {}
    return {name: dict(config) for name, config in presets.PRESETS.items()}


def resolve_model(value: Any, where: str) -> dict[str, Any]:
    """``{"model": name, **options}`` from a model name, a preset name or a dict.

    A registered model name (:data:`mpnn.models.MODELS`) wins over a preset of the same name;
    a preset expands to its configuration, then the dict's other options override it. A dict
    without ``"model"`` holds options only (merged onto another model by :func:`merge_configs`).
    """
    options = {"model": value} if isinstance(value, str) else value
    if not isinstance(options, dict) or not isinstance(options.get("model", ""), str):
        raise DataError(f"{where}: expected a model name or a mapping with a 'model' name")
    options = dict(options)
    if "model" not in options:
        return options
    name = options.pop("model")
    if name in MODELS:
        return {"model": name, **options}
    presets = model_presets()
    if name in presets:
        return {**presets[name], **options}
    known = ", ".join(sorted(MODELS)) + (f"; presets: {', '.join(sorted(presets))}" if presets else "")
    raise DataError(f"{where}: unknown model {name!r}; models: {known}")


def normalize_config(config: dict[str, Any], where: str, *, base_dir: Path | None = None) -> dict[str, Any]:
    """A checked copy of a configuration: targets as a list in :data:`TARGETS` order, ``model``
    a dict (presets expanded), data paths absolute (relative ones taken from ``base_dir``)."""
    unknown = sorted(set(config) - set(SECTIONS))
    if unknown:
        raise DataError(f"{where}: unknown setting {unknown[0]!r}; expected {', '.join(SECTIONS)}")
    out: dict[str, Any] = {}
    if "targets" in config:
        targets = config["targets"]
        if isinstance(targets, list) and all(isinstance(t, str) for t in targets):
            targets = ",".join(targets)
        if not isinstance(targets, str):
            raise DataError(f"{where}: targets must be 'all', 'U0,gap' or a list of names")
        try:
            out["targets"] = parse_targets(targets)
        except DataError as error:
            raise DataError(f"{where}: {error}") from None
    if "joint" in config:
        if not isinstance(config["joint"], bool):
            raise DataError(f"{where}: joint must be true or false, got {config['joint']!r}")
        out["joint"] = config["joint"]
    for section, kind in (("data", DataSpec), ("training", TrainSettings)):
        if section not in config:
            continue
        values = config[section]
        if not isinstance(values, dict):
            raise DataError(f"{where}: {section} must be a mapping of settings")
        known = [f.name for f in fields(kind)]
        bad = [key for key in values if key not in known]
        if bad:
            raise DataError(f"{where}: unknown setting {section}.{bad[0]}; known: {', '.join(known)}")
        check_fields(values, kind.RULES, f"{where}: {section}.")
        values = dict(values)
        for key in _PATH_KEYS if section == "data" else ():
            if isinstance(values.get(key), str):
                path = Path(values[key]).expanduser()
                values[key] = str((base_dir / path if base_dir else path).resolve())
        out[section] = values
    if "model" in config:
        out["model"] = resolve_model(config["model"], f"{where}: model")
    return out


def merge_configs(*configs: dict[str, Any]) -> dict[str, Any]:
    """Normalised configurations layered in order (later ones win).

    ``data`` and ``training`` merge key by key (a layer giving only ``epochs`` or only
    ``time_budget`` clears the other); ``model`` is replaced by a layer that names a model
    and merged with one that gives options only.
    """
    merged: dict[str, Any] = {}
    for config in configs:
        for key, value in config.items():
            if key in ("data", "training"):
                value = dict(value)
                for length, other in (("epochs", "time_budget"), ("time_budget", "epochs")):
                    if value.get(length) is not None and other not in value:
                        value[other] = None
                merged[key] = {**merged.get(key, {}), **value}
            elif key == "model" and "model" not in value:
                merged[key] = {**merged.get(key, {}), **value}
            else:
                merged[key] = value
    return copy.deepcopy(merged)


def flatten_config(config: dict[str, Any]) -> dict[str, Any]:
    """Dotted names (``"training.lr"``) of a configuration's settings, as :func:`apply_overrides` takes."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if key in ("data", "model", "training"):
            flat.update({f"{key}.{name}": v for name, v in value.items()})
        else:
            flat[key] = value
    return flat


def spec_from_config(config: dict[str, Any], where: str | None = None) -> RunSpec:
    """The :class:`RunSpec` of a normalised configuration over the defaults of ``mpnn train``
    (all 13 targets jointly, enn-s2s, 180 s); errors start with ``where`` if given."""
    merged = merge_configs(RunSpec(list(TARGETS), joint=True).to_json(), config)
    check_model_options(merged["model"], f"{where}: model." if where else "model settings: model.")
    try:
        return RunSpec.from_json(merged)
    except (TypeError, ValueError) as error:
        raise DataError(f"{where}: {error}" if where else str(error)) from None
