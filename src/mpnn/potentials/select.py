"""Picking structures to relabel: the frames where a committee disagrees (active learning).

The step of n2p2's committee workflow, DP-GEN and MACE's active learning: run dynamics with a
committee, evaluate every frame, and send to the reference method (DFT) the frames whose largest
per-atom force deviation ``max_force_std`` (:mod:`mpnn.potentials.committee`, DP-GEN's
``max_devi_f``) lies in ``[low, high)``: below ``low`` the committee agrees and the frame teaches
nothing new; at or above ``high`` the frame is usually unphysical (the dynamics left the data)
and is counted, not selected. Frames can also be picked by the energy deviation per atom and by
extrapolation warnings (symmetry functions outside the training range).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms

__all__ = ["Selection", "select_frames"]


@dataclass
class Selection:
    """Indices (into the frames given) of the frames picked, and how many fell in each class."""

    picked: list[int]
    candidates: int
    agreed: int
    too_far: int
    dropped: int


def select_frames(
    frames: Sequence[Atoms],
    force_low: float | None,
    force_high: float | None = None,
    energy_low: float | None = None,
    extrapolating: bool = False,
    limit: int | None = None,
) -> Selection:
    """The frames to relabel among ``frames`` evaluated by a committee (``info["max_force_std"]``,
    eV/Angstrom; ``info["energy_std"]``, eV; ``info["extrapolation_warnings"]``).

    A frame is a candidate when ``force_low <= max_force_std < force_high`` or, with ``energy_low``
    (eV/atom), ``energy_std / n >= energy_low``, or, with ``extrapolating``, it has extrapolation
    warnings; frames with ``max_force_std >= force_high`` are never picked (``too_far``). With
    ``limit``, the ``limit`` candidates of largest ``max_force_std`` are picked (in frame order);
    the others are ``dropped``.
    """
    candidates: list[int] = []
    agreed = too_far = 0
    for k, atoms in enumerate(frames):
        force = float(atoms.info.get("max_force_std", 0.0))
        if force_high is not None and force >= force_high:
            too_far += 1
            continue
        hit = force_low is not None and force >= force_low
        if energy_low is not None:
            hit |= float(atoms.info.get("energy_std", 0.0)) / max(len(atoms), 1) >= energy_low
        if extrapolating:
            hit |= int(atoms.info.get("extrapolation_warnings", 0)) > 0
        if hit:
            candidates.append(k)
        else:
            agreed += 1
    picked = candidates
    if limit is not None and len(candidates) > limit:
        order = np.argsort(
            [-float(frames[k].info.get("max_force_std", 0.0)) for k in candidates], kind="stable"
        )
        picked = sorted(candidates[int(i)] for i in order[:limit])
    return Selection(picked, len(candidates), agreed, too_far, len(candidates) - len(picked))
