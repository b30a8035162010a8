"""``python -m rnnkit``: the ``rnnkit`` command line."""

import sys

from rnnkit.tools.cli import main

sys.exit(main())
