"""Outputs never destroy inputs: the one check every writing command makes before it computes.

:func:`check_outputs` compares the files and folders a command will write with everything it
reads. Paths are compared after ``~``, symbolic links and ``..`` are resolved, and with
:func:`os.path.samefile` where both exist (hard links, other spellings of one folder). It refuses,
with one :class:`~mpnn.errors.DataError` line:

* an output file that is an input file, or lies inside a folder the command reads;
* an output folder that is, lies inside or contains a file or folder the command reads;
* an output file that is an existing folder, an output folder that is an existing file;
* two outputs that are the same file.

:func:`check_suffix` refuses an output file named for another format than the one written.

:func:`check_output_folder` refuses to write one kind of folder (a ``mpnn train`` run, a potential
run, a search, an ensemble, ...) into a folder that holds another kind, or other files, so a
mistaken ``--out`` changes nothing. Both only look at the file system; they write nothing.

:func:`folder_task` says whether a folder holds a property model or a potential (``mpnn predict``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable
from pathlib import Path

from mpnn.errors import DataError

PathLike = str | os.PathLike

#: What :func:`folder_kind` calls each kind of folder.
RUN = "a `mpnn train` run"
MODEL = "a model folder of a `mpnn train` run"
POTENTIAL_RUN = "a `mpnn train-potential` run"
N2P2 = "an n2p2 potential"
COMMITTEE = "a committee of potentials (a folder of two or more potential folders)"
ENSEMBLE = "an ensemble of `mpnn ensemble`"
SEARCH = "a search of `mpnn search`"
COMPARISON = "a comparison of `mpnn compare`"


def _real(path: PathLike) -> Path:
    """``path`` absolute, with ``~``, symbolic links and ``..`` resolved (as far as it exists)."""
    return Path(os.path.abspath(Path(path).expanduser())).resolve()


def _same(a: PathLike, b: PathLike) -> bool:
    """Whether ``a`` and ``b`` name the same file or folder (resolved, or by device and inode)."""
    if _real(a) == _real(b):
        return True
    try:
        return os.path.samefile(Path(a).expanduser(), Path(b).expanduser())
    except OSError:  # one of them does not exist
        return False


def _inside(path: PathLike, folder: PathLike) -> bool:
    """Whether ``path`` lies strictly inside ``folder`` (checked on each existing parent of ``path``)."""
    real, top = _real(path), _real(folder)
    if real != top and real.is_relative_to(top):
        return True
    return any(parent.exists() and _same(parent, folder) for parent in real.parents)


def _given(paths: Iterable[PathLike | None]) -> list[PathLike]:
    return [p for p in paths if p is not None and str(p) != ""]


def check_outputs(
    files: Iterable[PathLike | None] = (),
    folders: Iterable[PathLike | None] = (),
    *,
    inputs: Iterable[PathLike | None] = (),
    read_dirs: Iterable[PathLike | None] = (),
) -> None:
    """Refuse outputs that would overwrite, or write into, what the command reads.

    Args:
        files: the files the command will write (None entries are skipped).
        folders: the folders it will write into (anything inside them may be written).
        inputs: the files it reads; an input that is a folder counts as one of ``read_dirs``.
        read_dirs: the folders whose content it reads (runs, potentials, folders of structures).

    Raises:
        DataError: one line naming the output and the input it would destroy.
    """
    files, folders = _given(files), _given(folders)
    inputs, read_dirs = _given(inputs), _given(read_dirs)
    read_dirs = read_dirs + [p for p in inputs if Path(p).expanduser().is_dir()]
    inputs = [p for p in inputs if not Path(p).expanduser().is_dir()]
    seen: list[PathLike] = []
    for out in files:
        if Path(out).expanduser().is_dir():
            raise DataError(f"{out}: is a folder; the output must be a file name")
        for other in seen:
            if _same(out, other):
                raise DataError(f"{out}: given for two outputs ({other} and {out}); choose two files")
        seen.append(out)
        for source in inputs:
            if _same(out, source):
                raise DataError(f"{out}: this output would overwrite the input {source}; choose another file")
        for folder in read_dirs:
            if _same(out, folder) or _inside(out, folder):
                raise DataError(
                    f"{out}: this output lies inside {folder}, which this command reads; write it elsewhere"
                )
    for out in folders:
        if Path(out).expanduser().exists() and not Path(out).expanduser().is_dir():
            raise DataError(f"{out}: is a file; the output must be a folder")
        for source in [*read_dirs, *inputs]:
            if _same(out, source):
                raise DataError(f"{out}: this output folder is the input {source}; choose another folder")
            if _inside(out, source):
                raise DataError(
                    f"{out}: this output folder lies inside {source}, which this command reads; "
                    "choose a folder elsewhere"
                )
            if _inside(source, out):
                raise DataError(
                    f"{out}: this output folder contains the input {source}; choose another folder"
                )


def check_suffix(out: PathLike, suffixes: Collection[str], what: str) -> None:
    """Refuse an output file whose suffix is not one of ``suffixes`` (``".csv"``; compared in lower
    case), since ``what`` (``"extended XYZ"``) is what will be written whatever the name says.

    Raises:
        DataError: one line naming ``out``, what would be written and the suffixes accepted.
    """
    suffix = Path(out).suffix.lower()
    if suffix not in {s.lower() for s in suffixes}:
        raise DataError(
            f"{out}: this command writes {what}, not {suffix or 'a file without a suffix'}; "
            f"name the output {' or '.join('*' + s for s in suffixes)}"
        )


def folder_kind(folder: PathLike) -> str | None:
    """What ``folder`` holds (:data:`RUN`, :data:`POTENTIAL_RUN`, ... ), or None if none of ours.

    A folder that is none of the others but has two or more potential subfolders is a
    :data:`COMMITTEE` (only its direct subfolders are looked at)."""
    folder = Path(folder).expanduser()
    kind = _own_kind(folder)
    if kind is None and folder.is_dir() and _potential_subfolders(folder) >= 2:
        return COMMITTEE
    return kind


def _own_kind(folder: Path) -> str | None:
    """What the files of ``folder`` itself say it is, or None."""
    for name, kind in (("run.json", RUN), ("ensemble.json", ENSEMBLE), ("search.json", SEARCH)):
        if (folder / name).is_file():
            return kind
    if (folder / "config.json").is_file():
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):  # ValueError: not UTF-8, malformed JSON
            config = None
        if isinstance(config, dict) and "run" in config:
            return POTENTIAL_RUN
        if isinstance(config, dict) and "targets" in config:
            return MODEL
    if (folder / "input.nn").is_file():
        return N2P2
    return None


def _potential_subfolders(folder: Path) -> int:
    """How many subfolders of ``folder`` are potentials (n2p2 folders or potential runs), counted
    up to 2 (all a committee needs)."""
    return len(_potential_subfolder_names(folder))


def _potential_subfolder_names(folder: Path, enough: int = 2) -> list[str]:
    """The names of the first ``enough`` subfolders of ``folder`` (sorted) that are potentials.

    Every subfolder is looked at (a few ``stat`` calls each) until ``enough`` are found, so that
    members sorted after many other folders are found as in :func:`committee_members`."""
    try:
        subfolders = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    except OSError:
        return []
    found: list[str] = []
    for path in subfolders:
        if path.is_dir() and _own_kind(path) in (N2P2, POTENTIAL_RUN):
            found.append(path.name)
            if len(found) >= enough:
                break
    return found


#: The task of each kind of folder that holds a model: ``mpnn predict`` dispatches on it.
TASKS = {
    RUN: "property",
    MODEL: "property",
    ENSEMBLE: "property",
    POTENTIAL_RUN: "potential",
    N2P2: "potential",
    COMMITTEE: "potential",
}


def folder_task(folder: PathLike) -> str:
    """``"property"`` (a ``mpnn train`` run, one of its model folders, an ensemble) or
    ``"potential"`` (a ``mpnn train-potential`` run, an n2p2 potential folder): what ``folder``
    records (:func:`folder_kind`).

    Raises:
        DataError: one line naming ``folder``, when it holds no model (an unreadable
            ``config.json`` is reported as such).
    """
    kind = folder_kind(folder)
    if kind in TASKS:
        return TASKS[kind]
    if kind is not None:
        raise DataError(f"{folder}: holds {kind}, not a model (a run, an ensemble or a potential)")
    if (Path(folder).expanduser() / "config.json").is_file():
        from mpnn.train.settings_files import load_json

        load_json(Path(folder).expanduser() / "config.json")  # unreadable: its own error
        raise DataError(
            f"{folder}/config.json: neither a model configuration of `mpnn train` (targets) "
            "nor of `mpnn train-potential` (run)"
        )
    path = Path(folder).expanduser()
    found = _potential_subfolder_names(path) if path.is_dir() else []
    if len(found) == 1:  # a committee with one member left (the others unreadable, or nested)
        raise DataError(
            f"{folder}: a committee needs two or more potential folders, and only {found[0]} is one "
            "(a run with config.json and best.pt, or an n2p2 folder with input.nn)"
        )
    raise DataError(
        f"{folder}: neither an n2p2 potential folder (input.nn) nor a training run (run.json, "
        "config.json) nor an ensemble (ensemble.json) nor a committee (two or more potential folders)"
    )


def check_output_folder(
    out: PathLike, kind: str, *, allowed: Collection[str] = (), foreign: bool = False
) -> None:
    """Refuse to write ``kind`` (one of the kinds of :func:`folder_kind`) into ``out`` when ``out``
    holds another kind of folder, or, unless ``foreign``, any file or folder (names starting with
    a dot aside) that is not in ``allowed``; a missing or empty folder is fine.

    Raises:
        DataError: one line naming ``out`` and what it holds.
    """
    path = Path(out).expanduser()
    if not path.exists():
        return
    if not path.is_dir():
        raise DataError(f"{out}: is a file; the output must be a folder")
    found = folder_kind(path)
    if found == kind:
        return
    if found is not None:
        raise DataError(f"{out}: holds {found}, not {kind}; choose another output folder")
    if foreign:
        return
    others = sorted(p.name for p in path.iterdir() if not p.name.startswith(".") and p.name not in allowed)
    if others:
        raise DataError(
            f"{out}: not empty (it holds {others[0]}{' ...' if len(others) > 1 else ''}) and not {kind}; "
            "choose a new or empty output folder"
        )
