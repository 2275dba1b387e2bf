"""``python -m mamori``: the same command line as ``mamori``."""

import sys

from mamori.cli import main

sys.exit(main())
