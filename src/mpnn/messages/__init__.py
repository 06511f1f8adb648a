"""Message functions M_t: ``prepare(batch, edge_attr, steps)`` once per
forward pass, then ``forward(h, context) -> m`` (N, d_out) aggregated messages per step."""

from mpnn.messages.edge_network import PATHS, EdgeContext, EdgeNetwork

__all__ = ["PATHS", "EdgeContext", "EdgeNetwork"]
