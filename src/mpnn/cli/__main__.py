"""``python -m mpnn.cli ...``: the ``mpnn`` command."""

import sys

from mpnn.cli.app import main

sys.exit(main())
