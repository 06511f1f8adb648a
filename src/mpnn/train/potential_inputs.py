"""The data files of a potential run: structures with energies and forces, the validation split,
and the content hashes that keep a resumed run on the data it started with."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from mpnn.batch import Molecule
from mpnn.errors import DataError
from mpnn.train.settings_files import load_json

if TYPE_CHECKING:
    from mpnn.train.potential_run import PotentialSpec


def read_set(
    path: str,
    *,
    forces: bool,
    elements: Sequence[int] | None = None,
    units: Sequence[float] = (1.0, 1.0),
) -> list[Molecule]:
    """Structures of ``path`` with energies (and forces if ``forces``); elements checked if given.

    ``units``: (Angstrom, eV) per length and energy unit of an n2p2 ``input.data`` file; other
    units than Angstrom and eV for a file in one of ASE's formats (always Angstrom and eV) are an error.
    A structure store (``*.lmdb`` of ``mpnn data convert``, Angstrom and eV) is read record by record.
    """
    from mpnn.data.atoms import atoms_to_molecule, check_elements, is_input_data, read_structures
    from mpnn.data.store import is_store_path

    if is_store_path(path):
        return _read_store(path, forces=forces, elements=elements, units=units)
    if tuple(units) != (1.0, 1.0) and not is_input_data(path):
        raise DataError(
            f"{path}: --units applies to n2p2 input.data files; this file is read in ASE's units "
            "(Angstrom, eV)"
        )
    structures = read_structures(path, units=(float(units[0]), float(units[1])))
    if not structures:
        raise DataError(f"{path}: no structures")
    if elements is not None:
        check_elements(structures, elements, str(path))
    molecules = []
    for k, atoms in enumerate(structures):
        m = atoms_to_molecule(atoms, name=f"{path}:{k}")
        if m.y is None:
            raise DataError(f"{path}: structure {k} has no energy")
        if forces and m.forces is None:
            raise DataError(
                f"{path}: structure {k} has no forces (train on energies alone with --force-weight 0)"
            )
        if not (torch.isfinite(m.y).all() and (m.forces is None or torch.isfinite(m.forces).all())):
            raise DataError(f"{path}: structure {k} has a non-finite energy or force")
        molecules.append(m)
    return molecules


def _read_store(
    path: str, *, forces: bool, elements: Sequence[int] | None, units: Sequence[float]
) -> list[Molecule]:
    """The structures of a store with energies (eV), checked as :func:`read_set` checks a file's."""
    from mpnn.train.potential_stream import open_energy_store

    store = open_energy_store(path, forces=forces, units=units)
    molecules = []
    allowed = None if elements is None else {int(z) for z in elements}
    for k in range(len(store)):
        m = store[k]
        if allowed is not None and not set(m.z.tolist()) <= allowed:
            extra = sorted(set(m.z.tolist()) - allowed)
            raise DataError(f"{path}: structure {k} has elements {extra} that the training data do not have")
        if not forces:
            m = dataclasses.replace(m, forces=None)
        if not (torch.isfinite(m.y).all() and (m.forces is None or torch.isfinite(m.forces).all())):
            raise DataError(f"{path}: structure {k} has a non-finite energy or force")
        molecules.append(m)
    store.close()
    return molecules


def split_indices(count: int, fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Random training and validation indices; at least one structure in each."""
    valid = int(round(fraction * count))
    if not 0 < fraction < 1 or valid < 1 or valid >= count:
        raise DataError(f"--valid {fraction}: cannot hold out that fraction of {count} structures")
    order = np.random.default_rng([seed, 1]).permutation(count)
    return {"train": np.sort(order[valid:]), "valid": np.sort(order[:valid])}


def _data_files(spec: PotentialSpec) -> dict[str, str]:
    """Role (``train``, ``valid``, ``test``, ``input_nn``) -> data file of ``spec``."""
    files = {"train": spec.train, "valid": spec.valid, "test": spec.test, "input_nn": spec.input_nn}
    return {role: path for role, path in files.items() if isinstance(path, str)}


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:
        raise DataError(f"{path}: cannot read: {error.strerror or error}") from None
    return digest.hexdigest()


def data_hashes(spec: PotentialSpec) -> dict[str, str]:
    """Role -> SHA-256 of each data file of ``spec``, stored in ``config.json`` (``data.sha256``)."""
    from mpnn.data.atoms import require_regular_file

    hashes = {}
    for role, path in _data_files(spec).items():
        require_regular_file(path)
        hashes[role] = file_sha256(path)
    return hashes


def check_data_hashes(config_path: Path, spec: PotentialSpec, hashes: dict[str, str]) -> None:
    """Refuse to resume the run of ``config_path`` on data files whose content changed since it
    started (its split, scaling and energy offsets belong to the old data); runs recorded before
    the hashes were stored resume unchecked."""
    config = load_json(config_path)
    data = config.get("data") if isinstance(config, dict) else None
    stored = data.get("sha256") if isinstance(data, dict) else None
    if not isinstance(stored, dict):
        return
    files = _data_files(spec)
    for role, digest in stored.items():
        if role in hashes and digest != hashes[role]:
            if role == "input_nn":
                raise DataError(
                    f"{files[role]}: this input.nn changed since the run in {config_path.parent} started "
                    "(the run's model was built from the old one); train into a new folder"
                )
            raise DataError(
                f"{files[role]}: the {role} data changed since the run in {config_path.parent} started "
                "(its split, scaling and energy offsets belong to the old data); train into a new folder"
            )
