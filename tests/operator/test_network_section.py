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


@pytest.mark.parametrize(
    ("value", "path", "fragment"),
    [
        pytest.param([], "spec.networkPolicy", "must be an object", id="not-an-object"),
        pytest.param(
            {"denyAll": True}, "spec.networkPolicy.denyAll", "unknown field", id="unknown"
        ),
        pytest.param(
            {"defaultDeny": "Ingress"}, "spec.networkPolicy.defaultDeny", "list", id="deny-str"
        ),
        pytest.param(
            {"defaultDeny": ["ingress"]},
            "spec.networkPolicy.defaultDeny[0]",
            '"Ingress"',
            id="deny-case",
        ),
        pytest.param(
            {"defaultDeny": ["Egress", "Egress"]},
            "spec.networkPolicy.defaultDeny[1]",
            "twice",
            id="deny-twice",
        ),
        pytest.param(
            {"allowDNS": "yes"}, "spec.networkPolicy.allowDNS", "true or false", id="dns-str"
        ),
        pytest.param(
            {"allowedEgressCIDRs": ["10.0.0.1/8"]},
            "spec.networkPolicy.allowedEgressCIDRs[0]",
            "host bits",
            id="cidr-host-bits",
        ),
        pytest.param(
            {"allowedEgressCIDRs": ["10.0.0.1"]},
            "spec.networkPolicy.allowedEgressCIDRs[0]",
            "CIDR",
            id="cidr-no-prefix",
        ),
        pytest.param(
            {"allowedEgressCIDRs": ["169.254.169.254/32"]},
            "spec.networkPolicy.allowedEgressCIDRs[0]",
            "blockInstanceMetadata",
            id="cidr-is-metadata",
        ),
        pytest.param(
            {"allowedEgressNamespaces": [{"matchLabels": {"a": 1}}]},
            "spec.networkPolicy.allowedEgressNamespaces[0].matchLabels.a",
            "string",
            id="selector-value",
        ),
        pytest.param(
            {"allowedIngressNamespaces": [None]},
            "spec.networkPolicy.allowedIngressNamespaces[0]",
            "selector",
            id="selector-null",
        ),
    ],
)
def test_bad_sections_name_the_field(value: Any, path: str, fragment: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_network_policy(value, path="spec.networkPolicy")
    assert caught.value.path == path
    assert fragment in caught.value.message
