"""Kearnes et al.'s Gaussian histogram reduction, against memberships computed with ``math`` by hand,
and the weave model with it against the shared model checks."""

from __future__ import annotations

import math

import pytest
import torch
from model_contract import CHECKS

from mpnn.models.weave import WeaveConfig, weave
from mpnn.readouts.histogram import GAUSSIAN_BINS, GaussianHistogram


def memberships_by_hand(a: float) -> list[float]:
    density = [math.exp(-0.5 * ((a - m) / s) ** 2) / (s * math.sqrt(2 * math.pi)) for m, s in GAUSSIAN_BINS]
    total = sum(density) + 1e-7
    return [d / total for d in density]


@pytest.mark.parametrize("value", [-2.5, -1.0, -0.2, 0.0, 0.35, 1.645, 4.0])
def test_memberships_of_one_feature(value: float) -> None:
    out = GaussianHistogram()(torch.tensor([[value]], dtype=torch.float64))
    torch.testing.assert_close(out[0], torch.tensor(memberships_by_hand(value), dtype=torch.float64))
    if abs(value) <= 2.0:  # where the bins' densities dwarf the epsilon, an atom counts once
        assert abs(float(out.sum()) - 1.0) < 1e-6


def test_features_are_binned_separately_and_in_order() -> None:
    """Two atoms, two features: each block of 11 columns belongs to one feature; a feature at a bin
    centre puts its largest membership in that bin; just past the last centre, most of it in the end
    bin; far out (|a| > 3, never reached after the tanh layer) the epsilon leaves it no mass."""
    a = torch.tensor([[0.0, 1.9], [-1.645, 0.739], [0.2, 6.0]], dtype=torch.float64)
    out = GaussianHistogram()(a).view(3, 2, 11)
    assert out[0, 0].argmax() == 5 and out[0, 1, 10] > 0.99
    assert out[1, 0].argmax() == 0 and out[1, 1].argmax() == 8
    torch.testing.assert_close(out[:2].sum(-1), torch.ones(2, 2, dtype=torch.float64), atol=1e-6, rtol=0)
    assert float(out[2, 1].sum()) < 1e-6


def make() -> torch.nn.Module:
    torch.manual_seed(0)
    config = WeaveConfig(dim=16, pair_dim=8, hidden=8, steps=2, readout_width=6, readout_hidden=[8],
                         activation="softplus", reduction="histogram")  # fmt: skip
    return weave(config).double()


@pytest.mark.parametrize("check", sorted(CHECKS))
def test_weave_with_histograms_passes_the_model_checks(check: str) -> None:
    CHECKS[check](make)


def test_unknown_reduction_is_refused() -> None:
    with pytest.raises(ValueError, match="reduction"):
        weave(WeaveConfig(reduction="mean"))
