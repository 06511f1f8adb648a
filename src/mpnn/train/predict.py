"""Predictions of trained models for structures in xyz or SMILES files (``mpnn predict``).

A file whose comment line starts with ``gdb`` is read as a QM9 record and its bonds come from
its B3LYP SMILES; a file ending in ``.smi`` or ``.smiles`` is a SMILES file
(:mod:`mpnn.data.smiles`: one molecule per line, no positions, for topology-only models
only); any other file is plain XYZ (one or more frames) and its bonds are perceived from the
geometry. Each structure is featurised as in training
(:func:`mpnn.data.featurize.featurize_molecule`), and collated with the hydrogens each model
expects (``model.hydrogens``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mpnn.batch import Molecule
from mpnn.data.qm9 import ATOMIC_NUMBERS, TARGETS, UNITS, parse_xyz
from mpnn.data.xyz import parse_xyz_frames
from mpnn.errors import DataError
from mpnn.models import PropertyModel
from mpnn.train.loader import BatchLoader
from mpnn.train.metrics import target_columns
from mpnn.train.properties import predict


@dataclass
class Structure:
    """One structure read from a file.

    Attributes:
        name: file stem, with ``#k`` (1-based frame) for multi-frame files.
        symbols: n element symbols.
        positions: (n, 3) float64 Angstrom.
        smiles: SMILES candidates giving the bonds (QM9 files), or None to perceive them from geometry.
        source: file name; line: 1-based line of the structure's first line.
    """

    name: str
    symbols: list[str]
    positions: np.ndarray
    smiles: tuple[str, ...] | None
    source: str
    line: int


def xyz_files(paths: Sequence[str | Path]) -> list[Path]:
    """The files named (xyz or SMILES files), and the ``*.xyz`` files of the folders named (sorted)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.glob("*.xyz") if p.is_file())
            if not found:
                raise DataError(f"{path}: no *.xyz files in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path}: no such file or folder")
    return files


def read_structures(path: Path) -> list[Structure]:
    """The structures of one file (QM9 format or plain XYZ)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read: {error}") from None
    lines = text.splitlines()
    if len(lines) > 1 and lines[1].split()[:1] == ["gdb"]:
        record = parse_xyz(text, str(path))
        smiles = (record.smiles_b3lyp, record.smiles_gdb)  # as the data set: geometry's first
        return [Structure(path.stem, list(record.symbols), record.positions, smiles, str(path), 1)]
    frames = parse_xyz_frames(text, str(path))
    names = [path.stem] if len(frames) == 1 else [f"{path.stem}#{k + 1}" for k in range(len(frames))]
    return [
        Structure(name, list(f.symbols), f.positions, None, str(path), f.line)
        for name, f in zip(names, frames, strict=True)
    ]


def to_molecule(structure: Structure) -> Molecule:
    """Featurise a structure as in training; errors name its file and line."""
    from mpnn.data.featurize import featurize_molecule

    s = structure
    try:
        features = featurize_molecule(s.symbols, s.positions, s.smiles)
    except DataError as error:
        message = str(error)
        if not message.startswith(s.source):
            message = f"{s.source}:{s.line}: {message}"
        raise DataError(message) from None
    return Molecule(
        z=torch.tensor([ATOMIC_NUMBERS[e] for e in s.symbols], dtype=torch.int64),
        pos=torch.as_tensor(np.asarray(s.positions, dtype=np.float64)),
        x=torch.as_tensor(features.x),
        bonds=torch.as_tensor(features.bonds, dtype=torch.int64).reshape(-1, 2),
        bond_type=torch.as_tensor(features.bond_type, dtype=torch.int64),
        name=s.name,
    )


def require_topology_only(models: Sequence[tuple[str | Path, PropertyModel]], source: str | Path) -> None:
    """Refuse SMILES input (``source``, a file) for a model that reads positions.

    Args:
        models: ``(label, model)``; a model without a ``positions`` attribute reads them.

    Raises:
        DataError: naming the first model with ``positions`` True.
    """
    for label, model in models:
        if getattr(model, "positions", True):
            raise DataError(
                f"model {label} reads 3D positions; SMILES input {source} has none; give xyz files"
            )


def read_inputs(files: Sequence[Path]) -> tuple[list[str], list[Molecule]]:
    """Names and featurised molecules of the files, in order: SMILES files (by suffix,
    :func:`mpnn.data.smiles.is_smiles_file`) one molecule per line, others via
    :func:`read_structures` and :func:`to_molecule`."""
    from mpnn.data.smiles import is_smiles_file, read_smiles_molecules

    names: list[str] = []
    molecules: list[Molecule] = []
    for path in files:
        if is_smiles_file(path):
            found = read_smiles_molecules(path)
            names += [m.name for m in found]
        else:
            structures = read_structures(path)
            found = [to_molecule(s) for s in structures]
            names += [s.name for s in structures]
        molecules += found
    return names, molecules


def predict_table(
    models: Sequence[tuple[PropertyModel, Sequence[str]]], molecules: Sequence[Molecule]
) -> tuple[list[str], np.ndarray]:
    """Predictions of every model for every molecule.

    Each model sees the molecules collated with its ``graph`` and ``hydrogens`` (explicit
    for a model without that attribute). Returns the target names in :data:`TARGETS` order
    and an (M, K) float64 array of values in target units.
    """
    columns: dict[str, np.ndarray] = {}
    for model, names in models:
        hydrogens = getattr(model, "hydrogens", "explicit")
        indices = np.arange(len(molecules))
        loader = BatchLoader(molecules, indices, None, 64, model.graph, hydrogens=hydrogens)
        values = predict(model, loader)
        columns.update({name: values[:, k] for k, name in enumerate(names)})
    order = [t for t in TARGETS if t in columns]
    return order, np.stack([columns[t] for t in order], axis=1)


def predictions_csv(
    names: Sequence[str], targets: Sequence[str], values: np.ndarray, spread: np.ndarray | None = None
) -> str:
    """CSV text: ``name`` then per target a ``target [unit]`` column of ``values`` (M, K) and,
    with ``spread`` (M, K, an ensemble's std over members), a ``target std [unit]`` column."""
    from mpnn.sanity import require_finite

    for k, t in enumerate(targets):  # nothing non-finite is ever written
        require_finite(np.asarray(values)[:, k], f"{t} prediction", names)
        if spread is not None:
            require_finite(np.asarray(spread)[:, k], f"{t} spread over the ensemble", names)
    units = [UNITS[c] for c in target_columns(targets)]
    header, columns = ["name"], []
    for k, (t, u) in enumerate(zip(targets, units, strict=True)):
        header.append(f"{t} [{u}]")
        columns.append(np.asarray(values)[:, k])
        if spread is not None:
            header.append(f"{t} std [{u}]")
            columns.append(np.asarray(spread)[:, k])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    table = np.stack(columns, axis=1) if columns else np.zeros((len(names), 0))
    for name, row in zip(names, table, strict=True):
        writer.writerow([name, *[f"{v:.8g}" for v in row]])
    return out.getvalue()
