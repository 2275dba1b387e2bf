"""The one error type for a policy that cannot be used: it names the offending field."""

from __future__ import annotations

from mamori.findings import render_value

SHOWN_LIMIT = 80


class PolicyError(ValueError):
    """An invalid ClusterSecurityPolicy; ``str()`` is ``"<field path>: <what is wrong>"``."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def shown(value: object) -> str:
    """``value`` quoted for an error message, bounded however large the value is."""
    return render_value(value, limit=SHOWN_LIMIT)
