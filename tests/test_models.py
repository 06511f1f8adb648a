"""Every model configuration passes the shared model checks (tests/model_contract.py)."""

import pytest
import torch
from model_contract import CHECKS, seeded_factory

from mpnn.models import build_model

CONFIGS = {
    "enn_s2s": {"model": "enn_s2s", "dim": 16, "edge_hidden": [12], "num_targets": 2},
    "enn_s2s_contracted": {"model": "enn_s2s", "dim": 16, "edge_hidden": [12], "edge_path": "contracted"},
    "enn_s2s_cached": {"model": "enn_s2s", "dim": 16, "edge_hidden": [12], "edge_path": "cached"},
    "enn_s2s_untied_mean": {
        "model": "enn_s2s",
        "dim": 16,
        "edge_hidden": [12, 10],
        "tie_weights": False,
        "aggregation": "mean",
        "node_input": "linear",
    },
    "enn_s2s_bonds": {"model": "enn_s2s", "dim": 16, "edge_hidden": [12], "graph": "bonds"},
}


def factory(name: str):
    return seeded_factory(lambda: build_model(CONFIGS[name]))


@pytest.mark.parametrize("check", sorted(CHECKS))
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_model_contract(name: str, check: str) -> None:
    CHECKS[check](factory(name))


def test_checks_catch_a_broken_model() -> None:
    """The invariance check fails for a model that reads raw coordinates (it must be able to)."""

    class ReadsCoordinates(torch.nn.Module):
        graph = "complete"

        def forward(self, batch):
            return torch.zeros(batch.num_graphs, 1, dtype=batch.pos.dtype).index_add_(
                0, batch.batch, batch.pos[:, :1]
            )

    with pytest.raises(AssertionError):
        CHECKS["rotation_translation"](ReadsCoordinates)


def test_untied_steps_have_their_own_weights() -> None:
    model = build_model(CONFIGS["enn_s2s_untied_mean"])
    messages = model.net.messages
    assert len(messages) == model.net.steps == 3
    assert not torch.equal(messages[0].matrix.weight, messages[1].matrix.weight)


def test_unknown_model_settings_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown model"):
        build_model({"model": "nope"})
    with pytest.raises(ValueError, match="enn_s2s"):
        build_model({"model": "enn_s2s", "width": 3})


def test_model_accepts_a_batch_of_another_float_dtype() -> None:
    """collate gives float64 positions; a float32 model casts them, and gradients still flow."""
    from model_contract import molecules

    from mpnn.batch import collate

    model = build_model(CONFIGS["enn_s2s"])
    batch = collate(molecules())
    batch.pos.requires_grad_(True)
    out = model(batch)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, model(batch.to(dtype=torch.float32)))
    out.sum().backward()
    assert batch.pos.grad is not None and batch.pos.grad.abs().sum() > 0
