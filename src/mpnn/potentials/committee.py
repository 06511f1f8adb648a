r"""Committees: several potentials acting as one, with their disagreement as the uncertainty.

For K members with energies :math:`E^{(k)}` (eV), forces :math:`F^{(k)}_i` (eV/Angstrom) and
stresses :math:`\sigma^{(k)}` (eV/Angstrom^3) of a structure, the committee predicts the means
and reports the spread (population standard deviations, as n2p2's committees, DP-GEN and MACE do):

.. math::
    \bar E = \frac{1}{K}\sum_k E^{(k)}, \qquad
    s_E = \Big(\frac{1}{K}\sum_k (E^{(k)} - \bar E)^2\Big)^{1/2}, \qquad
    s_{F,i} = \Big(\frac{1}{K}\sum_k \lVert F^{(k)}_i - \bar F_i\rVert^2\Big)^{1/2}

``energy_std`` is :math:`s_E` (eV), ``forces_std`` (n,) is :math:`s_{F,i}` per atom (eV/Angstrom)
and ``max_force_std`` is its largest value over the atoms, DP-GEN's ``max_devi_f``, the usual
criterion for picking structures to relabel (:mod:`mpnn.potentials.select`).

A committee folder is a folder whose subfolders (two or more) are each a potential (an n2p2
folder or a ``mpnn train-potential`` run), e.g. the runs of one command with different seeds;
:func:`load_committee` reads it. Members must cover the same elements; the neighbour list is
built once for the largest cutoff and each member ignores the pairs beyond its own. A subfolder
with a ``config.json`` that is no potential, and two links to one folder, are refused
(:func:`committee_members`): either would make the spread smaller than it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mpnn.batch import Batch
from mpnn.errors import DataError
from mpnn.potentials.extrapolation import count_extrapolation
from mpnn.potentials.forces import evaluate

__all__ = ["Committee", "committee_members", "evaluate_potential", "load_committee", "potential_folders"]


class Committee(nn.Module):
    """``Committee(members)``: K potentials as one model; ``forward`` gives the (B,) mean energy, eV.

    Attributes: ``members`` (ModuleList), ``cutoff`` (Angstrom; the largest), ``elements`` (the
    members' common atomic numbers). :func:`evaluate_potential` gives the means and deviations.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise DataError(f"a committee needs at least 2 potentials, got {len(members)}")
        elements = [sorted(getattr(m, "elements", [])) for m in members]
        for k, found in enumerate(elements[1:], start=1):
            if found != elements[0]:
                raise DataError(
                    f"committee member {k} covers elements Z = {found}, member 0 Z = {elements[0]}; "
                    "members must cover the same elements"
                )
        self.members = nn.ModuleList(members)
        self.cutoff = max(float(m.cutoff) for m in members)
        self.elements = list(members[0].elements)

    def atomic_energies(self, batch: Batch) -> Tensor:
        """(N,) the members' mean atomic energies, eV."""
        return torch.stack([m.atomic_energies(batch).double() for m in self.members]).mean(0)

    def forward(self, batch: Batch) -> Tensor:
        """(B,) the members' mean energies, eV."""
        return torch.stack([m(batch).double() for m in self.members]).mean(0)


def evaluate_potential(
    model: nn.Module,
    batch: Batch,
    stress: bool = False,
    names: Sequence[str] | None = None,
    forces: bool = True,
) -> dict[str, Any]:
    """Energy, atomic energies, forces (and stress) of a potential or a committee, float64 numpy.

    Returns ``energy`` (B,), ``energies`` (N,), ``forces`` (N, 3) (unless ``forces`` is False: the
    forward pass alone), ``stress`` (B, 6) when asked;
    for a :class:`Committee` also ``energy_std`` (B,), ``forces_std`` (N,) and ``stress_std`` (B, 6);
    ``extrapolation`` (N,) int64, the out-of-range symmetry functions of each atom (the largest
    count of any member), when the potential records its training ranges
    (:mod:`mpnn.potentials.extrapolation`), with ``extrapolation_first`` (str) describing the first
    out-of-range value (atom index within the batch). Non-finite outputs raise a one-line DataError.
    """
    members = list(model.members) if isinstance(model, Committee) else [model]
    results: list[dict[str, Tensor]] = []
    counts: list[np.ndarray] = []
    first = ""
    for member in members:
        with count_extrapolation(member) as counter:
            results.append(evaluate(member, batch, forces=forces, stress=stress, atomic=True, names=names))
        if counter is not None:
            counts.append(counter.per_atom.copy())
            first = first or counter.first
    if len(members) == 1:  # one potential: its values as they are
        out: dict[str, Any] = {key: value.cpu().double().numpy() for key, value in results[0].items()}
    else:
        stacked = {key: np.stack([r[key].cpu().double().numpy() for r in results]) for key in results[0]}
        out = {key: values.mean(0) for key, values in stacked.items()}
        out["energy_std"] = stacked["energy"].std(0)
        if "forces" in stacked:
            deviation = stacked["forces"] - out["forces"]
            out["forces_std"] = np.sqrt((deviation**2).sum(-1).mean(0))
        if "stress" in stacked:
            out["stress_std"] = stacked["stress"].std(0)
    if counts:
        out["extrapolation"] = counts[0] if len(counts) == 1 else np.max(np.stack(counts), axis=0)
        out["extrapolation_first"] = first
    return out


def committee_members(folder: str | Path) -> list[Path]:
    """The potential subfolders of a committee folder (sorted by name), or [] if it is none."""
    from mpnn.outputs import COMMITTEE, N2P2, POTENTIAL_RUN, folder_kind

    folder = Path(folder).expanduser()
    if folder_kind(folder) != COMMITTEE:
        return []
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    members = [p for p in subfolders if folder_kind(p) in (N2P2, POTENTIAL_RUN)]
    for other in subfolders:  # a member left out unseen would shrink the committee and its spread
        if other not in members and (other / "config.json").exists():
            from mpnn.train.settings_files import load_json

            load_json(other / "config.json")  # unreadable: its own one-line error
            raise DataError(
                f"{other}: holds {folder_kind(other) or 'a config.json of no potential'}, not a potential; "
                f"a committee folder ({folder}) holds potential folders only"
            )
    for k, member in enumerate(members):  # links to one folder: its deviation from itself is zero
        for other in members[:k]:
            if member.resolve() == other.resolve():
                raise DataError(
                    f"{folder}: {other.name} and {member.name} are the same potential "
                    f"({member.resolve()}); a committee needs different members"
                )
    return members


def potential_folders(path: str | Path) -> list[Path]:
    """The folders a command reading the potential ``path`` reads: ``path`` and, for a committee
    folder, each member (where links lead), so that no output is written into one of them."""
    return [Path(path), *committee_members(path)]


def load_committee(folder: str | Path, loader: Callable[[Path], nn.Module]) -> Committee:
    """The :class:`Committee` of a committee folder; ``loader(path)`` loads one member."""
    members = committee_members(folder)
    if not members:
        raise DataError(f"{folder}: not a committee (no two potential subfolders)")
    return Committee([loader(path) for path in members])
