"""Training, evaluation and prediction of property models (Gilmer et al. 2017, Sec. 8).

==============  ==================================================================================
module          what it holds
==============  ==================================================================================
``schedule``    the learning-rate schedule: constant, then linear decay to ``lr * decay_factor``
``loader``      :class:`BatchLoader`: seeded per-epoch shuffling, collation, float32, targets
``loop``        :func:`fit` (Adam, MSE on standardised targets, clipping, early stopping, resume)
``checkpoint``  atomic writes; ``best.pt``/``last.pt`` as weights-only state dicts
``metrics``     MAE per target, error ratio (MAE / chemical accuracy), table and CSV files
``plots``       ``learning_curve.png`` and ``parity.png``
``data``        which molecules a run uses: source, subset, split
``run``         a whole run: one model per target or one joint model; ``run.json``
``predict``     predictions for xyz files
==============  ==================================================================================
"""

from mpnn.train.loader import BatchLoader
from mpnn.train.loop import FitResult, TrainSettings, evaluate, fit, fit_standardization, predict
from mpnn.train.schedule import lr_factor

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
