"""The n2p2 / RuNNer file formats in one place, and the conversion of n2p2 potentials.

- :mod:`~mpnn.n2p2.input_nn`: ``input.nn`` settings (parse, format, read, write, checks) and n2p2's
  order of the symmetry functions; :mod:`~mpnn.n2p2.keywords` holds n2p2's keyword table and the
  readers of single keyword lines it uses.
- :mod:`~mpnn.n2p2.potential_files`: ``scaling.data``, ``weights.ZZZ.data``, :class:`N2p2Potential`
  and the read/format/write of a whole potential folder.
- :mod:`~mpnn.n2p2.input_data`: ``input.data`` structures (energies, forces) to and from ASE.
- :mod:`~mpnn.n2p2.convert`: n2p2 potentials as :class:`~mpnn.models.hdnnp.PotentialModel` and back
  (:func:`read_n2p2`, :func:`export_n2p2`).
- :mod:`~mpnn.n2p2.units`: the units of n2p2 files (:func:`parse_units`).
- :mod:`~mpnn.n2p2.training`: training with an ``input.nn``'s functions, networks and scaling.
- :mod:`~mpnn.n2p2.prune`: ``nnp-prune``'s range and sensitivity pruning, with a report.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: each name's module, imported on first use (``convert`` imports PyTorch; the file formats do not)
_MODULES = {
    "export_n2p2": "convert",
    "parse_units": "units",
    "read_n2p2": "convert",
    "read_input_data": "input_data",
    "write_input_data": "input_data",
    "read_input_nn": "input_nn",
    "write_input_nn": "input_nn",
}

__all__ = [
    "export_n2p2",
    "parse_units",
    "read_input_data",
    "read_input_nn",
    "read_n2p2",
    "write_input_data",
    "write_input_nn",
]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return getattr(import_module(f"mpnn.n2p2.{_MODULES[name]}"), name)
    raise AttributeError(f"module 'mpnn.n2p2' has no attribute {name!r}")
