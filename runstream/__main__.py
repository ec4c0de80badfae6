"""``python -m runstream``: the ``runstream`` command (how the SDK starts a home's owner)."""

import sys

from .cli import main

sys.exit(main())
