"""The audit's evidence: the digest that runs (from imageIDs), and verdicts that expire with the
signature answers and ImageScans they rest on, while pods without such policies stay cheap."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mamori.images import ImageReference, parse_reference
from mamori.policy import Policy
from mamori.supplychain.lookup import DigestAnswer, SignatureAnswer
from mamori.supplychain.requirements import SignatureRequirement
from mamori_operator.state.cluster import (
    ClusterState,
    ImageScanRecord,
    NamespaceRecord,
    PodRecord,
    PolicyRecord,
)
from mamori_operator.state.pods import pod_record
from mamori_operator.state.records import image_scan_record, policy_record
from mamori_operator.status.audit import Auditor
from mamori_operator.status.evidence import AuditEvidence, EvidenceTimes
from mamori_operator.status.running_images import RunningDigests

RUNNING = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
TAGGED = "sha256:" + "c" * 64  # what the tag points to in the registry now
START = datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC)
KEY = (
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


class Clock:
    """Monotonic and wall time that move together, by hand."""

    def __init__(self) -> None:
        self.seconds = 1000.0

    def mono(self) -> float:
        return self.seconds

    def wall(self) -> datetime.datetime:
        return START + datetime.timedelta(seconds=self.seconds)

    def advance(self, seconds: float) -> None:
        self.seconds += seconds


class FakeRegistry:
    """Registry answers from tables: tag → digest, signed digests; counts what was asked."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.tags: dict[str, str] = {}
        self.signed: set[str] = set()
        self.down = False
        self.asked: list[str] = []
        self.slow = 0.0  # seconds each signature check takes

    def ask(self, until: float) -> FakeLookup:
        return FakeLookup(self, until)


class FakeLookup:
    def __init__(self, registry: FakeRegistry, until: float) -> None:
        self.registry = registry
        self.until = until
        self.calls = 0

    def digest(self, reference: ImageReference) -> DigestAnswer:
        self.registry.asked.append(f"resolve {reference}")
        digest = self.registry.tags.get(str(reference))
        if digest is None:
            return DigestAnswer(None, "manifest unknown")
        self.calls += 1
        return DigestAnswer(digest, resolved=True)

    def signature(
        self, reference: ImageReference, digest: str, requirement: SignatureRequirement
    ) -> SignatureAnswer:
        if self.registry.clock.mono() >= self.until:
            return SignatureAnswer(False, "it could not be checked: time is up")
        self.calls += 1
        self.registry.asked.append(f"signature {digest}")
        self.registry.clock.advance(self.registry.slow)
        if self.registry.down:
            return SignatureAnswer(False, "it could not be checked: registry unreachable")
        if digest in self.registry.signed:
            return SignatureAnswer(True, "signed")
        return SignatureAnswer(False, "no cosign signature found")


def pod(
    name: str,
    containers: Mapping[str, str],
    *,
    namespace: str = "team",
    statuses: Mapping[str, list[dict[str, Any]]] | None = None,
    init: Mapping[str, str] | None = None,
    ephemeral: Mapping[str, str] | None = None,
    version: str = "1",
) -> PodRecord:
    spec: dict[str, Any] = {"containers": [{"name": c, "image": i} for c, i in containers.items()]}
    if init:
        spec["initContainers"] = [{"name": c, "image": i} for c, i in init.items()]
    if ephemeral:
        spec["ephemeralContainers"] = [{"name": c, "image": i} for c, i in ephemeral.items()]
    return pod_record(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"uid-{name}",
                "resourceVersion": version,
            },
            "spec": spec,
            "status": dict(statuses or {}),
        }
    )


def started(**image_ids: str) -> list[dict[str, Any]]:
    return [{"name": name, "imageID": image_id} for name, image_id in image_ids.items()]


