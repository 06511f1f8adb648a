"""Errors of a trained potential: on the cached training and validation structures, and with the
full model on a test file; ``test_metrics.csv`` and the parity plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from mpnn.batch import Molecule
from mpnn.models.hdnnp import PotentialModel
from mpnn.train import plots
from mpnn.train import potential_data as pdata
from mpnn.train.distributed import Context
from mpnn.train.loader import BatchLoader
from mpnn.train.metrics import PotentialErrors, potential_errors, potential_errors_csv

TEST_METRICS = "test_metrics.csv"
#: Structures per batch of validation and evaluation, at most; fewer when they are large: a batch
#: holds at most :data:`EVAL_EDGES` neighbour pairs (cached sets) or :data:`EVAL_ATOMS` atoms (test
#: files), so that its descriptors, Jacobians and message activations stay within a few hundred MB.
EVAL_BATCH = 256
EVAL_EDGES = 200_000
EVAL_ATOMS = 4_096


def eval_batch_size(structures: pdata.StructureSet) -> int:
    """Structures per evaluation batch of a cached set (:data:`EVAL_BATCH`, fewer for large ones)."""
    most = int(structures.edge_ptr.diff().max()) if len(structures) else 1
    return max(1, min(EVAL_BATCH, EVAL_EDGES // max(most, 1)))


def predict_set(
    model: PotentialModel, structures: pdata.StructureSet, *, forces: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Energies (M,) eV and forces (N, 3) eV/Angstrom (or None) of cached structures."""
    from mpnn.potentials.forces import evaluate

    energy, force = [], []
    for batch, _ in pdata.StructureLoader(structures, eval_batch_size(structures)).steps(0, Context()):
        result = evaluate(model, batch, forces=forces)
        energy.append(result["energy"])
        if forces:
            force.append(result["forces"])
    return torch.cat(energy), torch.cat(force) if forces else None


def evaluate_run(
    model: PotentialModel,
    train: pdata.StructureSet | BatchLoader,
    valid: pdata.StructureSet | BatchLoader,
    test: list[Molecule] | None,
    out: Path,
    *,
    forces: bool = True,
) -> list[PotentialErrors]:
    """Errors on train and valid (cached structures, or loaders of a store) and test (full model);
    test_metrics.csv; parity plots of test, else of valid when it is cached."""
    from mpnn.files import write_text
    from mpnn.train.potential_stream import streamed_errors

    rows, shown = [], None
    for name, structures in (("train", train), ("valid", valid)):
        if not isinstance(structures, pdata.StructureSet):  # read from a store: errors batch by batch
            rows.append(streamed_errors(model, structures, name, forces=forces))
            continue
        e, f = predict_set(model, structures, forces=forces)
        atoms, true_e, true_f = structures.atoms_per_structure(), structures.energy, structures.batch.forces
        rows.append(potential_errors(name, e, true_e, atoms, f, true_f))
        shown = (name, e, true_e, atoms, f, true_f)
    if test:
        e, e_true, atoms, f, f_true = evaluate_structures(model, test, forces=forces)
        rows.append(potential_errors("test", e, e_true, atoms, f, f_true))
        shown = ("test", e, e_true, atoms, f, f_true)
    write_text(potential_errors_csv(rows), out / TEST_METRICS)
    if shown is None:
        return rows
    name, e, e_true, atoms, f, f_true = shown
    per_atom = torch.stack([e / atoms, e_true / atoms], 1).double().numpy()
    plots.parity(
        [f"{name}: energy per atom"], ["eV/atom"], per_atom[:, :1], per_atom[:, 1:], out / "parity_energy.png"
    )
    if f is not None:
        plots.parity(
            [f"{name}: force components"],
            ["eV/Angstrom"],
            f.reshape(-1, 1).double().numpy(),
            f_true.reshape(-1, 1).double().numpy(),
            out / "parity_forces.png",
        )
    return rows


def evaluate_structures(
    model: PotentialModel, molecules: Sequence[Molecule], *, forces: bool = True, batch_size: int = 128
) -> tuple[torch.Tensor, ...]:
    """Predicted and true energies (M,), atom counts (M,), predicted and true forces (N, 3), full model
    (``batch_size`` structures per batch at most, fewer than :data:`EVAL_ATOMS` atoms)."""
    from mpnn.data.atoms import collate_structures
    from mpnn.potentials.forces import evaluate

    e, f = [], []
    most = max((m.num_atoms for m in molecules), default=1)
    batch_size = max(1, min(batch_size, EVAL_ATOMS // most))
    for start in range(0, len(molecules), batch_size):
        batch = collate_structures(list(molecules[start : start + batch_size]), model.cutoff)
        result = evaluate(model, batch.to(dtype=torch.float64), forces=forces)
        e.append(result["energy"].reshape(-1))
        if forces:
            f.append(result["forces"])
    true_e = torch.cat([m.y.reshape(-1) for m in molecules]).double()
    atoms = torch.tensor([m.num_atoms for m in molecules])
    true_f = torch.cat([m.forces if m.forces is not None else torch.zeros_like(m.pos) for m in molecules])
    return torch.cat(e), true_e, atoms, torch.cat(f) if forces else None, true_f.double()
