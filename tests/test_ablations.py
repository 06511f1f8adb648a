"""Every built-in ablation (the paper's comparisons) loads, and every one of its runs builds a model
of the configuration its description names."""

from __future__ import annotations

import pytest

from mpnn.experiments.ablation import load_ablation
from mpnn.experiments.search import builtin_names
from mpnn.models import build_model
from mpnn.models.presets import PRESETS
from mpnn.train.config import merge_configs, spec_from_config

ABLATIONS = builtin_names("ablations")


def test_the_paper_comparisons_are_built_in() -> None:
    for name in ("table3_topology", "table4_towers", "table10_inputs", "message_functions", "earlier_models"):
        assert name in ABLATIONS


@pytest.mark.parametrize("name", ABLATIONS)
def test_every_run_builds(name: str) -> None:
    ablation = load_ablation(name)
    assert ablation.runs
    for label, layer in ablation.runs.items():
        spec = spec_from_config(merge_configs(ablation.base, {}, layer), label)
        model = build_model({**spec.model, "num_targets": len(spec.targets), "node_features": 13})
        assert sum(p.numel() for p in model.parameters()) > 0


def test_runs_differ_only_where_the_table_says() -> None:
    """Table 3's rows: GG-NN plus one element each; Table 4: the number of towers only."""
    table3 = load_ablation("table3_topology")
    models = {label: spec_from_config(merge_configs(table3.base, {}, layer), label).model
              for label, layer in table3.runs.items()}  # fmt: skip
    base = models["ggnn"]
    for label, changed in (("ggnn+virtual-edges", {"graph"}), ("ggnn+master-node", {"master_dim"}),
                           ("ggnn+set2set", {"readout"})):  # fmt: skip
        assert {
            k for k in base.keys() | models[label].keys() if base.get(k) != models[label].get(k)
        } == changed
    table4 = load_ablation("table4_towers")
    one, eight = (spec_from_config(merge_configs(table4.base, {}, table4.runs[k]), k).model
                  for k in ("towers-1", "towers-8"))  # fmt: skip
    assert {k for k in one if one[k] != eight.get(k)} == {"towers"}
    assert all(eight[k] == v for k, v in PRESETS["enn_s2s_towers8"].items())
