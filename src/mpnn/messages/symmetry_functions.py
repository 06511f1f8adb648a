r"""The Behler-Parrinello message: atom-centred symmetry functions, element-resolved as in n2p2.

For T = 1 the message of Gilmer's scheme, :math:`m_i = \sum_j M(h_i, h_j, e_{ij})`, becomes the
vector of symmetry functions of atom i: radial functions sum a term over neighbours j, angular
ones over pairs j < k (:mod:`mpnn.symmetry.gaussian`).  Each function belongs to a centre
element; radial functions select the element of j, angular ones the elements of (j, k), and
the weighted types take every neighbour with weight Z_j (Z_j Z_k).

The functions of one centre element, one type, one neighbour selection and one cutoff
function form a *group* whose terms are computed by one module for all its functions at once.
``G`` is (N, W) with W the largest number of functions of any element; atom i of element s
uses the first W_s columns, in n2p2's sorted order, then the scaling of its element:
:math:`G' = S_{min} + f (G - G_{ref})` (n2p2's ``scale``, ``center``, ``sigma`` modes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

import torch
from torch import Tensor, nn

from mpnn.batch import Batch
from mpnn.errors import DataError
from mpnn.messages.symmetry_cache import CachedFunctions
from mpnn.symmetry import compiled
from mpnn.symmetry.compact import CompactAngular, CompactRadial
from mpnn.symmetry.compact_compiled import CompiledCompactSum
from mpnn.symmetry.compact_compiled import kernel_parameters as compact_kernel_parameters
from mpnn.symmetry.cutoffs import CutoffFunction
from mpnn.symmetry.families import FAMILIES
from mpnn.symmetry.fused import FusedFunctions, fusable, tables
from mpnn.symmetry.gaussian import GaussianAngular
from mpnn.symmetry.gaussian_table import group_functions
from mpnn.symmetry.scaling import scaling_terms
from mpnn.symmetry.spec import SymmetryFunctionSpec
from mpnn.symmetry.triplets import TripletSum, pair_blocks, triplet_vector_grad


class _Group(nn.Module):
    def __init__(
        self,
        element: int,
        neighbors: tuple[int, ...] | None,
        columns: list[int],
        angular: bool,
        terms: nn.Module,
    ) -> None:
        super().__init__()
        self.element, self.neighbors, self.angular, self.terms = element, neighbors, angular, terms
        self.register_buffer("columns", torch.tensor(columns, dtype=torch.long))


#: A :attr:`SymmetryFunctions.monitor`: ``monitor(raw (N, W), species (N,))``.
Monitor = Callable[[Tensor, Tensor], None]

#: The monitors set in this thread (or asyncio task), by ``id`` of their module (read-only views,
#: replaced on every change: a new thread starts with none).
_MONITORS: ContextVar[Mapping[int, Monitor]] = ContextVar(
    "symmetry_function_monitors", default=MappingProxyType({})
)


def _forget_tables(module: nn.Module, *_: Any) -> None:
    """Drop ``module``'s kept kernel tables (a load_state_dict post hook)."""
    module.__dict__.pop("_fused", None)


