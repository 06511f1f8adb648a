"""Which module computes which n2p2 symmetry-function type.

``FAMILIES[type]`` is a :class:`Family`: whether the type is radial (a sum over neighbours j)
or angular (over pairs j < k), whether it weights neighbours by atomic number instead of
selecting them by element, and ``build(specs, cutoff) -> terms module`` for a list of specs
of that type that share a centre element, neighbour elements and cutoff function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from mpnn.symmetry.cutoffs import CutoffFunction
from mpnn.symmetry.gaussian import GaussianAngular, GaussianRadial
from mpnn.symmetry.spec import SymmetryFunctionSpec

#: A family's constructor: the specs of one group and the cutoff function -> its terms module.
Builder = Callable[[Sequence[SymmetryFunctionSpec], CutoffFunction], nn.Module]


@dataclass(frozen=True)
class Family:
    angular: bool
    weighted: bool
    build: Builder


def _radial(weighted: bool) -> Builder:
    def build(specs: Sequence[SymmetryFunctionSpec], cutoff: CutoffFunction) -> nn.Module:
        return GaussianRadial(
            [s.eta for s in specs], [s.rs for s in specs], [s.rc for s in specs], cutoff, weighted=weighted
        )

    return build


def _angular(narrow: bool, weighted: bool) -> Builder:
    def build(specs: Sequence[SymmetryFunctionSpec], cutoff: CutoffFunction) -> nn.Module:
        return GaussianAngular(
            [s.eta for s in specs],
            [s.rs for s in specs],
            [s.lambda_ for s in specs],
            [s.zeta for s in specs],
            [s.rc for s in specs],
            cutoff,
            narrow=narrow,
            weighted=weighted,
        )

    return build


FAMILIES: dict[int, Family] = {
    2: Family(False, False, _radial(False)),
    12: Family(False, True, _radial(True)),
    3: Family(True, False, _angular(True, False)),
    9: Family(True, False, _angular(False, False)),
    13: Family(True, True, _angular(True, True)),
}


def register(type_: int, family: Family) -> None:
    """Add a family (e.g. the compact polynomial types 20-25)."""
    FAMILIES[type_] = family


import mpnn.symmetry.compact  # noqa: E402, F401  (registers the compact types 20-25)
