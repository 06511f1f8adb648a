"""Atom-centred symmetry functions (Behler-Parrinello; n2p2's types), as small modules."""