class SymmetryFunctions(nn.Module):
    """Symmetry functions of every atom, scaled: the message of an HDNNP.

    Args:
        elements: atomic numbers of the potential's elements, in species order.
        specs: per element (same order), its symmetry functions in network-input order
            (:class:`~mpnn.symmetry.spec.SymmetryFunctionSpec`: ``type``, ``neighbors``, ``eta``,
            ``rs``, ``rc``, ``lambda_``, ``zeta``, ...), lengths in the unit of the edge vectors
            (Angstrom for a model of ours).
        cutoff_type, cutoff_alpha: n2p2's cutoff function for all functions.

    ``prepare(batch, vectors, steps)`` computes the scaled (N, W) matrix from the edge vectors
    (E, 3) (r_j - r_i, in the unit of the specs); ``forward(h, G)`` returns it.  Buffers
    ``scale_factor``, ``scale_ref`` (S, W) and ``scale_min`` (S, 1) hold the scaling,
    ``statistics`` (S, W, 4) the (min, max, mean, sigma) it was made from; ``specs`` are the
    functions it computes.
    """

    def __init__(
        self,
        elements: Sequence[int],
        specs: Sequence[Sequence[SymmetryFunctionSpec]],
        cutoff_type: int,
        cutoff_alpha: float = 0.0,
    ) -> None:
        super().__init__()
        # the compiled walk's tables are read from the groups' buffers: built again after new
        # values are loaded into them (and after a dtype or device change, in _apply)
        self.register_load_state_dict_post_hook(_forget_tables)
        if len(specs) != len(elements):
            raise ValueError("SymmetryFunctions: one list of specs per element is needed")
        self.elements = [int(z) for z in elements]
        #: per element, its functions' specs (what :mod:`mpnn.messages.symmetry_cache` regroups)
        self.specs = [list(s) for s in specs]
        self.cutoff_args = (int(cutoff_type), float(cutoff_alpha))
        self.sizes = [len(s) for s in specs]
        self.width = max(self.sizes, default=0)
        self.cutoff_fn = CutoffFunction(cutoff_type, cutoff_alpha)
        lookup = torch.full((119,), -1, dtype=torch.long)
        lookup[torch.tensor(self.elements)] = torch.arange(len(self.elements))
        self.register_buffer("species_of", lookup, persistent=False)
        self.groups = nn.ModuleList(self._build_groups(specs))
        self.cutoff = max((g.terms.cutoff for g in self.groups), default=0.0)
        #: use the compiled CPU kernels for the Gaussian angular families when numba is present
        self.compiled = True
        shape = (len(self.elements), self.width)
        self.register_buffer("scale_factor", torch.ones(shape, dtype=torch.float64))
        self.register_buffer("scale_ref", torch.zeros(shape, dtype=torch.float64))
        self.register_buffer("scale_min", torch.zeros((len(self.elements), 1), dtype=torch.float64))
        #: the statistics the scaling came from: (S, W, 4) min, max, mean, sigma
        self.register_buffer("statistics", torch.zeros((*shape, 4), dtype=torch.float64))

    @property
    def monitor(self) -> Monitor | None:
        """Called as ``monitor(raw (N, W), species (N,))`` by every :meth:`prepare` when set
        (:func:`mpnn.potentials.extrapolation.count_extrapolation`). Set per thread (and asyncio
        task): a monitor set in one thread never sees, nor is undone by, another's evaluations."""
        return _MONITORS.get().get(id(self))

    @monitor.setter
    def monitor(self, value: Monitor | None) -> None:
        monitors = {k: v for k, v in _MONITORS.get().items() if k != id(self)}
        if value is not None:
            monitors[id(self)] = value
        _MONITORS.set(MappingProxyType(monitors))

    def species_index(self, element: str | int) -> int:
        """Species index of an element given by atomic number or symbol."""
        z = element if isinstance(element, int) else _atomic_number(element)
        return self.elements.index(z)

    def _build_groups(self, specs: Sequence[Sequence[SymmetryFunctionSpec]]) -> list[_Group]:
        for element_specs in specs:
            for spec in element_specs:
                if spec.type not in FAMILIES:
                    raise DataError(f"symmetry function type {spec.type}: unsupported")
        grouped = group_functions(specs, self.species_index, lambda type_: FAMILIES[type_].weighted)
        groups = []
        for (s, type_, neighbors), members in grouped.items():
            family = FAMILIES[type_]
            terms = family.build([spec for _, spec in members], self.cutoff_fn)
            groups.append(_Group(s, neighbors, [c for c, _ in members], family.angular, terms))
        return groups

    def set_scaling(
        self, mode: str, statistics: Sequence[Tensor], smin: float = 0.0, smax: float = 1.0
    ) -> None:
        """n2p2's scaling from per-element (W_s, 4) statistics (min, max, mean, sigma).

        ``mode``: ``none``, ``scale``, ``center``, ``scale_center`` or ``sigma``.
        """
        for s, stats in enumerate(statistics):
            stats = torch.as_tensor(stats, dtype=torch.float64)
            n = self.sizes[s]
            factor, ref, low = scaling_terms(mode, stats[:n].cpu().numpy(), smin, smax, self.elements[s])
            self.statistics[s, :n] = stats[:n]
            self.scale_factor[s, :n] = torch.from_numpy(factor)
            self.scale_ref[s, :n] = torch.from_numpy(ref)
            self.scale_min[s] = low

    def species(self, batch: Batch) -> Tensor:
        """(N,) species index of each atom; an element the potential lacks is a DataError."""
        species = self.species_of[batch.z]
        if bool((species < 0).any()):
            missing = sorted({int(z) for z in batch.z[species < 0]})
            raise DataError(
                f"element(s) with Z = {missing} are not covered by the potential (it has Z = {self.elements})"
            )
        return species

    def raw(self, batch: Batch, vectors: Tensor) -> Tensor:
        """(N, W) unscaled symmetry functions from edge vectors (E, 3).

        Outside training, on CPU with numba, the Gaussian and compact families are computed by
        one compiled call (:mod:`mpnn.symmetry.fused`); the other groups (and all of them in
        training mode, whose force losses differentiate the backward pass) group by group.
        """
        species = self.species(batch)
        source, centre = batch.edge_index
        weights = batch.z[source].to(vectors.dtype)
        fused: list[_Group] = []
        if not self.training and self.compiled and compiled.available() and vectors.device.type == "cpu":
            fused = [g for g in self.groups if fusable(g.terms)]
        if not fused:
            return self._group_sums(self.groups, batch, vectors, species)
        arrays = compiled.edge_arrays(centre, species, species[source], weights, vectors)

        def fallback(vectors: Tensor, grad: Tensor) -> Tensor:
            values = self._group_sums(fused, batch, vectors, species)
            return torch.autograd.grad(values, vectors, grad, create_graph=True)[0]

        out = FusedFunctions.apply(vectors, arrays, self.width, self.fused_table(fused), fallback)
        rest = [g for g in self.groups if g not in fused]
        return out + self._group_sums(rest, batch, vectors, species) if rest else out

    def _apply(self, fn: Any, recurse: bool = True) -> SymmetryFunctions:
        _forget_tables(self)
        return super()._apply(fn, recurse)

    def fused_table(self, fused: Sequence[_Group]) -> tuple:
        """The kernel tables of the groups ``fused`` (:func:`mpnn.symmetry.fused.tables`), kept
        until the module's buffers are loaded or converted."""
        key = tuple(id(g) for g in fused)
        if getattr(self, "_fused", (None,))[0] != key:
            self._fused = (key, tables(fused, len(self.elements)))
        return self._fused[1]

    def all_fused(self) -> bool:
        """Whether one compiled call computes every function here (CPU; eval mode, numba, only
        Gaussian and compact families: what :mod:`mpnn.potentials.hdnnp_forces` needs)."""
        if getattr(self, "_all_fusable", None) is None:  # the groups are fixed at construction
            self._all_fusable = all(fusable(g.terms) for g in self.groups)
        return (
            not self.training
            and self.compiled
            and self._all_fusable
            and compiled.available()
            and self.species_of.device.type == "cpu"
        )

    def _group_sums(
        self, groups: Sequence[_Group], batch: Batch, vectors: Tensor, species: Tensor, kernels: bool = True
    ) -> Tensor:
        """(N, W): the columns of ``groups``, group by group (the others 0); ``kernels``: use the
        compiled compact kernel where it applies."""
        n = batch.num_atoms
        source, centre = batch.edge_index
        distance = vectors.norm(dim=1)
        with torch.no_grad():
            r = distance.detach()
            neighbor_species = species[source]
            centre_species = species[centre]
        weights = batch.z[source].to(vectors.dtype)
        out = vectors.new_zeros((n, self.width))
        arrays = None
        for group in groups:
            if group.angular and self._use_compiled(group, vectors):
                if arrays is None:
                    arrays = compiled.edge_arrays(centre, species, neighbor_species, weights, vectors)
                values = self._compiled_angular(
                    group, vectors, arrays, neighbor_species, centre, r, weights, n
                )
                out = out.index_add(1, group.columns, values)
                continue
            params = self._compact_parameters(group, vectors) if kernels else None
            if params is not None:  # compact types: compiled, the PyTorch path for a recorded backward
                if arrays is None:
                    arrays = compiled.edge_arrays(centre, species, neighbor_species, weights, vectors)
                e1, e2 = (-1, -1) if group.neighbors is None else (group.neighbors * 2)[:2]

                def fallback(grad: Tensor, group: _Group = group) -> Tensor:
                    values = self._group_sums([group], batch, vectors, species, kernels=False)
                    return torch.autograd.grad(values[:, group.columns], vectors, grad, create_graph=True)[0]

                values = CompiledCompactSum.apply(vectors, arrays, group.element, e1, e2, params, fallback)
                out = out.index_add(1, group.columns, values)
                continue
            near = (centre_species == group.element) & (r < group.terms.cutoff)
            if group.angular:
                values = self._angular(group, vectors, near, neighbor_species, centre, r, weights, n)
            else:
                if group.neighbors is not None:
                    near &= neighbor_species == group.neighbors[0]
                edges = near.nonzero().squeeze(1)
                terms = group.terms(distance[edges], weights[edges])
                values = vectors.new_zeros((n, terms.shape[1])).index_add(0, centre[edges], terms)
            out = out.index_add(1, group.columns, values)
        return out

    def _compact_parameters(self, group: _Group, vectors: Tensor) -> tuple | None:
        """The compiled kernel's parameters of a compact group, or None (PyTorch path)."""
        if not (self.compiled and compiled.available() and vectors.device.type == "cpu"):
            return None
        if not isinstance(group.terms, (CompactRadial, CompactAngular)):
            return None
        return compact_kernel_parameters(group.terms)

    def _use_compiled(self, group: _Group, vectors: Tensor) -> bool:
        return (
            self.compiled
            and compiled.available()
            and vectors.device.type == "cpu"
            and isinstance(group.terms, GaussianAngular)
        )

    def _compiled_angular(
        self,
        group: _Group,
        vectors: Tensor,
        edges: compiled.EdgeArrays,
        neighbor_species: Tensor,
        centre: Tensor,
        r: Tensor,
        weights: Tensor,
        n: int,
    ) -> Tensor:
        e1, e2 = group.neighbors if group.neighbors is not None else (-1, -1)

        def fallback(grad: Tensor) -> Tensor:
            near = (edges_species_of_centre(centre, edges) == group.element) & (r < group.terms.cutoff)
            a, b = self._pairs(group, vectors, near, neighbor_species, centre, n)
            return triplet_vector_grad(vectors.detach(), a, b, centre, weights, group.terms, grad)

        return compiled.CompiledAngularSum.apply(
            vectors, edges, group.element, e1, e2, group.terms.kernel_parameters(), fallback
        )

    def _angular(
        self,
        group: _Group,
        vectors: Tensor,
        near: Tensor,
        neighbor_species: Tensor,
        centre: Tensor,
        r: Tensor,
        weights: Tensor,
        n: int,
    ) -> Tensor:
        a, b = self._pairs(group, vectors, near, neighbor_species, centre, n)
        width = int(group.columns.shape[0])
        return TripletSum.apply(vectors, a, b, centre, weights, group.terms, n, width)

    def _pairs(
        self, group: _Group, vectors: Tensor, near: Tensor, neighbor_species: Tensor, centre: Tensor, n: int
    ) -> tuple[Tensor, Tensor]:
        """Edge pairs (a, b) of the group's triplets (narrow families: r_jk < rc too)."""
        with torch.no_grad():
            if group.neighbors is None:
                a, b = pair_blocks(centre, near.nonzero().squeeze(1), None, n)
            else:
                e1, e2 = group.neighbors
                first = (near & (neighbor_species == e1)).nonzero().squeeze(1)
                if e1 == e2:
                    a, b = pair_blocks(centre, first, None, n)
                else:
                    second = (near & (neighbor_species == e2)).nonzero().squeeze(1)
                    a, b = pair_blocks(centre, first, second, n)
            if getattr(group.terms, "narrow", False) and a.numel():
                keep = (vectors[b].detach() - vectors[a].detach()).norm(dim=1) < group.terms.cutoff
                a, b = a[keep], b[keep]
        return a, b

    def prepare(self, batch: Batch, vectors: Tensor, steps: int = 1) -> Tensor:
        """(N, W) scaled symmetry functions (the message, computed once).

        A batch that carries its ``descriptors`` and ``descriptor_grad`` (made by
        :func:`mpnn.messages.symmetry_cache.jacobian` for this message) is read from them: the
        same values and the same derivatives with respect to ``vectors``, without the terms.
        """
        species = self.species(batch)
        if batch.descriptors is not None:
            raw = CachedFunctions.apply(
                vectors, batch.descriptors.to(vectors.dtype), batch.descriptor_grad, batch.edge_index[1]
            )
        else:
            raw = self.raw(batch, vectors)
        if self.monitor is not None:
            self.monitor(raw, species)
        factor = self.scale_factor.to(raw.dtype)[species]
        ref = self.scale_ref.to(raw.dtype)[species]
        return self.scale_min.to(raw.dtype)[species] + factor * (raw - ref)

    def forward(self, h: Tensor, context: Tensor) -> Tensor:
        return context


def edges_species_of_centre(centre: Tensor, edges: compiled.EdgeArrays) -> Tensor:
    """(E,) species of each edge's centre atom."""
    return torch.from_numpy(edges.species).to(centre.device)[centre]


def _atomic_number(symbol: str) -> int:
    from ase.data import atomic_numbers

    if symbol not in atomic_numbers:
        raise DataError(f"unknown element symbol {symbol!r}")
    return atomic_numbers[symbol]
