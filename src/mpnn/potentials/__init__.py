"""Interatomic potentials built on the models: loading (n2p2 folders through :mod:`mpnn.n2p2`, training
runs of ours), forces, the ASE calculator, molecular dynamics, geometry optimisation, Monte Carlo."""
