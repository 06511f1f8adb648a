r"""Energy, forces and stress of an HDNNP without autograd through its symmetry functions.

The symmetry functions G (N, W) come from one compiled walk (:func:`mpnn.symmetry.fused.run`);
the element networks give dE/dG by their layers' own backward formulas, with no autograd graph;
a second walk over the same pairs sums the functions' derivatives weighted by dE/dG, per edge
(:func:`mpnn.symmetry.fused.contract`: n2p2 stores dG/d(edge vector) (E, W, 3) instead), and two
scatters give the forces.  Where all the functions are Gaussian (types 2, 3, 9, 12, 13), one
walk does all three per centre (:func:`mpnn.potentials.hdnnp_numpy.one_walk`), without computing
the triplets' factors twice:

.. math::
    \frac{\partial E}{\partial \mathbf r_e} = \sum_f \frac{\partial E}{\partial G_{i(e) f}}
    \frac{\partial G_{i(e) f}}{\partial \mathbf r_e}, \qquad
    \mathbf F_k = -\sum_{e:\,src(e) = k} \frac{\partial E}{\partial \mathbf r_e}
    + \sum_{e:\,i(e) = k} \frac{\partial E}{\partial \mathbf r_e}

(edge vector r_e = r_src - r_i + S cell), and the stress of :mod:`mpnn.potentials.forces`,
:math:`\sigma = \frac{1}{V}\,\mathrm{sym}\big(\sum_e \mathbf r_e \otimes \partial E/\partial
\mathbf r_e\big)`.  The same quantities as :func:`mpnn.potentials.forces.evaluate` computes
by autograd (tested against it), for a call on a small molecule at a fraction of the
operations: :func:`evaluate_hdnnp` returns None where it does not apply (another model, float32
networks, training mode, a function family the compiled walk lacks, another device, derivatives
to be differentiated again), and the caller takes the autograd path.
"""

from __future__ import annotations

import weakref

import numpy as np
import torch
from torch import Tensor, nn

from mpnn.batch import Batch
from mpnn.inputs import EdgeVectors, SpeciesInput
from mpnn.neighbors import numpy_edge_vectors
from mpnn.potentials import hdnnp_numpy
from mpnn.potentials.hdnnp_numpy import full_scaling, network_tables, one_walk, results
from mpnn.symmetry import compiled
from mpnn.symmetry.fused import contract, run
from mpnn.updates.element_mlp import ElementUpdate

__all__ = ["evaluate_hdnnp"]


def _applies(model: nn.Module, batch: Batch) -> bool:
    from mpnn.models.potential import PotentialModel

    if not isinstance(model, PotentialModel) or model.head is not None or model.training:
        return False
    net = model.net
    if not (
        net.steps == 1
        and len(net.messages) == 1
        and net.edge_updates is None
        and net.masters is None
        and isinstance(net.node_input, SpeciesInput)
        and isinstance(net.edge_input, EdgeVectors)
        and type(net.updates[0]) is ElementUpdate
    ):
        return False
    networks = model.update.networks
    if not len(networks) or networks[0].layers[0].weight.dtype != torch.float64:
        return False
    return (
        batch.pos.dtype == torch.float64
        and batch.pos.device.type == "cpu"
        and batch.descriptors is None
        and model.symmetry_functions.all_fused()
    )


