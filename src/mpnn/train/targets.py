r"""What a run trains on: a list of targets, each with its loss, weight and metrics.

A model states what it predicts (:class:`Predictions`): a property model the standardised targets
``"properties"`` (B, K); a potential the ``"energy"`` (B,) eV and, as its negative gradient,
``"forces"`` (N, 3) eV/Angstrom (:func:`mpnn.potentials.forces.evaluate`, the code that also
serves prediction, the calculator and MD). A target reads one of them and the reference in the
batch (SchNetPack's ``ModelOutput`` pattern):

==================  ===========  ===================================================  ============
target              reads        loss term (mean over the global batch)               metrics
==================  ===========  ===================================================  ============
:class:`Properties` properties   :math:`((\hat y - \mu)/\sigma - (y - \mu)/\sigma)^2` MAE, target
                                                                                      units; ratio
:class:`Energy`     energy       :math:`((\hat E_m - E_m) / n_m)^2`, eV^2/atom^2      meV/atom
:class:`Forces`     forces       :math:`(\hat F_{i\alpha} - F_{i\alpha})^2`           meV/Angstrom
==================  ===========  ===================================================  ============

The loss of a step is :math:`\sum_t w_t S_t / C_t` with :math:`S_t` the sum of the target's
squared errors over the structures of this process and :math:`C_t` their number over the *global*
batch (:class:`Totals`), so that the gradients averaged over P processes equal those of one
process on the whole batch. Metrics are accumulated as sums (:meth:`Target.sums`, float64) that
add over batches and processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mpnn.batch import Batch
from mpnn.data.qm9 import CHEMICAL_ACCURACY, TARGETS


@dataclass(frozen=True)
class Totals:
    """Sizes of the global batch a process's batch belongs to: ``structures`` and ``atoms``.

    ``share`` is 1, or 0 for a stand-in batch of a process that has no structure of a small
    global batch (it steps with the others, with a zero loss, and is not counted)."""

    structures: int
    atoms: int
    share: float = 1.0


class Target:
    """One term of the loss and its metrics.

    Attributes:
        key: the prediction it reads (``"properties"``, ``"energy"``, ``"forces"``).
        weight: its weight in the loss at the start of training; a target of weight 0 is
            measured, not trained on (while its weight is 0).
        final_weight: its weight at the end of the change of the loss weights
            (:func:`mpnn.train.schedule.loss_weight`), which also weighs it in ``valid_loss``;
            None: ``weight`` throughout.
    """

    key: str = ""
    weight: float = 1.0
    final_weight: float | None = None

    @property
    def monitored_weight(self) -> float:
        """Its weight in the monitored ``valid_loss``: the final one, the same every epoch."""
        return self.weight if self.final_weight is None else self.final_weight

    def loss(self, predicted: Tensor, batch: Batch, totals: Totals) -> Tensor:
        """Sum of the squared errors of this batch divided by their number over the global batch."""
        raise NotImplementedError

    def sums(self, predicted: Tensor, batch: Batch) -> Tensor:
        """(S,) float64 error sums of this batch (add over batches and processes)."""
        raise NotImplementedError

    def metrics(self, sums: Tensor | None, split: str) -> dict[str, float]:
        """History columns of ``split`` (``"train"``/``"valid"``) from accumulated ``sums``
        (None: not measured, the columns are NaN)."""
        raise NotImplementedError

    def loss_value(self, sums: Tensor) -> float:
        """The loss term (without the weight) over everything ``sums`` accumulated."""
        raise NotImplementedError


class Properties(Target):
    """Standardised property targets (Gilmer et al. 2017): MSE of (y - mean) / std over B x K.

    Args:
        names: the K target names (QM9's, :data:`mpnn.data.qm9.TARGETS`).
        mean, std: (K,) the standardisation of the model (``model.mean``, ``model.std``).
    """

    key = "properties"

    def __init__(self, names: list[str], mean: Tensor, std: Tensor, weight: float = 1.0) -> None:
        self.names, self.weight = list(names), float(weight)
        self.mean, self.std = mean.detach().double().cpu(), std.detach().double().cpu()
        self.accuracy = torch.tensor(
            [CHEMICAL_ACCURACY[TARGETS.index(n)] for n in self.names], dtype=torch.float64
        )

    def loss(self, predicted: Tensor, batch: Batch, totals: Totals) -> Tensor:
        mean, std = self.mean.to(predicted), self.std.to(predicted)
        target = (batch.y.to(predicted) - mean) / std
        return (predicted - target).square().sum() / (totals.structures * len(self.names))

    def sums(self, predicted: Tensor, batch: Batch) -> Tensor:
        """K absolute errors in target units (de-standardised in float64), the squared
        standardised error, the number of structures."""
        with torch.no_grad():
            real = predicted.detach().double().cpu() * self.std + self.mean
            true = batch.y.detach().double().cpu()
            standardized = (real - true) / self.std
            count = torch.tensor([float(real.shape[0])], dtype=torch.float64)
            return torch.cat([(real - true).abs().sum(0), standardized.square().sum().reshape(1), count])

    def metrics(self, sums: Tensor | None, split: str) -> dict[str, float]:
        if split == "train":  # the training loss is all a property run records of its training set
            return {}
        k = len(self.names)
        if sums is None:
            mae = torch.full((k,), math.nan, dtype=torch.float64)
        else:
            mae = sums[:k] / sums[-1]
        out = {f"{split}_mae_{n}": float(m) for n, m in zip(self.names, mae, strict=True)}
        out[f"{split}_ratio"] = float((mae / self.accuracy).mean())
        return out

    def loss_value(self, sums: Tensor) -> float:
        return float(sums[-2] / (sums[-1] * len(self.names)))


class Energy(Target):
    """The energy per atom of each structure (eV); the reference is ``batch.y`` (B, 1)."""

    key = "energy"

    def __init__(self, weight: float = 1.0, final_weight: float | None = None) -> None:
        self.weight = float(weight)
        self.final_weight = None if final_weight is None else float(final_weight)

    def loss(self, predicted: Tensor, batch: Batch, totals: Totals) -> Tensor:
        atoms = batch.ptr.diff().to(predicted)
        return ((predicted - batch.y.reshape(-1).to(predicted)) / atoms).square().sum() / totals.structures

    def sums(self, predicted: Tensor, batch: Batch) -> Tensor:
        with torch.no_grad():
            atoms = batch.ptr.diff().double().cpu()
            error = (predicted.detach().double().cpu() - batch.y.reshape(-1).double().cpu()) / atoms
            return torch.stack([error.abs().sum(), error.square().sum(), torch.tensor(float(error.numel()))])

    def metrics(self, sums: Tensor | None, split: str) -> dict[str, float]:
        return _mae_rmse(sums, f"{split}_energy")

    def loss_value(self, sums: Tensor) -> float:
        return float(sums[1] / sums[2])


class Forces(Target):
    """The force components (eV/Angstrom); the reference is ``batch.forces`` (N, 3)."""

    key = "forces"

    def __init__(self, weight: float = 1.0, final_weight: float | None = None) -> None:
        self.weight = float(weight)
        self.final_weight = None if final_weight is None else float(final_weight)

    def loss(self, predicted: Tensor, batch: Batch, totals: Totals) -> Tensor:
        return (predicted - batch.forces.to(predicted)).square().sum() / (3 * totals.atoms)

    def sums(self, predicted: Tensor, batch: Batch) -> Tensor:
        with torch.no_grad():
            error = predicted.detach().double().cpu() - batch.forces.double().cpu()
            return torch.stack([error.abs().sum(), error.square().sum(), torch.tensor(float(error.numel()))])

    def metrics(self, sums: Tensor | None, split: str) -> dict[str, float]:
        return _mae_rmse(sums, f"{split}_force")

    def loss_value(self, sums: Tensor) -> float:
        return float(sums[1] / sums[2])


def _mae_rmse(sums: Tensor | None, prefix: str) -> dict[str, float]:
    """``{prefix}_mae`` and ``{prefix}_rmse`` in milli-units from (abs, square, count) sums."""
    if sums is None or float(sums[2]) == 0:
        return {f"{prefix}_mae": math.nan, f"{prefix}_rmse": math.nan}
    return {
        f"{prefix}_mae": 1e3 * float(sums[0] / sums[2]),
        f"{prefix}_rmse": 1e3 * math.sqrt(sums[1] / sums[2]),
    }


class Predictions(nn.Module):
    """What a model predicts for a batch, as a dict: what the loop (and DDP) calls.

    ``forward(batch, forces, create_graph)``: a model with ``standardized`` (a
    :class:`~mpnn.models.PropertyModel`) gives ``{"properties": (B, K)}``; any other model is a
    potential, ``model(batch) -> (B,)`` eV, and gives ``{"energy": (B,)}`` and with ``forces``
    ``"forces"`` (N, 3) = -dE/dpos, differentiable with ``create_graph`` (to train on them).
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Batch, forces: bool = False, create_graph: bool = False) -> dict[str, Tensor]:
        if hasattr(self.model, "standardized"):
            return {"properties": self.model.standardized(batch)}
        from mpnn.potentials.forces import evaluate

        return evaluate(self.model, batch, forces=forces, create_graph=create_graph, check=False)
