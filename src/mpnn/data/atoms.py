"""Structures from files (ASE formats, n2p2 ``input.data``) and into radius-graph batches.

Read -> validate -> convert -> collate::

    read_structures(path) -> list[ase.Atoms]             positions, cell in Angstrom, energy in eV
    atoms_to_molecule(atoms) -> Molecule                  z (n,), pos (n, 3) float64, y (1,) eV
    collate_structures(molecules, cutoff) -> Batch        edges j -> i with |r_ij| < cutoff

Units: every ASE-readable format is taken in ASE's units (Angstrom, eV, eV/Angstrom). An n2p2
``input.data`` file (named ``input.data*``, or whose first word is ``begin``) is in the units of
its potential; ``units = (Angstrom per length unit, eV per energy unit)`` converts it (``(Bohr,
Hartree)`` for a file in atomic units).

Validation (one-line :class:`~mpnn.errors.DataError` naming the file, the structure (0-based
index in the file) and the atom): no atoms, a non-finite position or cell, an atomic number outside
1..118, two atoms (or an atom and a periodic image of an atom) closer than 1e-8 Angstrom, a singular
cell in a periodic direction, a cell so small or thin that its neighbour list would be absurdly large
(:func:`mpnn.neighbors.check_size`); an (extended) XYZ frame whose count line declares more atoms
than the file has lines is refused before ASE reads it. Atoms closer than
:data:`mpnn.sanity.CLOSE_FRACTION` x the sum of their covalent radii get one
:class:`~mpnn.sanity.UnphysicalWarning` per file.

In a batch, the edge j -> i (``edge_index = [j, i]``) carries the integer cell shift S of the image
of j, so ``r_ij = pos[j] - pos[i] + S @ cell[batch[i]]`` (:func:`mpnn.inputs.edge_vectors`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np
from ase import Atoms

from mpnn.errors import DataError
from mpnn.sanity import close_atoms, warn_close_atoms

if TYPE_CHECKING:  # the readers and checks run without PyTorch; the batch builders import it
    from mpnn.batch import Batch, Molecule

#: Radius (Angstrom) of the neighbour search that finds atoms at the same position.
_CLOSE = 0.1
#: A compressed structure file may decompress to at most this many bytes (256 MiB, about two
#: million atoms of extended XYZ with forces) before ASE reads it.
MAX_DECOMPRESSED = 256 * 2**20
#: Largest speed |p| / m (Angstrom per ASE time unit, 10.18 fs) of an atom in a file: 1000 is
#: about 98 Angstrom/fs, 1e7 m/s; a hydrogen atom at 1e5 K moves at about 5.
MAX_SPEED = 1000.0

__all__ = [
    "atoms_to_molecule",
    "check_elements",
    "check_decompressed_size",
    "check_motion",
    "check_xyz_counts",
    "collate_structures",
    "is_input_data",
    "read_structures",
    "require_regular_file",
    "validate_atoms",
]


def is_input_data(path: str | Path) -> bool:
    """Whether ``path`` is an n2p2 ``input.data`` file: by its name, or its first word ``begin``."""
    path = Path(path)
    if path.name.startswith("input.data"):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    words = head.split(None, 1)
    return bool(words) and words[0] == b"begin"


def read_structures(
    path: str | Path,
    index: str | int | slice = ":",
    units: tuple[float, float] = (1.0, 1.0),
    cutoff: float | None = None,
) -> list[Atoms]:
    """Validated structures of a file (any format ASE reads, or n2p2 ``input.data``).

    Args:
        path: the file.
        index: which structures, in ASE's syntax (``":"`` all, ``-1`` the last, ``"2:8:2"``).
        units: (Angstrom, eV) per length and energy unit of an n2p2 ``input.data`` file; ignored for
            ASE's formats, which are in Angstrom and eV.
        cutoff: the model's cutoff (Angstrom): each structure's neighbour list at this radius is
            bounded (:func:`mpnn.neighbors.check_size`) with an error naming file and structure.

    Returns:
        ``ase.Atoms`` objects; energy and forces (eV, eV/Angstrom), when the file has them, are in
        ``atoms.calc`` (a ``SinglePointCalculator``).
    """
    path = Path(path)
    require_regular_file(path)
    selection = _index(index, path)
    if is_input_data(path):
        from mpnn.n2p2.input_data import read_input_data

        everything = read_input_data(path, length=units[0], energy=units[1])
        numbered = list(enumerate(everything))
        picked = numbered[selection] if isinstance(selection, slice) else [_pick(numbered, selection, path)]
    else:
        picked = _read_ase(path, index, selection)
    if not picked:
        raise DataError(f"{path}: no structure selected by index {index!r}")
    notes = []
    for k, atoms in picked:
        note = validate_atoms(atoms, f"{path}: structure {k}", cutoff)
        if note:
            notes.append((f"structure {k}", note))
    warn_close_atoms(notes, str(path))
    return [atoms for _, atoms in picked]


def require_regular_file(path: str | Path) -> None:
    """Raise a one-line :class:`DataError` unless ``path`` is a regular file (saying what it is:
    missing, a folder, or a device, FIFO or socket, which would block or read forever)."""
    from mpnn.files import check_regular_file

    check_regular_file(path, "a structure file")


def open_decompressed(path: str | Path) -> IO[bytes]:
    """``path`` opened for reading bytes, decompressed as ASE does (by the suffix ``.gz``, ``.bz2``
    or ``.xz``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".gz":
        import gzip

        return gzip.open(path, "rb")
    if suffix == ".bz2":
        import bz2

        return bz2.open(path, "rb")
    if suffix == ".xz":
        import lzma

        return lzma.open(path, "rb")
    return open(path, "rb")  # noqa: SIM115 (the caller closes it)


def check_decompressed_size(path: str | Path, limit: int | None = None) -> None:
    """Refuse a compressed file (``.gz``, ``.bz2``, ``.xz``) that decompresses to more than
    ``limit`` bytes (default :data:`MAX_DECOMPRESSED`), streaming through the decompressor in 1 MiB
    blocks (constant memory) before ASE reads it: a few kilobytes can hold gigabytes of text."""
    path = Path(path)
    limit = MAX_DECOMPRESSED if limit is None else limit
    if path.suffix.lower() not in (".gz", ".bz2", ".xz"):
        return
    total = 0
    try:
        with open_decompressed(path) as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                total += len(block)
                if total > limit:
                    raise DataError(
                        f"{path}: decompresses to more than {limit / 2**20:.0f} MiB "
                        f"(mpnn.data.atoms.MAX_DECOMPRESSED); decompress it yourself if it is real"
                    )
    except DataError:
        raise
    except Exception as error:  # OSError, EOFError, lzma.LZMAError, zlib.error
        raise DataError(f"{path}: cannot decompress: {' '.join(str(error).split())}") from None


def _index(index: str | int | slice, path: Path) -> int | slice:
    if isinstance(index, (int, slice)):
        return index
    try:
        return _string2index(str(index))
    except ValueError:
        raise DataError(f"{path}: bad structure index {index!r} (ASE syntax: ':', '-1', '2:8')") from None


def _string2index(text: str) -> int | slice | str:
    """ASE's ``ase.io.formats.string2index`` (without importing ``ase.io``, 0.7 s): ``"3"`` -> 3,
    ``"2:8:2"`` -> slice(2, 8, 2), anything else without a colon returned as it is."""
    if ":" not in text:
        try:
            return int(text)
        except ValueError:
            return text
    return slice(*[None if part == "" else int(part) for part in text.split(":")])


def _pick(numbered: list[tuple[int, Atoms]], k: int, path: Path) -> tuple[int, Atoms]:
    try:
        return numbered[k]
    except IndexError:
        raise DataError(f"{path}: no structure {k} (the file holds {len(numbered)})") from None


def _read_ase(path: Path, index: str | int | slice, selection: int | slice) -> list[tuple[int, Atoms]]:
    import ase.io
    from ase.io.formats import filetype

    try:
        kind = filetype(str(path))
    except Exception:  # an unknown format: ase.io.read below says so
        kind = None
    check_decompressed_size(path)
    starts = check_xyz_counts(path) if kind in ("xyz", "extxyz") else []
    try:
        if isinstance(selection, int):  # ASE wraps some negative indices and says StopIteration
            return [_one_structure(path, selection)]
        read = ase.io.read(path, index=index)
    except DataError:
        raise
    except MemoryError:
        raise DataError(f"{path}: cannot read with ASE: the file declares more than memory holds") from None
    except Exception as error:  # ASE raises many kinds (ValueError, KeyError, StopIteration, ...)
        text = " ".join(str(error).split()) or type(error).__name__
        where = _failing_frame(path, starts) if starts else ""
        raise DataError(f"{path}{where}: cannot read with ASE: {text}") from None
    if isinstance(read, Atoms):
        return [(selection if isinstance(selection, int) else 0, read)]
    if isinstance(selection, slice):
        first = selection.start or 0
        step = selection.step or 1
        if first >= 0 and step > 0:  # positions in the file, for error messages
            return [(first + step * k, atoms) for k, atoms in enumerate(read)]
    return list(enumerate(read))


def _failing_frame(path: Path, starts: list[int]) -> str:
    """``":LINE: frame K"`` of the first (extended) XYZ frame ASE cannot read (``starts``: the count
    lines of :func:`check_xyz_counts`), or ``""``. Reads frame by frame, keeping one at a time."""
    import ase.io

    k = 0
    try:
        for _ in ase.io.iread(path, index=":"):
            k += 1
    except Exception:  # the frame that fails, as in the read that failed
        if k < len(starts):
            return f":{starts[k]}: frame {k}"
    return ""


def _one_structure(path: Path, k: int) -> tuple[int, Atoms]:
    """(position in the file, structure) of structure ``k`` (negative: from the end), reading the
    file once and holding at most ``|k|`` structures."""
    from collections import deque

    import ase.io

    last: deque[tuple[int, Atoms]] = deque(maxlen=max(-k, 1))
    count = 0
    for count, atoms in enumerate(ase.io.iread(path, index=":"), start=1):
        if count - 1 == k:
            return k, atoms
        last.append((count - 1, atoms))
    if k < 0 and count >= -k:
        return last[0]
    raise DataError(f"{path}: no structure {k} (the file holds {count})")


def check_xyz_counts(path: str | Path) -> list[int]:
    """Refuse an (extended) XYZ file whose count line declares more atoms than lines follow.

    Walks the frames as ASE does (count line, comment line, that many atom lines, until a blank
    line or the end) without storing them, so a count like ``999999999999`` is refused at once
    instead of ASE reading past the end for hours or allocating terabytes.

    Returns:
        the (1-based) line of each frame's count line, as far as the frames could be walked.

    Raises:
        DataError: ``"file:line: ..."`` naming the count line.
    """
    starts: list[int] = []
    with open_decompressed(path) as f:
        total = 0
        last = b"\n"
        for block in iter(lambda: f.read(1 << 20), b""):
            total += block.count(b"\n")
            last = block[-1:]
        total += last != b"\n"
    with open_decompressed(path) as f:
        lines = iter(f)
        lineno = 0  # lines consumed
        while lineno < total:
            line = next(lines)
            lineno += 1
            try:
                count = int(line)
            except ValueError:
                return starts  # not a count line (or a blank one, the end for ASE): ASE reports it
            starts.append(lineno)
            left = total - lineno
            if count < 0 or count + 1 > left:
                raise DataError(
                    f"{path}:{lineno}: the count line declares {count} atoms, but the file has only "
                    f"{max(left - 1, 0)} more lines after the comment line"
                )
            for _ in range(count + 1):
                next(lines)
            lineno += count + 1
    return starts


def validate_atoms(atoms: Atoms, where: str = "structure", cutoff: float | None = None) -> str | None:
    """Raise a one-line :class:`DataError` starting with ``where`` if ``atoms`` is unusable.

    ``cutoff`` (Angstrom): also bound the neighbour list of the model that will read ``atoms``
    (:func:`mpnn.neighbors.check_size`); masses and momenta (when present) are checked by
    :func:`check_motion`.

    Returns:
        ``None``, or a note on the closest pair of atoms when two atoms are closer than
        :data:`mpnn.sanity.CLOSE_FRACTION` x the sum of their covalent radii (usable, but no real
        structure has them: the caller warns, once per file).
    """
    n = len(atoms)
    if n == 0:
        raise DataError(f"{where}: no atoms")
    numbers = atoms.get_atomic_numbers()
    bad = np.flatnonzero((numbers < 1) | (numbers > 118))
    if bad.size:
        raise DataError(f"{where}, atom {bad[0]}: unknown element (atomic number {numbers[bad[0]]})")
    pos = np.asarray(atoms.positions, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(pos).all(axis=1))
    if bad.size:
        raise DataError(f"{where}, atom {bad[0]}: non-finite position {pos[bad[0]].tolist()}")
    cell = np.asarray(atoms.cell.array, dtype=np.float64)
    if not np.isfinite(cell).all():
        raise DataError(f"{where}: non-finite cell")
    check_reference(atoms, where)
    check_motion(atoms, where)
    from mpnn.neighbors import check_structure, neighbor_list

    pbc = np.asarray(atoms.pbc, dtype=bool)
    try:
        if cutoff is not None:  # the radius that matters, named in the message
            try:
                check_structure(pos, float(cutoff), cell if pbc.any() else None, pbc)
            except DataError as error:
                said = f"cutoff {float(cutoff):g} A"
                text = str(error).replace(said, f"the model's {said}")
                raise DataError(text) from None
        try:
            neighbor_list(pos, _CLOSE, cell if pbc.any() else None, pbc)
        except DataError as error:  # a size bound of the same-position search: not the model's cutoff
            text = str(error)
            if "cutoff" in text and "same position" not in text:
                text = text.replace(f"cutoff {_CLOSE:g} A", f"even a {_CLOSE:g} A radius")
            raise DataError(text) from None
        return close_atoms(numbers, pos, cell if pbc.any() else None, pbc)
    except DataError as error:
        raise DataError(f"{where}: {error}") from None


def check_motion(atoms: Atoms, where: str = "structure") -> None:
    """Raise a one-line :class:`DataError` naming ``where`` and the atom if a mass is not a positive
    finite number (amu) or, when ``atoms`` has momenta, one is not finite or moves its atom faster
    than :data:`MAX_SPEED` Angstrom per ASE time unit."""
    masses = np.asarray(atoms.get_masses(), dtype=np.float64)
    bad = np.flatnonzero(~(np.isfinite(masses) & (masses > 0)))
    if bad.size:
        mass = float(masses[bad[0]])
        raise DataError(f"{where}, atom {bad[0]}: mass {mass!r} amu is not a positive finite number")
    if not atoms.has("momenta"):
        return
    momenta = np.asarray(atoms.get_momenta(), dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(momenta).all(axis=1))
    if bad.size:
        raise DataError(f"{where}, atom {bad[0]}: non-finite momentum {momenta[bad[0]].tolist()}")
    with np.errstate(over="ignore"):
        speed = np.linalg.norm(momenta, axis=1) / masses
    bad = np.flatnonzero(~(speed <= MAX_SPEED))
    if bad.size:
        raise DataError(
            f"{where}, atom {bad[0]}: momentum {momenta[bad[0]].tolist()} amu Angstrom/ASE time is a "
            f"speed above {MAX_SPEED:g} Angstrom per ASE time unit (about 98 Angstrom/fs)"
        )


def check_reference(atoms: Atoms, where: str = "structure") -> None:
    """Raise a one-line :class:`DataError` if a file's energy (``atoms.calc`` or ``info["energy"]``)
    is not one finite number or its forces are not (n, 3) finite numbers (ASE keeps, e.g., an
    extxyz ``energy=1.2x`` as a string)."""
    results = getattr(atoms.calc, "results", None) or {}
    energy = results.get("energy", atoms.info.get("energy"))
    if energy is not None:
        try:
            value = float(np.asarray(energy, dtype=np.float64).item())
        except (TypeError, ValueError):
            raise DataError(f"{where}: the energy {str(energy)[:40]!r} is not one number") from None
        if not math.isfinite(value):
            raise DataError(f"{where}: non-finite energy {value!r}")
    forces = results.get("forces")
    if forces is not None:
        try:
            array = np.asarray(forces, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError(f"{where}: the forces are not numbers") from None
        if array.shape != (len(atoms), 3):
            raise DataError(f"{where}: forces of shape {array.shape}, expected ({len(atoms)}, 3)")
        bad = np.flatnonzero(~np.isfinite(array).all(axis=1))
        if bad.size:
            raise DataError(f"{where}, atom {bad[0]}: non-finite force {array[bad[0]].tolist()}")


def check_elements(structures: Sequence[Atoms], elements: Sequence[int], where: str = "") -> None:
    """Raise a :class:`DataError` naming the first atom whose element is not in ``elements``."""
    from ase.data import chemical_symbols

    known = np.asarray(sorted(elements))
    for k, atoms in enumerate(structures):
        numbers = atoms.get_atomic_numbers()
        bad = np.flatnonzero(~np.isin(numbers, known))
        if bad.size:
            names = ", ".join(chemical_symbols[z] for z in known)
            prefix = f"{where}: " if where else ""
            raise DataError(
                f"{prefix}structure {k}, atom {bad[0]}: element {chemical_symbols[numbers[bad[0]]]} "
                f"is not one of the model's elements ({names})"
            )


def atoms_to_molecule(atoms: Atoms, targets: bool = True, name: str = "") -> Molecule:
    """An ``ase.Atoms`` as a :class:`Molecule` (no node features, no bonds).

    ``cell`` and ``pbc`` are set when any direction is periodic. With ``targets``, a
    ``SinglePointCalculator``'s (or ``info["energy"]``'s) energy becomes ``y`` (1,) in eV and its
    forces ``forces`` (n, 3) in eV/Angstrom; no calculation is ever triggered.
    """
    import torch

    from mpnn.batch import Molecule

    n = len(atoms)
    pbc = np.asarray(atoms.pbc, dtype=bool)
    periodic = bool(pbc.any())
    energy = forces = None
    if targets:
        results = getattr(atoms.calc, "results", None) or {}
        energy = results.get("energy", atoms.info.get("energy"))
        forces = results.get("forces")
    return Molecule(
        z=torch.as_tensor(atoms.get_atomic_numbers(), dtype=torch.int64),
        pos=torch.tensor(np.asarray(atoms.positions), dtype=torch.float64),
        x=torch.zeros(n, 0, dtype=torch.float64),
        bonds=torch.zeros(0, 2, dtype=torch.int64),
        bond_type=torch.zeros(0, dtype=torch.int64),
        y=None if energy is None else torch.tensor([float(energy)], dtype=torch.float64),
        name=name,
        cell=torch.tensor(np.asarray(atoms.cell.array), dtype=torch.float64) if periodic else None,
        pbc=torch.as_tensor(pbc) if periodic else None,
        forces=None if forces is None else torch.tensor(np.asarray(forces), dtype=torch.float64),
    )


def collate_structures(structures: Sequence[Molecule | Atoms], cutoff: float) -> Batch:
    """A :class:`Batch` of structures with the radius graph of ``cutoff`` (Angstrom).

    Edges are all pairs (with periodic images) closer than ``cutoff``, from
    :func:`mpnn.neighbors.batch_neighbor_list`, typed "none"; ``shift`` (E, 3) holds their cell
    shifts. ``cell`` (B, 3, 3) and ``pbc`` (B, 3) are set when any structure is periodic (zero cell,
    no periodicity for the molecules among them). ``y`` (B, K) and ``forces`` (N, 3) are set when
    every structure has them. Node features ``x`` are concatenated (they must have one width).
    """
    import torch

    from mpnn.batch import BOND_NONE, Batch
    from mpnn.neighbors import batch_neighbor_list

    if not structures:
        raise DataError("collate_structures: no structures")
    mols = [atoms_to_molecule(s) if isinstance(s, Atoms) else s for s in structures]
    counts = torch.tensor([m.num_atoms for m in mols])
    ptr = torch.zeros(len(mols) + 1, dtype=torch.long)
    ptr[1:] = torch.cumsum(counts, 0)
    pos = torch.cat([m.pos for m in mols])
    cell = pbc = None
    if any(m.pbc is not None and bool(m.pbc.any()) for m in mols):
        zeros = torch.zeros(3, 3, dtype=pos.dtype)
        cell = torch.stack([zeros if m.cell is None else m.cell.to(pos.dtype) for m in mols])
        pbc = torch.stack([torch.zeros(3, dtype=torch.bool) if m.pbc is None else m.pbc.bool() for m in mols])
    edge_index, shift = batch_neighbor_list(pos, ptr, cutoff, cell, pbc)
    ys = [m.y for m in mols]
    forces = [m.forces for m in mols]
    return Batch(
        z=torch.cat([m.z for m in mols]),
        pos=pos,
        x=torch.cat([m.x for m in mols]),
        edge_index=edge_index,
        edge_type=torch.full((edge_index.shape[1],), BOND_NONE, dtype=torch.long),
        batch=torch.from_numpy(np.repeat(np.arange(len(mols)), counts.numpy())),  # (numpy: 50 us less)
        ptr=ptr,
        y=torch.stack(ys) if all(y is not None for y in ys) else None,
        cell=cell,
        pbc=pbc,
        shift=shift if cell is not None else None,
        forces=torch.cat(forces) if all(f is not None for f in forces) else None,
    )