def evaluate_hdnnp(
    model: nn.Module, batch: Batch, forces: bool, stress: bool, atomic: bool
) -> dict[str, Tensor] | None:
    """``{"energy": (B,), "forces": (N, 3), "stress": (B, 6), "energies": (N,)}`` (the keys asked
    for, float64, eV, eV/Angstrom, eV/Angstrom^3) or None where this path does not apply."""
    if not _applies(model, batch):
        return None
    # numpy from here on: a few microseconds per operation where torch takes tens, which is
    # most of a call on a small molecule
    sf = model.symmetry_functions
    species_t = sf.species(batch)
    species = species_t.numpy()
    source, centre = (index.numpy() for index in batch.edge_index)
    unit = model.net.edge_input.unit
    vectors = numpy_edge_vectors(  # Angstrom
        batch.pos.detach().numpy(),
        source,
        centre,
        None if batch.shift is None else batch.shift.numpy(),
        None if batch.cell is None else batch.cell.detach().numpy(),
        batch.batch.numpy(),
    )
    arrays = compiled.numpy_edge_arrays(
        centre,
        species,
        species[source],
        batch.z.numpy()[source].astype(np.float64),
        vectors / unit if unit != 1.0 else vectors,
    )
    need = forces or stress
    table = sf.fused_table(sf.groups)
    factors = sf.scale_factor.numpy()
    walk_once = need and table[1] is None and table[0] is not None and _small(model.update)
    if walk_once:  # functions, networks and gradient per centre, in one walk
        scaling = full_scaling(sf.scale_min.numpy(), sf.scale_ref.numpy(), factors)
        networks, scale, offsets = _network_tables(model.update)
        args = (arrays, sf.width, table[0], scaling, networks, scale, offsets, compiled._run)
        raw, energies, dvec = one_walk(*args)
    else:
        raw, walk = run(arrays, sf.width, table, need)
    monitor = sf.monitor  # extrapolation warnings read the raw values, as on the autograd path
    if monitor is not None:
        monitor(torch.from_numpy(raw), species_t)
    if not walk_once:
        factor = factors[species]
        g = sf.scale_min.numpy()[species] + factor * (raw - sf.scale_ref.numpy()[species])
        energies, dg = network_energies(model.update, species, g, need)
        dvec = contract(dg * factor, walk) if need else None
    cell = None
    if stress:  # (molecules have no cell: NaN rows, as on the autograd path)
        shape = (batch.num_graphs, 3, 3)
        cell = np.zeros(shape) if batch.cell is None else batch.cell.detach().double().numpy()
    args = (energies, dvec, unit, vectors, source, centre, batch.batch.numpy(), batch.num_graphs)
    out = results(*args, forces=forces, cell=cell)
    if not atomic:
        del out["energies"]
    return {key: torch.from_numpy(value) for key, value in out.items()}


def _small(update: ElementUpdate) -> bool:
    sizes = (sum(p.numel() for p in network.parameters()) for network in update.networks)
    return all(size <= hdnnp_numpy.ONE_WALK_MAX_WEIGHTS for size in sizes)


def _network_tables(update: ElementUpdate) -> tuple[tuple, float, np.ndarray]:
    """(the element networks as :func:`mpnn.symmetry.fused_energy.network_gradient` takes them,
    energy scale, offsets (S,)), from the networks' current weights (copied on each call: tens of
    microseconds below :data:`~mpnn.potentials.hdnnp_numpy.ONE_WALK_MAX_WEIGHTS`; a cache keyed
    by PyTorch's version counters would miss writes through ``.data`` or numpy views, which do
    not count)."""
    networks = [(_numpy_layers(n), n.activations, bool(n.normalize)) for n in update.networks]
    return network_tables(networks), float(update.energy_scale), update.offsets.numpy()


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(x, 0.0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))  # 1 / (1 + e^-x) without overflow


#: n2p2's activations (:data:`mpnn.updates.element_mlp.ACTIVATIONS`) on float64 arrays, and
#: their derivatives d y / d x from the input x and the output y
_NUMPY = {
    "l": lambda x: x,
    "t": np.tanh,
    "s": _sigmoid,
    "p": _softplus,
    "r": lambda x: np.maximum(x, 0.0),
    "g": lambda x: np.exp(-0.5 * x * x),
    "c": np.cos,
    "S": lambda x: 1.0 - _sigmoid(x),
    "e": lambda x: np.exp(-x),
    "h": lambda x: x * x,
}
_DERIVATIVES = {
    "l": lambda x, y: np.ones_like(y),
    "t": lambda x, y: 1.0 - y * y,
    "s": lambda x, y: y * (1.0 - y),
    "p": lambda x, y: _sigmoid(x),
    "r": lambda x, y: (x > 0).astype(y.dtype),
    "g": lambda x, y: -x * y,
    "c": lambda x, y: -np.sin(x),
    "S": lambda x, y: -y * (1.0 - y),
    "e": lambda x, y: -y,
    "h": lambda x, y: 2.0 * x,
}


