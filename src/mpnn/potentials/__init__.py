"""Interatomic potentials: n2p2 / RuNNer file formats (import and export) and what builds on them."""
