"""``python -m hpc_connect``: the same as ``hpc-connect``."""

import sys

from .cli import main

sys.exit(main())
