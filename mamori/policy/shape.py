"""The ClusterSecurityPolicy spec, declared once: every field, its type, default and meaning.

The parsers read their known fields, defaults and choices from here; ``python -m
mamori_dev.generate --write`` writes the CRD's schema, the chart's values schema and
``policy:`` values, and the docs' field tables from here; tests/unit/test_policy_shape.py fails
when a committed copy differs. A new field is one entry below, the code that uses it, its test.
"""

from __future__ import annotations

from mamori import durations
from mamori.findings import Enforcement
from mamori.policy.fieldtypes import (
    Boolean,
    Choice,
    Field,
    ListOf,
    Section,
    Selector,
    Text,
)
from mamori.policy.terms import LATEST, POD_SECURITY_LEVELS, THRESHOLDS, Direction, Provider

NAMESPACE_NAME_PATTERN = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
NAMESPACE_NAME = Text(doc="name", pattern=NAMESPACE_NAME_PATTERN, max_length=63)
DURATION = Text(
    doc="duration (`90s`, `5m`, `1h30m`; at least `5s`)",
    pattern=durations.PATTERN_WITHOUT_DAYS,
    min_length=2,
)
POD_SECURITY_VERSION_PATTERN = f"^({LATEST}|v1\\.(0|[1-9][0-9]{{0,2}}))$"
"""``latest`` or ``v1.N``; group 2 is N."""
POD_SECURITY_VERSION = Text(doc="`latest` \\| `v1.N`", pattern=POD_SECURITY_VERSION_PATTERN)

NETWORK_POLICY = Section(
    chart_toggle=True,
    fields=(
        Field(
            "defaultDeny",
            ListOf(Choice(tuple(Direction)), unique=True),
            "Directions in which every pod of the namespace is isolated; [] isolates nothing.",
            default=[d.value for d in Direction],
        ),
        Field(
            "allowDNS",
            Boolean(),
            "Allow egress to kube-dns (kube-system, pods k8s-app=kube-dns) on UDP and TCP 53.",
            default=True,
        ),
        Field(
            "allowSameNamespace",
            Boolean(),
            "Allow ingress from and egress to pods of the same namespace.",
            default=True,
        ),
        Field(
            "blockInstanceMetadata",
            Boolean(),
            "Keep the EC2 instance-metadata endpoint (169.254.169.254/32, fd00:ec2::254/128) out "
            "of every allowed range.",
            default=True,
        ),
        Field(
            "allowedEgressCIDRs",
            ListOf(
                Text(
                    doc="CIDR",
                    max_length=64,
                    rules=(("isCIDR(self)", "must be a CIDR such as 10.0.0.0/8"),),
                    chart_pattern="^[0-9a-fA-F:.]+/[0-9]{1,3}$",
                ),
                max_items=64,
            ),
            "Extra egress destinations, as CIDRs; host bits must be zero (10.0.0.0/8, not "
            "10.0.0.1/8).",
            default=[],
        ),
        Field(
            "allowedEgressNamespaces",
            ListOf(Selector(), max_items=32),
            "Namespaces (by label selector) whose pods may be reached.",
            default=[],
        ),
        Field(
            "allowedIngressNamespaces",
            ListOf(Selector(), max_items=32),
            "Namespaces (by label selector) whose pods may connect in.",
            default=[],
        ),
    ),
)

IMAGE_SCAN = Section(
    chart_toggle=True,
    required=("providers",),
    fields=(
        Field(
            "providers",
            ListOf(Choice(tuple(Provider)), unique=True, min_items=1),
            "Where scan results come from, asked in this order for each image digest; the first "
            "finished result wins.",
            chart_default=[Provider.ECR.value],
        ),
        Field(
            "severityThreshold",
            Choice(tuple(t.name for t in THRESHOLDS)),
            "A finding at or above this severity makes an image vulnerable.",
            default="HIGH",
        ),
        Field(
            "cacheTTL",
            DURATION,
            "How long a finished result for a digest is reused before the provider is asked again.",
            default="1h",
        ),
        Field(
            "rescanInterval",
            DURATION,
            "How soon a pending, unscanned or failed image is looked up again.",
            default="1m",
        ),
    ),
)

SPEC = Section(
    fields=(
        Field(
            "enforcement",
            Choice(tuple(Enforcement)),
            "Enforce denies, Warn allows with kubectl warnings, Audit allows and records audit "
            "annotations.",
            default=Enforcement.ENFORCE.value,
            advice="On a cluster with existing workloads, start with Warn and read the "
            "operator's report.",
        ),
        Field(
            "podSecurity",
            Choice(tuple(POD_SECURITY_LEVELS)),
            "Pod Security Standards level; privileged turns the PSS rules off.",
            default="restricted",
        ),
        Field(
            "podSecurityVersion",
            POD_SECURITY_VERSION,
            "Kubernetes version whose Pod Security Standards apply (latest, or v1.N as in "
            "pod-security-admission's enforce-version), so that upgrading mamori never changes "
            "a verdict; a version newer than mamori knows means latest.",
            default=LATEST,
        ),
        Field(
            "trustedRegistries",
            ListOf(Text(min_length=1, max_length=512)),
            "Image prefixes that may be pulled (host, optionally with a path prefix; '*' matches "
            "one DNS label); empty turns the trusted-registry rule off.",
            default=[],
        ),
        Field(
            "requireImageDigest",
            Boolean(),
            "Every image must be pinned by @sha256: digest.",
            default=False,
        ),
        Field(
            "exemptNamespaces",
            ListOf(NAMESPACE_NAME, unique=True),
            "Namespaces this policy never evaluates or manages.",
            default=[],
            chart_default=["kube-system", "kube-node-lease", "kube-public"],
        ),
        Field(
            "namespaceSelector",
            Selector(),
            "Which namespaces the policy covers (empty or absent: all); the "
            "kubernetes.io/metadata.name label works offline too.",
            chart_default={"matchLabels": {}, "matchExpressions": []},
            doc_default="all namespaces",
        ),
        Field(
            "networkPolicy",
            NETWORK_POLICY,
            "NetworkPolicies the operator keeps in every selected namespace (one per policy and "
            "namespace, labelled app.kubernetes.io/managed-by=mamori); absent: none.",
            advice="Enabling it needs a CNI that enforces NetworkPolicies.",
        ),
        Field(
            "imageScan",
            IMAGE_SCAN,
            "Where image scan results come from, and when a pod counts as vulnerable; absent: no "
            "scan status on pods.",
        ),
    ),
)
"""``spec`` of a ClusterSecurityPolicy."""
