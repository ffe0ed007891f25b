"""``python -m mtasecure``: the same as the ``mtasecure`` command."""

from __future__ import annotations

import sys

from mtasecure.cli import main

if __name__ == "__main__":
    sys.exit(main())