# -- the digest that runs -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "image", "expected"),
    [
        pytest.param(
            pod(
                "p",
                {"app": "registry.example/app:1"},
                statuses={
                    "containerStatuses": started(
                        app=f"docker-pullable://registry.example/app@{RUNNING}"
                    )
                },
            ),
            "registry.example/app:1",
            DigestAnswer(RUNNING, note="what its container runs"),
            id="docker-pullable-prefix-stripped",
        ),
        pytest.param(
            pod(
                "p",
                {"app": "registry.example/app:1"},
                statuses={"containerStatuses": started(app=f"registry.example/app@{RUNNING}")},
            ),
            "registry.example/app:1",
            DigestAnswer(RUNNING, note="what its container runs"),
            id="containerd-repo-digest",
        ),
        pytest.param(
            pod(
                "p",
                {"app": "registry.example/app:1", "side": "registry.example/side:1"},
                statuses={
                    "containerStatuses": started(
                        side=f"registry.example/side@{OTHER}", app=f"registry.example/app@{RUNNING}"
                    )
                },
            ),
            "registry.example/app:1",
            DigestAnswer(RUNNING, note="what its container runs"),
            id="matched-by-container-name-not-order",
        ),
        pytest.param(
            pod(
                "p",
                {"app": "registry.example/app:1"},
                init={"setup": "registry.example/setup:1"},
                statuses={
                    "initContainerStatuses": started(setup=f"registry.example/setup@{OTHER}")
                },
            ),
            "registry.example/setup:1",
            DigestAnswer(OTHER, note="what its container runs"),
            id="init-container",
        ),
        pytest.param(
            pod(
                "p",
                {"app": "registry.example/app:1"},
                ephemeral={"debug": "registry.example/debug:1"},
                statuses={
                    "ephemeralContainerStatuses": started(debug=f"registry.example/debug@{OTHER}")
                },
            ),
            "registry.example/debug:1",
            DigestAnswer(OTHER, note="what its container runs"),
            id="ephemeral-container",
        ),
        pytest.param(
            pod(
                "p",
                {"app": f"registry.example/app@{OTHER}"},
                statuses={"containerStatuses": started(app=f"registry.example/app@{OTHER}")},
            ),
            f"registry.example/app@{OTHER}",
            DigestAnswer(OTHER),
            id="pinned-runs-its-own-digest",
        ),
        pytest.param(
            pod("p", {"app": "registry.example/app:1"}),
            "registry.example/app:1",
            DigestAnswer(TAGGED, resolved=True),
            id="not-started-asks-the-registry",
        ),
        pytest.param(
            pod(
                "p",
                {"app": "registry.example/app:1"},
                statuses={"containerStatuses": started(app=RUNNING)},
            ),
            "registry.example/app:1",
            DigestAnswer(TAGGED, resolved=True),
            id="bare-local-image-id-is-not-a-digest",
        ),
        pytest.param(
            pod(
                "p",
                {"a": "registry.example/app:1", "b": "registry.example/app:1"},
                statuses={
                    "containerStatuses": started(
                        a=f"registry.example/app@{RUNNING}", b=f"registry.example/app@{OTHER}"
                    )
                },
            ),
            "registry.example/app:1",
            DigestAnswer(None, f"its containers run different digests ({RUNNING}, {OTHER})"),
            id="containers-disagree",
        ),
    ],
)
def test_the_digest_judged_is_the_one_the_kubelet_reports(
    record: PodRecord, image: str, expected: DigestAnswer
) -> None:
    clock = Clock()
    registry = FakeRegistry(clock)
    registry.tags["registry.example/app:1"] = TAGGED
    evidence = AuditEvidence(ClusterState(), ask=registry.ask, clock=clock.mono)
    audit_pass = evidence.begin_pass([signature_policy()])
    assert audit_pass is not None
    lookup = audit_pass.for_pod(RunningDigests.of(record.images))
    assert lookup.digest(parse_reference(image)) == expected
    assert registry.asked == ([f"resolve {image}"] if expected.resolved else [])


# -- verdicts that expire with their evidence ---------------------------------------------------


def signature_policy() -> Policy:
    policy = signature_record().policy
    assert policy is not None
    return policy


def signature_record() -> PolicyRecord:
    """Images of registry.example/app in namespace "team" must be signed by KEY."""
    record = policy_record(
        {
            "apiVersion": "mamori.io/v1alpha1",
            "kind": "ClusterSecurityPolicy",
            "metadata": {"name": "signed", "uid": "uid-signed", "generation": 1},
            "spec": {
                "enforcement": "Audit",
                "podSecurity": "privileged",
                "namespaceSelector": {"matchLabels": {"audited": "yes"}},
                "imageSignatures": [
                    {"images": ["registry.example/app"], "cosign": {"publicKeys": [KEY]}}
                ],
            },
        }
    )
    assert record.policy is not None, record.error
    return record


