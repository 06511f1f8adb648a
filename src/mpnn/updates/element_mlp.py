r"""The Behler-Parrinello update: one feed-forward network per element, atomic energy out.

:math:`h_i' = E_i = \mathrm{NN}_{s(i)}(m_i)` with :math:`m_i` the (scaled) symmetry functions of
atom i and s(i) its element.  Layers follow n2p2: ``y = f(W x + b)``, or with
``normalize_nodes`` ``y = f((W x + b) / n_in)``, activations named by n2p2's letters:

=====  ==========================  =====  ===========================
``l``  identity                    ``g``  :math:`e^{-x^2/2}`
``t``  tanh                        ``c``  cos
``s``  logistic                    ``S``  1 - logistic
``p``  softplus :math:`\ln(1+e^x)`   ``e``  :math:`e^{-x}`
``r``  relu                        ``h``  :math:`x^2`
=====  ==========================  =====  ===========================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from mpnn.updates.mlp import mlp

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "l": lambda x: x,
    "t": torch.tanh,
    "s": torch.sigmoid,
    "p": lambda x: torch.logaddexp(x, torch.zeros_like(x)),
    "r": torch.relu,
    "g": lambda x: torch.exp(-0.5 * x * x),
    "c": torch.cos,
    "S": lambda x: 1.0 - torch.sigmoid(x),
    "e": lambda x: torch.exp(-x),
    "h": lambda x: x * x,
}


class ElementNetwork(nn.Module):
    """One element's network: ``forward(x (n, n_in)) -> (n, 1)``.

    Args:
        n_inputs: symmetry functions of the element.
        nodes: hidden layer sizes.
        activations: one letter per hidden layer plus one for the output.
        normalize: n2p2's ``normalize_nodes``.
    """

    def __init__(
        self, n_inputs: int, nodes: Sequence[int], activations: str | Sequence[str], normalize: bool = False
    ) -> None:
        super().__init__()
        sizes = [n_inputs, *nodes, 1]
        if len(activations) != len(sizes) - 1:
            raise ValueError(
                f"{len(sizes) - 1} activations needed (hidden layers + output), got {len(activations)}"
            )
        unknown = [a for a in activations if a not in ACTIVATIONS]
        if unknown:
            raise ValueError(f"unknown activation(s) {unknown}; known: {sorted(ACTIVATIONS)}")
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        self.activations, self.normalize = "".join(activations), normalize

    def forward(self, x: Tensor) -> Tensor:
        for layer, name in zip(self.layers, self.activations, strict=True):
            x = layer(x)
            if self.normalize:
                x = x / layer.in_features
            x = ACTIVATIONS[name](x)
        return x


class ElementUpdate(nn.Module):
    """U(h, m): the network of each atom's element applied to its message; -> (N, 1) energies.

    ``h`` is the one-hot element (N, S) of :class:`mpnn.inputs.SpeciesInput`; element s reads
    the first ``sizes[s]`` columns of ``m`` (N, W).  The atomic energy is
    ``energy_scale * NN_s(m) + offsets[s]`` (buffers; for an n2p2 potential
    ``1 / conv_energy`` and ``mean_energy + atom_energy``, times the energy unit).
    """

    def __init__(self, networks: Sequence[ElementNetwork], sizes: Sequence[int]) -> None:
        super().__init__()
        self.networks = nn.ModuleList(networks)
        self.sizes = list(sizes)
        self.register_buffer("energy_scale", torch.ones((), dtype=torch.float64))
        self.register_buffer("offsets", torch.zeros(len(networks), dtype=torch.float64))

    def forward(self, h: Tensor, m: Tensor) -> Tensor:
        return self.energies(h.argmax(dim=1), m)

    def energies(self, species: Tensor, m: Tensor) -> Tensor:
        """(N, 1) atomic energies of atoms of species (N,) with inputs m (N, W)."""
        out = by_element(self.networks, self.sizes, species, m, 1)
        energy = out * self.energy_scale.to(out.dtype)
        dtype = torch.promote_types(out.dtype, self.offsets.dtype)  # offsets of hundreds of eV
        return energy.to(dtype) + self.offsets.to(dtype)[species].unsqueeze(1)


class ElementEmbedding(nn.Module):
    """U(h, m) = NN_s(m): each element's own network maps its W_s scaled symmetry functions to d
    features (the first update of :mod:`mpnn.models.sf_mpnn`); -> (N, d).

    ``h`` is the one-hot element (N, S); the networks are ``mlp([W_s, *hidden, d], "silu")``.
    """

    def __init__(self, sizes: Sequence[int], features: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.sizes, self.features = list(sizes), features
        self.networks = nn.ModuleList(mlp([size, *hidden, features], "silu") for size in sizes)

    def forward(self, h: Tensor, m: Tensor) -> Tensor:
        return by_element(self.networks, self.sizes, h.argmax(dim=1), m, self.features)


def by_element(
    networks: Sequence[nn.Module], sizes: Sequence[int], species: Tensor, m: Tensor, width: int
) -> Tensor:
    """(N, width): row i is ``networks[s](m[i, :sizes[s]])`` for s = species[i]."""
    out = m.new_zeros((m.shape[0], width))
    for s, network in enumerate(networks):
        atoms = (species == s).nonzero().squeeze(1)
        if atoms.numel():
            out = out.index_copy(0, atoms, network(m[atoms, : sizes[s]]))
    return out
