"""mpnn: neural message passing for quantum chemistry on one engine."""

from mpnn.batch import Batch, Molecule, collate

__all__ = ["Batch", "Molecule", "collate"]
__version__ = "0.1.0"
