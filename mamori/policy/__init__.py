"""The policy model: ClusterSecurityPolicy documents → validated :class:`Policy` values."""

from mamori.policy.errors import PolicyError
from mamori.policy.model import API_GROUP, API_VERSION, KIND, PLURAL, VERSION, Policy
from mamori.policy.parse import default_policy, load_policies, load_policy_file, parse_policy
from mamori.policy.selector import LabelSelector

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
