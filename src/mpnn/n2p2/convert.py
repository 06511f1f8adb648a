"""n2p2 potentials as :class:`~mpnn.models.hdnnp.PotentialModel` and back.

:func:`model_from_n2p2` maps a read potential (:mod:`mpnn.n2p2.potential_files`) onto the HDNNP
configuration of the engine: the symmetry functions in n2p2's order, its scaling, its networks
and its energy terms.  n2p2 files do not record their units; ``units`` = (Angstrom per length
unit, eV per energy unit) of the files (:func:`parse_units`), so the model always works in
Angstrom and eV.  In file units the energy is n2p2's

    E = sum_i NN_s(i)(G_i) / conv_energy + N mean_energy + sum_i atom_energy[s(i)]

(1 and 0 without normalisation).  :func:`model_to_n2p2` writes the inverse, so a potential
trained here runs in n2p2 and LAMMPS.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from mpnn.errors import DataError
from mpnn.files import write_texts
from mpnn.models.hdnnp import HDNNPConfig, PotentialModel, hdnnp, set_energy_terms
from mpnn.n2p2.input_nn import N2p2Settings, SymmetryFunctionSpec
from mpnn.n2p2.keywords import ATOMIC_NUMBERS
from mpnn.n2p2.potential_files import N2p2Potential, format_potential, read_potential
from mpnn.n2p2.units import ENERGY_UNITS, LENGTH_UNITS, parse_units  # noqa: F401  (here too)


def hdnnp_config(settings: N2p2Settings, elements: Sequence[str], units: Sequence[float]) -> HDNNPConfig:
    """The HDNNP of ``settings`` for ``elements`` (species order), in ``units`` = (Angstrom, eV)
    per length and energy unit of the file."""
    s = settings
    return HDNNPConfig(
        elements=list(elements),
        symmetry_functions=[[x.to_dict() for x in s.symmetry_functions.get(e, [])] for e in elements],
        cutoff_type=s.cutoff_type,
        cutoff_alpha=s.cutoff_alpha,
        nodes=[list(s.nodes[e]) for e in elements],
        activations=["".join(s.activations[e]) for e in elements],
        normalize_nodes=s.normalize_nodes,
        scaling=s.scaling,
        scale_min=s.scale_min,
        scale_max=s.scale_max,
        length_unit=float(units[0]),
        energy_unit=float(units[1]),
    )


def model_from_n2p2(potential: N2p2Potential, units: tuple[float, float] = (1.0, 1.0)) -> PotentialModel:
    """The engine's HDNNP equal to an n2p2 potential; ``units`` of its files (see module docstring)."""
    s = potential.settings
    elements = list(s.elements)
    config = hdnnp_config(s, elements, units)
    model = hdnnp(config)
    model.symmetry_functions.set_scaling(
        s.scaling, [torch.as_tensor(potential.scaling[e]) for e in elements], s.scale_min, s.scale_max
    )
    with torch.no_grad():
        for e, network in zip(elements, model.update.networks, strict=True):
            for layer, (weight, bias) in zip(network.layers, potential.weights[e], strict=True):
                layer.weight.copy_(torch.as_tensor(weight))
                layer.bias.copy_(torch.as_tensor(bias))
    conv = s.conv_energy if s.conv_energy is not None else 1.0
    mean = s.mean_energy if s.mean_energy is not None else 0.0
    offsets = [units[1] * (mean + s.atom_energy.get(e, 0.0)) for e in elements]
    set_energy_terms(model, units[1] / conv, offsets)
    return model


def read_n2p2(folder: str | Path, units: tuple[float, float] = (1.0, 1.0)) -> PotentialModel:
    """Load an n2p2 potential folder (``input.nn``, ``scaling.data``, ``weights.ZZZ.data``)."""
    return model_from_n2p2(read_potential(folder), units)


def _inexpressible(source: str, reason: str) -> DataError:
    reason = reason.removeprefix(f"{source}: ").removeprefix("unsupported: ")
    return DataError(f"{source}: cannot be written as an n2p2 potential: {reason}")