def network_energies(
    update: ElementUpdate, species: np.ndarray, g: np.ndarray, grad: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """(N,) atomic energies (eV, float64) of ``update`` on the scaled functions ``g`` (N, W) of
    atoms of ``species`` (N,) and, with ``grad``, dE/dg (N, W), by the layers' own backward
    formulas, in numpy (float64 networks; no autograd graph, a few microseconds per operation
    instead of tens): each layer y = f(W x + b) (divided by n_in with ``normalize_nodes``)
    passes back ``(dL/dy * f'(x)) W``."""
    order = np.argsort(species, kind="stable")
    counts = np.bincount(species, minlength=len(update.networks))
    energies = np.zeros(g.shape[0])
    dg = np.zeros_like(g) if grad else None
    scale = float(update.energy_scale)
    start = 0
    with np.errstate(all="ignore"):  # inf and NaN as torch gives them, silently (evaluate refuses them)
        for s, (network, count) in enumerate(zip(update.networks, counts.tolist(), strict=True)):
            start = _element(network, update.sizes[s], order, start, count, g, scale, energies, dg)
    return energies + update.offsets.numpy()[species], dg


#: each network's (its layers' parameter tensors, their storage addresses, numpy views of them),
#: held beside the network (not in it: a deep copy or a pickle of the model would carry copies of
#: the views, no longer sharing the copied tensors' memory)
_VIEWS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _numpy_layers(network: nn.Module) -> list[tuple[np.ndarray, np.ndarray]]:
    """(weight, bias) of each layer as numpy views, kept while the network's layers hold the same
    parameter tensors on the same memory (views follow in-place updates; a replaced tensor, or
    one given new memory by ``parameter.data = ...`` as ``model.float()`` / ``double()`` do,
    makes new views; the views keep the old memory alive, so no new tensor can take its address)."""
    tensors = [(layer.weight, layer.bias) for layer in network.layers]
    cached = _VIEWS.get(network)
    if cached is not None and len(cached[0]) == len(tensors):
        if all(
            w is cw and b is cb and w.data_ptr() == pw and b.data_ptr() == pb
            for (w, b), (cw, cb), (pw, pb) in zip(tensors, cached[0], cached[1], strict=True)
        ):
            return cached[2]
    views = [(w.detach().numpy(), b.detach().numpy()) for w, b in tensors]
    _VIEWS[network] = (tensors, [(w.data_ptr(), b.data_ptr()) for w, b in tensors], views)
    return views


def _element(
    network: nn.Module,
    width: int,
    order: np.ndarray,
    start: int,
    count: int,
    values: np.ndarray,
    scale: float,
    energies: np.ndarray,
    dg: np.ndarray | None,
) -> int:
    """One element's atoms (``order[start:start + count]``): their energies and dE/dg rows
    written in place; returns the next start."""
    atoms = order[start : start + count]
    if not count:
        return start + count
    x = values[atoms, :width]
    layers = _numpy_layers(network)
    saved = []
    for (weight, bias), name in zip(layers, network.activations, strict=True):
        z = x @ weight.T + bias
        if network.normalize:
            z = z / weight.shape[1]
        y = _NUMPY[name](z)
        saved.append((z, y))
        x = y
    energies[atoms] = x[:, 0] * scale
    if dg is None:
        return start + count
    back = np.full_like(x, scale)
    for (weight, _), name, (z, y) in zip(
        reversed(layers), reversed(network.activations), reversed(saved), strict=True
    ):
        back = back * _DERIVATIVES[name](z, y)
        if network.normalize:
            back = back / weight.shape[1]
        back = back @ weight
    dg[atoms, :width] = back
    return start + count
