"""A potential energy model: an :class:`~mpnn.engine.MPNN` whose first message is the symmetry
functions, giving atomic energies (eV) and their sum. The HDNNP (:mod:`mpnn.models.hdnnp`) and the
SF-MPNN (:mod:`mpnn.models.sf_mpnn`) are its two configurations."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from mpnn.batch import Batch
from mpnn.engine import MPNN
from mpnn.messages.symmetry_functions import SymmetryFunctions
from mpnn.scatter import segment_sum
from mpnn.updates.element_mlp import ElementUpdate


class PotentialModel(nn.Module):
    """A potential energy model: ``forward(batch) -> (B,)`` energies in eV.

    Wraps an :class:`MPNN` whose first message is the symmetry functions. Without ``head`` (an
    HDNNP) the node states after the last update are the atomic energies (N, 1), in eV; with one
    (:mod:`mpnn.models.sf_mpnn`) the head, an :class:`ElementUpdate`, maps the last states to
    them. Attributes: ``config`` (JSON-serialisable, for :func:`mpnn.models.build_model`),
    ``cutoff`` (Angstrom; the neighbour-list radius the model needs), ``elements``.
    """

    def __init__(
        self,
        net: MPNN,
        config: dict[str, Any],
        cutoff: float,
        elements: list[int],
        head: ElementUpdate | None = None,
    ) -> None:
        super().__init__()
        self.net, self.config, self.cutoff, self.elements = net, config, float(cutoff), list(elements)
        self.head = head
        self.graph = "radius"

    def radii(self) -> list[float]:
        """The radii (Angstrom) where the model's terms switch on: each symmetry function group's
        cutoff and each learned message's, sorted; energies and forces are continuous across them."""
        unit = float(self.config.get("length_unit", 1.0))
        radii = {float(group.terms.cutoff) for group in self.symmetry_functions.groups}
        radii |= {float(m.cutoff) for m in self.net.messages[1:] if hasattr(m, "cutoff")}
        return sorted(r * unit for r in radii)

    @property
    def symmetry_functions(self) -> SymmetryFunctions:
        return self.net.messages[0]

    @property
    def update(self) -> ElementUpdate:
        """The per-element energy networks with the energy scale and offsets."""
        return self.net.updates[0] if self.head is None else self.head

    def atomic_energies(self, batch: Batch) -> Tensor:
        """(N,) energy of each atom, eV (the batch is cast to the networks' dtype; the offsets
        are added in float64 when they are float64, so a float32 network keeps their digits)."""
        dtype = self.update.networks[0].layers[0].weight.dtype if len(self.update.networks) else torch.float64
        if batch.pos.dtype != dtype:
            batch = batch.to(dtype=dtype)
        h = self.net.node_states(batch)
        if self.head is not None:
            h = self.head.energies(self.symmetry_functions.species(batch), h)
        return h.squeeze(1)

    def forward(self, batch: Batch) -> Tensor:
        """(B,) energies, eV; summed in float64 whatever the model's dtype (atomic energies carry
        offsets of hundreds of eV, too large to sum thousands of them in float32)."""
        return segment_sum(self.atomic_energies(batch).double(), batch.batch, batch.num_graphs)
