"""Gilmer et al.'s learning-rate schedule: constant, then a linear decay to ``lr * decay_factor``.

Training progress ``p`` in [0, 1] is measured in optimisation steps (a fixed number of
epochs) or in elapsed wall-clock seconds (a time budget); the schedule only sees ``p``.
"""

from __future__ import annotations

import math

from mpnn.errors import MpnnError


def check_finite_loss(value: float, epoch: int, what: str = "training") -> None:
    """Stop a training loop whose ``what`` ("training" or "validation") loss at 1-based ``epoch``
    is not finite: a one-line :class:`MpnnError`, raised before that epoch's checkpoints are
    written (the run folder keeps the last finite epoch)."""
    if not math.isfinite(value):
        raise MpnnError(
            f"training diverged at epoch {epoch}: non-finite {what} loss; lower the learning rate"
        )


def lr_factor(progress: float, decay_start: float = 0.5, decay_factor: float = 0.05) -> float:
    """Multiplier of the initial learning rate at training progress ``progress``.

    .. math::
        f(p) = 1 \\text{ for } p \\le s, \\qquad
        f(p) = 1 - (1 - F)\\,\\frac{p - s}{1 - s} \\text{ for } p > s

    Args:
        progress: fraction of training done; clamped to [0, 1].
        decay_start: s, the fraction after which the decay begins (0 <= s < 1).
        decay_factor: F, the final multiplier reached at p = 1 (0 < F <= 1).
    """
    if not 0.0 <= decay_start < 1.0:
        raise ValueError(f"decay_start must be in [0, 1), got {decay_start}")
    if not 0.0 < decay_factor <= 1.0:
        raise ValueError(f"decay_factor must be in (0, 1], got {decay_factor}")
    p = min(max(progress, 0.0), 1.0)
    if p <= decay_start:
        return 1.0
    return 1.0 - (1.0 - decay_factor) * (p - decay_start) / (1.0 - decay_start)


def progress(
    step: int, steps_per_epoch: int, epochs: int | None, elapsed: float, time_budget: float | None
) -> float:
    """Fraction of training done: by elapsed seconds under a time budget, else by steps.

    Args:
        step: optimisation steps taken so far (over all epochs).
        steps_per_epoch: batches per epoch.
        epochs: planned number of epochs (used when ``time_budget`` is None).
        elapsed: seconds of training so far.
        time_budget: planned seconds of training, or None.
    """
    if time_budget is not None:
        return elapsed / time_budget
    if not epochs:
        raise ValueError("progress: give epochs or a time budget")
    return step / (steps_per_epoch * epochs)
