"""PyTorch's thread count for one ``mpnn`` command, set when the command first needs PyTorch.

:func:`mpnn.cli.app.main` runs each command inside :func:`command_threads`; a command calls
:func:`use_torch` before its first PyTorch operation (``main`` calls it for every command that
does not declare ``torch_free``), so ``mpnn predict`` of an n2p2 potential, which needs no
PyTorch, never imports it. The count is :func:`~mpnn.symmetry.kernel_calls.thread_count`
(``OMP_NUM_THREADS`` when set, else one per core); the caller's is restored when ``main`` returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mpnn.symmetry.kernel_calls import thread_count

#: one entry per running ``main``: the caller's PyTorch thread count once the command set its own
_SAVED: list[int | None] = []


@contextmanager
def command_threads() -> Iterator[None]:
    """Restore PyTorch's thread count on leaving, if :func:`use_torch` changed it inside."""
    _SAVED.append(None)
    try:
        yield
    finally:
        previous = _SAVED.pop()
        if previous is not None:
            import torch

            torch.set_num_threads(previous)


def use_torch() -> None:
    """Import PyTorch and, inside :func:`command_threads`, give it the command's thread count
    (once per command)."""
    import torch

    if _SAVED and _SAVED[-1] is None:
        _SAVED[-1] = torch.get_num_threads()
        torch.set_num_threads(thread_count())
