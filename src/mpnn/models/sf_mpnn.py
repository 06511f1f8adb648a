r"""SF-MPNN: a Behler-Parrinello potential with T - 1 further steps of learned message passing.

The HDNNP (:mod:`mpnn.models.hdnnp`) is an MPNN with T = 1: its message is the atom's vector of
scaled symmetry functions G_v, its update the element's network giving the atomic energy. This
model keeps G_v as the first message (physical, cheap, cached in training exactly as for the
HDNNP) and adds T - 1 learned steps over the same radius graph, so that an atom's energy depends
on its neighbours' environments and not only on its own:

.. math::
    h_v^1 = \mathrm{NN}^{emb}_{s(v)}(G_v), \qquad
    h_v^{t+1} = h_v^t + \mathrm{NN}_t\big([h_v^t, \textstyle\sum_w W_t(r_{vw}) \odot
    (A_t h_w^t + B_t h_v^t)]\big), \qquad
    E = \sum_v \big(s\, \mathrm{NN}^{E}_{s(v)}(h_v^T) + e_{s(v)}\big)

(:class:`~mpnn.updates.element_mlp.ElementEmbedding`,
:class:`~mpnn.messages.radial.RadialFilterMessage`,
:class:`~mpnn.updates.residual.ResidualUpdate` or a GRU, and the per-element energy networks of
:class:`~mpnn.updates.element_mlp.ElementUpdate` with the HDNNP's energy scale s and offsets e).
Every filter carries the cutoff function, so energy and forces are continuous in the positions.

With ``steps = 1`` the embedding and the learned steps are absent and :math:`h^1 = G`: the model
*is* the HDNNP of the same configuration: the same symmetry functions and energy networks
(the HDNNP's ``net.updates.0`` is this model's ``head``), which the tests check to 1e-12.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from mpnn.engine import MPNN
from mpnn.inputs import EdgeVectors, SpeciesInput
from mpnn.messages.radial import RadialFilterMessage, RadialPairMessage
from mpnn.messages.symmetry_functions import SymmetryFunctions, _atomic_number
from mpnn.models.hdnnp import HDNNPConfig, energy_networks, symmetry_specs
from mpnn.models.potential import PotentialModel
from mpnn.readouts.sum import SumReadout
from mpnn.updates.element_mlp import ElementEmbedding
from mpnn.updates.gru import GRUUpdate
from mpnn.updates.residual import ResidualUpdate, TakeMessage

UPDATES = ("residual", "gru")
MESSAGES = {"filter": RadialFilterMessage, "pair": RadialPairMessage}
#: The most hidden layers of the element networks h^1 = NN(G).
MAX_EMBEDDING_LAYERS = 8


@dataclass
class SFMPNNConfig(HDNNPConfig):
    """An HDNNP's configuration (its symmetry functions, ``nodes`` and ``activations`` now those of
    the energy networks on h^T) plus the learned steps.

    Attributes:
        steps: T, the symmetry-function step included (1 is the HDNNP).
        features: d, the width of the atom states h^1..h^T.
        embedding: hidden layer sizes of each element's network G_v -> h^1 (SiLU).
        message_cutoff: r_c of the learned messages, in ``length_unit`` (None: the symmetry
            functions' cutoff; at most that, the neighbour-list radius).
        radial_basis: K, Gaussians of the filters.
        message: ``filter`` (a radial filter on the neighbour's state) or ``pair`` (a network on both
            states and the distance), :mod:`mpnn.messages.radial`.
        update: ``residual`` or ``gru``.
    """

    steps: int = 2
    features: int = 64
    embedding: list[int] = field(default_factory=lambda: [64])
    message_cutoff: float | None = None
    radial_basis: int = 16
    message: str = "filter"
    update: str = "residual"


def message_passing_defaults() -> dict[str, object]:
    """The defaults of the fields an SF-MPNN adds to an HDNNP's configuration."""
    own = {f.name for f in fields(HDNNPConfig)}
    defaults = SFMPNNConfig(elements=[], symmetry_functions=[])
    return {f.name: getattr(defaults, f.name) for f in fields(SFMPNNConfig) if f.name not in own}


def sf_mpnn(config: SFMPNNConfig) -> PotentialModel:
    """Build an SF-MPNN from its configuration (float64, weights drawn as torch does).

    Refused (ValueError, one line): settings out of range, a hard cutoff (``cutoff_type`` 0, which
    would make the learned messages jump) with T > 1, and more parameters than
    :data:`mpnn.models.MAX_PARAMETERS` (counted before anything is allocated).
    """
    c = config
    if c.steps < 1:
        raise ValueError(f"sf_mpnn: steps must be >= 1, got {c.steps}")
    if c.steps > 1 and c.cutoff_type == 0:
        raise ValueError("sf_mpnn: a hard cutoff (cutoff_type 0) would make the learned messages jump")
    if len(c.embedding) > MAX_EMBEDDING_LAYERS:
        raise ValueError(f"sf_mpnn: at most {MAX_EMBEDDING_LAYERS} embedding layers, got {len(c.embedding)}")
    if c.update not in UPDATES:
        raise ValueError(f"sf_mpnn: update must be one of {UPDATES}, got {c.update!r}")
    if c.message not in MESSAGES:
        raise ValueError(f"sf_mpnn: message must be one of {tuple(MESSAGES)}, got {c.message!r}")
    if c.features < 1 or c.radial_basis < 2:
        raise ValueError("sf_mpnn: features must be >= 1 and radial_basis >= 2")
    numbers = [_atomic_number(e) for e in c.elements]
    specs = symmetry_specs(c)
    _check_size(c, [len(s) for s in specs])
    functions = SymmetryFunctions(numbers, specs, c.cutoff_type, c.cutoff_alpha)
    sizes = [len(s) for s in specs]
    message_cutoff = functions.cutoff if c.message_cutoff is None else float(c.message_cutoff)
    if not 0.0 < message_cutoff <= functions.cutoff:
        raise ValueError(
            f"sf_mpnn: message_cutoff {message_cutoff:g} must be in (0, {functions.cutoff:g}], "
            "the symmetry functions' cutoff"
        )
    if c.steps == 1:
        messages, updates, head_sizes = [functions], [TakeMessage()], sizes
    else:
        messages = [functions] + [
            MESSAGES[c.message](c.features, c.radial_basis, message_cutoff, c.cutoff_type, c.cutoff_alpha)
            for _ in range(c.steps - 1)
        ]
        learned = [
            ResidualUpdate(c.features) if c.update == "residual" else GRUUpdate(c.features)
            for _ in range(c.steps - 1)
        ]
        updates = [ElementEmbedding(sizes, c.features, c.embedding), *learned]
        head_sizes = [c.features] * len(numbers)
    head = energy_networks(c, head_sizes)
    net = MPNN(
        SpeciesInput(numbers),
        EdgeVectors(c.length_unit),
        messages,
        updates,
        SumReadout(),
        steps=c.steps,
        tie_weights=c.steps == 1,
    )
    functions_json = [[spec.to_dict() for spec in element_specs] for element_specs in specs]
    stored = {"model": "sf_mpnn", **asdict(c), "symmetry_functions": functions_json}
    model = PotentialModel(net, stored, functions.cutoff * c.length_unit, numbers, head=head)
    return model.double()


def _check_size(c: SFMPNNConfig, inputs: list[int]) -> None:
    """Count the parameters of the networks (weights and biases of every linear layer) and refuse
    more than :data:`mpnn.models.MAX_PARAMETERS`."""
    from mpnn.models import MAX_PARAMETERS

    def layers(widths: list[int]) -> int:
        return sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))

    d, k = c.features, c.radial_basis
    width = [d] * len(inputs) if c.steps > 1 else inputs
    count = sum(layers([n, *nodes, 1]) for n, nodes in zip(width, c.nodes, strict=False))
    if c.steps > 1:
        count += sum(layers([n, *c.embedding, d]) for n in inputs)
        update = layers([2 * d, d, d]) if c.update == "residual" else 6 * d * d + 6 * d
        count += (c.steps - 1) * (layers([k, d, d]) + 2 * d * d + d + update)
    if count > MAX_PARAMETERS:
        raise ValueError(
            f"sf_mpnn: {count:,} parameters, more than the {MAX_PARAMETERS:,} allowed (sizes too large?)"
        )
