"""Topology-only input: molecules from SMILES strings and SMILES files (RDKit).

A SMILES gives the chemical graph and no geometry. :func:`molecule_from_smiles` makes every
hydrogen an atom (``Chem.AddHs``; atom order: the SMILES's atoms, then the added hydrogens)
and computes the 13 node features of Gilmer et al. (2017), Table 1, exactly as the QM9
featurisation does (:func:`mpnn.data.featurize.featurize_mol`, the same RDKit perception of
aromaticity, hybridisation, donors and acceptors), with the bonds and their types
(:data:`mpnn.batch.BOND_TYPES`). Graph inputs are therefore the same as those of the QM9 file
of the same molecule, up to atom order (a QM9 charged molecule may differ in which resonance
structure is used: there, the one that best fits the bond lengths).

Positions are absent: ``pos`` is an (n, 3) tensor of zeros (finite, so nothing downstream turns
into NaN, but meaningless). Only models that do not read positions
(:attr:`mpnn.models.PropertyModel.positions` is False) may be given these molecules;
``mpnn predict`` refuses the others.

SMILES files (:func:`read_smiles_file`; suffix ``.smi`` or ``.smiles``, :data:`SMILES_SUFFIXES`),
UTF-8, one molecule per line::

    # a comment: the first non-blank character is '#'
    CCO ethanol
    OC(=O)C acetic acid
    # benzene, unnamed (its name is then the SMILES):
    c1ccccc1

The SMILES is the first whitespace-separated field; the rest of the line, if any, is the name.
A '#' elsewhere is part of the SMILES (a triple bond) or of the name. Blank lines are skipped.
Only closed-shell molecules of the QM9 elements H, C, N, O, F are accepted, of at most
:data:`MAX_SMILES_LENGTH` characters and :data:`~mpnn.data.featurize.MAX_ATOMS` atoms.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import torch
from rdkit import Chem, rdBase

from mpnn.batch import Molecule
from mpnn.data.featurize import ELEMENTS, MAX_ATOMS, featurize_mol
from mpnn.errors import DataError

#: Longest SMILES (characters) parsed: :data:`~mpnn.data.featurize.MAX_ATOMS` atoms written with
#: brackets, charges and ring closures take well under this.
MAX_SMILES_LENGTH = 4000

#: File suffixes read as SMILES files (case-insensitive).
SMILES_SUFFIXES = (".smi", ".smiles")


def is_smiles_file(path: str | PathLike[str]) -> bool:
    """Whether ``path`` ends in one of :data:`SMILES_SUFFIXES`."""
    return Path(path).suffix.lower() in SMILES_SUFFIXES


def parse_smiles(smiles: str) -> Chem.Mol:
    """The sanitised RDKit molecule of ``smiles`` (hydrogens still implicit).

    Raises:
        DataError: the SMILES cannot be parsed or sanitised, has no atoms, contains an element
            other than H, C, N, O, F, or has radical electrons; the message quotes the SMILES.
    """
    if len(smiles) > MAX_SMILES_LENGTH:
        raise DataError(
            f"SMILES {smiles[:20]!r}... has {len(smiles)} characters; at most {MAX_SMILES_LENGTH} "
            "(mpnn.data.smiles.MAX_SMILES_LENGTH)"
        )
    with rdBase.BlockLogs():  # RDKit's own log lines would break the one-line error
        mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        raise DataError(f"cannot parse SMILES {smiles!r}")
    if mol.GetNumAtoms() == 0:
        raise DataError(f"SMILES {smiles!r} has no atoms")
    for atom in mol.GetAtoms():
        if atom.GetSymbol() not in ELEMENTS:
            raise DataError(f"element {atom.GetSymbol()} of SMILES {smiles!r} is not supported "
                            f"(only {', '.join(ELEMENTS)})")  # fmt: skip
        if atom.GetNumRadicalElectrons():
            raise DataError(f"SMILES {smiles!r} has radical electrons (closed-shell molecules only)")
    atoms = mol.GetNumAtoms() + sum(atom.GetTotalNumHs() for atom in mol.GetAtoms())
    if atoms > MAX_ATOMS:
        raise DataError(
            f"SMILES {smiles[:20]!r}...: {atoms} atoms with hydrogens; property models take at most "
            f"{MAX_ATOMS} (mpnn.data.featurize.MAX_ATOMS; QM9 molecules have at most 29)"
        )
    return mol


def molecule_from_smiles(smiles: str, name: str = "") -> Molecule:
    """A :class:`~mpnn.batch.Molecule` with explicit hydrogens and zero positions (module docstring).

    Args:
        smiles: one SMILES (H, C, N, O, F; charges allowed, radicals not).
        name: the molecule's name (default: the SMILES).

    Returns:
        ``z`` (n,) int64, ``pos`` (n, 3) float64 zeros, ``x`` (n, 13) float32 (columns
        :data:`mpnn.data.featurize.NODE_FEATURES`), ``bonds`` (nb, 2) int64 ``i < j`` sorted,
        ``bond_type`` (nb,) int64, ``y`` None.

    Raises:
        DataError: as :func:`parse_smiles`, or a featurisation failure (message quotes the SMILES).
    """
    mol = Chem.AddHs(parse_smiles(smiles))
    try:
        features = featurize_mol(mol, smiles)
    except DataError as error:
        raise DataError(f"SMILES {smiles!r}: {error}") from None
    n = mol.GetNumAtoms()
    return Molecule(
        z=torch.tensor([mol.GetAtomWithIdx(k).GetAtomicNum() for k in range(n)], dtype=torch.int64),
        pos=torch.zeros(n, 3, dtype=torch.float64),
        x=torch.as_tensor(features.x),
        bonds=torch.as_tensor(features.bonds, dtype=torch.int64).reshape(-1, 2),
        bond_type=torch.as_tensor(features.bond_type, dtype=torch.int64),
        name=name or smiles,
    )


def read_smiles_file(path: str | PathLike[str]) -> list[tuple[str, str, int]]:
    """``(name, smiles, line)`` of every molecule of a SMILES file (format: module docstring).

    Every SMILES is parsed and checked (:func:`parse_smiles`); ``line`` is 1-based.

    Raises:
        DataError: the file cannot be read or holds no SMILES, or a SMILES is bad: ``"file:line: cannot parse
            SMILES 'xxx'"``, ``"file:line: element Cl of SMILES 'CCl' is not supported ..."``.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read: {error}") from None
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split(None, 1)
        if not fields or fields[0].startswith("#"):
            continue
        smiles = fields[0]
        try:
            parse_smiles(smiles)
        except DataError as error:
            raise DataError(f"{path}:{number}: {error}") from None
        name = fields[1].strip() if len(fields) > 1 else ""
        entries.append((name or smiles, smiles, number))
    if not entries:
        raise DataError(f"{path}: no SMILES in this file")
    return entries


def read_smiles_molecules(path: str | PathLike[str]) -> list[Molecule]:
    """The molecules of a SMILES file (:func:`molecule_from_smiles` of each entry, in file
    order); errors name the file and line."""
    molecules = []
    for name, smiles, number in read_smiles_file(path):
        try:
            molecules.append(molecule_from_smiles(smiles, name))
        except DataError as error:
            raise DataError(f"{path}:{number}: {error}") from None
    return molecules
