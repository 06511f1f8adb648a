r"""An HDNNP's energies, forces and stress from numpy arrays, in one compiled walk per centre.

What :mod:`mpnn.potentials.hdnnp_forces` (a model of PyTorch) and
:mod:`mpnn.potentials.n2p2_predict` (an n2p2 folder, without PyTorch) share: the element networks
as :func:`mpnn.symmetry.fused_energy.network_gradient` reads them (:func:`network_tables`), the
walk (:func:`one_walk`: G, atomic energies and dE/d(edge vector)) and the forces and virial from
dE/d(edge vector) (:func:`edge_forces`, :func:`virial`):

.. math::
    \mathbf F_k = -\sum_{e:\,src(e) = k} \frac{\partial E}{\partial \mathbf r_e}
    + \sum_{e:\,i(e) = k} \frac{\partial E}{\partial \mathbf r_e}, \qquad
    W = \mathrm{sym}\Big(\sum_e \mathbf r_e \otimes \frac{\partial E}{\partial \mathbf r_e}\Big)

(edge vector r_e = r_src - r_i + S cell; the stress is W / V).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from mpnn.symmetry.kernel_calls import EdgeArrays

#: one element's network: its layers' (weight (out, in), bias (out,)) float64 arrays, its
#: activation letters (one per layer, n2p2's) and whether it divides by the inputs
#: (``normalize_nodes``)
Network = tuple[Sequence[tuple[np.ndarray, np.ndarray]], str, bool]

#: the most weights (and biases) of one element's network for which the one walk runs: it runs
#: each atom's network on its own, reading that network's weights twice per atom, which costs
#: little while they stay in a core's cache (n2p2's water networks: 1,376 and 1,451; ethanol's
#: default networks, 768 inputs x 64 x 64: 53,441, where one matrix product per element in numpy
#: makes the two walks' call faster, 1.8-2.0 against 2.3-2.6 ms)
ONE_WALK_MAX_WEIGHTS = 16_384


def network_tables(networks: Sequence[Network]) -> tuple:
    """The networks (one per species) as :func:`~mpnn.symmetry.fused_energy.network_gradient`
    reads them: per layer its sizes, offsets and activation code, the weights, their transposes
    and the biases flattened (copies: the tables never share memory with the weights)."""
    from mpnn.symmetry.fused_energy import ACTIVATION_CODES

    first, n_in, n_out, w_off, b_off, codes, normalize = [0], [], [], [], [], [], []
    weights, transposed, biases = [], [], []
    w_at = b_at = 0
    for layers, activations, divide in networks:
        for (weight, bias), letter in zip(layers, activations, strict=True):
            n_out.append(weight.shape[0])
            n_in.append(weight.shape[1])
            w_off.append(w_at)
            b_off.append(b_at)
            codes.append(ACTIVATION_CODES[letter])
            weights.append(weight.ravel())
            transposed.append(weight.T.ravel())
            biases.append(bias)
            w_at, b_at = w_at + weight.size, b_at + bias.size
        first.append(len(n_in))
        normalize.append(bool(divide))
    ints = (np.asarray(v, dtype=np.int64) for v in (first, n_in, n_out, w_off, b_off, codes))
    flat = (np.concatenate(weights), np.concatenate(transposed), np.concatenate(biases))
    return (*ints, np.asarray(normalize), *flat)


def full_scaling(scale_min: np.ndarray, scale_ref: np.ndarray, factor: np.ndarray) -> tuple:
    """n2p2's scaling (scaled G = min + factor (G - ref)) as three (S, W) float64 arrays (the
    minimum may come per species, (S, 1))."""
    shape = factor.shape
    values = (scale_min, scale_ref, factor)
    return tuple(np.ascontiguousarray(np.broadcast_to(v, shape), dtype=np.float64) for v in values)


def one_walk(
    edges: EdgeArrays,
    width: int,
    table: tuple,
    scaling: tuple,
    networks: tuple,
    scale: float,
    offsets: np.ndarray,
    run: Callable[[Callable, tuple], object],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(raw G (N, width), atomic energies (N,), dE/d(edge vector) (E, 3)) of an HDNNP whose
    functions are all Gaussian (``table``: :func:`~mpnn.symmetry.gaussian_table.gaussian_table`)
    in one walk (:func:`mpnn.symmetry.fused_energy.energy_walk`), with ``scaling``
    (:func:`full_scaling`), ``networks`` (:func:`network_tables`), the energy ``scale`` and the
    species' energy ``offsets`` (S,); ``run(kernel, args)`` calls the kernel on the caller's
    threads (:func:`mpnn.symmetry.kernel_calls.call`)."""
    from mpnn.symmetry.fused_energy import energy_walk

    n = edges.ptr.shape[0] - 1
    raw, energies = np.zeros((n, width)), np.zeros(n)
    dvec = np.zeros((edges.vectors.shape[0], 3))
    run(energy_walk, (*edges.kernel_args(), table, scaling, networks, scale, offsets, raw, energies, dvec))
    return raw, energies, dvec


