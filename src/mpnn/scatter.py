"""Segment reductions over a flat index (atoms -> structures, edges -> atoms)."""

from __future__ import annotations

import torch
from torch import Tensor


def segment_sum(values: Tensor, index: Tensor, num_segments: int) -> Tensor:
    """out[s] = sum of values[i] with index[i] == s.  values (M, ...) -> (num_segments, ...)."""
    out = values.new_zeros((num_segments, *values.shape[1:]))
    return out.index_add_(0, index, values)


def segment_count(index: Tensor, num_segments: int) -> Tensor:
    """(num_segments,) number of entries per segment, as a float tensor of index's device."""
    return torch.bincount(index, minlength=num_segments).to(torch.get_default_dtype())


def segment_mean(values: Tensor, index: Tensor, num_segments: int) -> Tensor:
    """Mean per segment; empty segments give 0."""
    count = segment_count(index, num_segments).to(values.dtype).clamp_(min=1)
    return segment_sum(values, index, num_segments) / count.view(-1, *[1] * (values.dim() - 1))


def segment_softmax(scores: Tensor, index: Tensor, num_segments: int) -> Tensor:
    """Softmax of scores (M,) within each segment, stabilised by the segment maximum."""
    peak = scores.new_full((num_segments,), float("-inf"))
    peak = peak.scatter_reduce(0, index, scores.detach(), reduce="amax", include_self=True)
    weights = torch.exp(scores - peak[index])
    return weights / segment_sum(weights, index, num_segments)[index]
