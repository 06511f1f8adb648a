"""A property model: an :class:`~mpnn.engine.MPNN` plus target standardisation.

The network predicts standardised targets; :meth:`PropertyModel.forward` returns them in
the data set's units, so a checkpoint (state dict + JSON config) predicts on its own.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from mpnn.batch import Batch


class PropertyModel(nn.Module):
    """y = net(batch) * std + mean, with ``mean``, ``std`` (K,) buffers set from training data.

    Attributes:
        config: the JSON-serialisable dictionary :func:`mpnn.models.build_model` built it from.
        graph: the edge set the model expects from :func:`mpnn.batch.collate`.
        hydrogens: ``"explicit"`` (hydrogen atoms are nodes) or ``"implicit"`` (heavy atoms only;
            the hydrogen count is a node feature), the atoms :func:`mpnn.batch.collate` keeps.
        positions: whether the model reads atom positions; ``False`` for topology-only models,
            which can predict from a SMILES string without 3D coordinates.
    """

    def __init__(
        self,
        net: nn.Module,
        num_targets: int,
        config: dict[str, Any],
        graph: str,
        hydrogens: str = "explicit",
        positions: bool = True,
    ) -> None:
        super().__init__()
        if hydrogens not in ("explicit", "implicit"):
            raise ValueError(f"hydrogens must be 'explicit' or 'implicit', got {hydrogens!r}")
        self.net, self.config, self.graph = net, config, graph
        self.hydrogens, self.positions = hydrogens, positions
        self.register_buffer("mean", torch.zeros(num_targets))
        self.register_buffer("std", torch.ones(num_targets))

    def set_standardization(self, mean: Tensor, std: Tensor) -> None:
        """Targets are predicted as net * std + mean; std of 0 is replaced by 1."""
        self.mean.copy_(mean)
        self.std.copy_(torch.where(std > 0, std, torch.ones_like(std)))

    def standardized(self, batch: Batch) -> Tensor:
        """(B, K) predictions of the standardised targets (what the loss sees).

        Floating tensors of the batch are cast to the model's dtype (differentiably, so
        gradients with respect to ``batch.pos`` still reach the caller's tensor).
        """
        if batch.pos.dtype != self.mean.dtype or batch.x.dtype != self.mean.dtype:
            batch = batch.to(dtype=self.mean.dtype)
        return self.net(batch)

    def forward(self, batch: Batch) -> Tensor:
        """(B, K) predictions in the targets' units."""
        return self.standardized(batch) * self.std + self.mean
