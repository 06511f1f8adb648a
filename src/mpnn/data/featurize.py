"""Atom features and chemical bonds of one molecule (Gilmer et al. 2017, Table 1).

:func:`featurize_molecule` maps element symbols, positions (Angstrom) and optional SMILES to
node features and bonds, rows in the input atom order. :attr:`Featurized.bond_source` says
where the bonds came from:

``"smiles"``: an H-explicit SMILES template whose graph is isomorphic, element by element,
    to the geometry's: the ``nb`` atom pairs (``nb`` = template bonds) of smallest
    ``d_ij / (r_i + r_j)`` (covalent radii), a ratio that must be at most
    :data:`BOND_RATIO_MAX` for every bond and at least :data:`NONBOND_RATIO_MIN` for every
    other pair. Bond orders, aromaticity and charges are the template's.
``"smiles+geometry"``: no candidate is a usable closed-shell Lewis structure, but one fits by
    connectivity (e.g. an Open Babel SMILES with radicals where a double bond was lost, or a
    neutral four-valent N): its connectivity, with orders from valences (RDKit
    ``DetermineBondOrders``).
``"geometry"``: no SMILES. Pairs within ``BOND_RATIO_MAX * (r_i + r_j)``, shortest ratio
    first, while both atoms have fewer than :data:`MAX_BONDS` bonds (this drops e.g. the
    1.88 Angstrom bridgehead contact of bicyclo[1.1.1]pentane); orders from valences
    (neutral molecule).

With formal charges, the resonance structure whose orders best fit the bond lengths is kept
(:func:`_fit_resonance`; e.g. which carboxylate O is double-bonded). Acceptor and donor flags
come from RDKit's feature factory with ``BaseFeatures.fdef`` on the H-explicit molecule.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rdkit import Chem, RDConfig, rdBase
from rdkit.Chem import ChemicalFeatures, rdDetermineBonds

from mpnn.batch import BOND_TYPES
from mpnn.errors import FeaturizationError

#: Elements that the one-hot type feature encodes (the QM9 elements).
ELEMENTS = ("H", "C", "N", "O", "F")

#: Names of the columns of :attr:`Featurized.x`, in order (Gilmer et al. 2017, Table 1).
NODE_FEATURES = (
    "H", "C", "N", "O", "F",
    "atomic_number", "acceptor", "donor", "aromatic",
    "sp", "sp2", "sp3",
    "num_hs",
)  # fmt: skip

#: Most atoms (hydrogens included) of one molecule a property model reads. QM9 molecules have at
#: most 29; property models use a complete graph (N^2 edges), so 1,000 atoms take gigabytes.
#: Checked before featurising (:func:`check_atom_count`).
MAX_ATOMS = 500
#: Covalent radii in Angstrom (RDKit's periodic table, Cordero et al. 2008).
COVALENT_RADII = {"H": 0.31, "C": 0.76, "N": 0.71, "O": 0.66, "F": 0.57}
#: SMILES path: no bond may be longer than this many times the sum of covalent radii
#: (RDKit's default ``covFactor`` of ``DetermineConnectivity``).
BOND_RATIO_MAX = 1.3
#: SMILES path: no non-bonded pair may be closer than this many times the radii sum.
NONBOND_RATIO_MIN = 1.1
#: Geometry path: most bonds an atom may have (an ammonium N has four).
MAX_BONDS = {"H": 1, "C": 4, "N": 4, "O": 2, "F": 1}

#: Covalent radii (Angstrom) for bond orders 1, 2, 3 (Pyykko and Atsumi, Chem. Eur. J. 15,
#: 186 and 12770 (2009); Pyykko, Riedel and Patzschke, Chem. Eur. J. 11, 3511 (2005)).
BOND_ORDER_RADII = {"H": (0.32, 0.32, 0.32), "C": (0.75, 0.67, 0.60), "N": (0.71, 0.60, 0.54),
                    "O": (0.63, 0.57, 0.53), "F": (0.64, 0.59, 0.53)}  # fmt: skip
_RESONANCE_FLAGS = Chem.ALLOW_CHARGE_SEPARATION | Chem.KEKULE_ALL
_ATOMIC_NUMBER = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
_BOND_INDEX = {getattr(Chem.BondType, name.upper()): BOND_TYPES.index(name)
               for name in ("single", "double", "triple", "aromatic")}  # fmt: skip
_HYBRIDIZATION = {Chem.HybridizationType.SP: 9, Chem.HybridizationType.SP2: 10,
                  Chem.HybridizationType.SP3: 11}  # fmt: skip
_FACTORY: ChemicalFeatures.MolChemicalFeatureFactory | None = None


@dataclass(frozen=True)
class Featurized:
    """Features of one molecule; atom rows follow the input atom order.

    Attributes:
        x: (n, 13) float32 node features, columns named by :data:`NODE_FEATURES`.
        bonds: (nb, 2) int64 bonded atom pairs ``i < j``, sorted.
        bond_type: (nb,) int64 index into :data:`mpnn.batch.BOND_TYPES` (never "none").
        bond_source: ``"smiles"``, ``"smiles+geometry"`` or ``"geometry"`` (module docstring).
        smiles: the SMILES template used, or ``None`` for the geometry path.
    """

    x: np.ndarray
    bonds: np.ndarray
    bond_type: np.ndarray
    bond_source: str
    smiles: str | None = None


def feature_factory() -> ChemicalFeatures.MolChemicalFeatureFactory:
    """RDKit's feature factory for ``BaseFeatures.fdef``, built once per process."""
    global _FACTORY
    if _FACTORY is None:
        fdef = os.path.join(RDConfig.RDDataDir, "BaseFeatures.fdef")
        _FACTORY = ChemicalFeatures.BuildFeatureFactory(fdef)
    return _FACTORY


