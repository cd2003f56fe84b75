"""``python -m bench <command>``; see ``bench/README.md`` and :mod:`bench.load.cli`."""

from __future__ import annotations

import sys

from bench.load.cli import main

if __name__ == "__main__":
    sys.exit(main())
