"""Which molecules a run uses: the data source, the optional subset and the train/valid/test split.

A :class:`DataSpec` is stored in ``config.json``; the split itself is stored in ``split.pt``
as indices into the data set, so evaluation and resumption use exactly the same molecules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from mpnn.data.store import is_store_path
from mpnn.errors import DataError
from mpnn.train.checkpoint import load_split_file
from mpnn.train.validate import Rule, check_fields, integer, text

#: Gilmer et al.: 10,000 validation and 10,000 test molecules, here at most 10% of the set each.
PAPER_HOLDOUT, MAX_HOLDOUT_FRACTION = 10_000, 0.1

_UNCHARACTERIZED = ("uncharacterized.txt", "qm9_uncharacterized.txt")
_ATOMREF = ("atomref.txt", "qm9_atomref.txt")


@dataclass
class DataSpec:
    """The molecules of a run.

    Attributes:
        source: a QM9 release archive or folder of xyz files, or a structure store of one
            (``*.lmdb``, :mod:`mpnn.data.store`, read lazily); None for the bundled subset.
        uncharacterized: QM9's ``uncharacterized.txt`` (molecules to drop), or None.
        atomref: QM9's ``atomref.txt`` (free-atom energies), or None for the bundled copy.
        subset: draw this many molecules (seeded) before splitting; None keeps all.
        valid, test: sizes of the validation and test splits; None for the default
            (10% each for the bundled subset; 10,000 each, at most 10%, otherwise).
    """

    source: str | None = None
    uncharacterized: str | None = None
    atomref: str | None = None
    subset: int | None = None
    valid: int | None = None
    test: int | None = None

    #: The type and range of each field (:mod:`mpnn.train.validate`); config files use the same.
    RULES: ClassVar[dict[str, Rule]] = {
        "source": text(optional=True),
        "uncharacterized": text(optional=True),
        "atomref": text(optional=True),
        "subset": integer(1, optional=True),
        "valid": integer(1, optional=True),  # early stopping and best.pt need validation molecules
        "test": integer(1, optional=True),  # every run ends with its test errors
    }

    def __post_init__(self) -> None:
        check_fields(self, self.RULES, "data.")
        for key in ("uncharacterized", "atomref") if self.source is None else ():
            if getattr(self, key) is not None:  # the bundled subset has its own; never read
                raise DataError(
                    f"data.{key}: applies to a QM9 release given as data.source (--data), "
                    "not to the bundled subset"
                )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def resolved(self) -> DataSpec:
        """Absolute paths, and the side files found beside ``source`` when not given."""
        if self.source is None:
            return self
        source = Path(self.source).expanduser()
        if not source.exists():
            raise DataError(f"{source}: no such file or folder")
        if is_store_path(source):
            for key in ("uncharacterized", "atomref"):
                if getattr(self, key) is not None:
                    raise DataError(
                        f"data.{key}: a store holds featurised molecules; {key} applied when it was made"
                    )
            return DataSpec(str(source.resolve()), None, None, self.subset, self.valid, self.test)
        uncharacterized = self.uncharacterized or _beside(source, _UNCHARACTERIZED)
        atomref = self.atomref or _beside(source, _ATOMREF)
        for path in (uncharacterized, atomref):
            if path is not None and not Path(path).is_file():
                raise DataError(f"{path}: no such file")
        return DataSpec(
            str(source.resolve()),
            None if uncharacterized is None else str(Path(uncharacterized).resolve()),
            None if atomref is None else str(Path(atomref).resolve()),
            self.subset,
            self.valid,
            self.test,
        )


def open_property_store(path: str | Path) -> Any:
    """The :class:`~mpnn.data.store.StructureStore` at ``path``, checked to hold the 13 QM9
    targets in the units of :data:`mpnn.data.qm9.UNITS` (a store of a QM9 release)."""
    from mpnn.data.qm9 import TARGETS, UNITS
    from mpnn.data.store import StructureStore

    store = StructureStore(path)
    if tuple(store.target_names) != TARGETS or tuple(store.target_units) != UNITS:
        names = ", ".join(store.target_names) or "none"
        raise DataError(
            f"{path}: holds the targets {names}, not the 13 of QM9; property models train on a store "
            "made from a QM9 release (structures with energies train as potentials: mpnn train-potential)"
        )
    return store


def _beside(source: Path, names: tuple[str, ...]) -> str | None:
    """The first of ``names`` inside ``source`` (a folder) or in its parent folder."""
    folders = ([source] if source.is_dir() else []) + [source.parent]
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return str(folder / name)
    return None


def load_molecules(spec: DataSpec, *, workers: int | None = None, progress: bool = True) -> Any:
    """The :class:`~mpnn.data.dataset.MoleculeSet` of ``spec`` (featurised once, then cached), or
    the :class:`~mpnn.data.store.StructureStore` that ``spec.source`` names (read lazily)."""
    if is_store_path(spec.source):
        return open_property_store(spec.source)
    from mpnn.data.qm9 import bundled_atomref_path, bundled_release_path
    from mpnn.data.qm9_build import build_qm9

    if spec.source is None:
        release, atomref, uncharacterized = bundled_release_path(), bundled_atomref_path(), None
    else:
        release, uncharacterized = Path(spec.source), spec.uncharacterized
        atomref = spec.atomref or bundled_atomref_path()
    return build_qm9(
        release,
        uncharacterized_path=uncharacterized,
        atomref_path=atomref,
        workers=workers,
        progress=progress,
    )


def holdout_sizes(spec: DataSpec, num: int) -> tuple[int, int]:
    """(n_valid, n_test) for a data set of ``num`` molecules (after the subset)."""
    cap = round(MAX_HOLDOUT_FRACTION * num)
    default = cap if spec.source is None else min(PAPER_HOLDOUT, cap)
    sizes = tuple(default if n is None else n for n in (spec.valid, spec.test))
    if min(sizes) < 1:
        raise DataError(
            f"{num} molecules are too few for the default split (10% each for validation and test); "
            "give --valid and --test"
        )
    if sizes[0] + sizes[1] >= num:
        raise DataError(f"valid {sizes[0]} + test {sizes[1]} molecules leave none of {num} for training")
    return sizes  # type: ignore[return-value]


def make_split(spec: DataSpec, num: int, seed: int) -> dict[str, np.ndarray]:
    """Indices into a data set of ``num`` molecules: ``{"train", "valid", "test"}`` (sorted int64).

    With ``spec.subset`` a seeded draw of that many molecules comes first; the split is
    :func:`mpnn.data.qm9.split_indices` of the drawn molecules.
    """
    from mpnn.data.qm9 import split_indices

    pool = np.arange(num)
    if spec.subset is not None:
        if not 0 < spec.subset <= num:
            raise DataError(f"--subset {spec.subset}: the data set has {num} molecules")
        pool = np.sort(np.random.default_rng([seed, 1]).choice(num, spec.subset, replace=False))
    n_valid, n_test = holdout_sizes(spec, len(pool))
    parts = split_indices(len(pool), n_valid, n_test, seed)
    return {name: pool[p] for name, p in zip(("train", "valid", "test"), parts, strict=True)}


def split_to_tensors(split: dict[str, np.ndarray], num: int) -> dict[str, Any]:
    """What ``split.pt`` stores: the index tensors and the size of the data set."""
    return {
        **{k: torch.as_tensor(v, dtype=torch.int64) for k, v in split.items()},
        "num_molecules": num,
    }


def load_split(path: str | Path, num: int) -> dict[str, np.ndarray]:
    """The split of ``split.pt``, checked against a data set of ``num`` molecules; no part empty."""
    split = load_split_file(path, ("train", "valid", "test"), num)
    for part, index in split.items():
        if not index.size:
            raise DataError(f"{path}: {part}: no molecules (a run needs all three parts)")
    return split
