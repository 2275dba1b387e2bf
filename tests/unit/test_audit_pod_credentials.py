"""The audit asks registries as each running pod (its imagePullSecrets): a refusal one pod got
for lack of a Secret is kept for that pod's identity only, never lent to a pod that names the
Secret; a verified signature is about the digest and counts for every pod running it. The
reads and the registry are proven for real in tests/integration/test_operator_audit_credentials.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from mamori.images import ImageReference
from mamori.supplychain.lookup import SignatureAnswer
from mamori.supplychain.pull_secrets import image_pull_secret_names
from mamori.supplychain.requirements import SignatureRequirement
from mamori_operator.state.cluster import ClusterState, NamespaceRecord, PodRecord
from mamori_operator.state.pods import pod_record
from mamori_operator.status.audit import Auditor
from mamori_operator.status.evidence import AuditEvidence, EvidenceTimes
from tests.operator.test_audit_evidence import (
    RUNNING,
    Clock,
    FakeLookup,
    FakeRegistry,
    signature_record,
)

REFUSED = "it could not be checked: the registry refused the credentials (HTTP 401)"


class PullingLookup(FakeLookup):
    """A lookup that reads signatures only with the Secret ``regcred``."""

    def __init__(self, registry: FakeRegistry, until: float, secrets: tuple[str, ...]) -> None:
        super().__init__(registry, until)
        self.secrets = secrets

    def signature(
        self, reference: ImageReference, digest: str, requirement: SignatureRequirement
    ) -> SignatureAnswer:
        if "regcred" in self.secrets:
            return super().signature(reference, digest, requirement)
        self.calls += 1
        self.registry.asked.append(f"signature {digest} anonymously")
        return SignatureAnswer(False, REFUSED)


class PodRegistry:
    """The audit's PodAskers over the fake registry: each pod asks with its own Secrets."""

    def __init__(self, registry: FakeRegistry) -> None:
        self.registry = registry

    def asker(self, until: float, pod: PodRecord) -> PullingLookup:
        return PullingLookup(self.registry, until, tuple(image_pull_secret_names(pod.body)))

    def whose(self, pod: PodRecord) -> str:
        names = image_pull_secret_names(pod.body)
        return f"{pod.namespace}/{','.join(names)}" if names else ""


def running(name: str, *secrets: str) -> PodRecord:
    spec: dict[str, Any] = {"containers": [{"name": "app", "image": "registry.example/app:1"}]}
    if secrets:
        spec["imagePullSecrets"] = [{"name": secret} for secret in secrets]
    status = {"name": "app", "imageID": f"registry.example/app@{RUNNING}"}
    return pod_record(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": "team",
                "uid": f"uid-{name}",
                "resourceVersion": "1",
            },
            "spec": spec,
            "status": {"containerStatuses": [status]},
        }
    )


def world() -> tuple[ClusterState, Clock, FakeRegistry, Auditor]:
    state = ClusterState()
    state.set_namespace(NamespaceRecord("team", {"audited": "yes"}))
    state.set_policy(signature_record())
    clock = Clock()
    registry = FakeRegistry(clock)
    registry.signed.add(RUNNING)
    evidence = AuditEvidence(
        state,
        ask=registry.ask,
        pods=PodRegistry(registry),
        times=EvidenceTimes(pass_budget=10.0, pod_budget=2.0),
        clock=clock.mono,
        wall_clock=clock.wall,
    )
    return state, clock, registry, Auditor(state, evidence=evidence)


FLAGGED = {"signed": ("image-signatures",)}


ANONYMOUS, WITH_SECRET = f"signature {RUNNING} anonymously", f"signature {RUNNING}"


@pytest.mark.parametrize(
    ("order", "anonymous_verdict", "asked"),
    [
        pytest.param(
            ("anonymous", "pulling"),
            FLAGGED,
            [ANONYMOUS, WITH_SECRET],
            id="refused-first-is-not-lent",
        ),
        pytest.param(
            ("pulling", "anonymous"),
            {},
            [WITH_SECRET],
            id="verified-first-counts-for-the-digest",
        ),
    ],
)
def test_a_refusal_stays_with_the_pod_that_got_it(
    order: tuple[str, str], anonymous_verdict: dict[str, tuple[str, ...]], asked: list[str]
) -> None:
    state, _, registry, auditor = world()
    pods = {"anonymous": running("anonymous"), "pulling": running("pulling", "regcred")}
    for name in order:
        state.set_pod(pods[name])
    verdicts = auditor.audit()
    assert verdicts[("team", "pulling")] == {}
    assert verdicts[("team", "anonymous")] == anonymous_verdict
    assert registry.asked == asked


def test_pods_naming_the_same_secrets_share_their_refusal_for_30s() -> None:
    state, clock, registry, auditor = world()
    for name in ("web-a", "web-b"):
        state.set_pod(running(name, "stale"))
    assert auditor.audit()[("team", "web-b")] == FLAGGED
    assert registry.asked == [ANONYMOUS]  # one ask for both replicas
    clock.advance(30)
    auditor.audit()
    assert len(registry.asked) == 2


def test_without_pod_credentials_the_audit_asks_as_the_operator() -> None:
    state = ClusterState()
    state.set_namespace(NamespaceRecord("team", {"audited": "yes"}))
    state.set_policy(signature_record())
    registry = FakeRegistry(Clock())
    registry.signed.add(RUNNING)
    auditor = Auditor(state, evidence=AuditEvidence(state, ask=registry.ask))
    state.set_pod(running("pulling", "regcred"))
    assert auditor.audit()[("team", "pulling")] == {}
    assert registry.asked == [WITH_SECRET]
