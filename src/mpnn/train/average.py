"""The exponential moving average of the weights (``TrainSettings.ema_decay``).

After the k-th optimisation step the average is

.. math::
    \\bar\\theta_1 = \\theta_1, \\qquad \\bar\\theta_k = d\\,\\bar\\theta_{k-1} + (1 - d)\\,\\theta_k,

i.e. :math:`\\bar\\theta_k = d^{k-1}\\theta_1 + (1 - d)\\sum_{j=2}^{k} d^{k-j}\\theta_j`
(:class:`torch.optim.swa_utils.AveragedModel` with :func:`~torch.optim.swa_utils.get_ema_multi_avg_fn`).
Only the parameters are averaged; the buffers (standardisation, symmetry-function scaling,
integer index tables of the model's structure) are copied from the model, as an average of
integer tables rounds them to other integers. ``last.pt`` keeps the average and the number of
steps averaged, so a resumed run continues it exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from mpnn.errors import DataError
from mpnn.train.checkpoint import load_into


def weight_average(model: nn.Module, decay: float | None) -> AveragedModel | None:
    """The moving average of ``model``'s parameters with ``decay`` per step (None: no average)."""
    if decay is None:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=False)


def load_average(average: AveragedModel, saved: Any, model: nn.Module, where: str | Path) -> None:
    """Set ``average`` from ``saved`` (its state dict in ``last.pt``); a checkpoint without one (a
    run that started without an average) starts it again, as a new run does: from the weights
    after the next step. A bad entry is a one-line :class:`DataError` naming ``where``."""
    if saved is None:
        average.module.load_state_dict(model.state_dict())
        average.n_averaged.zero_()
        return
    count = saved.get("n_averaged") if isinstance(saved, dict) else None
    ok = isinstance(count, torch.Tensor) and count.numel() == 1 and not count.is_floating_point()
    if not ok or int(count) < 0:
        raise DataError(f"{where}: ema: expected an averaged model with its step count n_averaged")
    weights = {k.removeprefix("module."): v for k, v in saved.items() if k.startswith("module.")}
    load_into(average.module, weights, f"{where}: ema")
    average.n_averaged.copy_(count.reshape(()))
