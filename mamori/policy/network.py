"""The ``spec.networkPolicy`` section: what traffic a policy allows, and the NetworkPolicy it means.

The operator turns this section into one NetworkPolicy per selected namespace. Kubernetes
NetworkPolicies only ever *allow*; isolation comes from a policy selecting the pods. So
"default deny" means "isolate every pod in this direction", and the allowances below are the
only holes. The EC2 instance-metadata endpoint is kept out of every hole mamori punches: it is
excepted from each allowed CIDR that contains it, and when egress is otherwise open, mamori
isolates egress with an allow-everything-but-metadata rule. Rendering lives here, next to the
model, so it stays pure and the operator only decides *where* to apply it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mamori.policy.errors import PolicyError, shown
from mamori.policy.fields import parse_members
from mamori.policy.selector import LabelSelector
from mamori.policy.shape import NETWORK_POLICY
from mamori.policy.terms import Direction

__all__ = ["Direction", "NetworkPolicySpec", "parse_network_policy"]

INSTANCE_METADATA = (
    ipaddress.ip_network("169.254.169.254/32"),
    ipaddress.ip_network("fd00:ec2::254/128"),
)
EVERYWHERE = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
DNS_NAMESPACE = "kube-system"
DNS_POD_LABELS: Mapping[str, str] = {"k8s-app": "kube-dns"}
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class NetworkPolicySpec:
    """The parsed section; defaults give the safe posture (deny both ways, DNS and same-ns open).

    Namespace selectors are kept in their Kubernetes form (``matchLabels``/``matchExpressions``
    with empty parts dropped), because they go straight into the NetworkPolicy.
    """

    default_deny: frozenset[Direction] = frozenset({Direction.INGRESS, Direction.EGRESS})
    allow_dns: bool = True
    allow_same_namespace: bool = True
    block_instance_metadata: bool = True
    allowed_egress_cidrs: tuple[Network, ...] = ()
    allowed_egress_namespaces: tuple[Mapping[str, Any], ...] = ()
    allowed_ingress_namespaces: tuple[Mapping[str, Any], ...] = ()

    def render(self) -> dict[str, Any] | None:
        """The NetworkPolicy ``spec`` for one namespace, or None when nothing needs isolating.

        The output carries every default the API server would add (``policyTypes``, port
        protocols) and no empty list, so it compares equal to what the server hands back.
        """
        types: list[str] = []
        spec: dict[str, Any] = {"podSelector": {}}
        if Direction.INGRESS in self.default_deny:
            types.append(Direction.INGRESS.value)
            ingress = self._ingress_rules()
            if ingress:
                spec["ingress"] = ingress
        if Direction.EGRESS in self.default_deny:
            types.append(Direction.EGRESS.value)
            egress = self._egress_rules()
            if egress:
                spec["egress"] = egress
        elif self.block_instance_metadata:
            types.append(Direction.EGRESS.value)
            spec["egress"] = [{"to": [{"namespaceSelector": {}}, *self._ip_blocks(EVERYWHERE)]}]
        if not types:
            return None
        spec["policyTypes"] = types
        return spec

    def _ingress_rules(self) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = []
        if self.allow_same_namespace:
            rules.append({"from": [{"podSelector": {}}]})
        if self.allowed_ingress_namespaces:
            peers = [{"namespaceSelector": dict(s)} for s in self.allowed_ingress_namespaces]
            rules.append({"from": peers})
        return rules

    def _egress_rules(self) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = []
        if self.allow_dns:
            rules.append(
                {
                    "to": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {NAMESPACE_NAME_LABEL: DNS_NAMESPACE}
                            },
                            "podSelector": {"matchLabels": dict(DNS_POD_LABELS)},
                        }
                    ],
                    "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
                }
            )
        if self.allow_same_namespace:
            rules.append({"to": [{"podSelector": {}}]})
        if self.allowed_egress_namespaces:
            peers = [{"namespaceSelector": dict(s)} for s in self.allowed_egress_namespaces]
            rules.append({"to": peers})
        if self.allowed_egress_cidrs:
            rules.append({"to": self._ip_blocks(self.allowed_egress_cidrs)})
        return rules

    def _ip_blocks(self, networks: Sequence[Network]) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        for network in networks:
            block: dict[str, Any] = {"cidr": str(network)}
            if self.block_instance_metadata:
                excepted = [str(m) for m in INSTANCE_METADATA if _strictly_contains(network, m)]
                if excepted:
                    block["except"] = excepted
            blocks.append({"ipBlock": block})
        return blocks


def parse_network_policy(value: object, *, path: str) -> NetworkPolicySpec | None:
    """Validate ``spec.networkPolicy``; None (section absent or null) means "manage nothing"."""
    shape = NETWORK_POLICY
    section = shape.read(value, path=path)
    if section is None:
        return None

    def read(name: str) -> Any:
        return shape.value(section, name, path=path)

    block_metadata = read("blockInstanceMetadata")
    return NetworkPolicySpec(
        default_deny=_directions(read("defaultDeny"), path=f"{path}.defaultDeny"),
        allow_dns=read("allowDNS"),
        allow_same_namespace=read("allowSameNamespace"),
        block_instance_metadata=block_metadata,
        allowed_egress_cidrs=_cidrs(
            read("allowedEgressCIDRs"),
            path=f"{path}.allowedEgressCIDRs",
            block_metadata=block_metadata,
        ),
        allowed_egress_namespaces=_selectors(
            read("allowedEgressNamespaces"), path=f"{path}.allowedEgressNamespaces"
        ),
        allowed_ingress_namespaces=_selectors(
            read("allowedIngressNamespaces"), path=f"{path}.allowedIngressNamespaces"
        ),
    )


def _directions(value: object, *, path: str) -> frozenset[Direction]:
    if not isinstance(value, list):
        raise PolicyError(path, 'must be a list of "Ingress" and/or "Egress"')
    return frozenset(parse_members(value, Direction, path=path, expected='"Ingress" or "Egress"'))


def _cidrs(value: object, *, path: str, block_metadata: bool) -> tuple[Network, ...]:
    if not isinstance(value, list):
        raise PolicyError(path, "must be a list of CIDRs such as 10.0.0.0/8")
    networks: list[Network] = []
    for index, item in enumerate(value):
        where = f"{path}[{index}]"
        if not isinstance(item, str) or "/" not in item:
            raise PolicyError(where, f"must be a CIDR such as 10.0.0.0/8, got {shown(item)}")
        try:
            network = ipaddress.ip_network(item, strict=True)
        except ValueError as error:
            raise PolicyError(where, f"is not a valid CIDR: {error}") from None
        if block_metadata and network in INSTANCE_METADATA:
            raise PolicyError(
                where,
                f"{network} is the EC2 instance-metadata endpoint, which "
                "blockInstanceMetadata keeps closed; set blockInstanceMetadata: false to allow it",
            )
        networks.append(network)
    return tuple(networks)


def _selectors(value: object, *, path: str) -> tuple[Mapping[str, Any], ...]:
    if not isinstance(value, list):
        raise PolicyError(path, "must be a list of namespace label selectors")
    selectors: list[Mapping[str, Any]] = []
    for index, item in enumerate(value):
        where = f"{path}[{index}]"
        LabelSelector.parse(item, path=where)  # validates; the raw form goes to Kubernetes
        if not isinstance(item, Mapping):  # LabelSelector.parse accepts None as "everything"
            raise PolicyError(where, "must be a label selector object")
        selectors.append(_compact_selector(item))
    return tuple(selectors)


def _compact_selector(selector: Mapping[str, Any]) -> Mapping[str, Any]:
    """Drop empty parts the API server would drop, so rendered and stored specs compare equal."""
    compact: dict[str, Any] = {}
    if selector.get("matchLabels"):
        compact["matchLabels"] = dict(selector["matchLabels"])
    expressions = []
    for expression in selector.get("matchExpressions") or []:
        item = {"key": expression["key"], "operator": expression["operator"]}
        if expression.get("values"):
            item["values"] = list(expression["values"])
        expressions.append(item)
    if expressions:
        compact["matchExpressions"] = expressions
    return compact


def _strictly_contains(network: Network, inner: Network) -> bool:
    if isinstance(network, ipaddress.IPv4Network) and isinstance(inner, ipaddress.IPv4Network):
        return network != inner and inner.subnet_of(network)
    if isinstance(network, ipaddress.IPv6Network) and isinstance(inner, ipaddress.IPv6Network):
        return network != inner and inner.subnet_of(network)
    return False
