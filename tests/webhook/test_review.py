"""The AdmissionReview codec: every malformed body has a reason, every answer the right shape."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from mamori.findings import Decision, Enforcement, Violation
from mamori_webhook.review import (
    MESSAGE_MAX_CHARS,
    WARNING_MAX_CHARS,
    WARNINGS_MAX_CHARS,
    AdmissionRequest,
    BadReview,
    GroupVersionKind,
    audit_key,
    build_error_response,
    build_response,
    decode_review,
)
from tests.webhook.reviews import review, workload

QUALIFIED_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def body(**changes: Any) -> bytes:
    """A valid review of a Pod, with top-level or ``request.*`` keys changed (None deletes)."""
    document = review(workload("Pod"))
    for key, value in changes.items():
        target = document
        if key.startswith("request_"):
            target, key = document["request"], key.removeprefix("request_")
        if "__" in key:
            outer, key = key.split("__")
            target = target[outer]
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(b"", "body is not valid JSON", id="empty"),
        pytest.param(b"{not json", "body is not valid JSON", id="syntax-error"),
        pytest.param(b"\xff\xfe{}", "body is not valid JSON", id="not-utf8"),
        pytest.param(
            b"[]", "body must be a JSON object (an AdmissionReview), got array", id="list"
        ),
        pytest.param(b'"review"', "body must be a JSON object", id="string"),
        pytest.param(b"null", "body must be a JSON object", id="null"),
        pytest.param(
            body(apiVersion=None),
            "apiVersion must be 'admission.k8s.io/v1', got nothing",
            id="no-api-version",
        ),
        pytest.param(
            body(apiVersion="admission.k8s.io/v1beta1"),
            "apiVersion must be 'admission.k8s.io/v1', got 'admission.k8s.io/v1beta1'",
            id="v1beta1",
        ),
        pytest.param(
            body(kind="Pod"), "kind must be 'AdmissionReview', got 'Pod'", id="wrong-kind"
        ),
        pytest.param(body(request=None), "request must be an object, got nothing", id="no-request"),
        pytest.param(body(request=[1]), "request must be an object, got array", id="request-list"),
        pytest.param(body(request_uid=None), "request.uid must be a non-empty string", id="no-uid"),
        pytest.param(
            body(request_uid=""), "request.uid must be a non-empty string", id="empty-uid"
        ),
        pytest.param(
            body(request_uid=42),
            "request.uid must be a non-empty string, got int",
            id="numeric-uid",
        ),
        pytest.param(body(request_operation=None), "request.operation must be one of", id="no-op"),
        pytest.param(
            body(request_operation="PATCH"), "request.operation must be one of", id="unknown-op"
        ),
        pytest.param(
            body(request_operation=["CREATE"]),
            "request.operation must be one of CONNECT, CREATE, DELETE, UPDATE, got array",
            id="op-list-unhashable",
        ),
        pytest.param(
            body(request_operation={"CREATE": 1}),
            "request.operation must be one of CONNECT, CREATE, DELETE, UPDATE, got object",
            id="op-object-unhashable",
        ),
        pytest.param(body(request_kind=None), "request.kind must be an object", id="no-kind"),
        pytest.param(body(request_kind="Pod"), "request.kind must be an object", id="kind-string"),
        pytest.param(
            body(request_kind={"group": "", "version": "v1"}),
            "request.kind.kind must be a non-empty string",
            id="kind-without-kind",
        ),
        pytest.param(
            body(request_kind={"group": 1, "version": "v1", "kind": "Pod"}),
            "request.kind.group must be a string, got int",
            id="kind-group-number",
        ),
        pytest.param(
            body(request_namespace=5),
            "request.namespace must be a string, got int",
            id="namespace-number",
        ),
        pytest.param(
            body(request_name=["web"]), "request.name must be a string, got array", id="name-list"
        ),
        pytest.param(
            body(request_subResource={}),
            "request.subResource must be a string",
            id="subresource-object",
        ),
        pytest.param(
            body(request_object=[]), "request.object must be an object, got array", id="object-list"
        ),
        pytest.param(
            body(request_object=None),
            "request.object must be an object for CREATE",
            id="create-without-object",
        ),
        pytest.param(
            body(request_operation="UPDATE", request_object="x"),
            "request.object must be an object, got 'x'",
            id="object-string",
        ),
        pytest.param(
            body(request_oldObject=7),
            "request.oldObject must be an object, got int",
            id="old-object-number",
        ),
        pytest.param(
            body(request_dryRun="yes"),
            "request.dryRun must be true or false, got 'yes'",
            id="dry-run-string",
        ),
    ],
)
def test_malformed_reviews_have_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(BadReview) as caught:
        decode_review(raw)
    assert caught.value.reason.startswith(reason)


def test_decodes_what_admission_reads() -> None:
    document = review(workload("Deployment"), operation="UPDATE", old=workload("Deployment"))
    document["request"]["subResource"] = "scale"
    document["request"]["dryRun"] = True
    request = decode_review(json.dumps(document).encode())
    assert request.uid == document["request"]["uid"]
    assert request.kind == GroupVersionKind("apps", "v1", "Deployment")
    assert request.kind.api_version == "apps/v1"
    assert (request.operation, request.namespace, request.name) == ("UPDATE", "shop", "web")
    assert request.sub_resource == "scale"
    assert request.dry_run is True
    assert request.object == document["request"]["object"]
    assert request.old_object == document["request"]["oldObject"]
    assert request.username == "alice"


def test_delete_needs_no_object_and_null_dry_run_means_false() -> None:
    request = decode_review(
        body(request_operation="DELETE", request_object=None, request_dryRun=None)
    )
    assert request.object is None
    assert request.dry_run is False


def test_core_group_kind_has_bare_version() -> None:
    assert GroupVersionKind("", "v1", "Pod").api_version == "v1"


# Answers ---------------------------------------------------------------------------------


def violation(
    rule: str = "trusted-registry",
    *,
    policy: str = "restricted",
    enforcement: Enforcement = Enforcement.ENFORCE,
    field: str = "spec.containers[0].image",
    message: str = 'container "app" image is not trusted; push it to a trusted registry',
    advisory: bool = False,
) -> Violation:
    return Violation(
        rule=rule,
        policy=policy,
        enforcement=enforcement,
        field=field,
        message=message,
        container="app",
        advisory=advisory,
    )


def request(name: str = "web", kind: str = "Pod") -> AdmissionRequest:
    return AdmissionRequest(
        uid="1234-uid", kind=GroupVersionKind("", "v1", kind), operation="CREATE", name=name
    )


def test_not_judged_is_a_plain_allow_echoing_the_uid() -> None:
    answer = build_response(request(), None)
    assert answer == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {"uid": "1234-uid", "allowed": True},
    }


def test_denial_lists_every_violation_with_rule_field_and_fix() -> None:
    denials = (
        violation(
            "run-as-non-root",
            field="spec.containers[0].securityContext.runAsNonRoot",
            message='container "app" must set runAsNonRoot=true',
        ),
        violation("trusted-registry"),
        violation("image-digest", message='container "app" image is not pinned; pin a digest'),
    )
    response = build_response(request(), Decision(violations=denials))["response"]
    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    assert response["status"]["reason"] == "Forbidden"
    lines = response["status"]["message"].split("\n")
    assert lines[0] == 'mamori denied Pod "web": 3 violations of policy "restricted":'
    assert lines[1:] == [
        '- [run-as-non-root] spec.containers[0].securityContext.runAsNonRoot: container "app" '
        "must set runAsNonRoot=true",
        '- [trusted-registry] spec.containers[0].image: container "app" image is not trusted; '
        "push it to a trusted registry",
        '- [image-digest] spec.containers[0].image: container "app" image is not pinned; '
        "pin a digest",
    ]
    assert "warnings" not in response
    assert "auditAnnotations" not in response


def test_denial_by_several_policies_names_each() -> None:
    denials = (violation(policy="base"), violation("image-digest", policy="prod"))
    message = build_response(request(), Decision(violations=denials))["response"]["status"][
        "message"
    ]
    assert message.startswith('mamori denied Pod "web": 2 violations of policies "base", "prod":')
    assert message.endswith('(policy "prod")')


def test_one_violation_is_singular_and_generated_names_show_the_prefix() -> None:
    pod = AdmissionRequest(
        uid="u",
        kind=GroupVersionKind("", "v1", "Pod"),
        operation="CREATE",
        object={"metadata": {"generateName": "web-7f9c-"}},
    )
    message = build_response(pod, Decision(violations=(violation(),)))["response"]["status"][
        "message"
    ]
    assert message.startswith('mamori denied Pod "web-7f9c-*": 1 violation of policy ')


def test_warn_allows_with_one_short_warning_per_violation() -> None:
    warned = (
        violation(enforcement=Enforcement.WARN),
        violation("image-digest", enforcement=Enforcement.WARN),
    )
    response = build_response(request(), Decision(violations=warned))["response"]
    assert response["allowed"] is True
    assert "status" not in response
    assert response["warnings"] == [
        'restricted: [trusted-registry] spec.containers[0].image: container "app" image is not '
        "trusted; push it to a trusted registry",
        'restricted: [image-digest] spec.containers[0].image: container "app" image is not '
        "trusted; push it to a trusted registry",
    ]


def test_audit_allows_with_annotations_keyed_by_policy_and_rule() -> None:
    audited = (
        violation(enforcement=Enforcement.AUDIT),
        violation(enforcement=Enforcement.AUDIT, field="spec.containers[1].image"),
        violation("image-digest", enforcement=Enforcement.AUDIT),
    )
    response = build_response(request(), Decision(violations=audited))["response"]
    assert response["allowed"] is True
    assert "warnings" not in response
    annotations = response["auditAnnotations"]
    assert set(annotations) == {"restricted.trusted-registry", "restricted.image-digest"}
    assert annotations["restricted.trusted-registry"].startswith(
        "spec.containers[0].image: container"
    )
    assert "; spec.containers[1].image: " in annotations["restricted.trusted-registry"]


def test_advice_becomes_warnings_even_when_denied() -> None:
    decision = Decision(
        violations=(violation(),),
        advice=(violation("image-user", advisory=True, message="declare a numeric USER"),),
    )
    response = build_response(request(), decision)["response"]
    assert response["allowed"] is False
    assert response["warnings"] == [
        "restricted (advice): [image-user] spec.containers[0].image: declare a numeric USER"
    ]


def test_warnings_fit_kubernetes_limits_without_breaking_characters() -> None:
    long_message = "ü" * 300 + "\nsecond line\twith tab"
    warned = tuple(
        violation(f"rule-{i}", enforcement=Enforcement.WARN, message=long_message)
        for i in range(40)
    )
    warnings = build_response(request(), Decision(violations=warned))["response"]["warnings"]
    assert all(len(w) <= WARNING_MAX_CHARS for w in warnings)
    assert sum(len(w) for w in warnings) <= WARNINGS_MAX_CHARS
    assert warnings[0].endswith("…")
    assert warnings[-1].startswith("mamori: ") and warnings[-1].endswith("more findings not shown")
    for warning in warnings:
        assert warning.isprintable()
        warning.encode("utf-8")  # whole characters only: encoding never fails


def test_control_characters_never_reach_a_warning() -> None:
    warned = (violation(enforcement=Enforcement.WARN, message="one\ntwo\r\x1bthree"),)
    (warning,) = build_response(request(), Decision(violations=warned))["response"]["warnings"]
    assert warning.endswith("one two  three")


def test_denial_message_is_capped_and_says_how_many_are_missing() -> None:
    many = tuple(
        violation(f"rule-{i:04}", message="x" * 200) for i in range(MESSAGE_MAX_CHARS // 100)
    )
    message = build_response(request(), Decision(violations=many))["response"]["status"]["message"]
    assert len(message) <= MESSAGE_MAX_CHARS
    assert re.search(r"- … and \d+ more \(run `mamori check`", message.splitlines()[-1])
    shown = len(message.splitlines()) - 2
    assert message.splitlines()[-1].startswith(f"- … and {len(many) - shown} more")


@pytest.mark.parametrize(
    ("policy", "rule"),
    [
        ("restricted", "run-as-non-root"),
        ("a" * 253, "trusted-registry"),
        ("team.example.com", "image-digest"),
        ("x" * 60 + ".-", "host-namespaces"),
    ],
)
def test_audit_keys_are_valid_qualified_name_parts(policy: str, rule: str) -> None:
    key = audit_key(policy, rule)
    assert len(key) <= 63
    assert QUALIFIED_NAME.match(key), key
    assert key.endswith(rule)


def test_long_audit_keys_stay_distinct() -> None:
    assert audit_key("a" * 200 + "1", "image-digest") != audit_key("a" * 200 + "2", "image-digest")


def test_internal_error_answer_fails_closed() -> None:
    response = build_error_response("u-1", "boom")["response"]
    assert response == {
        "uid": "u-1",
        "allowed": False,
        "status": {"code": 500, "reason": "InternalError", "message": "boom"},
    }
