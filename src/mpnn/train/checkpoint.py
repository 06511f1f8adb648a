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
``torch.load(..., weights_only=True)``; the model is rebuilt from ``config.json``. Each kind of
file has one checked loader (:func:`load_state_file`, :func:`load_last`, :func:`load_split_file`):
a file that loads but has the wrong structure, or a truncated one, is a one-line
:class:`DataError` naming it. Files are written through temporaries
(:func:`mpnn.files.atomic_write`); those a killed process left behind are removed when a run
starts or resumes (:func:`mpnn.files.remove_stale_temporaries`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mpnn.errors import DataError
from mpnn.files import atomic_write, check_regular_file
from mpnn.models import PropertyModel, build_model
from mpnn.train.settings_files import load_json
from mpnn.train.validate import check_model_options, is_int


def is_real(value: Any) -> bool:
    """A real number (NaN allowed: a force error of a run without forces), not a ``bool``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


CONFIG, SPLIT, BEST, LAST = "config.json", "split.pt", "best.pt", "last.pt"


def save_tensors(obj: Any, path: str | Path) -> None:
    """``torch.save`` atomically; ``obj`` must hold only tensors and plain Python values."""
    atomic_write(Path(path), lambda tmp: torch.save(obj, tmp))


def load_tensors(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on CPU; a bad file is a :class:`DataError`.

    This checks nothing of the structure: use :func:`load_state_file`, :func:`load_last` or
    :func:`load_split_file` for the files of a run.
    """
    check_regular_file(path, "a checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (IsADirectoryError, PermissionError) as error:
        raise DataError(f"{path}: cannot read: {error.strerror}") from None
    except Exception as error:  # a truncated, corrupted or foreign file
        if "Weights only load failed" in str(error):
            raise DataError(f"{path}: not a checkpoint of mpnn (it holds Python objects)") from None
        raise DataError(f"{path}: truncated or corrupt checkpoint") from None


def _kind(value: Any) -> str:
    """A short description of a loaded value, for messages."""
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    if isinstance(value, dict):
        return f"a dict with keys {', '.join(map(repr, list(value)[:4]))}" if value else "an empty dict"
    return f"a {type(value).__name__}"


def check_state_dict(saved: Any, where: str | Path) -> dict[str, torch.Tensor]:
    """``saved`` if it is a model state dict (names -> tensors), else a :class:`DataError`."""
    if (
        not isinstance(saved, dict)
        or not saved
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in saved.items())
    ):
        raise DataError(f"{where}: not a model checkpoint (expected named tensors, got {_kind(saved)})")
    return saved


def load_state_file(path: str | Path) -> dict[str, torch.Tensor]:
    """The model state dict in ``path`` (``best.pt``), checked to be names -> tensors."""
    return check_state_dict(load_tensors(path), path)


#: What ``last.pt`` holds: model state dict, optimizer state dict, torch RNG state, counters.
LAST_KEYS = ("model", "optimizer", "torch_rng", "state")


def load_last(path: str | Path) -> dict[str, Any]:
    """The contents of ``last.pt`` (:data:`LAST_KEYS`), each checked for its structure."""
    saved = load_tensors(path)
    missing = [k for k in LAST_KEYS if not isinstance(saved, dict) or k not in saved]
    if missing:
        expected = f"a dict with {', '.join(LAST_KEYS)}"
        raise DataError(f"{path}: not a {LAST} checkpoint (expected {expected}, got {_kind(saved)})")
    check_state_dict(saved["model"], f"{path}: model")
    optimizer = saved["optimizer"]
    if not (
        isinstance(optimizer, dict)
        and isinstance(optimizer.get("state"), dict)
        and isinstance(optimizer.get("param_groups"), list)
    ):
        raise DataError(f"{path}: optimizer: expected an optimizer state dict, got {_kind(optimizer)}")
    rng = saved["torch_rng"]
    if not (isinstance(rng, torch.Tensor) and rng.dtype == torch.uint8 and rng.dim() == 1):
        raise DataError(f"{path}: torch_rng: expected a 1-D uint8 tensor, got {_kind(rng)}")
    if not isinstance(saved["state"], dict):
        raise DataError(f"{path}: state: expected a dict of counters, got {_kind(saved['state'])}")
    return saved


def load_into(model: torch.nn.Module, state: dict[str, torch.Tensor], where: str | Path) -> None:
    """``model.load_state_dict(state)``; a mismatch is a :class:`DataError` naming ``where``.

    Integer tensors (index tables of the symmetry functions, columns, ...) are structure that the
    model derives from its configuration, not learned: a saved one must equal the model's own, as
    an index out of range would reach compiled kernels unchecked.
    """
    current = model.state_dict()
    for key, value in state.items() if isinstance(state, dict) else ():
        fixed = current.get(key)
        if fixed is None or not isinstance(value, torch.Tensor) or value.is_floating_point():
            continue
        if value.shape != fixed.shape or value.dtype != fixed.dtype or not torch.equal(value, fixed):
            raise DataError(f"{where}: {key}: differs from the structure that the configuration gives")
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{where}: does not fit the model: {first}") from None


def check_optimizer_state(saved: dict[str, Any], optimizer: torch.optim.Optimizer, where: str) -> None:
    """Raise a one-line :class:`DataError` unless ``saved`` (an optimizer state dict, as in
    ``last.pt``) fits ``optimizer``: the same parameter groups with the same settings, of the same
    kinds and finite, and per-parameter state tensors of the parameters' shapes, finite.

    ``optimizer.load_state_dict`` checks little of this; a mismatch would fail (or compute NaN)
    only at the first step, deep inside PyTorch.
    """
    groups, current = saved.get("param_groups"), optimizer.param_groups
    if not isinstance(groups, list) or len(groups) != len(current):
        raise DataError(f"{where}: expected {len(current)} parameter group(s), got {_kind(groups)}")
    params = [p for group in current for p in group["params"]]
    for k, (group, fresh) in enumerate(zip(groups, current, strict=True)):
        if not isinstance(group, dict) or set(group) != set(fresh):
            raise DataError(f"{where}: param_groups[{k}]: expected the keys {', '.join(sorted(fresh))}")
        for key, value in fresh.items():
            if key == "params":
                ok = isinstance(group[key], list) and len(group[key]) == len(value)
            else:
                ok = _same_kind(group[key], value)
            if not ok:
                raise DataError(f"{where}: param_groups[{k}].{key}: {group[key]!r} does not fit {value!r}")
    state = saved.get("state")
    for index, entry in state.items() if isinstance(state, dict) else ():
        if not (isinstance(index, int) and 0 <= index < len(params) and isinstance(entry, dict)):
            raise DataError(f"{where}: state: entry {index!r} is not one of the {len(params)} parameters")
        for name, value in entry.items():
            shaped = isinstance(value, torch.Tensor) and value.dim() > 0
            if shaped and value.shape != params[index].shape:
                raise DataError(
                    f"{where}: state[{index}].{name}: shape {tuple(value.shape)}, "
                    f"expected {tuple(params[index].shape)}"
                )
            if isinstance(value, torch.Tensor) and value.is_floating_point() and not value.isfinite().all():
                raise DataError(f"{where}: state[{index}].{name}: not finite")


def _same_kind(value: Any, reference: Any) -> bool:
    """Whether a saved optimizer setting ``value`` is of the kind of ``reference`` (and finite)."""
    if isinstance(reference, bool) or reference is None:
        return value is None or isinstance(value, bool)
    if isinstance(reference, (int, float, torch.Tensor)):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        number = number or (isinstance(value, torch.Tensor) and value.numel() == 1)
        return number and bool(torch.isfinite(torch.as_tensor(value, dtype=torch.float64)))
    if isinstance(reference, (tuple, list)):
        return (
            isinstance(value, (tuple, list))
            and len(value) == len(reference)
            and all(_same_kind(v, r) for v, r in zip(value, reference, strict=True))
        )
    return isinstance(value, type(reference))


def restore_last(
    saved: dict[str, Any], optimizer: torch.optim.Optimizer, counters: SavedCounters, where: str | Path
) -> None:
    """Set the optimizer state, the torch RNG state and the counters from ``saved`` (of
    :func:`load_last`); a mismatch is a :class:`DataError` naming ``where``."""
    check_optimizer_state(saved["optimizer"], optimizer, f"{where}: optimizer")
    try:
        optimizer.load_state_dict(saved["optimizer"])
    except (RuntimeError, KeyError, TypeError, ValueError, IndexError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{where}: optimizer: does not fit the model: {first}") from None
    _dry_step(optimizer, f"{where}: optimizer")
    try:
        torch.set_rng_state(saved["torch_rng"])
    except (RuntimeError, TypeError, ValueError):
        raise DataError(f"{where}: torch_rng: not a random generator state") from None
    counters.load(saved["state"], where)


def _dry_step(optimizer: torch.optim.Optimizer, where: str) -> None:
    """Take one step with zero gradients, then put parameters, gradients and optimizer state back
    exactly: a loaded state the optimizer cannot step with (a moment missing, of another dtype,
    ...) is a one-line :class:`DataError` here, not a traceback at the first training step."""
    import copy

    params = [p for group in optimizer.param_groups for p in group["params"]]
    values = [p.detach().clone() for p in params]
    grads = [p.grad for p in params]
    state = copy.deepcopy(optimizer.state_dict())
    try:
        for p in params:
            p.grad = torch.zeros_like(p)
        optimizer.step()
    except Exception as error:  # what a foreign state makes the optimizer raise varies
        text = " ".join(str(error).split()) or type(error).__name__
        raise DataError(f"{where}: the optimizer cannot step with this state ({text})") from None
    finally:
        with torch.no_grad():
            for p, value in zip(params, values, strict=True):
                p.copy_(value)
        for p, grad in zip(params, grads, strict=True):
            p.grad = grad
        optimizer.load_state_dict(state)


def load_split_file(path: str | Path, parts: tuple[str, ...], num: int | None) -> dict[str, np.ndarray]:
    """The index arrays ``parts`` of a split file (``split.pt``), each (n,) int64, unique, in
    [0, num) (``num``: the data set's size, or None to take ``num_molecules`` from the file),
    and disjoint. A ``num_molecules`` in the file must equal ``num``."""
    saved = load_tensors(path)
    if not isinstance(saved, dict) or any(p not in saved for p in parts):
        expected = f"a dict with {', '.join(parts)}"
        raise DataError(f"{path}: not a split file (expected {expected}, got {_kind(saved)})")
    stored = saved.get("num_molecules")
    if stored is not None and (not isinstance(stored, int) or isinstance(stored, bool) or stored < 1):
        raise DataError(f"{path}: num_molecules: expected a positive integer, got {stored!r}")
    if num is not None and stored is not None and stored != num:
        raise DataError(
            f"{path}: the split was drawn from {stored} molecules, "
            f"this data set has {num} (different data? give the run's --data)"
        )
    bound = num if num is not None else stored
    split: dict[str, np.ndarray] = {}
    seen: set[int] = set()
    for part in parts:
        index = saved[part]
        if not (isinstance(index, torch.Tensor) and index.dtype == torch.int64 and index.dim() == 1):
            raise DataError(f"{path}: {part}: expected a 1-D int64 tensor of indices, got {_kind(index)}")
        values = index.numpy()
        if values.size and (values.min() < 0 or (bound is not None and values.max() >= bound)):
            raise DataError(f"{path}: {part}: indices outside [0, {bound}) (another data set?)")
        unique = set(values.tolist())
        if len(unique) != values.size or unique & seen:
            raise DataError(f"{path}: {part}: repeated indices, or indices of another part")
        seen |= unique
        split[part] = values
    return split


def is_run_dir(path: str | Path) -> bool:
    """Whether ``path`` holds a single-model run (a ``config.json``)."""
    return (Path(path) / CONFIG).is_file()


def rebuild_model(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """A fresh model of the stored configuration ``path`` (a run's ``config.json``, property
    model or potential) and that configuration. The one way a model is rebuilt from a stored
    file: the ``model`` section is checked against the model's options
    (:func:`~mpnn.train.validate.check_model_options`) and whatever else the builder refuses
    (a symmetry function without a ``type``, ...) is a one-line :class:`DataError` naming ``path``."""
    config = load_json(path)
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise DataError(f"{path}: not a run configuration (no model settings)")
    check_model_options(config["model"], f"{path}: model.")
    try:
        model = build_model(config["model"])
    except DataError as error:
        raise DataError(f"{path}: cannot rebuild the model: {error}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        text = " ".join(str(error).split()) or type(error).__name__
        raise DataError(f"{path}: cannot rebuild the model: {text}") from None
    return model, config


def load_model(run_dir: str | Path, which: str = BEST) -> tuple[PropertyModel, dict[str, Any]]:
    """The trained model of ``run_dir`` (``best.pt`` by default) and its ``config.json``."""
    run_dir = Path(run_dir)
    model, config = rebuild_model(run_dir / CONFIG)
    state = load_last(run_dir / which)["model"] if which == LAST else load_state_file(run_dir / which)
    load_into(model, state, f"{run_dir / which} (with {run_dir / CONFIG})")
    return model.eval(), config


class SavedCounters:
    """Plain counters of a training run (epoch, best loss, history, ...), saved in ``last.pt``:
    ``to_dict()`` gives every attribute (but those named ``_...``), ``load(saved)`` sets them back.

    ``_history_columns`` names what each row of ``history`` holds (a number each; ``epoch`` an
    integer), as the loop that writes ``metrics.csv`` from them needs."""

    _history_columns: tuple[str, ...] = ()

    def _counters(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def to_dict(self) -> dict[str, Any]:
        return dict(self._counters())

    def load(self, saved: dict[str, Any], where: str | Path = "last.pt") -> None:
        """Set every counter from ``saved``; each must be there with the type of its default
        (ints int, numbers real, lists lists; a history row has every column of
        ``_history_columns``, numbers), else a :class:`DataError` naming ``where``."""
        for key, default in self._counters().items():
            value = saved.get(key) if isinstance(saved, dict) else None
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = is_int(value)
            elif isinstance(default, float):
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
            elif isinstance(default, list):
                ok = isinstance(value, list) and all(isinstance(v, dict) for v in value)
            else:
                ok = key in saved
            if not ok:
                raise DataError(f"{where}: state.{key}: expected {type(default).__name__}, got {value!r}")
            if key == "history":
                self._check_history(value, where)
        for key in self._counters():
            setattr(self, key, saved[key])

    def _check_history(self, rows: list[dict[str, Any]], where: str | Path) -> None:
        """Each row holds every one of ``_history_columns`` as a real number (``epoch`` an int)."""
        for k, row in enumerate(rows):
            for column in self._history_columns:
                value = row.get(column)
                ok = is_int(value) if column == "epoch" else is_real(value)
                if not ok:
                    expected = "an integer" if column == "epoch" else "a number"
                    raise DataError(
                        f"{where}: state.history[{k}].{column}: expected {expected}, got {value!r}"
                    )
