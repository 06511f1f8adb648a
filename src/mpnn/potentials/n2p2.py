"""n2p2 potentials as :class:`~mpnn.models.hdnnp.PotentialModel` and back.

:func:`model_from_n2p2` maps a read potential (:mod:`mpnn.potentials.n2p2_files`) onto the HDNNP
configuration of the engine: the symmetry functions in n2p2's order, its scaling, its networks
and its energy terms.  n2p2 files do not record their units; ``units`` = (Angstrom per length
unit, eV per energy unit) of the files (:func:`parse_units`), so the model always works in
Angstrom and eV.  In file units the energy is n2p2's

    E = sum_i NN_s(i)(G_i) / conv_energy + N mean_energy + sum_i atom_energy[s(i)]

(1 and 0 without normalisation).  :func:`model_to_n2p2` writes the inverse, so a potential
trained here runs in n2p2 and LAMMPS.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from mpnn.errors import DataError
from mpnn.models.hdnnp import HDNNPConfig, PotentialModel, hdnnp, set_energy_terms
from mpnn.potentials.n2p2_files import N2p2Potential, read_potential, write_potential
from mpnn.potentials.n2p2_settings import N2p2Settings, SymmetryFunctionSpec

#: Angstrom and eV per unit (CODATA 2018, as ASE).
LENGTH_UNITS = {"angstrom": 1.0, "a": 1.0, "bohr": 0.529177210903, "nm": 10.0}
ENERGY_UNITS = {
    "ev": 1.0,
    "hartree": 27.211386245988,
    "ha": 27.211386245988,
    "kcal/mol": 0.0433641043,
    "kj/mol": 0.0103642688,
    "ry": 13.605693122994,
}


def parse_units(text: str) -> tuple[float, float]:
    """``"bohr,hartree"`` -> (Angstrom per length unit, eV per energy unit)."""
    parts = [p.strip().lower() for p in text.split(",")]
    if len(parts) != 2 or parts[0] not in LENGTH_UNITS or parts[1] not in ENERGY_UNITS:
        raise DataError(
            f"--units: expected LENGTH,ENERGY with LENGTH in {sorted(LENGTH_UNITS)} and ENERGY in "
            f"{sorted(ENERGY_UNITS)}, got {text!r}"
        )
    return LENGTH_UNITS[parts[0]], ENERGY_UNITS[parts[1]]


def _spec_dict(spec: SymmetryFunctionSpec) -> dict:
    d = dataclasses.asdict(spec)
    d.pop("line", None)
    d["neighbors"] = list(spec.neighbors)
    return d


def model_from_n2p2(potential: N2p2Potential, units: tuple[float, float] = (1.0, 1.0)) -> PotentialModel:
    """The engine's HDNNP equal to an n2p2 potential; ``units`` of its files (see module docstring)."""
    s = potential.settings
    elements = list(s.elements)
    config = HDNNPConfig(
        elements=elements,
        symmetry_functions=[[_spec_dict(x) for x in s.symmetry_functions.get(e, [])] for e in elements],
        cutoff_type=s.cutoff_type,
        cutoff_alpha=s.cutoff_alpha,
        nodes=[list(s.nodes[e]) for e in elements],
        activations=["".join(s.activations[e]) for e in elements],
        normalize_nodes=s.normalize_nodes,
        scaling=s.scaling,
        scale_min=s.scale_min,
        scale_max=s.scale_max,
        length_unit=units[0],
        energy_unit=units[1],
    )
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


def model_to_n2p2(model: PotentialModel) -> N2p2Potential:
    """The n2p2 files of an HDNNP, in the model's length and energy units (``config``)."""
    c = HDNNPConfig(**{k: v for k, v in model.config.items() if k != "model"})
    sf = model.symmetry_functions
    elements = list(c.elements)
    specs = {
        e: [
            SymmetryFunctionSpec(**{**d, "neighbors": tuple(d["neighbors"]), "element": e})
            for d in c.symmetry_functions[k]
        ]
        for k, e in enumerate(elements)
    }
    scale = float(model.update.energy_scale)
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
        symmetry_functions=specs,
    )
    statistics = sf.statistics.detach().cpu().numpy()
    scaling = {e: statistics[k, : sf.sizes[k]].copy() for k, e in enumerate(elements)}
    weights = {
        e: [
            (
                layer.weight.detach().cpu().numpy().astype(np.float64),
                layer.bias.detach().cpu().numpy().astype(np.float64),
            )
            for layer in network.layers
        ]
        for e, network in zip(elements, model.update.networks, strict=True)
    }
    return N2p2Potential(settings, scaling, weights)


def export_n2p2(model: PotentialModel, folder: str | Path) -> None:
    """Write ``model`` as an n2p2 potential folder (created if needed; files replaced all or none)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_potential(folder, model_to_n2p2(model))
