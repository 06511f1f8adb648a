"""``mpnn predict`` of an n2p2 potential without PyTorch: the compiled walk and numpy.

Importing PyTorch takes 1.5-2 s, most of a ``mpnn predict`` of n2p2's 1,080-atom water box
(``benchmarks/user_speed.py``, figure (c)). For an n2p2 potential folder whose functions are all
Gaussian (types 2, 3, 9, 12, 13) and whose element networks have at most
:data:`~mpnn.potentials.hdnnp_numpy.ONE_WALK_MAX_WEIGHTS` weights, :class:`N2p2Predictor` computes
what :func:`mpnn.potentials.committee.evaluate_potential` gives for the PyTorch model of the same
folder (:func:`mpnn.n2p2.convert.read_n2p2`), by the same steps as
:func:`mpnn.potentials.hdnnp_forces.evaluate_hdnnp` takes for it: the same neighbour list
(:func:`mpnn.neighbors.batch_pairs`), kernel tables (:func:`~mpnn.symmetry.gaussian_table.gaussian_table`,
:func:`~mpnn.potentials.hdnnp_numpy.network_tables`), scaling
(:func:`~mpnn.symmetry.scaling.scaling_terms`), walk and sums, so the numbers are the same to
the last bit (tested). Other potentials (compact functions, large networks, training runs,
committees) and a process without numba take the PyTorch path (:func:`n2p2_predictor` returns
None).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from ase import Atoms

from mpnn.errors import DataError
from mpnn.potentials import hdnnp_numpy
from mpnn.potentials.extrapolation import describe, numpy_bounds, numpy_counts
from mpnn.symmetry import kernel_calls

if TYPE_CHECKING:
    from mpnn.n2p2.potential_files import N2p2Potential

__all__ = ["N2p2Predictor", "n2p2_predictor"]


def n2p2_predictor(path: str | Path, units: tuple[float, float] = (1.0, 1.0)) -> N2p2Predictor | None:
    """The :class:`N2p2Predictor` of the n2p2 potential folder ``path`` (``units``: Angstrom and
    eV per length and energy unit of its files), or None where the PyTorch path must run: another
    kind of folder, numba missing, a function that is not Gaussian, a network above
    :data:`~mpnn.potentials.hdnnp_numpy.ONE_WALK_MAX_WEIGHTS` (decided from ``input.nn`` before
    the rest is read). A broken folder raises the one-line :class:`~mpnn.errors.DataError` the
    PyTorch path would."""
    from mpnn.n2p2.input_nn import read_input_nn
    from mpnn.n2p2.potential_files import read_potential
    from mpnn.outputs import N2P2, folder_kind
    from mpnn.symmetry.gaussian_table import GAUSSIAN_TYPES

    if folder_kind(path) != N2P2 or not kernel_calls.available():
        return None
    s = read_input_nn(Path(path) / "input.nn")
    types = [spec.type for e in s.elements for spec in s.symmetry_functions.get(e, [])]
    if not types or not all(type_ in GAUSSIAN_TYPES for type_ in types):
        return None
    counts = s.n_symmetry_functions()
    for e in s.elements:
        widths = [counts[e], *s.nodes[e], 1]
        size = sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))
        if size > hdnnp_numpy.ONE_WALK_MAX_WEIGHTS:
            return None
    potential = read_potential(path, s)  # a broken folder: its own one-line DataError
    try:
        return N2p2Predictor(potential, units)
    except DataError:  # (the scaling's division by zero: the PyTorch path's own message)
        raise
    except (ValueError, KeyError):  # settings the model builder refuses: its own message
        return None


class N2p2Predictor:
    """An n2p2 potential (all functions Gaussian, small networks) as numpy tables.

    ``elements`` (S,) atomic numbers in species order and ``cutoff`` (Angstrom), as a
    :class:`~mpnn.models.PotentialModel` has them; :meth:`evaluate_structures` gives a batch's
    results as :func:`~mpnn.potentials.committee.evaluate_potential` does.

    Args:
        potential: the folder's :class:`~mpnn.n2p2.potential_files.N2p2Potential`, whose
            functions are all Gaussian.
        units: Angstrom and eV per length and energy unit of its files.
    """

    def __init__(self, potential: N2p2Potential, units: tuple[float, float] = (1.0, 1.0)) -> None:
        from ase.data import atomic_numbers

        from mpnn.symmetry.gaussian_table import GAUSSIAN_TYPES, gaussian_table, group_functions, spec_group
        from mpnn.symmetry.scaling import scaling_terms

        s = potential.settings
        specs = [list(s.symmetry_functions.get(e, [])) for e in s.elements]
        self.elements = [atomic_numbers[e] for e in s.elements]
        self.sizes = [len(element_specs) for element_specs in specs]
        self.width = max(self.sizes, default=0)
        self.unit = float(units[0])
        self.cutoff = max(spec.rc for element_specs in specs for spec in element_specs) * self.unit
        grouped = group_functions(specs, list(s.elements).index, lambda type_: GAUSSIAN_TYPES[type_][2])
        cutoff = (s.cutoff_type, s.cutoff_alpha)
        groups = [spec_group(key, members, cutoff) for key, members in grouped.items()]
        count = len(self.elements)
        self.table = gaussian_table(groups, count)
        shape = (count, self.width)
        factor, ref, low = np.ones(shape), np.zeros(shape), np.zeros((count, 1))
        self.statistics = np.zeros((*shape, 4))
        for k, e in enumerate(s.elements):
            n = self.sizes[k]
            stats = np.asarray(potential.scaling[e], dtype=np.float64)[:n]
            terms = scaling_terms(s.scaling, stats, s.scale_min, s.scale_max, self.elements[k])
            factor[k, :n], ref[k, :n], low[k] = terms
            self.statistics[k, :n] = stats
        self.scaling = hdnnp_numpy.full_scaling(low, ref, factor)
        activations = ["".join(s.activations[e]) for e in s.elements]
        layers = [potential.weights[e] for e in s.elements]
        self.networks = hdnnp_numpy.network_tables(
            [(w, a, bool(s.normalize_nodes)) for w, a in zip(layers, activations, strict=True)]
        )
        conv = s.conv_energy if s.conv_energy is not None else 1.0
        mean = s.mean_energy if s.mean_energy is not None else 0.0
        self.scale = units[1] / conv
        self.offsets = np.array([units[1] * (mean + s.atom_energy.get(e, 0.0)) for e in s.elements])
        self.low, self.high, self.ranges = numpy_bounds(self.statistics, self.sizes)
        lookup = np.full(119, -1, dtype=np.int64)
        lookup[self.elements] = np.arange(count)
        self.species_of = lookup

    def evaluate_structures(
        self, structures: Sequence[Atoms], names: Sequence[str]
    ) -> tuple[dict[str, Any], list[int], bool]:
        """(results, the structures' atom ranges (B + 1,), whether stress was computed) of one
        batch: ``energy`` (B,), ``energies`` (N,), ``forces`` (N, 3), ``stress`` (B, 6) when any
        structure is periodic (rows of the others NaN) in eV and Angstrom, float64, and with
        recorded training ranges ``extrapolation`` (N,) int64 and ``extrapolation_first``. A NaN
        or inf names the structure (``names``) in a one-line DataError."""
        from mpnn.neighbors import batch_pairs, cell_volumes, numpy_edge_vectors
        from mpnn.sanity import require_finite_results

        count = len(structures)
        if not count:
            raise DataError("evaluate_structures: no structures")
        z = np.concatenate([a.get_atomic_numbers() for a in structures]).astype(np.int64)
        species = np.where((z >= 0) & (z < self.species_of.shape[0]), self.species_of[z.clip(0, 118)], -1)
        if (species < 0).any():
            missing = sorted({int(k) for k in z[species < 0]})
            raise DataError(
                f"element(s) with Z = {missing} are not covered by the potential (it has Z = {self.elements})"
            )
        ptr = np.zeros(count + 1, dtype=np.int64)
        np.cumsum([len(a) for a in structures], out=ptr[1:])
        pos = np.concatenate([np.asarray(a.positions, dtype=np.float64) for a in structures])
        pbc = np.array([np.asarray(a.pbc, dtype=bool) for a in structures])
        periodic = bool(pbc.any())
        cell = None
        if periodic:
            cells = [np.asarray(a.cell.array, dtype=np.float64) for a in structures]
            cell = np.array([c if p.any() else np.zeros((3, 3)) for c, p in zip(cells, pbc, strict=True)])
        source, centre, shift = batch_pairs(pos, ptr, self.cutoff, cell, pbc if periodic else None)
        graph = np.repeat(np.arange(count), np.diff(ptr))
        vectors = numpy_edge_vectors(pos, source, centre, shift if periodic else None, cell, graph)
        arrays = kernel_calls.numpy_edge_arrays(
            centre,
            species,
            species[source],
            z[source].astype(np.float64),
            vectors / self.unit if self.unit != 1.0 else vectors,
        )
        threads = kernel_calls.thread_count()

        def run(kernel: Any, args: tuple) -> Any:
            return kernel_calls.call(kernel, args, threads)

        raw, energies, dvec = hdnnp_numpy.one_walk(
            arrays, self.width, self.table, self.scaling, self.networks, self.scale, self.offsets, run
        )
        out = hdnnp_numpy.results(energies, dvec, self.unit, vectors, source, centre, graph, count, cell=cell)
        has_cell = None if cell is None else np.isfinite(cell_volumes(cell))  # NaN stress rows elsewhere
        require_finite_results(out, names, graph, has_cell)
        if self.ranges:
            counts = numpy_counts(raw, species, self.low, self.high)
            out["extrapolation"] = counts
            first = ""
            if counts.any():
                atom = int(np.flatnonzero(counts)[0])
                first = describe(raw, species, self.statistics, self.sizes, self.elements, atom)
            out["extrapolation_first"] = first
        return out, ptr.tolist(), periodic