def vulnerability_record(exceptions: list[dict[str, str]] | None = None) -> PolicyRecord:
    """CRITICAL findings in namespace "team" are violations; unscanned images are allowed; a
    tag is judged by the digest it runs as."""
    record = policy_record(
        {
            "apiVersion": "mamori.io/v1alpha1",
            "kind": "ClusterSecurityPolicy",
            "metadata": {"name": "scanned", "uid": "uid-scanned", "generation": 1},
            "spec": {
                "enforcement": "Audit",
                "podSecurity": "privileged",
                "namespaceSelector": {"matchLabels": {"audited": "yes"}},
                "resolveImageTags": True,  # tags are judged by the digest that runs
                "vulnerabilities": {
                    "severityThreshold": "CRITICAL",
                    "unscanned": "Allow",
                    "exceptions": exceptions or [],
                },
            },
        }
    )
    assert record.policy is not None, record.error
    return record


def world(*policies: PolicyRecord) -> tuple[ClusterState, Clock, FakeRegistry, Auditor]:
    state = ClusterState()
    state.set_namespace(NamespaceRecord("team", {"audited": "yes"}))
    state.set_namespace(NamespaceRecord("other", {}))
    for policy in policies:
        state.set_policy(policy)
    clock = Clock()
    registry = FakeRegistry(clock)
    evidence = AuditEvidence(
        state,
        ask=registry.ask,
        times=EvidenceTimes(pass_budget=10.0, pod_budget=2.0),
        clock=clock.mono,
        wall_clock=clock.wall,
    )
    return state, clock, registry, Auditor(state, evidence=evidence)


def running_app(name: str = "web", *, digest: str = RUNNING, version: str = "1") -> PodRecord:
    return pod(
        name,
        {"app": "registry.example/app:1"},
        statuses={"containerStatuses": started(app=f"registry.example/app@{digest}")},
        version=version,
    )


def test_a_refusal_is_asked_again_after_30s_and_a_newly_signed_image_is_cleared() -> None:
    state, clock, registry, auditor = world(signature_record())
    state.set_pod(running_app())
    assert auditor.audit()[("team", "web")] == {"signed": ("image-signatures",)}
    assert registry.asked == [f"signature {RUNNING}"]
    registry.signed.add(RUNNING)
    clock.advance(29.9)
    assert auditor.audit()[("team", "web")] == {"signed": ("image-signatures",)}
    assert registry.asked == [f"signature {RUNNING}"]  # the refusal still counts
    clock.advance(0.1)
    assert auditor.audit()[("team", "web")] == {}
    assert registry.asked == [f"signature {RUNNING}"] * 2


def test_a_verified_signature_counts_for_5_minutes_then_is_checked_again() -> None:
    state, clock, registry, auditor = world(signature_record())
    registry.signed.add(RUNNING)
    state.set_pod(running_app())
    assert auditor.audit()[("team", "web")] == {}
    registry.signed.clear()  # say, the signature was removed from the registry
    clock.advance(299.9)
    assert auditor.audit()[("team", "web")] == {}
    assert len(registry.asked) == 1
    clock.advance(0.1)
    assert auditor.audit()[("team", "web")] == {"signed": ("image-signatures",)}
    assert len(registry.asked) == 2


def test_replicas_share_one_answer_and_the_running_digest_is_judged_not_the_tag() -> None:
    state, _, registry, auditor = world(signature_record())
    registry.tags["registry.example/app:1"] = TAGGED
    registry.signed.add(TAGGED)  # the tag points to a signed digest now; the pods run another
    for name in ("web-a", "web-b", "web-c"):
        state.set_pod(running_app(name))
    audits = auditor.audit()
    assert {key[1]: rules for key, rules in audits.items()} == {
        name: {"signed": ("image-signatures",)} for name in ("web-a", "web-b", "web-c")
    }
    assert registry.asked == [f"signature {RUNNING}"]


def test_an_unreachable_registry_is_a_finding_asked_again_after_30s() -> None:
    state, clock, registry, auditor = world(signature_record())
    registry.down = True
    state.set_pod(running_app())
    assert auditor.audit()[("team", "web")] == {"signed": ("image-signatures",)}
    [violation] = next(iter(auditor.workloads()["team"].values()))
    assert "registry unreachable" in violation.message
    registry.down = False
    registry.signed.add(RUNNING)
    clock.advance(30)
    assert auditor.audit()[("team", "web")] == {}