def check_atom_count(n: int) -> None:
    """Raise a :class:`FeaturizationError` if a molecule of ``n`` atoms exceeds :data:`MAX_ATOMS`."""
    if n > MAX_ATOMS:
        raise FeaturizationError(
            f"{n} atoms; property models take at most {MAX_ATOMS} (mpnn.data.featurize.MAX_ATOMS; "
            "QM9 molecules have at most 29); use a potential for large structures"
        )


def featurize_molecule(
    symbols: Sequence[str], positions: np.ndarray, smiles: str | Sequence[str] | None = None
) -> Featurized:
    """Node features and bonds of one molecule.

    Args:
        symbols: n element symbols, each one of :data:`ELEMENTS`.
        positions: (n, 3) Cartesian positions in Angstrom, same order as ``symbols``.
        smiles: a SMILES, or candidates tried in order (QM9: the B3LYP-geometry SMILES, then
            GDB-17's); ``None``: bonds from the geometry alone.

    Raises:
        FeaturizationError: unknown element, bad positions, no candidate SMILES that fits the
            geometry, or an RDKit failure; the message says which.
    """
    check_atom_count(len(symbols))
    symbols = [str(s) for s in symbols]
    for s in symbols:
        if s not in _ATOMIC_NUMBER:
            raise FeaturizationError(f"unknown element {s} (supported: {', '.join(ELEMENTS)})")
    pos = np.asarray(positions, dtype=np.float64)
    if pos.shape != (len(symbols), 3) or not symbols or not np.all(np.isfinite(pos)):
        raise FeaturizationError(f"positions must be finite, shape (n, 3) for {len(symbols)} "
                                 f"atoms (n > 0), not {pos.shape}")  # fmt: skip
    radii = np.array([COVALENT_RADII[s] for s in symbols])
    i, j = np.triu_indices(len(symbols), 1)
    ratio = np.linalg.norm(pos[i] - pos[j], axis=1) / (radii[i] + radii[j])
    order = np.argsort(ratio, kind="stable")
    pairs, ratio = np.stack([i[order], j[order]], axis=1), ratio[order]

    if smiles is None:
        mol = _bond_orders_from_valences(symbols, _geometry_bonds(symbols, pairs, ratio))
        mol = _fit_resonance(mol, pos)
        return _featurize(mol, None, "geometry", None)

    candidates = [smiles] if isinstance(smiles, str) else list(smiles)
    if not candidates:
        raise FeaturizationError("empty list of SMILES candidates")
    reasons, fallback = [], None
    for smi in candidates:
        try:
            template, problem = _parse_template(smi)
            match = _match_template(template, symbols, pairs, ratio)
        except FeaturizationError as err:
            reasons.append(f"{smi!r}: {err}")
            continue
        if problem is None:
            inverse = np.argsort(match)  # input atom of each template atom
            template = _fit_resonance(template, pos[inverse], inverse)
            return _featurize(template, match, "smiles", smi)
        reasons.append(f"{smi!r}: {problem}")
        fallback = fallback or (template, match, smi)
    if fallback is not None:  # connectivity fits, Lewis structure unusable: orders from valences
        template, match, smi = fallback
        ends = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in template.GetBonds()]
        bonds = np.argsort(match)[np.array(ends, dtype=np.int64).reshape(-1, 2)]
        charge = sum(a.GetFormalCharge() for a in template.GetAtoms())
        try:
            mol = _fit_resonance(_bond_orders_from_valences(symbols, bonds, charge), pos)
        except FeaturizationError as err:
            reasons.append(f"{smi!r} connectivity: {err}")
        else:
            return _featurize(mol, None, "smiles+geometry", smi)
    raise FeaturizationError("no SMILES fits the geometry: " + "; ".join(reasons))


