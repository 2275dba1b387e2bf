"""The audit judges a pod again when something it is judged on changed, and only then.

Not on the pod's resourceVersion (status/audit.py ``judged_inputs``): the operator's own
scan-status patch moves it, and so does the watch's echo of that patch, while neither changes
what a rule reads. Every case also checks that the kept verdicts are what a fresh audit finds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mamori_operator.handlers.policies import policy_record
from mamori_operator.state.cluster import ClusterState, NamespaceRecord
from mamori_operator.state.pods import pod_record
from mamori_operator.status import audit
from mamori_operator.status.audit import Auditor

KEY = ("team", "web-5f6-a")
DIGEST = "sha256:" + "a" * 64
OTHER_DIGEST = "sha256:" + "b" * 64
SELECTED = {"audited": "yes"}
OUR_ANNOTATIONS = {
    "mamori.io/scan-status": "clean",
    "mamori.io/scan-summary": '{"critical":0}',
    "mamori.io/scanned-at": "2026-01-01T00:00:00Z",
}
APPARMOR = "container.apparmor.security.beta.kubernetes.io/app"
SECCOMP = "seccomp.security.alpha.kubernetes.io/pod"


def pod_body(
    *,
    version: str = "1",
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    privileged: bool = False,
    owner: str = "web-5f6",
    digest: str = DIGEST,
) -> dict[str, Any]:
    """A replica as served: one tweak per keyword from the same minimal pod."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": KEY[1],
            "namespace": KEY[0],
            "uid": "uid-a",
            "resourceVersion": version,
            "labels": {"pod-template-hash": "5f6", **(labels or {})},
            "annotations": {"note": "x", **(annotations or {})},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "controller": True}
            ],
        },
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "registry.example/app:1",
                    "securityContext": {"privileged": privileged},
                }
            ]
        },
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"name": "app", "imageID": f"registry.example/app@{digest}", "ready": True}
            ],
        },
    }


def policy(generation: int, *, pod_security: str = "baseline") -> Any:
    return policy_record(
        {
            "apiVersion": "mamori.io/v1alpha1",
            "kind": "ClusterSecurityPolicy",
            "metadata": {"name": "baseline", "uid": "u", "generation": generation},
            "spec": {
                "enforcement": "Audit",
                "podSecurity": pod_security,
                "namespaceSelector": {"matchLabels": SELECTED},
            },
        }
    )


def cluster() -> ClusterState:
    state = ClusterState()
    state.set_namespace(NamespaceRecord("team", dict(SELECTED)))
    state.set_policy(policy(1))
    state.set_pod(pod_record(pod_body()))
    return state


