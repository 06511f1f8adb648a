"""Named model configurations.  ``build_model(config)`` rebuilds any of them from the JSON
dictionary stored beside a checkpoint (``config["model"]`` names the configuration)."""

from __future__ import annotations

import dataclasses
from typing import Any

from mpnn.models.base import PropertyModel
from mpnn.models.dtnn import DTNNConfig, dtnn
from mpnn.models.duvenaud import DuvenaudConfig, duvenaud
from mpnn.models.enn_s2s import EnnS2SConfig, enn_s2s
from mpnn.models.gcn import GCNConfig, gcn
from mpnn.models.ggnn import GGNNConfig, ggnn
from mpnn.models.gilmer import GilmerConfig, gilmer
from mpnn.models.hdnnp import HDNNPConfig, PotentialModel, hdnnp
from mpnn.models.interaction_network import InteractionNetworkConfig, interaction_network
from mpnn.models.sf_mpnn import SFMPNNConfig, sf_mpnn
from mpnn.models.weave import WeaveConfig, weave

#: name -> (configuration dataclass, builder).  "mpnn" spans Gilmer et al.'s variants (named
#: presets in :mod:`mpnn.models.presets`); the earlier models of Gilmer et al.'s Sec. 2 are
#: configurations of the same engine: duvenaud, ggnn, interaction_network, weave, dtnn, gcn.
MODELS = {
    "enn_s2s": (EnnS2SConfig, enn_s2s),
    "mpnn": (GilmerConfig, gilmer),
    "ggnn": (GGNNConfig, ggnn),
    "hdnnp": (HDNNPConfig, hdnnp),
    "sf_mpnn": (SFMPNNConfig, sf_mpnn),
    "duvenaud": (DuvenaudConfig, duvenaud),
    "interaction_network": (InteractionNetworkConfig, interaction_network),
    "weave": (WeaveConfig, weave),
    "dtnn": (DTNNConfig, dtnn),
    "gcn": (GCNConfig, gcn),
}

#: The potentials among them (:class:`PotentialModel`: energies, forces, MD); the others predict properties.
POTENTIALS = ("hdnnp", "sf_mpnn")

#: Bounds checked before a model is allocated: any integer of its configuration (widths, steps,
#: layer sizes) and its number of parameters (4 bytes each in float32, 3x that to train with Adam).
MAX_SIZE = 1_000_000
MAX_PARAMETERS = 200_000_000


def build_model(config: dict[str, Any]) -> PropertyModel | PotentialModel:
    """A fresh model from ``{"model": name, **hyperparameters}``; unknown keys are an error, and
    so are sizes beyond :data:`MAX_SIZE` or :data:`MAX_PARAMETERS` (checked before allocating)."""
    settings = dict(config)
    name = settings.pop("model", None)
    if not isinstance(name, str) or name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    config_type, build = MODELS[name]
    known = sorted(f.name for f in dataclasses.fields(config_type) if f.init)
    unknown = [key for key in settings if key not in known]
    if unknown:
        raise ValueError(f"model {name}: unknown option {unknown[0]!r}; known options: {', '.join(known)}")
    _check_sizes(settings, f"model {name}")
    try:
        parsed = config_type(**settings)
    except TypeError as error:
        raise ValueError(f"model {name}: {error}") from None
    _check_parameter_count(build, parsed, name)
    return build(parsed)


def _check_sizes(value: Any, where: str) -> None:
    """Every integer in ``value`` (nested lists and dicts) is at most :data:`MAX_SIZE`."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_sizes(item, f"{where}: {key}")
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_sizes(item, where)
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_SIZE:
        raise ValueError(f"{where}: {value} is beyond the largest size allowed ({MAX_SIZE:,})")


def _check_parameter_count(build: Any, parsed: Any, name: str) -> None:
    """Build ``parsed`` on PyTorch's meta device (shapes, no memory) and bound its size."""
    import torch

    try:
        with torch.device("meta"):
            dry = build(parsed)
    except RuntimeError as error:  # "Storage size calculation overflowed", ...
        if "overflow" in str(error):
            raise ValueError(f"model {name}: sizes too large to allocate") from None
        return  # a builder that needs real values (e.g. the symmetry-function tables): MAX_SIZE holds
    except (NotImplementedError, ValueError, TypeError, IndexError):
        return
    count = sum(t.numel() for t in dry.parameters()) + sum(t.numel() for t in dry.buffers())
    if count > MAX_PARAMETERS:
        raise ValueError(
            f"model {name}: {count:,} parameters, more than the {MAX_PARAMETERS:,} allowed (sizes too large?)"
        )


__all__ = [
    "MODELS",
    "POTENTIALS",
    "DTNNConfig",
    "DuvenaudConfig",
    "EnnS2SConfig",
    "GCNConfig",
    "GGNNConfig",
    "GilmerConfig",
    "HDNNPConfig",
    "InteractionNetworkConfig",
    "PotentialModel",
    "PropertyModel",
    "SFMPNNConfig",
    "WeaveConfig",
    "build_model",
    "dtnn",
    "duvenaud",
    "enn_s2s",
    "gcn",
    "ggnn",
    "gilmer",
    "hdnnp",
    "interaction_network",
    "sf_mpnn",
    "weave",
]
