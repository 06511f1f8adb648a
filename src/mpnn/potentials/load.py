"""One entry point for potentials: an n2p2 folder or a training run of ours."""

from __future__ import annotations

from pathlib import Path

from mpnn.errors import DataError
from mpnn.models.hdnnp import PotentialModel
from mpnn.n2p2.convert import read_n2p2
from mpnn.potentials.committee import Committee


def load_potential(path: str | Path, units: tuple[float, float] = (1.0, 1.0)) -> PotentialModel | Committee:
    """A :class:`PotentialModel` (float64, eval mode) from ``path``.

    ``path``: an n2p2 potential folder (``input.nn`` ...; ``units`` = Angstrom and eV per unit of its
    files), a run folder written by ``mpnn train-potential`` (``config.json`` + ``best.pt``) or a
    committee folder of such folders (:mod:`mpnn.potentials.committee`: a :class:`Committee`).
    """
    from mpnn.potentials.committee import committee_members
    from mpnn.train.checkpoint import is_run_dir, load_model

    folder = Path(path)
    members = committee_members(folder)
    if members:
        return Committee([load_potential(member, units) for member in members]).double().eval()
    if (folder / "input.nn").is_file():
        return read_n2p2(folder, units).eval()
    if is_run_dir(folder):
        model, _ = load_model(folder)
        if not isinstance(model, PotentialModel):
            raise DataError(f"{folder}: a property model, not a potential (no energies and forces)")
        return model.double().eval()
    raise DataError(
        f"{folder}: neither an n2p2 potential folder (input.nn), a training run (config.json) "
        "nor a committee (two or more such folders)"
    )
