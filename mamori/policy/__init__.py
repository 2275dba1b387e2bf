"""The policy model: ClusterSecurityPolicy documents → validated :class:`Policy` values.

The parser (and the spec's declaration it reads) loads on first use: ``mamori check`` without
``--policy`` never needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mamori.policy.errors import PolicyError
from mamori.policy.model import (
    API_GROUP,
    API_VERSION,
    KIND,
    PLURAL,
    VERSION,
    Policy,
    default_policy,
)
from mamori.policy.selector import LabelSelector

if TYPE_CHECKING:
    from mamori.policy.parse import load_policies, load_policy_file, parse_policy

_PARSER = frozenset({"load_policies", "load_policy_file", "parse_policy"})


def __getattr__(name: str) -> Any:
    if name in _PARSER:
        from mamori.policy import parse

        return getattr(parse, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "API_GROUP",
    "API_VERSION",
    "KIND",
    "PLURAL",
    "VERSION",
    "LabelSelector",
    "Policy",
    "PolicyError",
    "default_policy",
    "load_policies",
    "load_policy_file",
    "parse_policy",
]
