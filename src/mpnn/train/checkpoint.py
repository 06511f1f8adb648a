"""Files of a training run, written atomically and read back without unpickling code.

A run directory holds:

===================  ==========================================================================
``config.json``      model configuration, training settings, standardisation, split, data
``split.pt``         ``{"train", "valid", "test"}`` (n,) int64 indices into the data set
``best.pt``          model state dict with the best validation mean error ratio
``last.pt``          model, optimizer, epoch, elapsed seconds, RNG state, best so far, history
``metrics.csv``      one row per epoch
``test_metrics.csv`` the final table
===================  ==========================================================================

Checkpoints are dictionaries of tensors and plain Python values, loaded with
``torch.load(..., weights_only=True)``; the model is rebuilt from ``config.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mpnn.errors import DataError
from mpnn.models import PropertyModel, build_model

CONFIG, SPLIT, BEST, LAST = "config.json", "split.pt", "best.pt", "last.pt"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_tensors(obj: Any, path: str | Path) -> None:
    """``torch.save`` atomically; ``obj`` must hold only tensors and plain Python values."""
    atomic_write(Path(path), lambda tmp: torch.save(obj, tmp))


def write_text(text: str, path: str | Path) -> None:
    """Write a text file atomically."""
    atomic_write(Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"))


def save_json(obj: Any, path: str | Path) -> None:
    """Write JSON atomically (indented, keys in insertion order)."""
    write_text(json.dumps(obj, indent=2) + "\n", path)


def load_tensors(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU; a bad file is a :class:`DataError`."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except Exception as error:  # a corrupted or foreign file
        raise DataError(f"{path}: not a readable checkpoint ({type(error).__name__}: {error})") from None


def load_json(path: str | Path) -> Any:
    """Read a JSON file; missing or malformed is a :class:`DataError` naming the line."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path}:{error.lineno}: malformed JSON: {error.msg}") from None


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` holds a single-model run (a ``config.json``)."""
    return (Path(path) / CONFIG).is_file()


def load_model(run_dir: str | Path, which: str = BEST) -> tuple[PropertyModel, dict[str, Any]]:
    """The trained model of ``run_dir`` (``best.pt`` by default) and its ``config.json``."""
    run_dir = Path(run_dir)
    config = load_json(run_dir / CONFIG)
    try:
        model = build_model(config["model"])
    except (KeyError, TypeError, ValueError) as error:
        raise DataError(f"{run_dir / CONFIG}: cannot rebuild the model: {error}") from None
    state = load_tensors(run_dir / which)
    if which == LAST:
        state = state["model"]
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as error:
        first = str(error).strip().splitlines()[0]
        raise DataError(f"{run_dir / which}: does not fit {run_dir / CONFIG}: {first}") from None
    return model.eval(), config


class SavedCounters:
    """Plain counters of a training run (epoch, best loss, history, ...), saved in ``last.pt``:
    ``to_dict()`` gives every attribute, ``load(saved)`` sets them back."""

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))

    def load(self, saved: dict[str, Any]) -> None:
        for key in vars(self):
            setattr(self, key, saved[key])
