"""``python -m rnnkit``: the ``rnnkit`` command line."""

import sys

from rnnkit.cli import main

sys.exit(main())