def test_pods_whose_policies_need_no_evidence_carry_no_stamp_and_ask_nothing() -> None:
    state, clock, registry, auditor = world(signature_record())
    state.set_pod(pod("plain", {"app": "nginx:1"}))  # selected, but no image to be signed
    state.set_pod(
        pod(
            "foreign",
            {"app": "registry.example/app:1"},
            namespace="other",  # the signature policy does not select it
            statuses={"containerStatuses": started(app=f"registry.example/app@{RUNNING}")},
        )
    )
    auditor.audit()
    first = dict(auditor._results)
    assert all(entry.evidence is None for entry in first.values())
    clock.advance(3600)
    auditor.audit()
    assert registry.asked == []
    assert all(auditor._results[key] is entry for key, entry in first.items())  # not re-judged


def test_without_any_evidence_policy_no_pass_evidence_is_made() -> None:
    state = ClusterState()
    state.set_namespace(NamespaceRecord("team", {}))
    evidence = AuditEvidence(state, ask=FakeRegistry(Clock()).ask)
    assert evidence.begin_pass(state.policies()) is None


def test_a_new_or_changed_imagescan_re_judges_the_pods_of_its_digest_only() -> None:
    state, clock, _, auditor = world(vulnerability_record())
    state.set_pod(running_app("web"))
    state.set_pod(running_app("api", digest=OTHER))
    assert auditor.audit()[("team", "web")] == {}  # unscanned: Allow
    api_entry = auditor._results[("team", "api")]
    state.set_image_scan(RUNNING, scan(RUNNING, "CVE-2026-0001"))
    audits = auditor.audit()
    assert audits[("team", "web")] == {"scanned": ("image-vulnerabilities",)}
    assert auditor._results[("team", "api")] is api_entry
    web_entry = auditor._results[("team", "web")]
    clock.advance(3600)
    auditor.audit()
    assert auditor._results[("team", "web")] is web_entry  # nothing changed: not re-judged
    state.set_image_scan(RUNNING, scan(RUNNING))  # rescanned clean
    assert auditor.audit()[("team", "web")] == {}


def test_an_exception_that_expires_re_judges_without_any_event() -> None:
    expires = (START + datetime.timedelta(seconds=1000 + 3600)).isoformat()
    exception = {"vulnerability": "CVE-2026-0001", "expires": expires, "reason": "not loaded"}
    state, clock, _, auditor = world(vulnerability_record([exception]))
    state.set_image_scan(RUNNING, scan(RUNNING, "CVE-2026-0001"))
    state.set_pod(running_app("web"))
    assert auditor.audit()[("team", "web")] == {}
    clock.advance(3599)
    assert auditor.audit()[("team", "web")] == {}
    clock.advance(1)
    assert auditor.audit()[("team", "web")] == {"scanned": ("image-vulnerabilities",)}


def test_a_pass_out_of_time_keeps_the_last_verdict_and_judges_the_rest_next_pass() -> None:
    state, _, registry, auditor = world(signature_record())
    registry.slow = 6.0  # two checks take longer than the pass may spend (10 s)
    for name, digest in (("a", RUNNING), ("b", OTHER), ("c", TAGGED)):
        state.set_pod(
            pod(
                name,
                {"app": "registry.example/app:1"},
                statuses={"containerStatuses": started(app=f"registry.example/app@{digest}")},
            )
        )
    first = auditor.audit()
    assert len(first) == 2  # the third pod waits for the next pass, with no false finding
    assert all(rules == {"signed": ("image-signatures",)} for rules in first.values())
    second = auditor.audit()
    assert len(second) == 3


def scan(digest: str, *critical: str) -> ImageScanRecord:
    record = image_scan_record(
        {
            "metadata": {"name": digest.replace(":", "-")},
            "spec": {
                "digest": digest,
                "scanner": "trivy",
                "scannedAt": START.isoformat(),
                "summary": {"critical": len(critical)},
                "findings": [{"id": cve, "severity": "CRITICAL"} for cve in critical],
            },
        }
    )
    assert record is not None
    return record
