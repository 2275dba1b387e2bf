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
from mamori.policy.terms import LATEST, THRESHOLDS, Direction, Provider
from mamori.rules.registry import POD_SECURITY_LEVELS

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

ADVISORY_ID_PATTERN = "^[A-Za-z][A-Za-z0-9]*-[A-Za-z0-9][A-Za-z0-9._:-]*$"
"""An advisory ID as scanners report it: ``CVE-2026-1234``, ``GHSA-xxxx-xxxx-xxxx``."""
EXPIRY_PATTERN = (
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    "([Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2}))?$"
)
"""An RFC 3339 date (``2026-12-31``) or date-time with its offset (``2026-12-31T12:00:00Z``)."""

VULNERABILITY_EXCEPTION = Section(
    required=("vulnerability", "expires", "reason"),
    fields=(
        Field(
            "vulnerability",
            Text(doc="advisory ID", pattern=ADVISORY_ID_PATTERN, max_length=128),
            "The finding accepted: its advisory ID (CVE-2026-1234, GHSA-xxxx-xxxx-xxxx).",
        ),
        Field(
            "images",
            ListOf(Text(min_length=1, max_length=512), max_items=32),
            "Image prefixes it applies to, written like trustedRegistries; absent or empty: "
            "every image.",
        ),
        Field(
            "expires",
            Text(doc="RFC 3339 date or date-time", pattern=EXPIRY_PATTERN),
            "When it stops applying (a date means the end of that day, UTC).",
        ),
        Field(
            "reason",
            Text(min_length=1, max_length=1024),
            "Why the finding is accepted, for whoever reads the policy next.",
        ),
    ),
)

VULNERABILITIES = Section(
    chart_toggle=True,
    fields=(
        Field(
            "severityThreshold",
            Choice(tuple(t.name for t in THRESHOLDS)),
            "A finding at or above this severity in an image's ImageScan is a violation.",
            default="CRITICAL",
        ),
        Field(
            "unscanned",
            Choice(("Deny", "Warn", "Allow")),
            "What an image gets when it is not pinned by digest, its digest has no ImageScan, "
            "or its scan is older than maxScanAge: Deny is a violation, Warn a kubectl warning, "
            "Allow nothing.",
            default="Warn",
        ),
        Field(
            "maxScanAge",
            DURATION,
            "A scan older than this (or of unknown age) counts as unscanned; absent: any age.",
        ),
        Field(
            "exceptions",
            ListOf(
                VULNERABILITY_EXCEPTION,
                max_items=256,
                doc="list of {vulnerability, images, expires, reason} (max 256)",
            ),
            "Findings accepted until they expire: vulnerability (advisory ID, required), "
            "images (prefixes; absent: all), expires (RFC 3339 date or date-time, required), "
            "reason (required). An expired exception no longer applies.",
            default=[],
        ),
    ),
)

PEM_PUBLIC_KEY = Text(doc="PEM public key", min_length=1, max_length=16384)
PEM_CERTIFICATE = Text(doc="PEM certificate", min_length=1, max_length=65536)

COSIGN_KEYS = Section(
    required=("publicKeys",),
    fields=(
        Field(
            "publicKeys",
            ListOf(PEM_PUBLIC_KEY, min_items=1, max_items=16),
            "cosign public keys (ECDSA P-256, PEM, as `cosign generate-key-pair` writes "
            "cosign.pub); a signature by any one of them counts, in the legacy .sig form or the "
            "bundle form.",
        ),
    ),
)

NOTATION_TRUST = Section(
    required=("trustedCertificates",),
    fields=(
        Field(
            "trustedCertificates",
            ListOf(PEM_CERTIFICATE, min_items=1, max_items=16),
            "Root CA certificates (PEM; a bundle per entry is fine), Notation's trust store: "
            "a signing certificate must chain to one of them and be valid now (under the "
            "signingAuthority scheme AWS Signer uses: when it signed). For AWS Signer, its "
            "root.",
        ),
        Field(
            "trustedIdentities",
            ListOf(
                Text(doc="x509.subject: DN, or signing profile ARN", min_length=1, max_length=1024),
                max_items=32,
            ),
            "Signers accepted, as in a Notation trust policy: signing certificate subjects "
            "(`x509.subject: C=US, ST=WA, O=acme`: every listed attribute must match), or, for "
            "AWS Signer signatures, signing profile ARNs "
            "(`arn:aws:signer:REGION:ACCOUNT:/signing-profiles/NAME`, any version; add "
            "`/VERSION` for one), never both kinds in one entry; absent or empty: any "
            "certificate under the trusted roots, but not AWS Signer's.",
            default=[],
        ),
    ),
)

SIGNATURE_REQUIREMENT = Section(
    required=("images",),
    fields=(
        Field(
            "images",
            ListOf(Text(min_length=1, max_length=512), min_items=1, max_items=32),
            "Image prefixes this requirement covers, written like trustedRegistries.",
        ),
        Field(
            "cosign",
            COSIGN_KEYS,
            "Accept a cosign key-pair signature by one of these keys.",
        ),
        Field(
            "notation",
            NOTATION_TRUST,
            "Accept a Notation signature (JWS or COSE; AWS Signer's for ECR too) by a "
            "certificate under these roots.",
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
        Field(
            "imageSignatures",
            ListOf(
                SIGNATURE_REQUIREMENT,
                max_items=32,
                doc="list of {images, cosign, notation} (max 32)",
            ),
            "Signed images (rule image-signatures): an image matching an entry's images must "
            "carry, for the digest that will run, a valid signature by one of its cosign keys "
            "or Notation roots (each entry sets at least one); every matching entry must be "
            "met. A tag is resolved to its digest through the registry.",
            default=[],
            advice="Give the webhook registry credentials (webhook.registry) and keep "
            "webhook.timeoutSeconds at least webhook.registry.budget + 1 s.",
        ),
        Field(
            "resolveImageTags",
            Boolean(),
            "Judge a tag-only image's scan on the digest its tag points to now, asked from the "
            "registry (cached), instead of counting it as unscanned; signatures always judge "
            "the digest.",
            default=False,
            switch=True,
        ),
        Field(
            "vulnerabilities",
            VULNERABILITIES,
            "Scan-gated admission: the webhook judges each image digest by its ImageScan "
            "(rule image-vulnerabilities); absent: scan results never decide admission.",
            advice="Start with unscanned: Warn until every image has an ImageScan.",
        ),
    ),
)
"""``spec`` of a ClusterSecurityPolicy."""
