"""PyTorch's thread count for one ``mpnn`` command, set when the command first needs PyTorch.

:func:`mpnn.cli.app.main` runs each command inside :func:`command_threads`; a command calls
:func:`use_torch` before its first PyTorch operation (``main`` calls it for every command that
does not declare ``torch_free``), so ``mpnn predict`` of an n2p2 potential, which needs no
PyTorch, never imports it. The count is :func:`~mpnn.symmetry.kernel_calls.thread_count`
(``OMP_NUM_THREADS`` when set, else one per core); the caller's is restored when ``main`` returns.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mpnn.symmetry.kernel_calls import thread_count

#: one entry per running ``main``: the caller's PyTorch thread count (None while PyTorch is not
#: loaded) and whether the command set its own
_FRAMES: list[dict[str, Any]] = []


@contextmanager
def command_threads() -> Iterator[None]:
    """Restore the caller's PyTorch thread count on leaving (where PyTorch is loaded)."""
    torch = sys.modules.get("torch")
    frame = {"caller": torch.get_num_threads() if torch is not None else None, "set": False}
    _FRAMES.append(frame)
    try:
        yield
    finally:
        _FRAMES.pop()
        torch = sys.modules.get("torch")
        if torch is not None and frame["caller"] is not None and torch.get_num_threads() != frame["caller"]:
            torch.set_num_threads(frame["caller"])


def use_torch() -> None:
    """Import PyTorch and, inside :func:`command_threads`, give it the command's thread count
    (once per command)."""
    import torch

    if _FRAMES and not _FRAMES[-1]["set"]:
        frame = _FRAMES[-1]
        if frame["caller"] is None:  # loaded by this command: its own default is the one to restore
            frame["caller"] = torch.get_num_threads()
        torch.set_num_threads(thread_count())
        frame["set"] = True
