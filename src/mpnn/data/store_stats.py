"""Statistics of a :class:`~mpnn.data.store.StructureStore` in one streaming pass (memory bounded).

* :func:`target_statistics`: mean and standard deviation of target columns (optionally per atom),
  from the store's ``targets`` and ``sizes`` chunks only (K x 8 + 8 bytes per structure), merged
  chunk by chunk with Chan, Golub and LeVeque's pairwise update (the parallel form of Welford's
  algorithm): each chunk's mean and sum of squared deviations are computed around its own mean,
  so no large sums of squares cancel, and every value is first shifted by the first one (so a
  mean 1e9 times the spread loses no digits in the differences of chunk means). Agrees with
  ``numpy.mean`` / ``numpy.std`` of the whole column to about 1e-15 relative in float64.
* :func:`element_energy_offsets`: per-element reference energies e_Z minimising
  Σ_s (E_s − Σ_Z c_sZ e_Z)², with c_sZ the number of atoms of element Z in structure s, from the
  normal equations CᵀC e = Cᵀ E accumulated over the records (a (Z, Z) matrix, whatever the
  number of structures) and solved by least squares (minimum norm when the compositions do
  not determine every element, e.g. a set of water boxes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mpnn.data.store import StructureStore
from mpnn.errors import DataError

#: Largest atomic number a record holds.
MAX_Z = 118


@dataclass
class TargetStatistics:
    """Mean and standard deviation of K target columns over M structures.

    Attributes:
        names: the K target names (with ``"/atom"`` appended when per atom).
        count: M.
        mean, std: (K,) float64, in the targets' units (per atom when per atom).
    """

    names: list[str]
    count: int
    mean: np.ndarray
    std: np.ndarray


def _columns(store: StructureStore, columns: Sequence[str | int] | None) -> list[int]:
    names = store.target_names
    if columns is None:
        return list(range(len(names)))
    out = []
    for c in columns:
        if isinstance(c, str):
            if c not in names:
                raise DataError(f"{store.path}: no target {c!r}; the store has {names}")
            out.append(names.index(c))
        elif not 0 <= c < len(names):
            raise DataError(f"{store.path}: no target column {c}; the store has {len(names)}")
        else:
            out.append(int(c))
    return out


def target_statistics(
    store: StructureStore,
    columns: Sequence[str | int] | None = None,
    *,
    per_atom: bool = False,
    ddof: int = 0,
) -> TargetStatistics:
    """Mean and standard deviation of ``columns`` (names or indices; None: all targets).

    Args:
        per_atom: statistics of y / (number of atoms) of each structure.
        ddof: delta degrees of freedom of the variance (0: population, as ``numpy.std``).
    """
    cols = _columns(store, columns)
    count, mean, m2 = 0, np.zeros(len(cols)), np.zeros(len(cols))
    shift = None
    sizes = store.size_chunks() if per_atom else None
    for chunk in store.target_chunks():
        block = chunk[:, cols]
        if sizes is not None:
            block = block / next(sizes)[:, None]
        if shift is None:
            shift = block[0].copy()
        block = block - shift  # exact for values near the shift (Sterbenz): chunk means keep their digits
        n = len(block)
        block_mean = block.mean(axis=0)
        block_m2 = ((block - block_mean) ** 2).sum(axis=0)
        total = count + n
        delta = block_mean - mean
        mean = mean + delta * (n / total)
        m2 = m2 + block_m2 + delta**2 * (count * n / total)
        count = total
    if count - ddof <= 0:
        raise DataError(f"{store.path}: {count} structures are too few for a variance with ddof {ddof}")
    names = [store.target_names[c] + ("/atom" if per_atom else "") for c in cols]
    return TargetStatistics(names, count, mean + shift, np.sqrt(m2 / (count - ddof)))


def element_energy_offsets(
    store: StructureStore, column: str | int = 0, *, rows: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """Per-element reference values of target ``column`` by least squares over all structures.

    Reads every record once (only its atomic numbers are decoded); holds a ``rows`` x 119 block of
    compositions and the (119, 119) normal matrix.

    Returns:
        (elements, offsets): the atomic numbers present, sorted, (E,) int64; and their offsets,
        (E,) float64 in the target's unit, so that ``y ≈ Σ_atoms offsets[element]``.
    """
    (col,) = _columns(store, [column])
    gram = np.zeros((MAX_Z + 1, MAX_Z + 1))
    rhs = np.zeros(MAX_Z + 1)
    block = np.zeros((rows, MAX_Z + 1))
    filled = 0
    targets = store.target_chunks()
    y = np.zeros(0)
    start = 0
    for i in range(len(store)):
        if i - start >= len(y):
            start, y = i, next(targets)[:, col]
        block[filled] = np.bincount(store.read(i, ("z",))["z"], minlength=MAX_Z + 1)
        rhs += block[filled] * y[i - start]
        filled += 1
        if filled == rows or i == len(store) - 1:
            gram += block[:filled].T @ block[:filled]
            block[:filled] = 0.0
            filled = 0
    elements = np.flatnonzero(np.diag(gram) > 0)
    solution = np.linalg.lstsq(gram[np.ix_(elements, elements)], rhs[elements], rcond=None)[0]
    return elements.astype(np.int64), solution
