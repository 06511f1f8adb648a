"""Mixed precision (``TrainSettings.amp``): the forward pass and the loss under
:func:`torch.autocast`, in bfloat16 (``"bf16"``) or float16 (``"fp16"``, with a
:class:`torch.amp.GradScaler` that scales the loss so that small float16 gradients do not
underflow, and skips a step whose gradients are not finite).

Autocast runs matrix products and linear layers in the lower precision and keeps reductions,
the weights, the optimizer and the gradients in float32; float64 tensors are never cast, so
mixed precision needs float32 training (a potential's ``float32``; property models always train
in float32). It is meant for CUDA GPUs; on a CPU it runs, slower than float32 on most CPUs, with
one warning (it lets the path be tested without a GPU). Without ``amp`` nothing here is called
in a way that changes a single bit: the context is :func:`contextlib.nullcontext` and the step
is ``optimizer.step()``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from mpnn.errors import DataError

#: ``amp`` -> the autocast dtype.
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """Autocast and gradient scaling of one run.

    Args:
        amp: ``"bf16"``, ``"fp16"`` or None (full precision).
        parameters: the model's parameters (their device picks autocast's; they must be float32).
        warn: issue the CPU warning (rank 0).
    """

    def __init__(self, amp: str | None, parameters: Iterable[Tensor], warn: bool = True) -> None:
        self.amp = amp
        self.scaler: torch.amp.GradScaler | None = None
        if amp is None:
            return
        parameters = list(parameters)
        dtypes = {p.dtype for p in parameters}
        if dtypes != {torch.float32}:
            found = ", ".join(sorted(str(d).removeprefix("torch.") for d in dtypes))
            raise DataError(
                f"training.amp: mixed precision needs float32 weights, not {found} "
                "(train a potential with float32)"
            )
        self.device = parameters[0].device.type
        if self.device != "cuda" and warn:
            warnings.warn(
                f"training.amp {amp} on a {self.device.upper()}: mixed precision is meant for CUDA "
                "GPUs and is slower than float32 on most CPUs",
                RuntimeWarning,
                stacklevel=3,
            )
        if amp == "fp16":
            self.scaler = torch.amp.GradScaler(self.device)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The context of a forward pass and its loss."""
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device, dtype=DTYPES[self.amp])

    def full(self, predicted: dict[str, Tensor]) -> dict[str, Tensor]:
        """``predicted`` with the tensors autocast left in bf16/fp16 in float32, so that the loss
        and the metrics are computed in full precision (others, float64 energies included, as
        they are)."""
        if self.amp is None:
            return predicted
        low = (torch.bfloat16, torch.float16)
        return {k: v.float() if v.dtype in low else v for k, v in predicted.items()}

    def backward(self, loss: Tensor, inputs: Sequence[Tensor] | None = None) -> None:
        """``loss.backward(inputs=inputs)`` (None: every leaf), the loss scaled for fp16."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward(inputs=inputs)

    def step(
        self, optimizer: torch.optim.Optimizer, parameters: Iterable[Tensor], clip: float | None
    ) -> None:
        """Clip the gradient norm to ``clip`` (if given) and step; fp16 unscales first, skips a
        step with non-finite gradients and adapts its scale."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        if clip:
            torch.nn.utils.clip_grad_norm_(parameters, clip)
        if self.scaler is None:
            optimizer.step()
            return
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any] | None:
        """What ``last.pt`` keeps (the fp16 loss scale and its counters), or None."""
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, saved: Any, where: str) -> None:
        """Restore :meth:`state_dict` (None or absent: a fresh scale)."""
        if self.scaler is None or saved is None:
            return
        if not isinstance(saved, dict):
            raise DataError(f"{where}: scaler: expected a gradient scaler state, got {type(saved).__name__}")
        try:
            self.scaler.load_state_dict(saved)
        except (RuntimeError, KeyError, TypeError, ValueError) as error:
            raise DataError(f"{where}: scaler: {' '.join(str(error).split())}") from None
