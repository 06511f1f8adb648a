"""Physical sanity checks: warnings for absurd inputs, errors for non-finite results.

Warnings (category :class:`UnphysicalWarning`, issued with :func:`warnings.warn`; the CLI prints
each as one line ``mpnn: warning: <message>``) leave the computation running; they flag inputs
that no real system has:

* **Close atoms**: two atoms (or an atom and a periodic image) closer than
  :data:`CLOSE_FRACTION` x the sum of their covalent radii (``ase.data.covalent_radii``, Cordero
  et al. 2008, single-bond radii). The shortest real bonds are triple bonds at about 0.78 x that
  sum (C#N 1.16 A, N#N 1.10 A); the hottest configurations of n2p2's example training sets reach
  0.76 and the bundled QM9 subset 0.78. 0.6 leaves 20 % below those, and a structure scaled to
  60 % of its size falls under it (its shortest bond is then at most 0.6 x its unscaled ratio).
* **MD time step** above :func:`max_timestep_fs`: 1 fs for hydrogen, growing with the square root
  of the lightest mass (vibrational periods scale as sqrt(m)), at most :data:`MAX_TIMESTEP_FS`.
* **Temperature** above :data:`MAX_TEMPERATURE_K` (10^5 K: far above any molecule's or solid's
  stability; plasmas are out of a potential's scope).

Errors (:class:`~mpnn.errors.DataError`, one line): :func:`require_finite` refuses an energy,
force, stress or property that is NaN or infinite, naming the structure.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from mpnn.errors import DataError

#: Atoms closer than this fraction of the sum of their covalent radii get a warning.
CLOSE_FRACTION = 0.6
#: Largest MD time step (fs) without a warning, for the heaviest atoms.
MAX_TIMESTEP_FS = 5.0
#: Largest MD time step (fs) without a warning when the lightest atom is hydrogen.
HYDROGEN_TIMESTEP_FS = 1.0
#: Temperatures (K) above this get a warning.
MAX_TEMPERATURE_K = 1.0e5

_HYDROGEN_MASS = 1.008  # amu

__all__ = [
    "CLOSE_FRACTION",
    "MAX_TEMPERATURE_K",
    "MAX_TIMESTEP_FS",
    "UnphysicalWarning",
    "check_md_settings",
    "close_atoms",
    "close_pair_count",
    "max_timestep_fs",
    "require_finite",
    "warn",
    "warn_close_atoms",
]


class UnphysicalWarning(UserWarning):
    """An input that runs but that no real system has (close atoms, huge time step, ...)."""


def warn(message: str) -> None:
    """Issue ``message`` as an :class:`UnphysicalWarning` (one line)."""
    warnings.warn(" ".join(message.split()), UnphysicalWarning, stacklevel=3)


def close_atoms(
    numbers: np.ndarray,
    positions: np.ndarray,
    cell: np.ndarray | None = None,
    pbc: Sequence[bool] | np.ndarray = (False, False, False),
) -> str | None:
    """The closest pair of atoms below :data:`CLOSE_FRACTION` x their covalent radii, or ``None``.

    Args:
        numbers: (n,) atomic numbers. positions: (n, 3) Angstrom. cell: (3, 3) rows, Angstrom, or
            ``None``. pbc: (3,) periodic directions.

    Returns:
        e.g. ``"atoms 0 (O) and 1 (H) are 0.026 A apart (0.02 x the sum of their covalent radii,
        1.29 A; 3 pairs below 0.6 x)"``, the pair with the smallest ratio; ``None`` if there is none.
    """
    from ase.data import chemical_symbols, covalent_radii

    from mpnn.neighbors import neighbor_list

    numbers = np.asarray(numbers, dtype=np.int64)
    if numbers.size < 2 and not np.asarray(pbc, dtype=bool).any():
        return None
    radii = covalent_radii[numbers]
    cutoff = CLOSE_FRACTION * 2.0 * float(radii.max())
    i, j, shifts = neighbor_list(positions, cutoff, cell, pbc)
    if i.size == 0:
        return None
    vectors = np.asarray(positions)[j] - np.asarray(positions)[i]
    if cell is not None:
        vectors = vectors + shifts @ np.asarray(cell, dtype=np.float64)
    distance = np.linalg.norm(vectors, axis=1)
    ratio = distance / (radii[i] + radii[j])
    below = ratio < CLOSE_FRACTION
    if not below.any():
        return None
    k = int(np.argmin(np.where(below, ratio, np.inf)))
    a, b = int(i[k]), int(j[k])
    pairs = int(below.sum()) // 2  # the list holds (i, j) and (j, i)
    more = f"; {pairs} pairs below {CLOSE_FRACTION} x" if pairs > 1 else ""
    what = (
        f"atom {a} ({chemical_symbols[numbers[a]]}) is {distance[k]:.3g} A from its periodic image "
        f"{shifts[k].tolist()}"
        if a == b
        else f"atoms {min(a, b)} ({chemical_symbols[numbers[min(a, b)]]}) and {max(a, b)} "
        f"({chemical_symbols[numbers[max(a, b)]]}) are {distance[k]:.3g} A apart"
    )
    radius = radii[i[k]] + radii[j[k]]
    return f"{what} ({ratio[k]:.2f} x the sum of their covalent radii, {radius:.3g} A{more})"


def close_pair_count(numbers: np.ndarray, i: np.ndarray, j: np.ndarray, distance: np.ndarray) -> int:
    """How many pairs of a neighbour list (both directions listed) are closer than
    :data:`CLOSE_FRACTION` x the sum of their covalent radii.

    Args:
        numbers: (n,) atomic numbers. i, j: (E,) the atoms of each listed pair (each pair twice,
            as (i, j) and (j, i)). distance: (E,) their distance, Angstrom.
    """
    from ase.data import covalent_radii

    radii = covalent_radii[np.asarray(numbers, dtype=np.int64)]
    below = np.asarray(distance) < CLOSE_FRACTION * (radii.take(i) + radii.take(j))
    return int(np.count_nonzero(below)) // 2


def warn_close_atoms(notes: Sequence[tuple[str, str]], source: str) -> None:
    """One warning for a file's structures with close atoms.

    Args:
        notes: (where, note) per structure with close atoms, e.g. ``("structure 3", close_atoms(...))``.
        source: the file, named first in the message.
    """
    if not notes:
        return
    where, note = notes[0]
    others = f"; {len(notes) - 1} more structures have atoms this close" if len(notes) > 1 else ""
    warn(f"{source}: {where}: {note}{others}; check the coordinates and their units")


def max_timestep_fs(masses: np.ndarray | Sequence[float]) -> float:
    """The largest MD time step (fs) without a warning: 1 fs x sqrt(m_min / m_H), at most 5 fs."""
    masses = np.asarray(masses, dtype=np.float64)
    lightest = float(masses.min()) if masses.size else _HYDROGEN_MASS
    return min(MAX_TIMESTEP_FS, HYDROGEN_TIMESTEP_FS * math.sqrt(max(lightest, 1e-12) / _HYDROGEN_MASS))


def check_md_settings(
    timestep_fs: float, masses: np.ndarray | Sequence[float], temperatures: dict[str, float | None]
) -> None:
    """Warn about an MD time step too long for the lightest atom and absurd temperatures.

    Args:
        timestep_fs: the time step, fs. masses: (n,) atomic masses, amu.
        temperatures: setting name (``"--temperature"``) -> kelvin, or ``None`` when not set.
    """
    bound = max_timestep_fs(masses)
    if timestep_fs > bound:
        lightest = float(np.min(masses)) if len(masses) else _HYDROGEN_MASS
        warn(
            f"time step {timestep_fs:g} fs is above {bound:.3g} fs, the usual bound for the lightest "
            f"atoms here ({lightest:.4g} amu; 1 fs for hydrogen); the dynamics will not conserve energy"
        )
    for name, value in temperatures.items():
        if value is not None and value > MAX_TEMPERATURE_K:
            warn(f"{name} {value:g} K is above {MAX_TEMPERATURE_K:g} K; no molecule or solid survives it")


def require_finite(
    values: np.ndarray, what: str, names: Sequence[str], rows: np.ndarray | None = None
) -> None:
    """Raise a one-line :class:`DataError` naming the first structure with a NaN or inf in ``values``.

    Args:
        values: (B, ...) per structure (``rows`` None) or (N, ...) per atom (``rows`` (N,): the
            structure of each atom).
        what: the quantity (``"energy"``, ``"forces"``, ``"U0 prediction"``).
        names: (B,) structure names for the message.
    """
    values = np.asarray(values)
    bad = ~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1) if values.size else np.zeros(0, bool)
    if not bad.any():
        return
    first = int(np.flatnonzero(bad)[0])
    structure = int(rows[first]) if rows is not None else first
    atom = ""
    if rows is not None:  # the index of the atom within its structure
        atom = f", atom {first - int(np.flatnonzero(np.asarray(rows) == structure)[0])}"
    raise DataError(
        f"{names[structure]}{atom}: the model's {what} is not finite (NaN or inf); "
        "the input is outside what the model can evaluate"
    )


def require_finite_results(
    values: dict[str, np.ndarray], names: Sequence[str], rows: np.ndarray, has_cell: np.ndarray | None
) -> None:
    """Refuse NaN or inf in a batch's results (numpy): ``energy`` (B,), ``stress`` (B, 6) in the
    rows where ``has_cell`` (B,) (rows without a 3-D cell are NaN by definition), ``energies``
    (N,) and ``forces`` (N, 3) (``rows`` (N,): each atom's structure); the first one found is a
    one-line :class:`DataError` (:func:`require_finite`)."""
    if "stress" in values and has_cell is not None:
        values = {**values, "stress": np.where(has_cell[:, None], values["stress"], 0.0)}
    if all(np.isfinite(v).all() for v in values.values()):
        return
    for key in ("energy", "stress", "energies", "forces"):
        if key in values:
            require_finite(values[key], key, names, rows if key in ("energies", "forces") else None)
