"""The two figures of a run: ``learning_curve.png`` and ``parity.png``.

Figures are :class:`matplotlib.figure.Figure` objects rendered by the Agg canvas; pyplot and its
global state are not used, so this works without a display and inside other programs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mpnn.files import atomic_write


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: str | Path) -> None:
    atomic_write(Path(path), lambda tmp: figure.savefig(tmp, dpi=110, format="png"))


def learning_curve(history: Sequence[dict[str, float]], path: str | Path) -> None:
    """Training loss (standardised MSE) and validation mean error ratio vs epoch, log y."""
    epochs = [row["epoch"] for row in history]
    figure = _figure(6, 6)
    top, bottom = figure.subplots(2, 1, sharex=True)
    top.plot(epochs, [row["train_loss"] for row in history], marker=".", color="tab:blue")
    top.set_ylabel("train loss (standardised MSE)")
    bottom.plot(epochs, [row["valid_ratio"] for row in history], marker=".", color="tab:red")
    bottom.axhline(1.0, color="grey", linestyle="--", linewidth=0.8, label="chemical accuracy")
    bottom.set_ylabel("validation MAE / chem. acc.")
    bottom.set_xlabel("epoch")
    bottom.legend(loc="upper right")
    for axis in (top, bottom):
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    _save(figure, path)


def parity(
    names: Sequence[str],
    units: Sequence[str],
    predicted: np.ndarray,
    true: np.ndarray,
    path: str | Path,
) -> None:
    """Predicted vs true, one panel per target (``predicted``, ``true``: (M, K) target units)."""
    k = len(names)
    cols = min(k, 4)
    rows = math.ceil(k / cols)
    figure = _figure(3.2 * cols, 3.1 * rows)
    axes = figure.subplots(rows, cols, squeeze=False)
    for i, axis in enumerate(axes.flat):
        if i >= k:
            axis.set_visible(False)
            continue
        t, p = true[:, i], predicted[:, i]
        low, high = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
        axis.plot([low, high], [low, high], color="grey", linewidth=0.8)
        axis.scatter(t, p, s=4, alpha=0.5, color="tab:blue", linewidths=0)
        axis.set_title(f"{names[i]} ({units[i]})", fontsize=9)
        axis.set_xlabel("true", fontsize=8)
        axis.set_ylabel("predicted", fontsize=8)
        axis.tick_params(labelsize=7)
    figure.tight_layout()
    _save(figure, path)
