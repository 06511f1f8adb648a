"""Molecular dynamics with an `mpnn` potential through ASE: NVE (velocity Verlet) or NVT (Langevin).

Equations of motion (m_i masses in amu, F_i = -dE/dr_i from :class:`MpnnCalculator`):

* NVE, velocity Verlet with time step dt: p += F dt/2; r += p dt/m; F = F(r); p += F dt/2.
  The total energy E_pot + E_kin is conserved up to O(dt^2) fluctuations and, for a smooth
  potential, no systematic drift.
* NVT, Langevin: dp = F dt - gamma p dt + sqrt(2 gamma m k_B T) dW, with the friction gamma in
  1/fs (ASE's ``Langevin`` integrator, ``fixcm=False``: the centre of mass is thermalised too,
  which samples the canonical distribution exactly).

With a temperature, initial momenta are drawn from the Maxwell-Boltzmann distribution at T
(``numpy.random.default_rng(seed)``), then the centre-of-mass momentum is removed.

The trajectory is extended XYZ: every ``interval`` steps (step 0 included) one frame with positions
(Angstrom), momenta (amu Angstrom/ASE time unit; ``atoms.get_velocities()`` after reading),
``energy`` (eV), ``forces`` (eV/Angstrom), ``stress`` when the cell is 3-D, and ``step``,
``time_fs``, ``kinetic_energy``, ``temperature_K`` and ``units`` in the frame's info. Frames go to
``<trajectory>.partial`` (each formatted first, then appended and flushed in one write), which is
renamed to the trajectory when the run ends: a crash or an interruption leaves an existing
trajectory as it was and the frames written so far readable in the ``.partial`` file; the
``.partial`` file is created with the first frame, so a run stopped before it leaves no file.

Checks: a time step or temperature no real dynamics uses gets an
:class:`~mpnn.sanity.UnphysicalWarning` (:func:`mpnn.sanity.check_md_settings`); a non-finite
energy or force stops the run with a one-line :class:`~mpnn.errors.DataError` (the calculator's
check), and so do non-finite positions or momenta, before the frame is written. Masses must be
positive and finite and the starting momenta finite and bounded (:func:`mpnn.data.atoms.check_motion`);
a thermostat or an initial temperature needs at least 2 atoms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, PropertyNotImplementedError
from torch import nn

from mpnn.errors import DataError
from mpnn.potentials.calculator import MpnnCalculator
from mpnn.potentials.frames import FrameWriter, frame
from mpnn.sanity import check_md_settings

__all__ = ["MDLog", "run_md"]

#: The ``units`` key of every frame: the file states its units.
TRAJECTORY_UNITS = (
    "length=Angstrom energy=eV forces=eV/Angstrom stress=eV/Angstrom^3 momenta=amu*Angstrom/ASE_time "
    "time_fs=fs temperature_K=K"
)


@dataclass
class MDLog:
    """Energies of the recorded frames (every ``interval`` steps, step 0 first), eV and K."""

    step: list[int] = field(default_factory=list)
    time_fs: list[float] = field(default_factory=list)
    potential: list[float] = field(default_factory=list)
    kinetic: list[float] = field(default_factory=list)
    temperature: list[float] = field(default_factory=list)

    @property
    def total(self) -> np.ndarray:
        """(frames,) E_pot + E_kin, eV."""
        return np.asarray(self.potential) + np.asarray(self.kinetic)


def _frame(atoms: Atoms, step: int, time_fs: float) -> Atoms:
    """One frame of ``atoms`` with its calculator's results (:func:`~mpnn.potentials.frames.frame`)."""
    results = {"energy": atoms.get_potential_energy(), "forces": atoms.get_forces()}
    if atoms.cell.rank == 3:
        try:
            results["stress"] = atoms.get_stress()
        except (PropertyNotImplementedError, NotImplementedError):  # a calculator without stress
            pass
    info = {
        "step": step,
        "time_fs": time_fs,
        "kinetic_energy": atoms.get_kinetic_energy(),
        "temperature_K": atoms.get_temperature(),
        "units": TRAJECTORY_UNITS,
    }
    return frame(atoms, results, info, getattr(atoms.calc, "results", {}))


def _require_finite_state(atoms: Atoms, step: int, timestep_fs: float) -> None:
    """Stop the dynamics with a one-line DataError before a non-finite frame is recorded."""
    state = {"positions are": atoms.positions, "momenta are": atoms.get_momenta()}
    with np.errstate(all="ignore"):
        state["energy is"] = np.asarray([atoms.get_potential_energy(), atoms.get_kinetic_energy()])
    for name, values in state.items():
        if not np.isfinite(values).all():
            raise DataError(
                f"md: step {step}: the {name} no longer finite; the dynamics diverged "
                f"(time step {timestep_fs:g} fs too long, or the structure left the model's range)"
            )