def model_to_n2p2(model: PotentialModel, source: str = "model") -> N2p2Potential:
    """The n2p2 files of an HDNNP, in the model's length and energy units (``config``).

    The symmetry functions (with the model's one cutoff function) are written in n2p2's order
    (:func:`~mpnn.n2p2.input_nn.sort_symmetry_functions`); the rows of
    ``scaling.data`` and the input columns of the first layers follow them, so the files give
    the model's numbers whatever its own input order. A model n2p2 cannot express raises one
    :class:`DataError` line ``<source>: cannot be written as an n2p2 potential: <reason>``.
    """
    config = getattr(model, "config", None)
    hdnnp_config = isinstance(config, dict) and config.get("model") == "hdnnp"
    if isinstance(config, dict) and config.get("model") == "sf_mpnn":
        raise _inexpressible(
            source, "an SF-MPNN's learned message-passing steps have no n2p2 form (n2p2 holds HDNNPs only)"
        )
    if not (isinstance(model, PotentialModel) and hdnnp_config):
        raise _inexpressible(source, "not a Behler-Parrinello potential (n2p2 holds HDNNPs only)")
    try:
        c = HDNNPConfig(**{k: v for k, v in config.items() if k != "model"})
    except TypeError as error:
        raise _inexpressible(source, f"its configuration is not an HDNNP's ({error})") from None
    elements = list(c.elements)
    unknown = [e for e in elements if e not in ATOMIC_NUMBERS]
    if unknown:
        raise _inexpressible(source, f"element(s) {unknown} beyond n2p2's (H to No)")
    scale = float(model.update.energy_scale)
    if not (math.isfinite(scale) and scale != 0.0):
        raise _inexpressible(source, f"energy scale {scale!r} (n2p2's conv_energy is its inverse)")
    try:
        functions = [
            [
                SymmetryFunctionSpec.from_dict(d, e, c.cutoff_type, c.cutoff_alpha)
                for d in c.symmetry_functions[k]
            ]
            for k, e in enumerate(elements)
        ]
    except DataError as error:
        raise _inexpressible(source, str(error)) from None
    # n2p2's order of each element's functions (a stable sort, as sort_symmetry_functions)
    orders = [sorted(range(len(f)), key=lambda i, f=f: f[i].sort_key()) for f in functions]
    offsets = model.update.offsets.detach().cpu().numpy()
    settings = N2p2Settings(
        elements=tuple(elements),
        cutoff_type=c.cutoff_type,
        cutoff_alpha=c.cutoff_alpha,
        scaling=c.scaling,
        scale_min=c.scale_min,
        scale_max=c.scale_max,
        nodes={e: tuple(c.nodes[k]) for k, e in enumerate(elements)},
        activations={e: tuple(c.activations[k]) for k, e in enumerate(elements)},
        normalize_nodes=c.normalize_nodes,
        mean_energy=0.0,
        conv_energy=c.energy_unit / scale,
        conv_length=1.0,
        atom_energy={e: float(offsets[k]) / c.energy_unit for k, e in enumerate(elements)},
        symmetry_functions={e: [functions[k][i] for i in orders[k]] for k, e in enumerate(elements)},
        path=source,
    )
    statistics = model.symmetry_functions.statistics.detach().cpu().numpy().astype(np.float64)
    scaling = {e: statistics[k, orders[k]].copy() for k, e in enumerate(elements)}
    weights = {}
    for k, (e, network) in enumerate(zip(elements, model.update.networks, strict=True)):
        layers = [
            (
                layer.weight.detach().cpu().numpy().astype(np.float64),
                layer.bias.detach().cpu().numpy().astype(np.float64),
            )
            for layer in network.layers
        ]
        if layers and layers[0][0].shape[1] == len(orders[k]):
            layers[0] = (layers[0][0][:, orders[k]].copy(), layers[0][1])
        weights[e] = layers
    return N2p2Potential(settings, scaling, weights)


def export_n2p2(model: PotentialModel, folder: str | Path, source: str | Path | None = None) -> None:
    """Write ``model`` as an n2p2 potential folder (created if needed; files replaced all or none).

    ``source``: the folder the model was read from, named in errors. ``folder`` may neither be,
    contain or lie inside it, nor hold another kind of folder (a training run, whose ``input.nn``
    would then hide it; :mod:`mpnn.outputs`). Everything is checked and formatted before anything
    is created or replaced.
    """
    from mpnn.outputs import N2P2, check_output_folder, check_outputs

    folder = Path(folder)
    name = str(source) if source is not None else "model"
    check_outputs(folders=[folder], read_dirs=[source])
    check_output_folder(folder, N2P2, foreign=True)
    potential = model_to_n2p2(model, name)
    try:
        texts = format_potential(potential)
    except DataError as error:
        raise _inexpressible(name, str(error)) from None
    _refuse_leftovers(folder, texts)
    write_texts(folder, texts)


def _refuse_leftovers(folder: Path, texts: dict[str, str]) -> None:
    """Refuse to export into a folder holding n2p2 files (``input.nn``, ``scaling.data``,
    ``weights.ZZZ.data``) that the export would not replace: n2p2 would load them with ours
    (another potential's weights of an element this one lacks)."""
    if not folder.is_dir():
        return
    pattern = re.compile(r"^(input\.nn|scaling\.data|weights\.\d{3}\.data)$")
    left = sorted(p.name for p in folder.iterdir() if pattern.match(p.name) and p.name not in texts)
    if left:
        raise DataError(
            f"{folder}: holds {', '.join(left)} of another n2p2 potential, which this export would not "
            "replace (n2p2 would read them with it); export into a new or empty folder"
        )
