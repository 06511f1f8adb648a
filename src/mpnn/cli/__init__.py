"""The ``mpnn`` command line (``python -m mpnn.cli``, or ``mpnn`` once installed).

:mod:`mpnn.cli.app` builds the parser and runs a command; one module per command group adds
its subcommands; :mod:`mpnn.cli.options` holds what they share.
"""

from mpnn.cli.app import build_parser, main, main_train_potential

__all__ = ["build_parser", "main", "main_train_potential"]
