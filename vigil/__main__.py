"""``python -m vigil``: the same as the ``vigil`` command."""

import sys

from vigil.cli import main

sys.exit(main())