def featurize_mol(mol: Chem.Mol, smiles: str | None = None) -> Featurized:
    """Features of a sanitised RDKit molecule whose hydrogens are atoms (``Chem.AddHs``).

    Rows follow ``mol``'s atom order; the features are computed as in :func:`featurize_molecule`
    (there on the template matched to the geometry). ``smiles`` is recorded as
    :attr:`Featurized.smiles`; :attr:`Featurized.bond_source` is ``"smiles"``.

    Raises:
        FeaturizationError: an element outside :data:`ELEMENTS`, a hydrogen that is not an
            atom of the graph, or an unsupported bond type.
    """
    check_atom_count(mol.GetNumAtoms())
    for k in range(mol.GetNumAtoms()):
        atom = mol.GetAtomWithIdx(k)
        if atom.GetSymbol() not in _ATOMIC_NUMBER:
            raise FeaturizationError(f"unknown element {atom.GetSymbol()} (supported: {', '.join(ELEMENTS)})")
        if atom.GetNumExplicitHs() or atom.GetNumImplicitHs():
            raise FeaturizationError(f"atom {k} ({atom.GetSymbol()}) has hydrogens that are not atoms "
                                     "(call Chem.AddHs first)")  # fmt: skip
    return _featurize(mol, None, "smiles", smiles)


def _parse_template(smi: str) -> tuple[Chem.Mol, str | None]:
    """H-explicit molecule of ``smi`` and why it is no usable closed-shell Lewis structure
    (None if it is); one that RDKit cannot sanitise is returned unsanitised, for its graph."""
    with rdBase.BlockLogs():  # failures are reported by the exception
        mol = Chem.MolFromSmiles(smi, sanitize=False)
        if mol is None:
            raise FeaturizationError("SMILES cannot be parsed")
        problem = None
        try:
            Chem.SanitizeMol(mol)
        except Exception as err:  # RDKit raises several exception types
            problem = f"RDKit sanitisation failed: {err}"
            mol = Chem.MolFromSmiles(smi, sanitize=False)
            mol.UpdatePropertyCache(strict=False)
        mol = Chem.AddHs(mol)
    radicals = (mol.GetAtomWithIdx(k).GetNumRadicalElectrons() for k in range(mol.GetNumAtoms()))
    if problem is None and any(radicals):
        problem = "SMILES has radical electrons"
    return mol, problem


