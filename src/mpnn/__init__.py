"""mpnn: neural message passing for quantum chemistry on one engine.

``Batch``, ``Molecule`` and ``collate`` (:mod:`mpnn.batch`) are imported on first use, so that
``import mpnn`` and the commands that need no PyTorch (``mpnn predict`` of an n2p2 potential,
:mod:`mpnn.potentials.n2p2_predict`) start without it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Batch", "Molecule", "collate"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in __all__:
        import mpnn.batch

        return getattr(mpnn.batch, name)
    raise AttributeError(f"module 'mpnn' has no attribute {name!r}")
