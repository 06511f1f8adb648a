"""Settings files (run configurations, search spaces, ablations, ``run.json``, ``config.json``):
JSON or YAML read into plain data, every failure a one-line :class:`~mpnn.errors.DataError`
naming the file: not a regular file (a FIFO would block forever), too large, not UTF-8, malformed
(with its line), or nested deeper than :data:`MAX_NESTING`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from mpnn.errors import DataError
from mpnn.files import read_text

#: Bounds of the settings files (configurations, search spaces, ``run.json``, ...): their size,
#: and how deeply lists and mappings may nest (ours nest 3 deep; Python's parsers and every
#: recursive walk of the data would otherwise end in a RecursionError).
MAX_SETTINGS_BYTES, MAX_NESTING = 64 * 2**20, 32


def read_settings_text(path: str | Path) -> str:
    """The UTF-8 text of the settings file ``path``: a regular file (:func:`check_regular_file`)
    of at most :data:`MAX_SETTINGS_BYTES`. Every error is a one-line :class:`DataError` naming ``path``."""
    return read_text(path, "a settings file", MAX_SETTINGS_BYTES)


def parse_settings(text: str, path: str | Path, *, yaml: bool = False) -> Any:
    """The data of a settings file's ``text`` (JSON, or YAML with ``yaml``), nested at most
    :data:`MAX_NESTING` deep; malformed or too deeply nested is a :class:`DataError` naming
    ``path`` (and the line where the parser gives one)."""
    try:
        data = _parse_yaml(text, path) if yaml else json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}:{error.lineno}: malformed JSON: {error.msg}") from None
    except RecursionError:
        raise DataError(f"{path}: lists or mappings nested too deeply (at most {MAX_NESTING})") from None
    except ValueError as error:  # DataError, or e.g. an integer of more than 4300 digits
        if isinstance(error, DataError):
            raise
        raise DataError(f"{path}: malformed {'YAML' if yaml else 'JSON'}: {error}") from None
    _check_nesting(data, path)
    return data


def _check_nesting(data: Any, path: str | Path) -> None:
    """Refuse lists and mappings nested more than :data:`MAX_NESTING` deep (walked without recursion)."""
    todo, seen = [(data, 0)], set()
    while todo:
        value, depth = todo.pop()
        if not isinstance(value, (dict, list)):
            continue
        if depth >= MAX_NESTING:
            raise DataError(f"{path}: lists or mappings nested too deeply (at most {MAX_NESTING})")
        if id(value) in seen:  # a YAML alias: one object, walked once
            continue
        seen.add(id(value))
        items = value.values() if isinstance(value, dict) else value
        todo.extend((item, depth + 1) for item in items)


#: YAML 1.1 reads ``1e-5`` as a string; this resolver reads it as the float everyone means.
_YAML_EXPONENT = re.compile(r"^[-+]?[0-9][0-9_]*(\.[0-9_]*)?[eE][-+]?[0-9]+$")


def _parse_yaml(text: str, path: str | Path) -> Any:
    try:
        import yaml
    except ImportError:
        raise DataError(f"{path}: reading YAML needs PyYAML (pip install pyyaml); or write JSON") from None

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML_EXPONENT, list("-+0123456789"))
    try:
        return yaml.load(text, Loader=Loader)  # a SafeLoader: plain data only
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise DataError(f"{where}: malformed YAML: {getattr(error, 'problem', None) or error}") from None


def load_settings(path: str | Path) -> Any:
    """The data of a settings file: YAML for ``.yaml``/``.yml``, else JSON (:func:`read_settings_text`,
    :func:`parse_settings`). Every reader of configurations, search spaces, ablations and the
    JSON files of a run goes through here."""
    yaml = Path(path).suffix.lower() in (".yaml", ".yml")
    return parse_settings(read_settings_text(path), path, yaml=yaml)


def load_json(path: str | Path) -> Any:
    """Read a JSON file (``run.json``, ``config.json``, ...) through :func:`load_settings`'s checks;
    missing, not a regular file, malformed or nested too deeply is a :class:`DataError`."""
    return parse_settings(read_settings_text(path), path)