def _match_template(mol: Chem.Mol, symbols: list[str], pairs: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """(n,) atom of the H-explicit template ``mol`` that is each input atom; ``pairs`` (P, 2):
    all atom pairs sorted by ``ratio`` (P,) = d / (r_i + r_j)."""
    n = mol.GetNumAtoms()
    if sorted(mol.GetAtomWithIdx(k).GetSymbol() for k in range(n)) != sorted(symbols):
        raise FeaturizationError("SMILES atoms differ from the elements of the geometry")
    nb, why = mol.GetNumBonds(), "SMILES connectivity differs from geometry"
    if nb > len(ratio) or (nb > 0 and ratio[nb - 1] > BOND_RATIO_MAX):
        raise FeaturizationError(f"{why} ({nb} bonds, fewer pairs within {BOND_RATIO_MAX} x radii)")
    if nb < len(ratio) and (ratio[nb] < NONBOND_RATIO_MIN or (nb and ratio[nb] == ratio[nb - 1])):
        raise FeaturizationError(f"{why} (more than {nb} pairs within {NONBOND_RATIO_MIN} x radii, "
                                 "or a tie at the bond cutoff)")  # fmt: skip
    # Query atoms carry only the element and query bonds are UNSPECIFIED (match any order);
    # with equal atom and bond counts a substructure match is a graph isomorphism.
    match = mol.GetSubstructMatch(_graph(symbols, pairs[:nb], Chem.BondType.UNSPECIFIED))
    if not match:
        raise FeaturizationError(why)
    return np.asarray(match, dtype=np.int64)


def _geometry_bonds(symbols: list[str], pairs: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """(nb, 2) bonds from the sorted ``pairs`` (P, 2) and ``ratio`` (P,): the covalent-radius
    rule with at most :data:`MAX_BONDS` bonds per atom, shortest (relative) bonds first."""
    free = [MAX_BONDS[s] for s in symbols]
    bonds = []
    for a, b in pairs[: int(np.searchsorted(ratio, BOND_RATIO_MAX))].tolist():
        if free[a] and free[b]:
            bonds.append((a, b))
            free[a] -= 1
            free[b] -= 1
    return np.array(bonds, dtype=np.int64).reshape(-1, 2)


def _graph(symbols: list[str], bonds: np.ndarray, bond_type: Chem.BondType) -> Chem.RWMol:
    """A molecule with the given atoms (no implicit H) and bonds (nb, 2), all of ``bond_type``."""
    mol = Chem.RWMol()
    for s in symbols:
        atom = Chem.Atom(_ATOMIC_NUMBER[s])
        atom.SetNoImplicit(True)
        mol.AddAtom(atom)
    for a, b in bonds.tolist():
        mol.AddBond(a, b, bond_type)
    return mol


def _bond_orders_from_valences(symbols: list[str], bonds: np.ndarray, charge: int = 0) -> Chem.Mol:
    """Molecule of total ``charge`` with connectivity ``bonds`` (nb, 2), orders from valences."""
    mol = _graph(symbols, bonds, Chem.BondType.SINGLE)
    try:
        with rdBase.BlockLogs():
            rdDetermineBonds.DetermineBondOrders(mol, charge=charge, embedChiral=False)
            Chem.SanitizeMol(mol)
    except Exception as err:  # RDKit raises ValueError and its own sanitisation errors
        raise FeaturizationError(f"RDKit bond-order assignment failed: {err}") from None
    return mol.GetMol()


def _fit_resonance(mol: Chem.Mol, pos: np.ndarray, index: np.ndarray | None = None) -> Chem.Mol:
    """The resonance structure of ``mol`` that best fits the bond lengths; ``mol`` if uncharged.

    ``pos`` (n, 3) Angstrom and ``index`` (n,) (input atom of each atom; default identity) are
    in ``mol``'s order. Candidates: ``mol`` and RDKit's resonance structures with no more
    charged atoms. Score: sum over heavy-atom bonds of (d - r_i(order) - r_j(order))^2, radii
    :data:`BOND_ORDER_RADII` (bonds aromatic in ``mol``: mean of single and double). Ties (to
    1e-6 Angstrom^2, e.g. a symmetric nitro group) go to higher orders on the bonds first in
    input order, so that the choice does not depend on ``mol``'s atom order.
    """
    n = mol.GetNumAtoms()
    charged = sum(mol.GetAtomWithIdx(k).GetFormalCharge() != 0 for k in range(n))
    if not charged or not mol.GetNumBonds():
        return mol
    index = np.arange(n) if index is None else index
    ends = np.array([(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()])
    z = np.array([mol.GetAtomWithIdx(k).GetAtomicNum() for k in range(n)])
    heavy = np.flatnonzero((z[ends[:, 0]] > 1) & (z[ends[:, 1]] > 1))
    ends = ends[heavy]
    length = np.linalg.norm(pos[ends[:, 0]] - pos[ends[:, 1]], axis=1)
    radii = np.array([BOND_ORDER_RADII[mol.GetAtomWithIdx(k).GetSymbol()] for k in range(n)])
    first, second = np.sort(index[ends], axis=1).T
    input_order = np.lexsort((second, first))
    # aromatic bonds stay 1.5 in every candidate (their Kekule forms are aromatised again)
    aromatic = np.array([mol.GetBondWithIdx(int(k)).GetIsAromatic() for k in heavy])
    best, best_key = mol, None
    with rdBase.BlockLogs():
        supplier = Chem.ResonanceMolSupplier(mol, _RESONANCE_FLAGS, maxStructs=256)
        for candidate in [mol, *supplier]:
            if candidate is None or charged < sum(
                    a.GetFormalCharge() != 0 for a in candidate.GetAtoms()):  # fmt: skip
                continue
            order = np.array([candidate.GetBondWithIdx(int(k)).GetBondTypeAsDouble()
                              for k in heavy])  # fmt: skip
            order[aromatic] = 1.5
            lo = np.clip(np.floor(order).astype(np.int64), 1, 3) - 1
            hi = np.clip(np.ceil(order).astype(np.int64), 1, 3) - 1
            ref = sum(0.5 * (radii[ends[:, e], lo] + radii[ends[:, e], hi]) for e in (0, 1))
            key = (round(float(np.sum((length - ref) ** 2)), 6), tuple(-order[input_order]))
            if best_key is None or key < best_key:
                best, best_key = candidate, key
    if best is mol:
        return mol
    best = Chem.Mol(best)
    try:
        Chem.SanitizeMol(best)
    except Exception:  # keep the structure we were given
        return mol
    return best


def _featurize(mol: Chem.Mol, match: np.ndarray | None, source: str, smi: str | None) -> Featurized:
    """Features of the sanitised H-explicit ``mol``; ``match[k]`` is the mol atom of atom k."""
    rows = []
    for k in range(mol.GetNumAtoms()):  # indexing is faster than RDKit's atom sequence
        atom = mol.GetAtomWithIdx(k)
        row = [0.0] * len(NODE_FEATURES)
        row[ELEMENTS.index(atom.GetSymbol())] = 1.0
        row[5] = atom.GetAtomicNum()
        row[8] = float(atom.GetIsAromatic())
        hyb = _HYBRIDIZATION.get(atom.GetHybridization())
        if hyb is not None:
            row[hyb] = 1.0
        row[12] = atom.GetTotalNumHs(includeNeighbors=True)
        rows.append(row)
    x = np.array(rows, dtype=np.float32)
    factory = feature_factory()
    for column, family in ((6, "Acceptor"), (7, "Donor")):
        for feat in factory.GetFeaturesForMol(mol, includeOnly=family):
            x[list(feat.GetAtomIds()), column] = 1.0
    edges = []
    for k in range(mol.GetNumBonds()):
        bond = mol.GetBondWithIdx(k)
        kind = _BOND_INDEX.get(bond.GetBondType())
        if kind is None:
            raise FeaturizationError(f"unsupported bond type {bond.GetBondType()}")
        edges.append((bond.GetBeginAtomIdx(), bond.GetEndAtomIdx(), kind))
    table = np.array(edges, dtype=np.int64).reshape(-1, 3)
    bonds, bond_type = table[:, :2], table[:, 2]
    if match is not None:  # template order -> input order
        x = x[match]
        bonds = np.argsort(match)[bonds]
    bonds.sort(axis=1)
    order = np.lexsort((bonds[:, 1], bonds[:, 0]))
    return Featurized(x, bonds[order], bond_type[order], source, smi)