def results(
    energies: np.ndarray,
    dvec: np.ndarray | None,
    unit: float,
    vectors: np.ndarray,
    source: np.ndarray,
    centre: np.ndarray,
    graph: np.ndarray,
    count: int,
    forces: bool = True,
    cell: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """``energy`` (B,) and ``energies`` (N,) (eV) of ``count`` structures from the atomic energies,
    and from ``dvec`` (E, 3), dE/d(edge vector) in the kernel's length unit (``unit`` Angstrom),
    ``forces`` (N, 3) (eV/Angstrom) and, with ``cell`` (B, 3, 3), ``stress`` (B, 6) (eV/Angstrom^3,
    :func:`voigt_stress`); ``vectors`` (E, 3) Angstrom, edges ``source`` -> ``centre``, ``graph``
    (N,) each atom's structure. ``dvec`` is divided by ``unit`` in place."""
    out = {"energy": np.bincount(graph, energies, minlength=count), "energies": energies}
    if dvec is None:
        return out
    if unit != 1.0:
        dvec /= unit
    if forces:  # F_k = sum over the edges centred on k - sum over those from k
        out["forces"] = edge_forces(dvec, source, centre, energies.shape[0])
    if cell is not None:
        out["stress"] = voigt_stress(virial(vectors, dvec, graph[centre], count), cell)
    return out


def edge_forces(dvec: np.ndarray, source: np.ndarray, centre: np.ndarray, n: int) -> np.ndarray:
    """(n, 3) forces from dE/d(edge vector) (E, 3) of the edges ``source`` -> ``centre``."""
    return np.stack([np.bincount(centre, d, n) - np.bincount(source, d, n) for d in dvec.T], 1)


def virial(vectors: np.ndarray, dvec: np.ndarray, structure: np.ndarray, count: int) -> np.ndarray:
    """(count, 3, 3) symmetric sum_e r_e (x) dE/dr_e per structure; ``structure`` (E,): each
    edge's structure."""
    if count == 1:  # one (3, E) x (E, 3) product
        total = (vectors.T @ dvec)[None]
    else:
        total = np.zeros((count, 3, 3))
        np.add.at(total, structure, vectors[:, :, None] * dvec[:, None, :])
    return 0.5 * (total + total.transpose(0, 2, 1))


#: (row, column) of the Voigt order xx, yy, zz, yz, xz, xy (:data:`mpnn.potentials.forces.VOIGT`)
_VOIGT = ([0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1])


def voigt_stress(sums: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """(B, 6) stress W / V in Voigt order (xx, yy, zz, yz, xz, xy) from the (B, 3, 3) virials of
    :func:`virial` and the (B, 3, 3) cells; NaN rows where a structure has no 3-D cell
    (:func:`mpnn.neighbors.cell_volumes`)."""
    from mpnn.neighbors import cell_volumes

    return sums[:, _VOIGT[0], _VOIGT[1]] / cell_volumes(cell)[:, None]
