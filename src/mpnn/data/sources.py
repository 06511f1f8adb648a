"""The sources ``mpnn data convert`` reads, each as a stream of :class:`~mpnn.batch.Molecule`.

:func:`open_source` checks a source (everything that can be checked before the first structure
is read: the files exist and are of their kind, headers, side files) and returns a
:class:`Source` whose ``molecules`` iterator reads one structure at a time:

===========  =========================================  =========================================
kind         what                                        each structure
===========  =========================================  =========================================
``qm9``      a QM9 release: tar archive or folder of     featurised as :func:`~mpnn.data.qm9_build
             ``dsgdb9nsd_*.xyz`` (the reader of           .build_qm9` does (same worker processes);
             :func:`mpnn.data.qm9.iter_release`)          ``y``: the 13 targets in ``qm9.UNITS``
``ase``      any file ASE reads (extxyz, ASE db, ...)    ``ase.io.iread``, then the checks of
                                                         :func:`mpnn.data.atoms.validate_atoms`
``n2p2``     an n2p2 ``input.data`` file                 :func:`mpnn.n2p2.input_data.iter_input_data`
``deepmd``   a DeePMD system folder, or a folder of      :mod:`mpnn.data.deepmd`
             them
===========  =========================================  =========================================

Structures from ``ase``, ``n2p2`` and ``deepmd`` become molecules as
:func:`~mpnn.data.atoms.atoms_to_molecule` makes them (no bonds or node features; ``y`` the energy
in eV, forces in eV/Angstrom, cell and pbc when periodic) named ``<file>:<index>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ase import Atoms

from mpnn.errors import DataError

if TYPE_CHECKING:  # listing the sources (the mpnn parser) needs no PyTorch
    from mpnn.batch import Molecule

KINDS = ("qm9", "ase", "n2p2", "deepmd")
#: QM9 molecules that could not be featurised, listed in a store's metadata (the rest are counted).
MAX_FAILURES = 100
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")


@dataclass
class Source:
    """A checked source: where it is, what it holds, and its structures one at a time.

    Attributes:
        kind: one of :data:`KINDS`.
        description: what the source is, for the store's metadata.
        inputs: every file or folder it reads (for :func:`mpnn.outputs.check_outputs`).
        target_names, target_units: what each structure's ``y`` holds.
        total: the number of structures read, when known in advance (else None).
        molecules: the structures.
        info: values known once ``molecules`` is exhausted (e.g. QM9 molecules left out).
    """

    kind: str
    description: str
    inputs: list[Path]
    target_names: list[str]
    target_units: list[str]
    total: int | None
    molecules: Iterator[Molecule]
    info: dict[str, Any] = field(default_factory=dict)


def detect(path: Path) -> str:
    """The kind of source ``path`` is (see the module docstring)."""
    from mpnn.data.atoms import is_input_data

    if path.is_dir():
        if (path / "type.raw").is_file() or any(path.rglob("type.raw")):
            return "deepmd"
        if any(path.glob("*.xyz")):
            return "qm9"
        raise DataError(f"{path}: a folder with neither QM9 xyz files nor a DeePMD system (type.raw)")
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.name.lower().endswith(_TAR_SUFFIXES):
        return "qm9"
    return "n2p2" if is_input_data(path) else "ase"


def open_source(
    path: str | Path,
    kind: str | None = None,
    *,
    units: tuple[float, float] = (1.0, 1.0),
    uncharacterized: str | Path | None = None,
    atomref: str | Path | None = None,
    workers: int | None = None,
) -> Source:
    """Check the source ``path`` and return its stream of structures.

    Args:
        kind: one of :data:`KINDS`; None detects it (:func:`detect`).
        units: (Angstrom, eV) per length and energy unit of an n2p2 ``input.data`` file.
        uncharacterized, atomref: QM9 side files (default: found beside the release, as for
            ``mpnn train --data``; atomref else the bundled copy).
        workers: QM9 featurisation processes (default: one per core).
    """
    path = Path(path).expanduser()
    kind = kind or detect(path)
    if kind not in KINDS:
        raise DataError(f"unknown source kind {kind!r}; one of {', '.join(KINDS)}")
    if kind == "qm9":
        return _qm9(path, uncharacterized, atomref, workers)
    if kind == "deepmd":
        return _deepmd(path)
    return _atoms_file(path, kind, units)


def _qm9(path: Path, uncharacterized: Any, atomref: Any, workers: int | None) -> Source:
    from mpnn.data import qm9, qm9_build
    from mpnn.train.data import DataSpec

    spec = DataSpec(str(path), *(None if p is None else str(p) for p in (uncharacterized, atomref)))
    spec = spec.resolved()
    atomref_file = Path(spec.atomref) if spec.atomref else qm9.bundled_atomref_path()
    unc_file = Path(spec.uncharacterized) if spec.uncharacterized else None
    state = qm9_build.release_state(atomref_file, unc_file)
    info: dict[str, Any] = {"release": path.name, "atomref": atomref_file.name}
    workers_used = qm9_build.worker_count(workers)
    molecules = qm9_build.featurized_molecules(path, state, workers_used, info, max_failures=MAX_FAILURES)
    return Source(
        "qm9",
        qm9_build.describe(path, unc_file),
        [p for p in (path, atomref_file, unc_file) if p is not None],
        list(qm9.TARGETS),
        list(qm9.UNITS),
        None,
        molecules,
        info,
    )


def _atoms_file(path: Path, kind: str, units: tuple[float, float]) -> Source:
    from mpnn.data.atoms import check_decompressed_size, check_xyz_counts, require_regular_file

    require_regular_file(path)
    total = None
    if kind == "n2p2":
        from mpnn.n2p2.input_data import iter_input_data

        structures: Iterator[Atoms] = iter_input_data(path, length=units[0], energy=units[1])
    else:
        import ase.io
        from ase.io.formats import filetype

        try:
            format_ = filetype(str(path))
        except Exception as error:  # ASE's own reasons (unknown extension, empty file)
            raise DataError(
                f"{path}: not a structure file ASE reads ({' '.join(str(error).split())})"
            ) from None
        check_decompressed_size(path)
        if format_ in ("xyz", "extxyz"):
            total = len(check_xyz_counts(path))  # refuses absurd count lines before ASE reads
        structures = ase.io.iread(path, index=":")
    molecules = _converted(_numbered(structures, path), str(path))
    return Source(kind, f"{kind} file {path.name}", [path], ["energy"], ["eV"], total, molecules)


def _deepmd(path: Path) -> Source:
    from mpnn.data import deepmd

    systems = [deepmd.check_system(folder) for folder in deepmd.find_systems(path)]
    kinds = {(s.energy, s.forces) for s in systems}
    if len(kinds) > 1:
        raise DataError(f"{path}: some systems have energies or forces and others do not")

    def structures() -> Iterator[tuple[str, str, Atoms]]:
        for system in systems:
            for folder, k, atoms in deepmd.iter_frames(system):
                yield f"{folder}: frame {k}", f"{system.folder.name}/{folder.name}:{k}", atoms

    total = sum(s.num_frames for s in systems)
    described = f"DeePMD data {path.name} ({len(systems)} systems)"
    return Source("deepmd", described, [path], ["energy"], ["eV"], total, _converted(structures(), str(path)))


def _converted(structures: Iterator[tuple[str, str, Atoms]], source: str) -> Iterator[Molecule]:
    """Checked molecules of ``(where, name, atoms)``: ``where`` for messages, ``name`` kept."""
    from mpnn.data.atoms import atoms_to_molecule, validate_atoms
    from mpnn.sanity import warn_close_atoms

    first, close = None, 0  # the first structure with close atoms, and how many have them
    count = 0  # structures read
    try:
        for where, name, atoms in structures:
            count += 1
            note = validate_atoms(atoms, where)
            if note:
                first, close = first or (where.removeprefix(f"{source}: "), note), close + 1
            yield atoms_to_molecule(atoms, name=name)
    except DataError:
        raise
    except Exception as error:  # ASE's readers raise many kinds
        text = " ".join(str(error).split()) or type(error).__name__
        raise DataError(f"{source}: structure {count}: cannot read: {text}") from None
    warn_close_atoms([first] * close, source)  # one warning: the first, and how many more


def _numbered(structures: Iterator[Atoms], path: Path) -> Iterator[tuple[str, str, Atoms]]:
    for k, atoms in enumerate(structures):
        yield f"{path}: structure {k}", f"{path.name}:{k}", atoms
