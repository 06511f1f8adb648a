"""Extrapolation warnings: symmetry functions outside the range a potential was trained on.

A potential records, per element, the smallest and largest value of each of its symmetry
functions over its training set (``SymmetryFunctions.statistics[..., 0:2]``: for a potential
trained here, the statistics its scaling came from; for an n2p2 potential, the Gmin and Gmax
columns of ``scaling.data``). An atom of element s whose function j has a raw value G outside
``[Gmin_sj, Gmax_sj]`` lies where the network never saw data: its energy is an extrapolation.
As n2p2 does (``Element::updateSymmetryFunctionStatistics``), one **extrapolation warning** is
one (atom, function) pair with ``G + eps < Gmin`` or ``G - eps > Gmax``, with
``eps = 1000 x`` the float64 machine epsilon (2.2e-13) so that training structures on the
boundary raise none. An evaluation in lower precision (a float32 calculator) computes G with
the rounding of its type, a few units in the last place away from the float64 range: there the
tolerance is ``eps`` plus 1000 of that type's epsilons relative to the bound
(``1000 x 1.2e-7 x |bound|`` in float32), so that the training structures still raise none.

:func:`count_extrapolation` attaches a counter to a potential for the evaluations inside it; the
ASE calculator, ``mpnn predict``, ``md``, ``relax`` and ``mc`` report the counts per structure
and stop past ``--max-extrapolation-warnings N`` (n2p2's ``maxew``: the run stops once the total
since its start exceeds N; N = 0 stops at the first warning).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from mpnn.errors import DataError

if TYPE_CHECKING:  # the numpy counts (mpnn.potentials.n2p2_predict) run without PyTorch
    import torch
    from torch import Tensor, nn

#: Tolerance of the range check (n2p2: ``1000 * numeric_limits<double>::epsilon()``).
EPSILON = 1000.0 * float(np.finfo(np.float64).eps)

__all__ = [
    "EPSILON",
    "ExtrapolationCounter",
    "ExtrapolationError",
    "ExtrapolationWarning",
    "count_extrapolation",
    "has_ranges",
    "limit_message",
    "summary",
    "out_of_range",
]


class ExtrapolationError(DataError):
    """More extrapolation warnings than a run allows (``--max-extrapolation-warnings``)."""


class ExtrapolationWarning(UserWarning):
    """Structures with symmetry functions outside the potential's training range."""


def _symmetry_functions(model: nn.Module) -> nn.Module | None:
    """The model's :class:`~mpnn.messages.symmetry_functions.SymmetryFunctions`, or None."""
    try:
        return getattr(model, "symmetry_functions", None)
    except (AttributeError, TypeError):  # a property that does not apply to this model
        return None


def has_ranges(model: nn.Module) -> bool:
    """Whether ``model`` records training ranges of symmetry functions (all-zero statistics: none)."""
    import torch

    functions = _symmetry_functions(model)
    return functions is not None and _ranges(functions, torch.float64)[2]


