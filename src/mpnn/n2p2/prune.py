"""Pruning symmetry functions as n2p2's ``nnp-prune`` does, with a report of what was dropped.

Two modes (``Mode::pruneSymmetryFunctionsRange`` and ``pruneSymmetryFunctionsSensitivity``):

- **range** (before training): a function is dropped when ``|G_max - G_min| < threshold`` over
  the atoms of its element in the data (n2p2 reads G_min and G_max from the ``scaling.data`` of
  ``nnp-scaling``; here the unscaled functions of the data are computed, :func:`ranges`).
- **sensitivity** (after training): ``nnp-dataset`` averages over the atoms of each element the
  derivative of the network output with respect to each scaled input, ``s_j = dE_NN/dG~_j``
  (n2p2's ``dEdG``), as ``msa_j = sqrt(mean s_j^2)`` and ``max_j = max |s_j|``, each normalised
  to percent of its sum over the element's functions (``sensitivity.ZZZ.out``, columns
  ``sens_msa_norm`` and ``sens_max_norm``); ``nnp-prune sensitivity T msa|max`` drops the functions
  whose normalised value is below ``T`` (percent) (:func:`sensitivities`).

The written ``input.nn`` is the given one with the lines of the dropped functions commented out
by ``# `` (``Mode::writePrunedSettingsFile``), every other byte unchanged (:func:`comment_out`).
Units: the unscaled functions are dimensionless (types 12, 13, 23-25 carry the neighbours'
atomic numbers), so the range does not depend on the length unit; a sensitivity is in the
network's output unit per unit of scaled input (percentages are unit-free).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from mpnn.batch import Batch, Molecule
from mpnn.errors import DataError
from mpnn.models.hdnnp import PotentialModel
from mpnn.n2p2.keywords import _LAYOUT
from mpnn.symmetry.spec import SymmetryFunctionSpec

#: Structures collated per evaluation.
CHUNK = 64


@dataclass(frozen=True)
class Dropped:
    """A pruned function: its element, 1-based index within the element (n2p2's order), its
    ``input.nn`` line, the function, and the value that decided (range, or sensitivity in %)."""

    element: str
    index: int
    line: int
    spec: SymmetryFunctionSpec
    value: float


def _batches(model: PotentialModel, molecules: Sequence[Molecule]) -> Iterator[Batch]:
    """The structures collated ``CHUNK`` at a time for ``model`` (float64)."""
    from mpnn.data.atoms import collate_structures

    for start in range(0, len(molecules), CHUNK):
        batch = collate_structures(list(molecules[start : start + CHUNK]), model.cutoff)
        yield batch.to(dtype=torch.float64)


def functions_by_element(model: PotentialModel, molecules: Sequence[Molecule]) -> list[torch.Tensor]:
    """Per element s of the model, the unscaled functions (n_atoms_s, n_sf_s) of its atoms."""
    sf = model.symmetry_functions
    parts: list[list[torch.Tensor]] = [[] for _ in sf.sizes]
    with torch.no_grad():
        for batch in _batches(model, molecules):
            raw = sf.raw(batch, model.net.edge_input(batch))
            species = sf.species(batch)
            for s, n in enumerate(sf.sizes):
                parts[s].append(raw[species == s, :n])
    out = []
    for s, (n, chunks) in enumerate(zip(sf.sizes, parts, strict=True)):
        values = torch.cat(chunks) if chunks else torch.zeros((0, n), dtype=torch.float64)
        if values.shape[0] == 0:
            raise DataError(f"element {model.config['elements'][s]} of the potential is in no structure")
        out.append(values)
    return out


def ranges(model: PotentialModel, molecules: Sequence[Molecule]) -> list[torch.Tensor]:
    """Per element, (n_sf,) ``G_max - G_min`` of each unscaled function over the structures."""
    return [v.max(0).values - v.min(0).values for v in functions_by_element(model, molecules)]


def sensitivities(model: PotentialModel, molecules: Sequence[Molecule]) -> list[torch.Tensor]:
    """Per element, (n_sf, 4): msa and max of ``dE_NN/dG~_j`` (network output per scaled input),
    then each in percent of its sum over the element's functions (n2p2's ``sensitivity.ZZZ.out``)."""
    sf = model.symmetry_functions
    out = []
    for s, (raw, network) in enumerate(
        zip(functions_by_element(model, molecules), model.update.networks, strict=True)
    ):
        n = sf.sizes[s]
        scaled = sf.scale_min[s] + sf.scale_factor[s, :n] * (raw - sf.scale_ref[s, :n])
        scaled = scaled.to(next(network.parameters()).dtype).requires_grad_(True)
        (grad,) = torch.autograd.grad(network(scaled).sum(), scaled)
        grad = grad.detach().double()
        msa, peak = grad.square().mean(0).sqrt(), grad.abs().max(0).values
        if not msa.sum() > 0:  # percentages of a zero sum: 0/0 (n2p2 writes NaN and prunes nothing)
            raise DataError(
                f"element {model.config['elements'][s]}: its network's output does not depend on its "
                "symmetry functions (every sensitivity is 0); nothing to rank them by"
            )
        out.append(torch.stack([msa, peak, 100 * msa / msa.sum(), 100 * peak / peak.sum()], 1))
    return out


def dropped(
    specs: dict[str, list[SymmetryFunctionSpec]], values: dict[str, torch.Tensor], threshold: float
) -> list[Dropped]:
    """The functions whose value is below ``threshold``, per element in the order of ``specs``."""
    out = []
    for e, functions in specs.items():
        for k, (spec, value) in enumerate(zip(functions, values[e].tolist(), strict=True)):
            if value < threshold:
                out.append(Dropped(e, k + 1, spec.line, spec, float(value)))
    return out


def comment_out(text: str, lines: Sequence[int]) -> str:
    """``text`` with the 1-based ``lines`` prefixed by ``# `` (n2p2's pruned settings file)."""
    chosen = set(lines)
    rows = text.splitlines(keepends=True)
    if chosen and max(chosen) > len(rows):
        raise DataError(f"line {max(chosen)} is beyond the {len(rows)} lines of the input.nn")
    return "".join(f"# {row}" if k in chosen else row for k, row in enumerate(rows, start=1))


def describe(spec: SymmetryFunctionSpec) -> str:
    """``type 2 H eta=0.01 rs=0 rc=12``: the function's fields as in its ``input.nn`` line."""
    words = [f"type {spec.type}", *spec.neighbors]
    for name in _LAYOUT[spec.type]:
        name = name.rstrip("?")
        if name not in ("e1", "e2"):
            value = getattr(spec, name)
            words.append(f"{name.rstrip('_')}={value if isinstance(value, str) else f'{value:g}'}")
    return " ".join(words)


def report(items: Sequence[Dropped], total: dict[str, int], what: str) -> str:
    """The table of the dropped functions (``what``: the column of the deciding value)."""
    counts = ", ".join(f"{e} {sum(d.element == e for d in items)} of {n}" for e, n in total.items())
    lines = [f"dropped {len(items)} of {sum(total.values())} symmetry functions ({counts})"]
    if items:
        lines.append(f"{'element':>7} {'index':>5} {'line':>5} {what:>14}  function")
        lines += [
            f"{d.element:>7} {d.index:>5} {d.line:>5} {d.value:>14.6g}  {describe(d.spec)}" for d in items
        ]
    return "\n".join(lines) + "\n"
