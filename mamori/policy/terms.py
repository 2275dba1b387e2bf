"""The words a ClusterSecurityPolicy spec is written in: the enumerations its fields choose from.

They live apart from the section parsers so that the declaration of the spec
(:mod:`mamori.policy.shape`) and the parsers read the same members without importing each other.
"""

from __future__ import annotations

import enum


class Direction(enum.StrEnum):
    """Traffic directions of ``spec.networkPolicy.defaultDeny``."""

    INGRESS = "Ingress"
    EGRESS = "Egress"


class Provider(enum.StrEnum):
    """Where scan results are read from."""

    ECR = "ecr"
    TRIVY_OPERATOR = "trivy-operator"
    IMAGESCAN = "imagescan"


class Severity(enum.IntEnum):
    """Finding severities, in rising order; names are the spelling ECR and Trivy use."""

    UNKNOWN = 0
    INFORMATIONAL = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    CRITICAL = 5

    @classmethod
    def parse(cls, text: object) -> Severity:
        """Read a scanner's severity; anything unrecognised (``UNDEFINED``, ``NONE``) is UNKNOWN."""
        if not isinstance(text, str):
            return cls.UNKNOWN
        name = text.strip().upper()
        if name in ("INFO", "NEGLIGIBLE"):
            return cls.INFORMATIONAL
        return cls.__members__.get(name, cls.UNKNOWN)


THRESHOLDS = (Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW)
"""The severities ``spec.imageScan.severityThreshold`` may name, strictest first."""

LATEST = "latest"
"""``spec.podSecurityVersion`` for "the newest Pod Security Standards mamori knows"."""
