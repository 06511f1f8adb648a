"""HDNNP: a Behler-Parrinello high-dimensional neural network potential as an MPNN with T = 1.

message = the atom's symmetry functions over its neighbours (:mod:`mpnn.messages.symmetry_functions`),
update = the network of its element giving its energy (:mod:`mpnn.updates.element_mlp`),
readout = the sum over atoms.  The same configuration loads n2p2 potentials
(:mod:`mpnn.n2p2.convert`) and is trained by ``mpnn train-potential``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from mpnn.engine import MPNN
from mpnn.inputs import EdgeVectors, SpeciesInput
from mpnn.messages.symmetry_functions import SymmetryFunctions, _atomic_number
from mpnn.models.potential import PotentialModel
from mpnn.readouts.sum import SumReadout
from mpnn.symmetry.spec import SymmetryFunctionSpec
from mpnn.updates.element_mlp import ElementNetwork, ElementUpdate


@dataclass
class HDNNPConfig:
    """An HDNNP.  Symmetry-function lengths are in ``length_unit`` Angstrom (1 Bohr = 0.529177...).

    Attributes:
        elements: element symbols, in species order (n2p2's order for imported potentials).
        symmetry_functions: per element, its functions in network-input order, as dicts of
            n2p2's fields (``type``, ``neighbors``, ``rc``, ``eta``, ``rs``, ``lambda_``, ``zeta``, ...;
            :meth:`~mpnn.symmetry.spec.SymmetryFunctionSpec.to_dict`, omitted fields n2p2's defaults).
        cutoff_type, cutoff_alpha: n2p2's cutoff function.
        nodes, activations: per element, hidden layer sizes and n2p2 activation letters
            (hidden layers + output).
        normalize_nodes: n2p2's ``normalize_nodes``.
        scaling, scale_min, scale_max: n2p2's symmetry-function scaling mode and range.
        length_unit, energy_unit: Angstrom and eV per unit of the network's inputs and outputs.
    """

    elements: list[str]
    symmetry_functions: list[list[dict[str, Any]]]
    cutoff_type: int = 1
    cutoff_alpha: float = 0.0
    nodes: list[list[int]] = field(default_factory=list)
    activations: list[str] = field(default_factory=list)
    normalize_nodes: bool = False
    scaling: str = "scale_center"
    scale_min: float = 0.0
    scale_max: float = 1.0
    length_unit: float = 1.0
    energy_unit: float = 1.0


def hdnnp(config: HDNNPConfig) -> PotentialModel:
    """Build an HDNNP from its configuration (networks initialised as torch does).

    The spec dicts become :class:`~mpnn.symmetry.spec.SymmetryFunctionSpec` once, here (a bad one
    is a one-line DataError); the model's ``config`` holds them in the form ``to_dict`` writes.
    """
    c = config
    numbers = [_atomic_number(e) for e in c.elements]
    specs = symmetry_specs(c)
    message = SymmetryFunctions(numbers, specs, c.cutoff_type, c.cutoff_alpha)
    update = energy_networks(c, [len(s) for s in specs])
    net = MPNN(SpeciesInput(numbers), EdgeVectors(c.length_unit), message, update, SumReadout(), steps=1)
    net.double()
    functions = [[spec.to_dict() for spec in element_specs] for element_specs in specs]
    stored = {"model": "hdnnp", **asdict(c), "symmetry_functions": functions}
    model = PotentialModel(net, stored, message.cutoff * c.length_unit, numbers)
    return model


def symmetry_specs(c: HDNNPConfig) -> list[list[SymmetryFunctionSpec]]:
    """Per element, its symmetry functions from the configuration's dicts (checked)."""
    if not (len(c.symmetry_functions) == len(c.nodes) == len(c.activations) == len(c.elements)):
        raise ValueError(
            f"{type(c).__name__}: elements, symmetry_functions, nodes and activations need one entry "
            "per element"
        )
    return [
        [SymmetryFunctionSpec.from_dict(d, e, c.cutoff_type, c.cutoff_alpha) for d in element_specs]
        for e, element_specs in zip(c.elements, c.symmetry_functions, strict=True)
    ]


def energy_networks(c: HDNNPConfig, inputs: list[int]) -> ElementUpdate:
    """The per-element energy networks of ``c`` on ``inputs[s]`` inputs, energy scale ``energy_unit``.

    Raises ValueError, before anything is allocated, for more than
    :data:`mpnn.models.MAX_PARAMETERS` weights and biases (e.g. an n2p2 ``input.nn`` asking for
    ``global_nodes_short 100000 100000``: 10^10 weights, 80 GB)."""
    from mpnn.models import MAX_PARAMETERS

    count = sum(
        sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))
        for widths in ([n, *nodes, 1] for n, nodes in zip(inputs, c.nodes, strict=True))
    )
    if count > MAX_PARAMETERS:
        raise ValueError(
            f"hdnnp: networks of {count:,} parameters, more than the {MAX_PARAMETERS:,} allowed "
            "(sizes too large?)"
        )
    networks = [
        ElementNetwork(n, nodes, act, c.normalize_nodes)
        for n, nodes, act in zip(inputs, c.nodes, c.activations, strict=True)
    ]
    update = ElementUpdate(networks, inputs)
    update.energy_scale.fill_(c.energy_unit)
    return update


def set_energy_terms(model: PotentialModel, scale: float, offsets: list[float]) -> None:
    """Atomic energy = scale * NN + offsets[species] (eV)."""
    with torch.no_grad():
        model.update.energy_scale.fill_(scale)
        model.update.offsets.copy_(torch.tensor(offsets, dtype=torch.float64))
