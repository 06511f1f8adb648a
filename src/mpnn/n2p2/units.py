"""The units of n2p2 files: n2p2 records none, so ``--units LENGTH,ENERGY`` states them."""

from __future__ import annotations

from mpnn.errors import DataError

#: Angstrom and eV per unit (CODATA 2018, as ASE).
LENGTH_UNITS = {"angstrom": 1.0, "a": 1.0, "bohr": 0.529177210903, "nm": 10.0}
ENERGY_UNITS = {
    "ev": 1.0,
    "hartree": 27.211386245988,
    "ha": 27.211386245988,
    "kcal/mol": 0.0433641043,
    "kj/mol": 0.0103642688,
    "ry": 13.605693122994,
}


def parse_units(text: str) -> tuple[float, float]:
    """``"bohr,hartree"`` -> (Angstrom per length unit, eV per energy unit)."""
    parts = [p.strip().lower() for p in text.split(",")]
    if len(parts) != 2 or parts[0] not in LENGTH_UNITS or parts[1] not in ENERGY_UNITS:
        raise DataError(
            f"--units: expected LENGTH,ENERGY with LENGTH in {sorted(LENGTH_UNITS)} and ENERGY in "
            f"{sorted(ENERGY_UNITS)}, got {text!r}"
        )
    return LENGTH_UNITS[parts[0]], ENERGY_UNITS[parts[1]]
