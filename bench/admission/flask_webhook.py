"""``mamori webhook`` with the front's direct route turned off: every review through Flask.

The webhook as it served reviews before 2026-12-01, for the benchmark's before-and-after in one
run on one tree (``bench/admission/run.sh --flask-webhook``). Bench only: nothing ships it.
"""

from __future__ import annotations

import sys
from typing import Any

from mamori.cli import main
from mamori_webhook import front


def no_direct_routes(app: object) -> dict[Any, Any]:
    return {}


if __name__ == "__main__":
    front.direct_routes = no_direct_routes  # type: ignore[attr-defined]  # read by each worker
    sys.exit(main(sys.argv[1:]))
