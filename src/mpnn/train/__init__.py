"""Training, evaluation and prediction: one loop for property models and potentials.

===============  ==================================================================================
module           what it holds
===============  ==================================================================================
``schedule``     the learning-rate schedule: constant, then linear decay to ``lr * decay_factor``
``settings``     :class:`TrainSettings`: the one settings type of every run
``targets``      what a run trains on: :class:`~.targets.Properties`, ``Energy``, ``Forces``
``trainer``      :func:`fit`: the one loop (Adam, schedules, clipping, EMA, early stopping, resume)
``distributed``  several processes under ``torchrun``: DDP, sharded batches, summed metrics
``loader``       :class:`BatchLoader`: seeded per-epoch shuffling, collation, float32, targets
``properties``   standardisation, predictions and errors of property models
``checkpoint``   atomic writes; ``best.pt``/``last.pt`` as weights-only state dicts
``metrics``      MAE per target, error ratio (MAE / chemical accuracy), table and CSV files
``plots``        ``learning_curve.png`` and ``parity.png``
``data``         which molecules a run uses: source, subset, split
``run``          a whole run: one model per target or one joint model; ``run.json``
``predict``      predictions for xyz files
===============  ==================================================================================
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: each name's module, imported on first use (a submodule such as ``validate`` imports alone)
_MODULES = {
    "BatchLoader": "loader",
    "FitResult": "trainer",
    "TrainSettings": "settings",
    "evaluate": "properties",
    "fit": "trainer",
    "fit_standardization": "properties",
    "lr_factor": "schedule",
    "predict": "properties",
}

__all__ = [
    "BatchLoader",
    "FitResult",
    "TrainSettings",
    "evaluate",
    "fit",
    "fit_standardization",
    "lr_factor",
    "predict",
]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(import_module(f"mpnn.train.{_MODULES[name]}"), name)
    raise AttributeError(f"module 'mpnn.train' has no attribute {name!r}")
