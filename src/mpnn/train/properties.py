"""Property models outside the loop: standardisation from training targets, predictions in
target units, errors per target."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mpnn.models import PropertyModel
from mpnn.train.loader import BatchLoader
from mpnn.train.metrics import TargetError, target_errors


def fit_standardization(model: PropertyModel, y_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Set the model's target mean and std (K,) from the training targets ``y_train`` (M, K)."""
    y_train = np.asarray(y_train, dtype=np.float64)
    mean, std = y_train.mean(axis=0), y_train.std(axis=0)
    model.set_standardization(torch.as_tensor(mean), torch.as_tensor(std))
    return mean, std


@torch.no_grad()
def predict(model: PropertyModel, loader: BatchLoader) -> np.ndarray:
    """(M, K) float64 predictions in target units for the loader's indices, in their order.

    The de-standardisation is done in float64 (``net * std + mean``).
    """
    was_training = model.training
    model.eval()
    mean, std = model.mean.double(), model.std.double()
    parts = [model.standardized(batch).double() * std + mean for batch in loader.batches(0)]
    model.train(was_training)
    return torch.cat(parts).numpy()


def evaluate(model: PropertyModel, loader: BatchLoader, names: Sequence[str]) -> list[TargetError]:
    """Per-target errors of ``model`` on the loader's molecules (targets from ``dataset.y``)."""
    return target_errors(names, predict(model, loader), loader.targets)
