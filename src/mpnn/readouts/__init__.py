"""Readout functions R: ``forward(h, x, index, num_graphs) -> (B, out)``.

h (N, d) final node states, x (N, F) input node features, index (N,) structure of each atom.
"""

from mpnn.readouts.duvenaud import FingerprintReadout
from mpnn.readouts.gated import GatedReadout
from mpnn.readouts.histogram import GaussianHistogram
from mpnn.readouts.pooled import PooledReadout
from mpnn.readouts.set2set import Set2Set, Set2SetReadout
from mpnn.readouts.sum import SumReadout

__all__ = [
    "FingerprintReadout",
    "GatedReadout",
    "GaussianHistogram",
    "PooledReadout",
    "Set2Set",
    "Set2SetReadout",
    "SumReadout",
]
