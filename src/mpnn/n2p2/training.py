"""Training with an n2p2 ``input.nn`` (``mpnn train-potential --input-nn``).

The file's model keywords are used exactly: its symmetry functions (in n2p2's order, all of them),
cutoff function (``cutoff_type`` and alpha), networks (``global_*_short`` and ``element_*_short``
nodes and activations, ``normalize_nodes``) and scaling (``scale_symmetry_functions``,
``center_symmetry_functions``, ``scale_symmetry_functions_sigma``, ``scale_min_short``,
``scale_max_short``; the statistics come from the training set, as n2p2's ``nnp-scaling``).
Every keyword n2p2 would not read as a 2G potential, and every value it refuses, is a one-line
:class:`DataError` naming the file and line (:func:`~mpnn.n2p2.input_nn.read_input_nn`).

Units: as in n2p2, the file's lengths are those of the data: ``--units`` for n2p2 ``input.data``
(e.g. Bohr), Angstrom for every other format and for structure stores. The model keeps the
functions exactly as written (``HDNNPConfig.length_unit``) and its energy
unit is the data's (``energy_unit``); ``mpnn export`` then writes the potential back in those
units. What the file says about training is not used: the energy terms (``mean_energy``,
``conv_energy``, ``conv_length``, ``atom_energy``) are fitted to the training set like any run's
(the exported ``input.nn`` carries the fitted ones), and the optimiser keywords (``epochs``,
``updater_type``, ``kalman_*``, ...) are replaced by ``train-potential``'s options
(:func:`unused_keywords` names them).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mpnn.errors import DataError
from mpnn.n2p2.input_nn import N2p2Settings, read_input_nn

#: The energy keywords that training replaces by the fitted energy terms.
ENERGY_KEYWORDS = ("mean_energy", "conv_energy", "conv_length", "atom_energy")


def read_training_settings(path: str, elements: Sequence[str]) -> N2p2Settings:
    """The settings of the ``input.nn`` at ``path`` for training data of ``elements``: both must
    have the same elements (every network needs structures, every structure its networks)."""
    settings = read_input_nn(path)
    missing = [e for e in elements if e not in settings.elements]
    if missing:
        raise DataError(
            f"{path}: the training data have element(s) {' '.join(missing)}, which this input.nn lacks "
            f"(it has {' '.join(settings.elements)})"
        )
    unused = [e for e in settings.elements if e not in elements]
    if unused:
        raise DataError(
            f"{path}: element(s) {' '.join(unused)} of this input.nn are in no training structure "
            "(their networks and scaling would have no data)"
        )
    return settings


def unused_keywords(settings: N2p2Settings) -> str:
    """What training does not use of ``settings``, as "; not used: ..." (or "" when nothing):
    the energy terms (fitted) and the training keywords (the options set the training)."""
    words = [w for w, _ in settings.extra_keywords if w not in ("nnp_type", "nnp_generation")]
    words = sorted(set(words), key=words.index)
    energy = [k for k in ENERGY_KEYWORDS[:3] if getattr(settings, k) is not None]
    energy += ["atom_energy"] if settings.atom_energy else []
    parts = [f"{' '.join(energy)} (the energy terms are fitted)"] if energy else []
    if words:
        shown = " ".join(words[:3]) + (" ..." if len(words) > 3 else "")
        parts.append(f"{len(words)} training keywords ({shown}: the options set the training)")
    return f"; not used: {', '.join(parts)}" if parts else ""


def check_constant_functions(
    settings: N2p2Settings, elements: Sequence[str], stats: Sequence[torch.Tensor], source: str
) -> None:
    """Refuse functions constant on the training set when the scaling divides by their range or
    sigma (n2p2 would divide by zero): one line naming the first one's ``input.nn`` line.

    ``stats``: per element (n_sf, 4) min, max, mean, sigma, in the order of ``settings``.
    """
    if settings.scaling not in ("scale", "scale_center", "sigma"):
        return
    for e, table in zip(elements, stats, strict=True):
        flat = (table[:, 1] - table[:, 0] <= 0).nonzero().flatten().tolist()
        if flat:
            spec = settings.symmetry_functions[e][flat[0]]
            raise DataError(
                f"{source}:{spec.line}: symmetry function {flat[0] + 1} of {e} is constant on the "
                f"training set ({len(flat)} of {e}'s are), and scaling '{settings.scaling}' divides by "
                "its range; remove them (mpnn prune range) or use more structures"
            )
