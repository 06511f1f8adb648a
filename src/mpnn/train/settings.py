"""How any model is trained: one settings type for property models and potentials alike.

Stored in a run's ``config.json`` (and ``run.json``) under ``"training"``; configuration files and
command lines are checked with the same :data:`TrainSettings.RULES`
(:mod:`mpnn.train.validate`). Property runs start from the dataclass defaults (Gilmer et al.'s
schedule); potential runs from :data:`POTENTIAL_DEFAULTS` (n2p2-like: smaller batches, early
decay, no clipping), see :func:`potential_settings`.

Batch semantics: ``batch_size`` is the *global* batch, the structures of one optimisation step
over all processes; under ``torchrun`` each of P processes takes about ``batch_size / P`` of them
and the gradients are averaged so that a step equals the single-process step on the same global
batch (:mod:`mpnn.train.distributed`). The learning rate therefore needs no rescaling with P.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch

from mpnn.errors import DataError
from mpnn.train.validate import BOOL, Rule, check_fields, choice, integer, learning_rate, number, seed_rule

SCHEDULES = ("linear", "plateau")
#: Mixed-precision modes of ``amp``: autocast dtypes (:mod:`mpnn.train.precision`).
AMP_MODES = ("bf16", "fp16")
#: Fields stored only when they differ from their defaults (runs written before they existed
#: stay identical, and their ``config.json`` loads with the defaults).
_OPTIONAL = (
    "weight_seed",
    "ema_decay",
    "energy_weight_final",
    "force_weight_final",
    "weight_start",
    "weight_end",
    "tensorboard",
    "amp",
)


@dataclass
class TrainSettings:
    """Optimisation, schedule, stopping, loss weights and precision of one training run.

    Attributes:
        epochs: number of epochs, or None with a ``time_budget``.
        time_budget: seconds of training (training + validation); the linear schedule follows it.
        batch_size: structures per optimisation step, over all processes (the global batch).
        lr: initial learning rate of Adam.
        schedule: ``linear`` (constant until ``decay_start``, then down to ``lr * decay_factor``;
            Gilmer et al.) or ``plateau`` (times ``lr_factor`` after ``lr_patience`` epochs without a
            better validation score, down to ``min_lr``; n2p2/NequIP-like).
        decay_start, decay_factor: the linear schedule (fractions of training, final multiplier).
        lr_factor, lr_patience, min_lr: the plateau schedule.
        clip: maximum gradient norm (Gilmer's code: 4.0); None or 0 disables clipping.
        patience: stop after this many epochs without a better validation score; None: never.
        seed: seed of the weights, the split and the epoch order.
        weight_seed: seed of the weights and of the epoch order instead of ``seed`` (None: ``seed``),
            so that runs on one split differ in their initialisation only.
        energy_weight, force_weight: w_E and w_F of a potential's loss (energies per atom, eV^2, and
            force components, eV^2/Angstrom^2) at the start of training; property runs ignore them.
        energy_weight_final, force_weight_final: the weights at the end of the change from
            ``weight_start`` to ``weight_end``; None: the weight stays constant (n2p2).
        weight_start, weight_end: fractions of training progress p (as the linear learning-rate
            schedule measures it, :func:`mpnn.train.schedule.progress`) over which the weights move
            linearly from the initial to the final ones; ``weight_start == weight_end`` is a step
            change at that fraction (MACE's second stage: 0.75, energy weight 1 -> 1000). The
            monitored ``valid_loss`` always uses the final weights (:func:`mpnn.train.schedule.loss_weight`).
        float32: train in float32 (the saved model is float64 for potentials).
        ema_decay: keep an exponential moving average of the weights with this decay per step
            (MACE/NequIP: 0.99); validation, ``best.pt`` and evaluation use the averaged weights.
            None: no average.
        tensorboard: also write each row of ``metrics.csv`` as TensorBoard scalars under
            ``<out>/tensorboard/`` (needs the ``tensorboard`` package).
        amp: mixed precision, ``"bf16"`` or ``"fp16"`` (autocast; fp16 with a gradient scaler),
            for float32 training on CUDA GPUs; on a CPU it runs with a warning. None: off.
    """

    epochs: int | None = None
    time_budget: float | None = None
    batch_size: int = 32
    lr: float = 1e-3
    schedule: str = "linear"
    decay_start: float = 0.5
    decay_factor: float = 0.05
    lr_factor: float = 0.5
    lr_patience: int = 25
    min_lr: float = 1e-6
    clip: float | None = 4.0
    patience: int | None = 30
    seed: int = 0
    weight_seed: int | None = None
    energy_weight: float = 1.0
    force_weight: float = 10.0
    float32: bool = False
    ema_decay: float | None = None
    energy_weight_final: float | None = None
    force_weight_final: float | None = None
    weight_start: float = 0.0
    weight_end: float = 1.0
    tensorboard: bool = False
    amp: str | None = None

    #: The type and range of each field (:mod:`mpnn.train.validate`); config files use the same.
    RULES: ClassVar[dict[str, Rule]] = {
        "epochs": integer(1, optional=True),
        "time_budget": number(0, low_open=True, optional=True),
        "batch_size": integer(1),
        "lr": learning_rate(),
        "schedule": choice(SCHEDULES),
        "decay_start": number(0, 1, high_open=True),
        "decay_factor": number(0, 1, low_open=True),
        "lr_factor": number(0, 1, low_open=True, high_open=True),
        "lr_patience": integer(1),
        "min_lr": learning_rate(),
        "clip": number(0, optional=True),
        "patience": integer(0, optional=True),
        "seed": seed_rule(),
        "weight_seed": seed_rule(optional=True),
        "energy_weight": number(0),
        "force_weight": number(0),
        "float32": BOOL,
        "ema_decay": number(0, 1, low_open=True, high_open=True, optional=True),
        "energy_weight_final": number(0, optional=True),
        "force_weight_final": number(0, optional=True),
        "weight_start": number(0, 1),
        "weight_end": number(0, 1),
        "tensorboard": BOOL,
        "amp": choice(AMP_MODES, optional=True),
    }

    def __post_init__(self) -> None:
        check_fields(self, self.RULES, "training.")
        if self.epochs is None and self.time_budget is None:
            raise DataError("training: give epochs or time_budget")
        if self.energy_weight + self.force_weight == 0:
            raise DataError("training: energy and force weights must not both be 0")
        if self.final_weights[0] + self.final_weights[1] == 0:
            raise DataError("training: final energy and force weights must not both be 0")
        if self.weight_start > self.weight_end:
            raise DataError(
                f"training.weight_start: {self.weight_start!r} is after weight_end {self.weight_end!r}"
            )

    @property
    def init_seed(self) -> int:
        """The seed of the weights and of the epoch order: ``weight_seed``, else ``seed``."""
        return self.seed if self.weight_seed is None else self.weight_seed

    @property
    def final_weights(self) -> tuple[float, float]:
        """(w_E, w_F) at the end of training: the final weights, or the constant ones."""
        energy, force = self.energy_weight_final, self.force_weight_final
        return (
            self.energy_weight if energy is None else energy,
            self.force_weight if force is None else force,
        )

    @property
    def trains_forces(self) -> bool:
        """Whether the force weight is above 0 at any point of training (forces are then read)."""
        return self.force_weight > 0 or self.final_weights[1] > 0

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of training."""
        return torch.float32 if self.float32 else torch.float64

    def to_json(self) -> dict[str, Any]:
        """The settings as a dict; the fields of :data:`_OPTIONAL` only where they differ from
        their defaults."""
        data = asdict(self)
        for name in _OPTIONAL:
            if data[name] == omitted_value(name):
                del data[name]
        return data


def omitted_value(name: str) -> Any:
    """What stored settings without the field ``name`` hold: its default for a field of
    :data:`_OPTIONAL` (written only when it differs), else None."""
    return TrainSettings.__dataclass_fields__[name].default if name in _OPTIONAL else None


#: The defaults of a potential run (``mpnn train-potential``) where they differ from a property run's.
POTENTIAL_DEFAULTS: dict[str, Any] = {
    "epochs": 300,
    "batch_size": 16,
    "decay_start": 0.1,
    "decay_factor": 0.01,
    "clip": None,
    "patience": 200,
}


def potential_settings(**fields: Any) -> TrainSettings:
    """:class:`TrainSettings` with the potential defaults, overridden by ``fields``.

    Settings stored by runs of earlier versions load unchanged: they hold every field they had.
    """
    defaults = dict(POTENTIAL_DEFAULTS)
    if "time_budget" in fields and "epochs" not in fields:
        defaults.pop("epochs")
    return TrainSettings(**{**defaults, **fields})
