"""spec.networkPolicy: parsing with field paths, and the NetworkPolicy spec it renders."""

from __future__ import annotations

from typing import Any

import pytest

from mamori.policy.errors import PolicyError
from mamori.policy.network import Direction, NetworkPolicySpec, parse_network_policy

DNS_RULE = {
    "to": [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ],
    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
}
SAME_NAMESPACE_IN = {"from": [{"podSelector": {}}]}
SAME_NAMESPACE_OUT = {"to": [{"podSelector": {}}]}


def parse(value: Any) -> NetworkPolicySpec:
    spec = parse_network_policy(value, path="spec.networkPolicy")
    assert spec is not None
    return spec


def test_absent_section_manages_nothing() -> None:
    assert parse_network_policy(None, path="spec.networkPolicy") is None


def test_empty_section_denies_both_ways_with_dns_and_same_namespace_open() -> None:
    rendered = parse({}).render()
    assert rendered == {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [SAME_NAMESPACE_IN],
        "egress": [DNS_RULE, SAME_NAMESPACE_OUT],
    }


def test_strict_isolation_has_no_allow_rules_at_all() -> None:
    rendered = parse({"allowDNS": False, "allowSameNamespace": False}).render()
    assert rendered == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_ingress_only_still_blocks_instance_metadata_on_egress() -> None:
    rendered = parse({"defaultDeny": ["Ingress"]}).render()
    assert rendered is not None
    assert rendered["policyTypes"] == ["Ingress", "Egress"]
    assert rendered["egress"] == [
        {
            "to": [
                {"namespaceSelector": {}},
                {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}},
                {"ipBlock": {"cidr": "::/0", "except": ["fd00:ec2::254/128"]}},
            ]
        }
    ]


def test_nothing_denied_and_metadata_allowed_renders_no_policy() -> None:
    assert parse({"defaultDeny": [], "blockInstanceMetadata": False}).render() is None


def test_metadata_is_excepted_from_every_cidr_that_contains_it() -> None:
    rendered = parse(
        {"allowedEgressCIDRs": ["10.0.0.0/8", "169.254.0.0/16", "0.0.0.0/0", "fd00::/8"]}
    ).render()
    assert rendered is not None
    assert rendered["egress"][-1] == {
        "to": [
            {"ipBlock": {"cidr": "10.0.0.0/8"}},
            {"ipBlock": {"cidr": "169.254.0.0/16", "except": ["169.254.169.254/32"]}},
            {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}},
            {"ipBlock": {"cidr": "fd00::/8", "except": ["fd00:ec2::254/128"]}},
        ]
    }


def test_metadata_cidr_is_kept_whole_when_blocking_is_off() -> None:
    rendered = parse(
        {"blockInstanceMetadata": False, "allowedEgressCIDRs": ["169.254.169.254/32"]}
    ).render()
    assert rendered is not None
    assert rendered["egress"][-1] == {"to": [{"ipBlock": {"cidr": "169.254.169.254/32"}}]}


def test_namespace_selectors_become_peers_without_empty_parts() -> None:
    spec = parse(
        {
            "allowedIngressNamespaces": [
                {"matchLabels": {"team": "edge"}, "matchExpressions": []},
            ],
            "allowedEgressNamespaces": [
                {"matchExpressions": [{"key": "tier", "operator": "Exists", "values": []}]},
            ],
        }
    )
    rendered = spec.render()
    assert rendered is not None
    assert rendered["ingress"][-1] == {
        "from": [{"namespaceSelector": {"matchLabels": {"team": "edge"}}}]
    }
    assert rendered["egress"][-1] == {
        "to": [{"namespaceSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}}]
    }


def test_default_deny_is_read_as_a_set_of_directions() -> None:
    assert parse({"defaultDeny": ["Egress"]}).default_deny == {Direction.EGRESS}
    assert parse({"defaultDeny": []}).default_deny == frozenset()


# id: (section, field under spec.networkPolicy that the error names, fragment of the message)
BAD_SECTIONS: dict[str, tuple[Any, str, str]] = {
    "not-an-object": ([], "", "must be an object"),
    "unknown": ({"denyAll": True}, ".denyAll", "unknown field"),
    "deny-str": ({"defaultDeny": "Ingress"}, ".defaultDeny", "list"),
    "deny-case": ({"defaultDeny": ["ingress"]}, ".defaultDeny[0]", '"Ingress"'),
    "deny-twice": ({"defaultDeny": ["Egress", "Egress"]}, ".defaultDeny[1]", "twice"),
    "dns-str": ({"allowDNS": "yes"}, ".allowDNS", "true or false"),
    "cidr-host-bits": (
        {"allowedEgressCIDRs": ["10.0.0.1/8"]},
        ".allowedEgressCIDRs[0]",
        "host bits",
    ),
    "cidr-no-prefix": ({"allowedEgressCIDRs": ["10.0.0.1"]}, ".allowedEgressCIDRs[0]", "CIDR"),
    "cidr-is-metadata": (
        {"allowedEgressCIDRs": ["169.254.169.254/32"]},
        ".allowedEgressCIDRs[0]",
        "blockInstanceMetadata",
    ),
    "selector-value": (
        {"allowedEgressNamespaces": [{"matchLabels": {"a": 1}}]},
        ".allowedEgressNamespaces[0].matchLabels.a",
        "string",
    ),
    "selector-null": (
        {"allowedIngressNamespaces": [None]},
        ".allowedIngressNamespaces[0]",
        "selector",
    ),
}


@pytest.mark.parametrize(
    ("value", "field", "fragment"),
    [pytest.param(*row, id=name) for name, row in BAD_SECTIONS.items()],
)
def test_bad_sections_name_the_field(value: Any, field: str, fragment: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_network_policy(value, path="spec.networkPolicy")
    assert caught.value.path == f"spec.networkPolicy{field}"
    assert fragment in caught.value.message