@pytest.fixture
def judged(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """The pods the engine judged, in order (the audit's cached verdicts are not judged)."""
    calls: list[tuple[str, str]] = []
    judge = audit.judge_pod

    def counting(body: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append((kwargs["namespace"], body["metadata"]["name"]))
        return judge(body, *args, **kwargs)

    monkeypatch.setattr(audit, "judge_pod", counting)
    yield calls


Change = Callable[[ClusterState], None]


def our_scan_status_patch(state: ClusterState) -> None:
    state.update_pod_annotations(KEY, OUR_ANNOTATIONS, resource_version="2")


def echo_of_our_patch(state: ClusterState) -> None:
    our_scan_status_patch(state)
    state.set_pod(pod_record(pod_body(version="2", annotations=OUR_ANNOTATIONS)))


def a_later_scan_status_patch_and_its_echo(state: ClusterState) -> None:
    echo_of_our_patch(state)
    later = {**OUR_ANNOTATIONS, "mamori.io/scan-status": "vulnerable"}
    state.update_pod_annotations(KEY, later, resource_version="3")
    state.set_pod(pod_record(pod_body(version="3", annotations=later)))


def a_status_only_event(state: ClusterState) -> None:
    state.set_pod(pod_record(pod_body(version="2")))  # e.g. a condition: same spec, same digest


def the_namespace_seen_again(state: ClusterState) -> None:
    state.set_namespace(NamespaceRecord("team", dict(SELECTED)))


def privileged_container(state: ClusterState) -> None:
    state.set_pod(pod_record(pod_body(version="2", privileged=True)))


def apparmor_annotation(state: ClusterState) -> None:
    state.set_pod(pod_record(pod_body(version="2", annotations={APPARMOR: "unconfined"})))


def seccomp_annotation(state: ClusterState) -> None:
    state.set_pod(pod_record(pod_body(version="2", annotations={SECCOMP: "unconfined"})))


def apparmor_annotation_with_our_patch(state: ClusterState) -> None:
    body = pod_body(version="2", annotations={**OUR_ANNOTATIONS, APPARMOR: "unconfined"})
    state.set_pod(pod_record(body))


def pod_label(state: ClusterState) -> None:
    state.set_pod(pod_record(pod_body(version="2", labels={"pod-template-hash": "7aa"})))


def new_owner(state: ClusterState) -> None:
    state.set_pod(pod_record(pod_body(version="2", owner="web-7aa")))


def new_running_digest(state: ClusterState) -> None:
    state.set_pod(pod_record(pod_body(version="2", digest=OTHER_DIGEST)))


def namespace_labels(state: ClusterState) -> None:
    state.set_namespace(NamespaceRecord("team", {"audited": "no"}))


def policy_edit(state: ClusterState) -> None:
    state.set_policy(policy(2, pod_security="restricted"))


@pytest.mark.parametrize(
    ("change", "judged_again"),
    [
        pytest.param(our_scan_status_patch, False, id="our-own-scan-status-patch"),
        pytest.param(echo_of_our_patch, False, id="the-watch-echo-of-our-patch"),
        pytest.param(a_later_scan_status_patch_and_its_echo, False, id="a-later-patch-and-echo"),
        pytest.param(a_status_only_event, False, id="a-status-only-event"),
        pytest.param(the_namespace_seen_again, False, id="the-namespace-unchanged"),
        pytest.param(privileged_container, True, id="a-container-security-context"),
        pytest.param(apparmor_annotation, True, id="an-apparmor-annotation"),
        pytest.param(seccomp_annotation, True, id="a-seccomp-annotation"),
        pytest.param(
            apparmor_annotation_with_our_patch, True, id="an-apparmor-annotation-with-our-patch"
        ),
        pytest.param(pod_label, True, id="a-pod-label"),
        pytest.param(new_owner, True, id="the-owner"),
        pytest.param(new_running_digest, True, id="the-digest-the-kubelet-reports"),
        pytest.param(namespace_labels, True, id="the-namespace-labels"),
        pytest.param(policy_edit, True, id="the-policy"),
    ],
)
def test_a_pod_is_judged_again_only_when_what_it_is_judged_on_changed(
    change: Change, judged_again: bool, judged: list[tuple[str, str]]
) -> None:
    state = cluster()
    auditor = Auditor(state)
    auditor.audit()
    assert judged == [KEY]

    change(state)
    judged.clear()
    kept = auditor.audit()
    assert judged == ([KEY] if judged_again else [])
    assert kept == Auditor(state).audit()  # what a fresh audit finds


def test_rules_that_read_annotations_see_the_new_verdict(judged: list[tuple[str, str]]) -> None:
    state = cluster()
    auditor = Auditor(state)
    assert auditor.audit()[KEY] == {}
    apparmor_annotation_with_our_patch(state)
    assert auditor.audit()[KEY] == {"baseline": ("apparmor-profile",)}
    state.set_pod(pod_record(pod_body(version="3", annotations=OUR_ANNOTATIONS)))
    assert auditor.audit()[KEY] == {}


def test_the_stored_body_leaves_out_only_our_own_annotations() -> None:
    annotations = {**OUR_ANNOTATIONS, APPARMOR: "runtime/default"}
    record = pod_record(pod_body(annotations=annotations))
    assert record.body["metadata"]["annotations"] == {"note": "x", APPARMOR: "runtime/default"}
    assert record.annotations == OUR_ANNOTATIONS  # kept apart, for the scanner
    without_ours = pod_record(pod_body(version="9", annotations={APPARMOR: "runtime/default"}))
    assert record.encoded_body == without_ours.encoded_body
