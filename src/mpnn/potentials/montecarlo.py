r"""Metropolis Monte Carlo in the canonical (NVT) ensemble with an `mpnn` potential.

Each of ``steps`` moves proposes a new configuration and accepts it with the Metropolis probability

.. math::
    P_\mathrm{acc} = \min\left(1, e^{-\Delta E / k_B T}\right), \qquad \Delta E = E_\mathrm{trial} - E

(energies in eV, ``k_B = ase.units.kB`` eV/K); a rejected move keeps the configuration (and
counts it again in the averages). Both kinds of move propose symmetrically (the reverse move has
the same probability), so the chain satisfies detailed balance with the Boltzmann distribution
``exp(-E / k_B T)`` over positions (and, with swaps, arrangements of the elements):

* **displacement**: one atom i, drawn uniformly, moves by a vector drawn uniformly in the cube
  ``[-step, step]^3`` (Angstrom).
* **swap** (a fraction ``swap_fraction`` of the moves; needs two elements): one atom i drawn
  uniformly and one atom j drawn uniformly among those of another element exchange positions. The
  pair {i, j} is proposed with probability ``(1/(N - n_i) + 1/(N - n_j)) / N`` (n_i: atoms of i's
  element), the same after the swap, since swaps leave the counts as they are.

Random numbers: ``numpy.random.default_rng(seed)``, one stream for every draw. Only energies are
needed: an :class:`~mpnn.potentials.calculator.MpnnCalculator` made here runs the forward pass
alone (``forces_with_energy=False``). Each trial evaluates the whole structure (the neighbour list
and every atomic energy), so a move costs as much as one energy of the structure. Positions are not
wrapped into the cell. Constraints (``FixAtoms``, ...) are refused.

The trajectory is extended XYZ, every ``interval`` moves (move 0, the start, first) and the last
move: positions, ``energy`` (eV), and ``step`` (moves done), ``temperature_K``, ``accepted`` (moves
accepted so far) and ``units`` in the frame's info; frames go to ``<trajectory>.partial``, renamed
when the run ends (:class:`~mpnn.potentials.frames.FrameWriter`). A non-finite energy stops the run
with a one-line :class:`~mpnn.errors.DataError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator
from torch import nn

from mpnn.errors import DataError
from mpnn.potentials.frames import FrameWriter, frame
from mpnn.sanity import MAX_TEMPERATURE_K, warn

__all__ = ["KINDS", "MCLog", "MCMove", "run_mc"]

#: The kinds of move, in the order of the counters.
KINDS = ("displacement", "swap")
#: The ``units`` key of every frame.
TRAJECTORY_UNITS = "length=Angstrom energy=eV temperature_K=K"


@dataclass(frozen=True)
class MCMove:
    """One proposed move: ``step`` (1, 2, ...), ``kind``, the atoms it moved, the energies (eV) before
    and of the trial configuration, and whether it was accepted."""

    step: int
    kind: str
    atoms: tuple[int, ...]
    energy: float
    trial_energy: float
    accepted: bool


@dataclass
class MCLog:
    """Counters per kind of move, the energies of the recorded frames and the averages over moves.

    ``mean_energy`` and ``std_energy`` (eV) are over the configurations after each move (a rejected
    move counts the old configuration again), the start excluded unless no move was made.
    """

    temperature_K: float
    attempted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    accepted: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    step: list[int] = field(default_factory=list)
    energy: list[float] = field(default_factory=list)
    mean_energy: float = math.nan
    std_energy: float = math.nan
    final_energy: float = math.nan

    def acceptance(self, kind: str) -> float:
        """Fraction of the ``kind`` moves accepted (NaN when none was tried)."""
        tried = self.attempted[kind]
        return self.accepted[kind] / tried if tried else math.nan


def _check(
    atoms: Atoms, steps: int, temperature_K: float, step: float, swap_fraction: float | None, interval: int
) -> float:
    """The swap fraction to use (``None``: 0.1 with two or more elements, else 0)."""
    if steps < 0 or interval < 1:
        raise DataError(f"mc: need steps >= 0 and interval >= 1 (got {steps}, {interval})")
    if not 0 < temperature_K < np.inf:
        raise DataError(f"mc: the temperature must be > 0 K and finite, got {temperature_K}")
    if not 0 < step < np.inf:
        raise DataError(f"mc: the displacement step must be > 0 Angstrom and finite, got {step}")
    if len(atoms) == 0:
        raise DataError("mc: the structure has no atoms")
    if atoms.constraints:
        names = ", ".join(type(c).__name__ for c in atoms.constraints)
        raise DataError(f"mc: the structure has constraints ({names}), which these moves do not follow")
    elements = len(set(atoms.numbers.tolist()))
    if swap_fraction is None:
        return 0.1 if elements > 1 else 0.0
    if not 0 <= swap_fraction <= 1:
        raise DataError(f"mc: the swap fraction must be in [0, 1], got {swap_fraction}")
    if swap_fraction > 0 and elements < 2:
        raise DataError(
            f"mc: swap moves need atoms of two elements; the structure has only "
            f"{atoms.get_chemical_symbols()[0]} (use a swap fraction of 0)"
        )
    return swap_fraction


def run_mc(
    model_or_calc: nn.Module | Calculator,
    atoms: Atoms,
    steps: int,
    temperature_K: float,
    step: float = 0.1,
    swap_fraction: float | None = None,
    seed: int | None = 0,
    trajectory_path: str | Path | None = None,
    interval: int = 100,
    progress: bool = False,
    observer: Callable[[MCMove], None] | None = None,
) -> MCLog:
    """Run ``steps`` Metropolis moves on ``atoms`` (changed in place) at ``temperature_K``.

    Args:
        model_or_calc: a model (wrapped in an energy-only :class:`MpnnCalculator`, float64) or an
            ASE calculator.
        atoms: the start configuration.
        steps: number of moves (>= 0). temperature_K: T, kelvin (> 0).
        step: half-edge of the cube of displacements, Angstrom.
        swap_fraction: fraction of moves that are swaps; ``None``: 0.1 with two or more elements, else 0.
        seed: seed of ``numpy.random.default_rng``.
        trajectory_path: extended-XYZ file to (over)write when the run ends, or ``None``.
        interval: record a frame every ``interval`` moves (and the last move).
        progress: show a tqdm progress bar.
        observer: called with each :class:`MCMove` once its trial energy is known, while ``atoms``
            holds the trial configuration (before a rejected move is undone): diagnostics, tests.
    """
    from tqdm import tqdm

    swap_fraction = _check(atoms, steps, temperature_K, step, swap_fraction, interval)
    if temperature_K > MAX_TEMPERATURE_K:
        warn(
            f"temperature {temperature_K:g} K is above {MAX_TEMPERATURE_K:g} K; "
            "no molecule or solid survives it"
        )
    if isinstance(model_or_calc, Calculator):
        atoms.calc = model_or_calc
    else:
        from mpnn.potentials.calculator import MpnnCalculator

        atoms.calc = MpnnCalculator(model_or_calc, forces_with_energy=False)
    kt = units.kB * temperature_K
    rng = np.random.default_rng(seed)
    numbers = atoms.numbers.copy()
    energy = _energy(atoms, 0)  # the first evaluation: errors surface before any file is written
    state = dict(getattr(atoms.calc, "results", {}))  # the accepted structure's results
    log = MCLog(temperature_K=temperature_K)
    writer = FrameWriter(trajectory_path)
    mean = spread = 0.0  # running mean and sum of squared deviations of the energy, eV and eV^2

    def record(move: int) -> None:
        log.step.append(move)
        log.energy.append(energy)
        info = {"step": move, "temperature_K": temperature_K, "accepted": sum(log.accepted.values())}
        writer.write(frame(atoms, {"energy": energy}, {**info, "units": TRAJECTORY_UNITS}, state))

    bar = tqdm(total=steps, disable=not progress, unit="move", desc="mc", miniters=max(1, steps // 1000))
    with writer:  # renamed at the end; an error names where the frames so far are
        try:
            record(0)
            for move in range(1, steps + 1):
                swap = swap_fraction > 0 and rng.random() < swap_fraction
                kind = KINDS[1] if swap else KINDS[0]
                i = int(rng.integers(len(atoms)))
                if swap:
                    j = int(rng.choice(np.flatnonzero(numbers != numbers[i])))
                    moved: tuple[int, ...] = (i, j)
                    old = atoms.positions[[i, j]]  # fancy indexing: a copy
                    atoms.positions[[i, j]] = old[::-1]
                else:
                    moved = (i,)
                    old = atoms.positions[[i]]
                    atoms.positions[i] += rng.uniform(-step, step, size=3)
                trial = _energy(atoms, move)
                delta = trial - energy
                accepted = delta <= 0 or rng.random() < math.exp(-delta / kt)
                log.attempted[kind] += 1
                if observer is not None:
                    observer(MCMove(move, kind, moved, energy, trial, accepted))
                if accepted:
                    log.accepted[kind] += 1
                    energy = trial
                    state = dict(getattr(atoms.calc, "results", {}))
                else:
                    atoms.positions[list(moved)] = old
                mean, spread = _welford(mean, spread, energy, move)
                if move % interval == 0 or move == steps:
                    record(move)
                bar.update(1)
                if move % 100 == 0 or move == steps:
                    bar.set_postfix(
                        E=f"{energy:.6g} eV", acc=f"{sum(log.accepted.values()) / move:.2f}", refresh=False
                    )
        finally:
            bar.close()
    log.final_energy = energy
    log.mean_energy, log.std_energy = (mean, math.sqrt(spread / steps)) if steps else (energy, 0.0)
    return log


def _energy(atoms: Atoms, move: int) -> float:
    """The potential energy of ``atoms``, eV; a non-finite one is a one-line DataError."""
    energy = float(atoms.get_potential_energy())
    if not math.isfinite(energy):  # a calculator of ASE's without our checks
        raise DataError(f"mc: move {move}: the energy is not finite")
    return energy


def _welford(mean: float, spread: float, value: float, count: int) -> tuple[float, float]:
    """Welford's update of a running mean and sum of squared deviations with the ``count``-th value."""
    delta = value - mean
    mean += delta / count
    return mean, spread + delta * (value - mean)
