"""`MoleculeSet`: many molecules stored flat (:func:`mpnn.data.qm9_build.build_qm9` makes one of QM9).

M molecules with N atoms and Nb bonds in total, F node features, K targets:

==============  ============  =======  =====================================================
field           shape         dtype    meaning
==============  ============  =======  =====================================================
``z``           (N,)          int64    atomic numbers
``pos``         (N, 3)        float64  positions, Angstrom
``x``           (N, F)        float32  node features (F may be 0)
``atom_ptr``    (M + 1,)      int64    atoms of molecule i are ``atom_ptr[i]:atom_ptr[i+1]``
``bonds``       (Nb, 2)       int64    bonded atom pairs, indices local to their molecule
``bond_type``   (Nb,)         int64    index into :data:`mpnn.batch.BOND_TYPES`
``bond_ptr``    (M + 1,)      int64    bonds of molecule i are ``bond_ptr[i]:bond_ptr[i+1]``
``y``           (M, K)        float64  targets, named by ``target_names``
``ids``         (M,)          int64    source indices (QM9: the number in the file name)
==============  ============  =======  =====================================================
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mpnn.batch import Molecule
from mpnn.errors import DataError
from mpnn.files import atomic_write

#: Version of the saved layout; files of another version are rebuilt, never misread.
FORMAT_VERSION = 1
FORMAT_NAME = "mpnn.MoleculeSet"
_TENSORS = ("z", "pos", "x", "atom_ptr", "bonds", "bond_type", "bond_ptr", "y", "ids")
_DTYPES = {
    "z": torch.int64,
    "pos": torch.float64,
    "x": torch.float32,
    "atom_ptr": torch.int64,
    "bonds": torch.int64,
    "bond_type": torch.int64,
    "bond_ptr": torch.int64,
    "y": torch.float64,
    "ids": torch.int64,
}


@dataclass(eq=False)
class MoleculeSet:
    """M molecules as concatenated tensors (fields in the module docstring).

    ``name_format`` makes :attr:`Molecule.name` from the id (QM9: ``"dsgdb9nsd_{:06d}"``);
    ``failures`` lists ``(id, reason)`` of the source molecules left out because they could not
    be featurised; ``meta`` holds plain provenance values (str, int, float).
    """

    z: Tensor
    pos: Tensor
    x: Tensor
    atom_ptr: Tensor
    bonds: Tensor
    bond_type: Tensor
    bond_ptr: Tensor
    y: Tensor
    ids: Tensor
    target_names: list[str]
    name_format: str = "{}"
    failures: list[tuple[int, str]] = field(default_factory=list)
    meta: dict[str, str | int | float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in _TENSORS:
            value = getattr(self, name)
            if not isinstance(value, Tensor) or value.dtype != _DTYPES[name]:
                raise DataError(f"MoleculeSet.{name}: expected a {_DTYPES[name]} tensor")
        m, n, nb = len(self.ids), len(self.z), len(self.bond_type)
        checks = {
            "pos": self.pos.shape == (n, 3),
            "x": self.x.dim() == 2 and len(self.x) == n,
            "atom_ptr": self._ptr_ok(self.atom_ptr, m, n),
            "bonds": self.bonds.shape == (nb, 2),
            "bond_ptr": self._ptr_ok(self.bond_ptr, m, nb),
            "y": self.y.shape == (m, len(self.target_names)),
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise DataError(f"MoleculeSet: inconsistent shapes of {', '.join(bad)}")
        self._atom_bounds = self.atom_ptr.tolist()  # plain ints: fast __getitem__
        self._bond_bounds = self.bond_ptr.tolist()

    @staticmethod
    def _ptr_ok(ptr: Tensor, m: int, total: int) -> bool:
        return (
            ptr.shape == (m + 1,)
            and int(ptr[0]) == 0
            and int(ptr[-1]) == total
            and bool((ptr[1:] >= ptr[:-1]).all())
        )

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __repr__(self) -> str:
        return (
            f"MoleculeSet({len(self)} molecules, {self.num_atoms} atoms, "
            f"{self.x.shape[1]} node features, targets {self.target_names})"
        )

    @property
    def num_atoms(self) -> int:
        """N, the total number of atoms."""
        return int(self.z.shape[0])

    def __getitem__(self, i: int) -> Molecule:
        """Molecule ``i`` (negative counts from the end); tensors are views into the set."""
        i = operator.index(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"MoleculeSet index {i} out of range for {len(self)} molecules")
        i %= len(self)
        a0, a1 = self._atom_bounds[i], self._atom_bounds[i + 1]
        b0, b1 = self._bond_bounds[i], self._bond_bounds[i + 1]
        return Molecule(
            z=self.z[a0:a1],
            pos=self.pos[a0:a1],
            x=self.x[a0:a1],
            bonds=self.bonds[b0:b1],
            bond_type=self.bond_type[b0:b1],
            y=self.y[i],
            name=self.name(i),
        )

    def name(self, i: int) -> str:
        """The name of molecule ``i``, made from its id by ``name_format``."""
        return self.name_format.format(int(self.ids[i]))

    def subset(self, indices: Sequence[int] | np.ndarray | Tensor) -> MoleculeSet:
        """The molecules at ``indices`` (ints, negative allowed; or a boolean mask), in order."""
        idx = torch.as_tensor(np.asarray(indices) if not isinstance(indices, Tensor) else indices)
        if idx.dtype == torch.bool:
            idx = torch.nonzero(idx).flatten()
        idx = idx.to(torch.int64).flatten()
        if idx.numel() and not bool(((idx >= -len(self)) & (idx < len(self))).all()):
            raise IndexError(f"MoleculeSet.subset: index out of range for {len(self)} molecules")
        idx = idx % max(len(self), 1)
        atoms, atom_ptr = _gather_segments(self.atom_ptr, idx)
        bonds, bond_ptr = _gather_segments(self.bond_ptr, idx)
        return MoleculeSet(
            z=self.z[atoms],
            pos=self.pos[atoms],
            x=self.x[atoms],
            atom_ptr=atom_ptr,
            bonds=self.bonds[bonds],
            bond_type=self.bond_type[bonds],
            bond_ptr=bond_ptr,
            y=self.y[idx],
            ids=self.ids[idx],
            target_names=list(self.target_names),
            name_format=self.name_format,
            failures=list(self.failures),
            meta=dict(self.meta),
        )

    def select_targets(self, names: Sequence[str]) -> MoleculeSet:
        """The same molecules with only the targets ``names`` (in that order) in ``y``."""
        missing = [n for n in names if n not in self.target_names]
        if missing:
            raise KeyError(f"unknown targets {missing}; have {self.target_names}")
        cols = [self.target_names.index(n) for n in names]
        return MoleculeSet(**{**self._fields(), "y": self.y[:, cols], "target_names": list(names)})

    def _fields(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}

    def save(self, path: str | PathLike[str]) -> None:
        """Write a plain dict of tensors, lists and strings with :func:`torch.save`, atomically."""
        payload = {name: getattr(self, name) for name in _TENSORS}
        payload.update(
            format=FORMAT_NAME,
            version=FORMAT_VERSION,
            target_names=list(self.target_names),
            name_format=self.name_format,
            meta=dict(self.meta),
            failures=[[int(i), str(reason)] for i, reason in self.failures],
        )
        atomic_write(Path(path), lambda tmp: torch.save(payload, tmp))

    @classmethod
    def load(cls, path: str | PathLike[str]) -> MoleculeSet:
        """Read a file written by :meth:`save` (``torch.load(weights_only=True)``: no code runs)."""
        path = Path(path)
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # any unreadable file (truncated, foreign pickle) is a data error
            raise DataError(f"{path}: not a readable MoleculeSet file ({e})") from None
        if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
            raise DataError(f"{path}: not a MoleculeSet file")
        if payload.get("version") != FORMAT_VERSION:
            raise DataError(
                f"{path}: MoleculeSet format {payload.get('version')}, this version reads {FORMAT_VERSION}"
            )
        return cls(
            **{name: payload[name] for name in _TENSORS},
            target_names=list(payload["target_names"]),
            name_format=payload["name_format"],
            failures=[(int(i), str(r)) for i, r in payload["failures"]],
            meta=payload["meta"],
        )


def _gather_segments(ptr: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
    """Element indices of segments ``idx`` of a ptr layout, concatenated, and their new ptr."""
    starts = ptr[idx]
    counts = ptr[idx + 1] - starts
    new_ptr = torch.zeros(len(idx) + 1, dtype=torch.int64)
    new_ptr[1:] = torch.cumsum(counts, 0)
    shift = torch.repeat_interleave(starts - new_ptr[:-1], counts)
    return torch.arange(int(new_ptr[-1])) + shift, new_ptr


def from_arrays(
    parts: Sequence[tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    target_names: Sequence[str],
    **kwargs,
) -> MoleculeSet:
    """A :class:`MoleculeSet` from per-molecule ``(id, z, pos, x, bonds, bond_type, y)`` arrays."""
    if not parts:
        raise DataError("MoleculeSet: no molecules")
    ids, z, pos, x, bonds, bond_type, y = zip(*parts, strict=True)

    def ptr(sizes: list[int]) -> Tensor:
        return torch.from_numpy(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))

    def cat(arrays: tuple[np.ndarray, ...], dtype: torch.dtype) -> Tensor:
        return torch.from_numpy(np.concatenate(arrays)).to(dtype)

    return MoleculeSet(
        z=cat(z, torch.int64),
        pos=cat(pos, torch.float64),
        x=cat(x, torch.float32),
        atom_ptr=ptr([len(a) for a in z]),
        bonds=cat([b.reshape(-1, 2) for b in bonds], torch.int64),
        bond_type=cat(bond_type, torch.int64),
        bond_ptr=ptr([len(b) for b in bond_type]),
        y=torch.from_numpy(np.stack(y).astype(np.float64)),
        ids=torch.tensor(ids, dtype=torch.int64),
        target_names=list(target_names),
        **kwargs,
    )
