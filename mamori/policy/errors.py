"""The one error type for a policy that cannot be used: it names the offending field."""

from __future__ import annotations


class PolicyError(ValueError):
    """An invalid ClusterSecurityPolicy; ``str()`` is ``"<field path>: <what is wrong>"``."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