def run_md(
    model_or_calc: nn.Module | Calculator,
    atoms: Atoms,
    steps: int,
    timestep_fs: float,
    temperature_K: float | None = None,
    friction_per_fs: float = 0.01,
    trajectory_path: str | Path | None = None,
    interval: int = 1,
    seed: int | None = 0,
    progress: bool = False,
    initial_temperature_K: float | None = None,
    max_extrapolation_warnings: int | None = None,
) -> MDLog:
    """Run ``steps`` steps of MD on ``atoms`` (changed in place) and return the energies recorded.

    Args:
        model_or_calc: a model (wrapped in :class:`MpnnCalculator`, float64) or an ASE calculator.
        atoms: the structure; its momenta are used as they are unless a temperature is given.
        steps: number of time steps (>= 0). timestep_fs: dt in femtoseconds.
        temperature_K: ``None`` for NVE (velocity Verlet); else Langevin NVT at this temperature,
            which also sets the initial momenta. friction_per_fs: the Langevin friction gamma.
        trajectory_path: extended-XYZ file to (over)write when the run ends, or ``None``.
        interval: record (and write) a frame every ``interval`` steps.
        seed: seed of the initial momenta and of the Langevin noise.
        progress: show a tqdm progress bar.
        initial_temperature_K: for NVE, draw the initial momenta at this temperature.
        max_extrapolation_warnings: with a model, stop (a one-line
            :class:`~mpnn.potentials.extrapolation.ExtrapolationError`) once the extrapolation
            warnings of all steps exceed this many (:class:`MpnnCalculator`; n2p2's ``maxew``).

    A frame carries the calculator's extrapolation counts and, for a committee, its deviations
    (:func:`~mpnn.potentials.frames.frame_extras`): ``extrapolation_warnings``,
    ``energy_std``, ``max_force_std`` in its info, ``extrapolation`` and ``forces_std`` per atom.
    """
    from ase.md import velocitydistribution
    from ase.md.langevin import Langevin
    from ase.md.verlet import VelocityVerlet
    from tqdm import tqdm

    if steps < 0 or interval < 1 or not 0 < timestep_fs < np.inf:
        raise DataError(
            f"run_md: need steps >= 0, interval >= 1, timestep > 0 (got {steps}, {interval}, {timestep_fs})"
        )
    for name, value in (("temperature", temperature_K), ("initial temperature", initial_temperature_K)):
        if value is not None and not 0 <= value < np.inf:
            raise DataError(f"run_md: {name} must be >= 0 K and finite, got {value}")
    from mpnn.data.atoms import check_motion

    check_motion(atoms, "md: the structure")  # a bad mass or momentum is the file's fault, not dt's
    if len(atoms) < 2:
        starts = (
            ("a thermostat (temperature)", temperature_K),
            ("an initial temperature", initial_temperature_K),
        )
        for name, value in starts:
            if value is not None:
                raise DataError(
                    f"md: {name} needs at least 2 atoms (one atom without its centre-of-mass motion "
                    "has no degrees of freedom); run NVE with the file's momenta"
                )
    check_md_settings(
        timestep_fs,
        atoms.get_masses(),
        {"temperature": temperature_K, "initial temperature": initial_temperature_K},
    )
    if isinstance(model_or_calc, Calculator):
        atoms.calc = model_or_calc
    else:
        atoms.calc = MpnnCalculator(model_or_calc, max_extrapolation_warnings=max_extrapolation_warnings)
    rng = np.random.default_rng(seed)
    start = temperature_K if temperature_K is not None else initial_temperature_K
    if start is not None:
        thermalize = getattr(velocitydistribution, "thermalize_momenta", None)  # ASE >= 3.29
        if thermalize is not None:
            thermalize(atoms, start, rng=rng)
        else:
            velocitydistribution.MaxwellBoltzmannDistribution(atoms, temperature_K=start, rng=rng)
        velocitydistribution.Stationary(atoms)
    dt = timestep_fs * units.fs
    if temperature_K is None:
        dyn = VelocityVerlet(atoms, timestep=dt)
    else:
        dyn = Langevin(
            atoms,
            timestep=dt,
            temperature_K=temperature_K,
            friction=friction_per_fs / units.fs,
            fixcm=False,
            rng=rng,
        )
    atoms.get_forces()  # the first evaluation: errors surface before any file is written
    log = MDLog()
    writer = FrameWriter(trajectory_path)
    bar = tqdm(total=steps, disable=not progress, unit="step", desc="md")

    def record() -> None:
        step = dyn.nsteps
        _require_finite_state(atoms, step, timestep_fs)
        log.step.append(step)
        log.time_fs.append(step * timestep_fs)
        log.potential.append(float(atoms.get_potential_energy()))
        log.kinetic.append(float(atoms.get_kinetic_energy()))
        log.temperature.append(float(atoms.get_temperature()))
        if writer.path is not None:
            writer.write(_frame(atoms, step, step * timestep_fs))
        bar.set_postfix(T=f"{log.temperature[-1]:.0f} K", E=f"{log.total[-1]:.4f} eV", refresh=False)

    def tick() -> None:
        if dyn.nsteps:
            bar.update(1)

    dyn.attach(record, interval=interval)
    dyn.attach(tick, interval=1)
    with writer:  # renamed at the end; an error names where the frames so far are
        try:
            dyn.run(steps)
        except DataError as error:
            step = "" if str(error).startswith("md: ") else f"md: step {dyn.nsteps + 1}: "
            raise type(error)(f"{step}{error}") from None
        finally:
            bar.close()
    return log
