"""The bytes of one structure in a :class:`~mpnn.data.store.StructureStore`: encoded, checked, decoded.

A record is a fixed header, one 16-byte entry per array, then the arrays' raw little-endian bytes,
each starting at a multiple of 8 bytes (zero padding between them). Nothing is pickled: a record
holds only numbers, so reading an untrusted file runs no code.

==========  =====  ==========================================================================
offset      bytes  content
==========  =====  ==========================================================================
0           4      magic ``b"MPS1"`` (record layout version 1)
4           2      number of arrays A (uint16, at most one per field)
6           2      zero
8           4      CRC-32 (:func:`zlib.crc32`) of the payload
12          4      payload length in bytes (uint32)
16          16·A   per array: field code, dtype code, ndim (uint8 each), zero, then 3 uint32 dims
16 + 16·A   ...    payload: the arrays in entry order
==========  =====  ==========================================================================

Fields (n atoms, nb bonds, F node features, K targets; F and K come from the store's metadata) and
how they are stored; reading gives back the dtypes of :class:`mpnn.batch.Molecule`:

=============  =====  =========  =============  ===============================================
field          code   shape      stored as      read as
=============  =====  =========  =============  ===============================================
``z``          0      (n,)       uint8          int64 atomic numbers, 1..118
``pos``        1      (n, 3)     float64        float64, Angstrom
``x``          2      (n, F)     float32 or 64  the same dtype (node features)
``bonds``      3      (nb, 2)    int32          int64 atom pairs, each index in [0, n)
``bond_type``  4      (nb,)      uint8          int64 index into :data:`mpnn.batch.BOND_TYPES`
``y``          5      (K,)       float64        float64 targets, in the store's target units
``name``       6      (L,)       uint8          UTF-8 text, at most :data:`MAX_NAME_BYTES`
``cell``       7      (3, 3)     float64        float64 cell rows, Angstrom
``pbc``        8      (3,)       bool           bool periodic directions
``forces``     9      (n, 3)     float64        float64, eV/Angstrom
=============  =====  =========  =============  ===============================================

Reading checks, before any array is made: the magic, the entry count, every code, dtype and
shape against the table (declared sizes must add up to the payload length exactly, so nothing
larger than the record is ever allocated), the CRC, and then the values that index other arrays
(bond indices, bond types, atomic numbers, pbc flags). Any failure is a :class:`RecordError`.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Collection

import numpy as np
import torch

from mpnn.batch import BOND_TYPES, Molecule

MAGIC = b"MPS1"
#: Longest name of a structure (bytes of UTF-8).
MAX_NAME_BYTES = 4096
FIELDS = ("z", "pos", "x", "bonds", "bond_type", "y", "name", "cell", "pbc", "forces")
#: Fields every record has.
REQUIRED = ("z", "pos", "x", "bonds", "bond_type", "name")
_DTYPES = {1: np.uint8, 2: np.int32, 3: np.int64, 4: np.float32, 5: np.float64, 6: np.bool_}
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}
#: The dtypes each field may be stored as.
_STORED = {
    "z": (np.uint8,),
    "pos": (np.float64,),
    "x": (np.float32, np.float64),
    "bonds": (np.int32,),
    "bond_type": (np.uint8,),
    "y": (np.float64,),
    "name": (np.uint8,),
    "cell": (np.float64,),
    "pbc": (np.bool_,),
    "forces": (np.float64,),
}
_HEADER = struct.Struct("<4sHHII")
_ENTRY = struct.Struct("<BBBx3I")


class RecordError(ValueError):
    """A record that is not a valid structure; the store adds the file and the record index."""


def _shapes(n: int, nb: int, features: int, targets: int, name: int) -> dict[str, tuple[int, ...]]:
    return {
        "z": (n,),
        "pos": (n, 3),
        "x": (n, features),
        "bonds": (nb, 2),
        "bond_type": (nb,),
        "y": (targets,),
        "name": (name,),
        "cell": (3, 3),
        "pbc": (3,),
        "forces": (n, 3),
    }


def _pad(size: int) -> int:
    return -size % 8


def encode(molecule: Molecule) -> bytes:
    """The record of ``molecule`` (see the module docstring); ``y``, ``cell``, ``pbc`` and
    ``forces`` are stored when they are not ``None``.

    Raises:
        RecordError: a shape, dtype or value that the format cannot hold (a bond index outside the
            structure, an atomic number outside 1..118, a name longer than :data:`MAX_NAME_BYTES`).
    """
    arrays = {key: _numpy(getattr(molecule, key)) for key in FIELDS if key != "name"}
    arrays = {key: value for key, value in arrays.items() if value is not None}
    arrays["name"] = np.frombuffer(molecule.name.encode("utf-8"), dtype=np.uint8)
    x, bonds = arrays["x"], arrays["bonds"]
    n = arrays["z"].shape[0] if arrays["z"].ndim == 1 else -1
    nb = bonds.shape[0] if bonds.ndim == 2 else -1
    features = x.shape[1] if x.ndim == 2 else -1
    expected = _shapes(n, nb, features, arrays["y"].size if "y" in arrays else 0, arrays["name"].size)
    for key, value in arrays.items():
        if value.shape != expected[key]:
            raise RecordError(f"{key}: shape {tuple(value.shape)}, expected {expected[key]}")
    if x.dtype not in (np.float32, np.float64):
        raise RecordError(f"x: dtype {x.dtype}, expected float32 or float64")
    _check_values(arrays, n)
    parts, entries = [], []
    for code, key in enumerate(FIELDS):
        if key not in arrays:
            continue
        dtype = np.dtype(x.dtype if key == "x" else _STORED[key][0])
        value = np.ascontiguousarray(arrays[key], dtype=dtype.newbyteorder("<"))
        entries.append(_ENTRY.pack(code, _CODES[dtype], value.ndim, *[*value.shape, 0, 0][:3]))
        data = value.tobytes()
        parts.append(data + bytes(_pad(len(data))))
    payload = b"".join(parts)
    header = _HEADER.pack(MAGIC, len(entries), 0, zlib.crc32(payload), len(payload))
    return header + b"".join(entries) + payload


def _numpy(value: object) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _check_values(arrays: dict[str, np.ndarray], n: int) -> None:
    """Raise :class:`RecordError` for values that would make a record unreadable or unsafe."""
    z, bonds, bond_type = arrays["z"], arrays["bonds"], arrays["bond_type"]
    if any(a.dtype.kind not in "iu" for a in (z, bonds, bond_type)):
        raise RecordError("z, bonds and bond_type must be integers")
    if n >= 2**31:
        raise RecordError(f"{n} atoms; a record holds fewer than 2**31")
    if n and (int(z.min()) < 1 or int(z.max()) > 118):
        raise RecordError("z: atomic numbers must be in 1..118")
    if bonds.size and (int(bonds.min()) < 0 or int(bonds.max()) >= n):
        raise RecordError(f"bonds: an atom index outside 0..{n - 1}")
    if bond_type.size and (int(bond_type.min()) < 0 or int(bond_type.max()) >= len(BOND_TYPES)):
        raise RecordError(f"bond_type: a value outside 0..{len(BOND_TYPES) - 1}")
    if arrays["name"].size > MAX_NAME_BYTES:
        raise RecordError(f"name: {arrays['name'].size} bytes, at most {MAX_NAME_BYTES}")
    for key in ("pos", "y", "cell", "forces"):
        if key in arrays and arrays[key].dtype.kind != "f":
            raise RecordError(f"{key}: dtype {arrays[key].dtype}, expected floating point")


def decode(
    record: bytes | memoryview, features: int, targets: int, fields: Collection[str] | None = None
) -> dict[str, np.ndarray]:
    """The arrays of a record (read dtypes of the module docstring), each a new array.

    Args:
        record: the bytes of :func:`encode`.
        features: F, the width of ``x`` every record of the store has.
        targets: K, the length of ``y`` (when a record has it).
        fields: decode only these (all are still checked); None: every field of the record.

    Raises:
        RecordError: anything that does not match the format.
    """
    view = memoryview(record)
    if len(view) < _HEADER.size:
        raise RecordError(f"{len(view)} bytes, shorter than the header")
    magic, count, zero, crc, size = _HEADER.unpack_from(view)
    if magic != MAGIC:
        raise RecordError(f"bad magic {bytes(magic)!r}, expected {MAGIC!r}")
    if not 0 < count <= len(FIELDS) or zero:
        raise RecordError(f"bad header ({count} arrays)")
    start = _HEADER.size + _ENTRY.size * count
    if len(view) != start + size:
        raise RecordError(f"{len(view)} bytes, the header declares {start + size}")
    layout = _layout(view, count, features, targets, size)
    payload = view[start:]
    if zlib.crc32(payload) != crc:
        raise RecordError("checksum mismatch (the record's bytes changed)")
    wanted = set(FIELDS if fields is None else fields) | {"z", "bonds", "bond_type", "pbc"}
    arrays = {}
    for key, (dtype, shape, offset) in layout.items():
        if key in wanted:  # a copy in native byte order: nothing refers to the record afterwards
            count = math.prod(shape)
            raw = np.frombuffer(payload, np.dtype(dtype).newbyteorder("<"), count, offset)
            arrays[key] = raw.reshape(shape).astype(dtype)
    _check_decoded(arrays)
    if "name" in arrays:
        try:
            bytes(arrays["name"]).decode("utf-8")
        except UnicodeDecodeError:
            raise RecordError("name: not UTF-8") from None
    return {key: value for key, value in arrays.items() if fields is None or key in fields}


def _layout(
    view: memoryview, count: int, features: int, targets: int, size: int
) -> dict[str, tuple[type, tuple[int, ...], int]]:
    """``{field: (dtype, shape, payload offset)}`` from the entries, checked against each other."""
    entries = {}
    for k in range(count):
        code, dtype_code, ndim, *dims = _ENTRY.unpack_from(view, _HEADER.size + _ENTRY.size * k)
        if code >= len(FIELDS) or dtype_code not in _DTYPES or not 1 <= ndim <= 2 or any(dims[ndim:]):
            raise RecordError(f"bad entry {k} (field {code}, dtype {dtype_code}, ndim {ndim})")
        key = FIELDS[code]
        if key in entries:
            raise RecordError(f"field {key} twice")
        if _DTYPES[dtype_code] not in _STORED[key]:
            raise RecordError(f"{key}: stored as {np.dtype(_DTYPES[dtype_code])}")
        entries[key] = (_DTYPES[dtype_code], tuple(dims[:ndim]))
    missing = [key for key in REQUIRED if key not in entries]
    if missing:
        raise RecordError(f"no {', '.join(missing)}")
    n = entries["z"][1][0]
    nb = entries["bonds"][1][0]
    name = entries["name"][1][0]
    expected = _shapes(n, nb, features, targets, name)
    layout, offset = {}, 0
    for key, (dtype, shape) in entries.items():
        if shape != expected[key]:
            raise RecordError(f"{key}: shape {shape}, expected {expected[key]}")
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        layout[key] = (dtype, shape, offset)
        offset += nbytes + _pad(nbytes)
        if offset > size:  # checked as it grows: nothing past the record is ever addressed
            raise RecordError(f"the arrays declare more than the {size} payload bytes")
    if offset != size:
        raise RecordError(f"the arrays declare {offset} bytes, the payload has {size}")
    if name > MAX_NAME_BYTES:
        raise RecordError(f"name of {name} bytes")
    return layout


def _check_decoded(arrays: dict[str, np.ndarray]) -> None:
    z, bonds, bond_type = arrays["z"], arrays["bonds"], arrays["bond_type"]
    n = len(z)
    if n and (int(z.min()) < 1 or int(z.max()) > 118):
        raise RecordError("z: an atomic number outside 1..118")
    if bonds.size and (int(bonds.min()) < 0 or int(bonds.max()) >= n):
        raise RecordError(f"bonds: an atom index outside 0..{n - 1}")
    if bond_type.size and int(bond_type.max()) >= len(BOND_TYPES):
        raise RecordError(f"bond_type: a value outside 0..{len(BOND_TYPES) - 1}")
    if "pbc" in arrays and not np.isin(arrays["pbc"].view(np.uint8), (0, 1)).all():
        raise RecordError("pbc: a flag that is neither 0 nor 1")


def to_molecule(arrays: dict[str, np.ndarray]) -> Molecule:
    """A :class:`Molecule` of decoded arrays (integers widened to int64)."""

    def optional(key: str) -> torch.Tensor | None:
        return torch.from_numpy(arrays[key]) if key in arrays else None

    return Molecule(
        z=torch.from_numpy(arrays["z"].astype(np.int64)),
        pos=torch.from_numpy(arrays["pos"]),
        x=torch.from_numpy(arrays["x"]),
        bonds=torch.from_numpy(arrays["bonds"].astype(np.int64)),
        bond_type=torch.from_numpy(arrays["bond_type"].astype(np.int64)),
        y=optional("y"),
        name=bytes(arrays["name"]).decode("utf-8"),
        cell=optional("cell"),
        pbc=optional("pbc"),
        forces=optional("forces"),
    )