def _ranges(functions: nn.Module, dtype: torch.dtype) -> tuple[Tensor, Tensor, bool]:
    """(S, W) float64 bounds below and above which a value of precision ``dtype`` is out of range
    (the training range widened by the tolerance of :func:`_outside`; padding columns never are),
    and whether any range is recorded. Cached on ``functions`` until its statistics change: an
    evaluation compares and counts, nothing more."""
    import torch

    stats = functions.statistics
    key = (stats._version, stats.data_ptr(), dtype, stats.device)
    cached = getattr(functions, "_extrapolation_bounds", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    low, high = stats[..., 0].to(torch.float64), stats[..., 1].to(torch.float64)
    below, above = torch.full_like(low, EPSILON), torch.full_like(high, EPSILON)
    if dtype != torch.float64:
        relative = 1000.0 * torch.finfo(dtype).eps
        below, above = below + relative * low.abs(), above + relative * high.abs()
    real = (
        torch.arange(low.shape[1], device=low.device)
        < torch.tensor(functions.sizes, device=low.device)[:, None]
    )
    bounds = (
        torch.where(real, low - below, -torch.inf),
        torch.where(real, high + above, torch.inf),
        bool(stats[..., :2].abs().sum() > 0),
    )
    functions._extrapolation_bounds = (key, bounds)
    return bounds


def out_of_range(raw: Tensor, species: Tensor, statistics: Tensor, sizes: list[int]) -> Tensor:
    """(N,) int64: per atom, how many of its functions lie outside their training range.

    Args:
        raw: (N, W) unscaled symmetry functions (columns past an element's own count are padding).
        species: (N,) species index of each atom.
        statistics: (S, W, 4) per species and function (min, max, mean, sigma).
        sizes: (S,) number of functions of each species.
    """
    import torch

    low = statistics[species, :, 0].to(raw.device)
    high = statistics[species, :, 1].to(raw.device)
    size = torch.tensor(sizes, device=raw.device)[species, None]
    real = torch.arange(raw.shape[1], device=raw.device) < size
    return (_outside(raw, low, high) & real).sum(dim=1)


def _outside(raw: Tensor, low: Tensor, high: Tensor) -> Tensor:
    """Boolean, the shape of ``raw``: values beyond ``[low, high]`` (float64) by more than the
    tolerance of ``raw``'s precision (:data:`EPSILON`; in lower precision also 1000 of its
    epsilons relative to the bound)."""
    import torch

    values = raw.detach().to(torch.float64)
    below, above = torch.full_like(low, EPSILON), torch.full_like(high, EPSILON)
    if raw.dtype != torch.float64:
        relative = 1000.0 * torch.finfo(raw.dtype).eps
        below, above = below + relative * low.abs(), above + relative * high.abs()
    return (values + below < low) | (values - above > high)


@dataclass
class ExtrapolationCounter:
    """Counts of the evaluations made while attached (:func:`count_extrapolation`).

    ``per_atom`` (N,) holds the last evaluation's count of out-of-range functions per atom
    (of every structure of its batch, in batch order); ``first`` describes the first out-of-range
    value of the last evaluation (atom, element, function, value, range) for messages.
    """

    functions: nn.Module
    per_atom: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    first: str = ""

    def record(self, raw: Tensor, species: Tensor) -> None:
        """Called by the symmetry functions with the (N, W) raw values and (N,) species."""
        import torch

        with torch.no_grad():
            low, high, _ = _ranges(self.functions, raw.dtype)
            values = raw.detach().to(torch.float64)
            counts = ((values < low[species]) | (values > high[species])).sum(dim=1)
            self.per_atom = counts.cpu().numpy()
            self.first = ""
            if self.per_atom.any():
                self.first = self._describe(raw.detach(), species, int(np.flatnonzero(self.per_atom)[0]))

    def _describe(self, raw: Tensor, species: Tensor, atom: int) -> str:
        from ase.data import chemical_symbols

        s = int(species[atom])
        n = self.functions.sizes[s]
        values = raw[atom, :n].cpu()
        low, high = self.functions.statistics[s, :n, 0].cpu(), self.functions.statistics[s, :n, 1].cpu()
        j = int(_outside(values, low, high).nonzero()[0])  # in raw's precision, as counted
        element = chemical_symbols[self.functions.elements[s]]
        return (
            f"atom {atom} ({element}), symmetry function {j + 1}: G = {float(values[j]):.6g} outside "
            f"the training range [{float(low[j]):.6g}, {float(high[j]):.6g}]"
        )


def numpy_bounds(statistics: np.ndarray, sizes: Sequence[int]) -> tuple[np.ndarray, np.ndarray, bool]:
    """:func:`_ranges` of float64 values from (S, W, 4) float64 ``statistics`` and the species'
    function counts ``sizes``: (S, W) bounds below and above which a value is out of range
    (padding columns never are), and whether any range is recorded."""
    low, high = statistics[..., 0] - EPSILON, statistics[..., 1] + EPSILON
    real = np.arange(statistics.shape[1]) < np.asarray(sizes)[:, None]
    recorded = bool(np.abs(statistics[..., :2]).sum() > 0)
    return np.where(real, low, -np.inf), np.where(real, high, np.inf), recorded


def numpy_counts(raw: np.ndarray, species: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """(N,) int64: per atom, its out-of-range functions (raw (N, W) float64, species (N,), the
    bounds of :func:`numpy_bounds`), as :class:`ExtrapolationCounter` counts them."""
    return ((raw < low[species]) | (raw > high[species])).sum(axis=1).astype(np.int64)


def describe(
    raw: np.ndarray,
    species: np.ndarray,
    statistics: np.ndarray,
    sizes: Sequence[int],
    elements: Sequence[int],
    atom: int,
) -> str:
    """:meth:`ExtrapolationCounter._describe` of float64 values: the first out-of-range value of
    ``atom`` for messages, with its element, function (1-based) and training range (raw (N, W),
    statistics (S, W, 4))."""
    from ase.data import chemical_symbols

    s = int(species[atom])
    n = sizes[s]
    values = raw[atom, :n]
    low, high = statistics[s, :n, 0], statistics[s, :n, 1]
    j = int(np.flatnonzero((values + EPSILON < low) | (values - EPSILON > high))[0])
    return (
        f"atom {atom} ({chemical_symbols[elements[s]]}), symmetry function {j + 1}: G = {values[j]:.6g} "
        f"outside the training range [{low[j]:.6g}, {high[j]:.6g}]"
    )


@contextmanager
def count_extrapolation(model: nn.Module) -> Iterator[ExtrapolationCounter | None]:
    """Count out-of-range symmetry functions of every evaluation of ``model`` inside the block.

    Yields None (and counts nothing) for a model without recorded training ranges
    (:func:`has_ranges`). The counter reads the raw values the model computes anyway; it adds
    one comparison per (atom, function), no second evaluation.
    """
    if not has_ranges(model):
        yield None
        return
    functions = _symmetry_functions(model)
    counter = ExtrapolationCounter(functions)
    previous = getattr(functions, "monitor", None)
    functions.monitor = counter.record
    try:
        yield counter
    finally:
        functions.monitor = previous


def limit_message(total: int, limit: int, first: str, where: str = "", over: str = "") -> str:
    """The one-line message of a run stopped by ``--max-extrapolation-warnings``."""
    return (
        f"{where + ': ' if where else ''}{total} extrapolation warnings{over}, more than "
        f"--max-extrapolation-warnings {limit} allows ({first}); the structure is outside the "
        "potential's training data"
    )


def summary(per_atom: Sequence[np.ndarray], what: str = "structures") -> str:
    """One line on the extrapolation of several structures (or frames), ``""`` when there is none.

    Args:
        per_atom: per structure, (n,) out-of-range functions of each atom.
        what: what the structures are called (``"structures"``, ``"frames"``, ``"steps"``).

    e.g. ``"1195 extrapolation warnings (out-of-range symmetry functions) in 1 of 1 structures,
    137 atoms; the first: structure 0, atom 3 (12 functions)"``.
    """
    totals = [int(np.sum(c)) for c in per_atom]
    total = sum(totals)
    if total == 0:
        return ""
    hit = [k for k, t in enumerate(totals) if t]
    atoms = sum(int(np.count_nonzero(c)) for c in per_atom)
    first = hit[0]
    atom = int(np.flatnonzero(per_atom[first])[0])
    noun = what[:-1] if what.endswith("s") else what
    return (
        f"{total} extrapolation warnings (symmetry functions outside the training range) in {len(hit)} "
        f"of {len(totals)} {what}, {atoms} atoms; the first: {noun} {first}, atom {atom} "
        f"({_count(int(per_atom[first][atom]), 'function')}); the results there are extrapolations"
    )


def _count(n: int, noun: str) -> str:
    """``"1 function"``, ``"3 functions"``."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
