"""Named model configurations.  ``build_model(config)`` rebuilds any of them from the JSON
dictionary stored beside a checkpoint (``config["model"]`` names the configuration)."""

from __future__ import annotations

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
from mpnn.models.weave import WeaveConfig, weave

#: name -> (configuration dataclass, builder).  "mpnn" spans Gilmer et al.'s variants (named
#: presets in :mod:`mpnn.models.presets`); the earlier models of Gilmer et al.'s Sec. 2 are
#: configurations of the same engine: duvenaud, ggnn, interaction_network, weave, dtnn, gcn.
MODELS = {
    "enn_s2s": (EnnS2SConfig, enn_s2s),
    "mpnn": (GilmerConfig, gilmer),
    "ggnn": (GGNNConfig, ggnn),
    "hdnnp": (HDNNPConfig, hdnnp),
    "duvenaud": (DuvenaudConfig, duvenaud),
    "interaction_network": (InteractionNetworkConfig, interaction_network),
    "weave": (WeaveConfig, weave),
    "dtnn": (DTNNConfig, dtnn),
    "gcn": (GCNConfig, gcn),
}


def build_model(config: dict[str, Any]) -> PropertyModel | PotentialModel:
    """A fresh model from ``{"model": name, **hyperparameters}``; unknown keys are an error."""
    settings = dict(config)
    name = settings.pop("model", None)
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    config_type, build = MODELS[name]
    try:
        parsed = config_type(**settings)
    except TypeError as error:
        raise ValueError(f"model {name}: {error}") from None
    return build(parsed)


__all__ = [
    "MODELS",
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
    "weave",
]
