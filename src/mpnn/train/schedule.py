"""Gilmer et al.'s learning-rate schedule: constant, then a linear decay to ``lr * decay_factor``;
the loss weights' schedule (:func:`loss_weight`): constant, a linear change or a step.

Training progress ``p`` in [0, 1] is measured in optimisation steps (a fixed number of
epochs) or in elapsed wall-clock seconds (a time budget); the schedules only see ``p``.
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


def loss_weight(
    progress: float, initial: float, final: float | None, start: float = 0.0, end: float = 1.0
) -> float:
    """The weight of a loss term at training progress ``progress`` (``energy_weight`` ->
    ``energy_weight_final``, ``force_weight`` -> ``force_weight_final``).

    .. math::
        w(p) = w_0 \\text{ for } p < s, \\qquad
        w(p) = w_0 + (w_1 - w_0)\\,\\frac{p - s}{e - s} \\text{ for } s \\le p < e, \\qquad
        w(p) = w_1 \\text{ for } p \\ge e

    so ``start == end`` is a step change at that fraction (MACE's second stage), and
    ``final=None`` a constant weight (n2p2). The weights are dimensionless factors of their
    terms' squared errors (eV^2/atom^2, eV^2/Angstrom^2).

    Args:
        progress: fraction of training done (:func:`progress`); clamped to [0, 1].
        initial: w_0, the weight at the start.
        final: w_1, the weight at the end; None: ``initial`` throughout.
        start, end: s <= e, the fractions of training over which the weight changes.
    """
    if final is None:
        return initial
    p = min(max(progress, 0.0), 1.0)
    if p < start:
        return initial
    if p >= end:
        return final
    return initial + (final - initial) * (p - start) / (end - start)
