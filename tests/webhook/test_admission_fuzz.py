"""Random AdmissionReviews against the app, with an oracle.

1. One violation, anywhere: start from a compliant pod (or the pod template of any workload
   kind), add random harmless noise, then inject exactly one violation from a table at a random
   place (the pod, or any init, regular or ephemeral container). The webhook must deny, and
   name the rule of that violation.
2. Broken envelopes: a review whose envelope field has the wrong type or value, or that is not
   JSON at all, must get HTTP 400 with a JSON reason.
3. Anything else: random values anywhere in the object. The answer may be allow or deny, but it
   is always JSON, never an HTTP 500 and never mamori's fail-closed internal-error answer.

Bounded: a few hundred examples, a few seconds in all.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamori.policy import load_policies
from mamori_webhook.app import create_app
from mamori_webhook.metrics import AdmissionMetrics
from mamori_webhook.policy_source import StaticPolicySource
from mamori_webhook.settings import WebhookSettings
from tests.webhook.reviews import DIGEST, WORKLOAD_KINDS, policy_document, review, workload

FUZZ = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LISTS = ("initContainers", "containers", "ephemeralContainers")
TRUSTED_IMAGES = (
    f"ghcr.io/acme/app@{DIGEST}",
    "ghcr.io/acme/web:1.2.3",
    "ghcr.io/acme/tools/debug:latest",
    f"ghcr.io/acme/api:2@{DIGEST}",
)


@dataclass(frozen=True)
class Webhook:
    """The app under test and its metrics; built once per module (its configuration is fixed)."""

    client: Any
    metrics: AdmissionMetrics

    def unexpected_errors(self) -> float:
        """Requests that ended in the app's catch-all handler (which logs a whole traceback)."""
        assert self.metrics.registry is not None
        sample = self.metrics.registry.get_sample_value(
            "mamori_admission_errors_total", {"reason": "unexpected"}
        )
        return sample or 0.0

    def post(self, document: Any) -> Any:
        """POST /validate; fails when the request went through the catch-all handler."""
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        before = self.unexpected_errors()
        response = self.client.post("/validate", data=body, content_type="application/json")
        assert self.unexpected_errors() == before, response.get_data(as_text=True)
        assert response.mimetype == "application/json"
        return response


@pytest.fixture(scope="module")
def webhook() -> Webhook:
    settings_ = WebhookSettings(tls_cert=Path("unused.crt"), tls_key=Path("unused.key"))
    source = StaticPolicySource(
        load_policies([policy_document("fuzz", trustedRegistries=["ghcr.io/acme"])])
    )
    metrics = AdmissionMetrics()
    app = create_app(settings_, policy_source=source, metrics=metrics)
    return Webhook(app.test_client(), metrics)


# -- compliant pods with noise ---------------------------------------------------------------

POOL = ("app", "web", "init", "debug", "side", "proxy", "log", "a1", "b2", "c3", "x")
NAMES = st.sampled_from(POOL)
TEXT = st.text(alphabet="abc-_ é/:=", max_size=12)
SAFE_KEYS = st.sampled_from(["example.com/zone", "example.com/tier", "node-role"])


@st.composite
def compliant_container(draw: st.DrawFn, name: str) -> dict[str, Any]:
    context: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    container: dict[str, Any] = {
        "name": name,
        "image": draw(st.sampled_from(TRUSTED_IMAGES)),
        "securityContext": context,
    }
    # Noise: fields and values that every rule allows.
    if draw(st.booleans()):
        context["capabilities"]["add"] = ["NET_BIND_SERVICE"]
    if draw(st.booleans()):
        context["readOnlyRootFilesystem"] = draw(st.booleans())
    if draw(st.booleans()):
        context["runAsUser"] = draw(st.integers(1, 2**31 - 1))
    if draw(st.booleans()):
        context["runAsNonRoot"] = True
    if draw(st.booleans()):
        context["privileged"] = False
    if draw(st.booleans()):
        context["seccompProfile"] = {"type": draw(st.sampled_from(["RuntimeDefault", "Localhost"]))}
        if context["seccompProfile"]["type"] == "Localhost":
            context["seccompProfile"]["localhostProfile"] = "profiles/app.json"
    if draw(st.booleans()):
        container["env"] = [
            {"name": n, "value": draw(TEXT)} for n in draw(st.lists(NAMES, max_size=3))
        ]
    if draw(st.booleans()):
        container["args"] = draw(st.lists(TEXT, max_size=3))
    if draw(st.booleans()):
        container["ports"] = [{"containerPort": draw(st.integers(1, 65535)), "protocol": "TCP"}]
    if draw(st.booleans()):
        container["resources"] = {"limits": {"cpu": "100m", "memory": "64Mi"}}
    return container


@st.composite
def compliant_spec(draw: st.DrawFn) -> dict[str, Any]:
    counts = {
        "initContainers": draw(st.integers(0, 2)),
        "containers": draw(st.integers(1, 3)),
        "ephemeralContainers": draw(st.integers(0, 2)),
    }
    names = iter(draw(st.permutations(POOL)))  # unique names, at most 7 are needed
    spec: dict[str, Any] = {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": draw(st.integers(1, 65535)),
            "seccompProfile": {"type": "RuntimeDefault"},
        }
    }
    for list_name, count in counts.items():
        if count:
            spec[list_name] = [draw(compliant_container(next(names))) for _ in range(count)]
    if draw(st.booleans()):
        spec["volumes"] = [
            {"name": "scratch", "emptyDir": {}},
            {"name": "config", "configMap": {"name": draw(NAMES)}},
        ]
    if draw(st.booleans()):
        spec["securityContext"]["fsGroup"] = draw(st.integers(1, 65535))
    if draw(st.booleans()):
        spec["nodeSelector"] = draw(st.dictionaries(SAFE_KEYS, NAMES, max_size=2))
    if draw(st.booleans()):
        spec["serviceAccountName"] = draw(NAMES)
    return spec


# -- the violations --------------------------------------------------------------------------

Change = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Violation:
    rule: str
    where: str  # "pod" or "container"
    change: Callable[..., None]

    def __repr__(self) -> str:  # hypothesis prints it in a failing example
        return f"Violation({self.rule!r}, {self.where})"


def _context(container: dict[str, Any]) -> dict[str, Any]:
    return container.setdefault("securityContext", {})


def _set_context(**values: Any) -> Callable[[dict[str, Any]], None]:
    return lambda container: _context(container).update(values)


def _set(**values: Any) -> Callable[[dict[str, Any]], None]:
    return lambda target: target.update(values)


def _add_volume(volume: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return lambda spec: spec.setdefault("volumes", []).append({"name": "injected", **volume})


def _drop_pod_seccomp(spec: dict[str, Any]) -> None:
    del spec["securityContext"]["seccompProfile"]
    for list_name in LISTS:  # a container's own profile would cover it
        for container in spec.get(list_name, []):
            _context(container).pop("seccompProfile", None)


def _drop_all_capabilities_drop(container: dict[str, Any]) -> None:
    _context(container)["capabilities"] = {"add": ["NET_BIND_SERVICE"]}


CONTAINER_VIOLATIONS = [
    Violation("privileged", "container", _set_context(privileged=True)),
    Violation(
        "allow-privilege-escalation", "container", _set_context(allowPrivilegeEscalation=True)
    ),
    Violation(
        "capabilities",
        "container",
        _set_context(capabilities={"add": ["SYS_ADMIN"], "drop": ["ALL"]}),
    ),
    Violation("capabilities", "container", _drop_all_capabilities_drop),
    Violation("run-as-user", "container", _set_context(runAsUser=0)),
    Violation("run-as-non-root", "container", _set_context(runAsNonRoot=False)),
    Violation("seccomp-profile", "container", _set_context(seccompProfile={"type": "Unconfined"})),
    Violation(
        "apparmor-profile", "container", _set_context(appArmorProfile={"type": "Unconfined"})
    ),
    Violation("selinux-options", "container", _set_context(seLinuxOptions={"type": "spc_t"})),
    Violation("proc-mount", "container", _set_context(procMount="Unmasked")),
    Violation(
        "windows-host-process", "container", _set_context(windowsOptions={"hostProcess": True})
    ),
    Violation("host-ports", "container", _set(ports=[{"containerPort": 80, "hostPort": 8080}])),
    Violation(
        "host-probes",
        "container",
        _set(livenessProbe={"httpGet": {"host": "169.254.169.254", "port": 80}}),
    ),
    Violation("trusted-registry", "container", _set(image="docker.io/evil/miner:1")),
    Violation("trusted-registry", "container", _set(image="nginx")),
    Violation("image-reference", "container", _set(image="Not An Image")),
    Violation("image-reference", "container", _set(image="ghcr.io/acme/app@sha256:short")),
    Violation("image-reference", "container", lambda container: container.pop("image")),
]
POD_VIOLATIONS = [
    Violation("host-namespaces", "pod", _set(hostNetwork=True)),
    Violation("host-namespaces", "pod", _set(hostPID=True)),
    Violation("host-namespaces", "pod", _set(hostIPC=True)),
    Violation("host-path-volumes", "pod", _add_volume({"hostPath": {"path": "/"}})),
    Violation("restricted-volumes", "pod", _add_volume({"nfs": {"server": "nfs", "path": "/"}})),
    Violation(
        "sysctls",
        "pod",
        lambda spec: spec["securityContext"].update(
            sysctls=[{"name": "kernel.msgmax", "value": "1"}]
        ),
    ),
    Violation("seccomp-profile", "pod", _drop_pod_seccomp),
    Violation("run-as-user", "pod", lambda spec: spec["securityContext"].update(runAsUser=0)),
    Violation("pod-structure", "pod", _set(containers="ghcr.io/acme/app:1")),
    Violation(
        "pod-structure", "pod", _set(initContainers={"name": "init", "image": "ghcr.io/acme/app:1"})
    ),
]


@st.composite
def injected(draw: st.DrawFn) -> tuple[dict[str, Any], Violation, str]:
    """A compliant spec with one violation; also says where (for the failure message)."""
    spec = draw(compliant_spec())
    violation = draw(st.sampled_from(CONTAINER_VIOLATIONS + POD_VIOLATIONS))
    if violation.where == "pod":
        violation.change(spec)
        return spec, violation, "pod"
    positions = [(name, i) for name in LISTS for i in range(len(spec.get(name, [])))]
    list_name, index = draw(st.sampled_from(positions))
    violation.change(spec[list_name][index])
    return spec, violation, f"{list_name}[{index}]"


@FUZZ
@given(
    case=injected(),
    kind=st.sampled_from(sorted(WORKLOAD_KINDS)),
    how=st.sampled_from(["create", "update", "dry-run"]),
)
def test_one_injected_violation_is_always_denied_and_named(
    webhook: Webhook, case: tuple[dict[str, Any], Violation, str], kind: str, how: str
) -> None:
    spec, violation, where = case
    obj = workload(kind, spec=spec)
    if how == "update":  # a spec change of an object that was compliant is judged in full
        document = review(obj, operation="UPDATE", old=workload(kind))
    else:
        document = review(obj, dry_run=how == "dry-run")
    response = webhook.post(document)
    assert response.status_code == 200, response.get_data(as_text=True)
    answer = response.get_json()["response"]
    assert answer["allowed"] is False, f"{violation} at {where} of a {kind} was allowed"
    assert answer["status"]["code"] == 403
    assert f"[{violation.rule}]" in answer["status"]["message"], answer["status"]["message"]


@settings(FUZZ, max_examples=100)
@given(case=injected())
def test_a_debug_container_with_one_violation_is_denied(
    webhook: Webhook,
    case: tuple[dict[str, Any], Violation, str],
) -> None:
    """``kubectl debug``: the ephemeralcontainers subresource judges the whole pod."""
    spec, violation, _ = case
    new = workload("Pod", spec=spec)
    old = copy.deepcopy(new)
    old["spec"].pop("ephemeralContainers", None)
    answer = webhook.post(
        review(new, operation="UPDATE", old=old, sub_resource="ephemeralcontainers")
    )
    result = answer.get_json()["response"]
    assert result["allowed"] is False and f"[{violation.rule}]" in result["status"]["message"]


# -- broken and random reviews -------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)
NOT_A_STRING = JSON.filter(lambda value: not isinstance(value, str))
NOT_AN_OBJECT = JSON.filter(lambda value: not isinstance(value, dict))
# Envelope paths, and values that make the review unusable there.
BROKEN = [
    (("apiVersion",), JSON.filter(lambda v: v != "admission.k8s.io/v1")),
    (("kind",), JSON.filter(lambda v: v != "AdmissionReview")),
    (("request",), NOT_AN_OBJECT),
    (("request", "uid"), NOT_A_STRING | st.just("")),
    (
        ("request", "operation"),
        JSON.filter(lambda v: v not in ("CREATE", "UPDATE", "DELETE", "CONNECT")),
    ),
    (("request", "kind"), NOT_AN_OBJECT),
    (("request", "kind", "kind"), NOT_A_STRING | st.just("")),
    (("request", "kind", "group"), NOT_A_STRING.filter(lambda v: v is not None)),
    (("request", "object"), NOT_AN_OBJECT.filter(lambda v: v is not None)),
    (("request", "oldObject"), NOT_AN_OBJECT.filter(lambda v: v is not None)),
    (("request", "dryRun"), JSON.filter(lambda v: not isinstance(v, bool) and v is not None)),
    (("request", "namespace"), NOT_A_STRING.filter(lambda v: v is not None)),
    (("request", "subResource"), NOT_A_STRING.filter(lambda v: v is not None)),
]


@st.composite
def broken_review(draw: st.DrawFn) -> dict[str, Any]:
    document = review(workload(draw(st.sampled_from(sorted(WORKLOAD_KINDS)))))
    path, values = draw(st.sampled_from(BROKEN))
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = draw(values)
    return document


def assert_json_error(response: Any) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert isinstance(error, str) and error
    assert not error.startswith("unexpected error"), error


@FUZZ
@given(document=broken_review())
def test_a_broken_envelope_is_always_400_with_a_json_reason(
    webhook: Webhook, document: dict[str, Any]
) -> None:
    assert_json_error(webhook.post(document))


@FUZZ
@given(body=st.binary(max_size=64) | JSON.map(lambda v: json.dumps(v).encode()))
def test_a_body_that_is_no_review_is_always_400(webhook: Webhook, body: bytes) -> None:
    assert_json_error(webhook.post(body))


def leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a JSON document: keys of objects and indexes of arrays."""
    paths = [path]
    if isinstance(value, dict):
        for key, child in value.items():
            paths += leaf_paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            paths += leaf_paths(child, (*path, index))
    return paths


@st.composite
def scrambled_review(draw: st.DrawFn) -> dict[str, Any]:
    """A valid review with random values put in a few random places of its object."""
    kind = draw(st.sampled_from(sorted(WORKLOAD_KINDS)))
    operation = draw(st.sampled_from(["CREATE", "UPDATE"]))
    old = workload(kind) if operation == "UPDATE" else None
    document = review(workload(kind, spec=draw(compliant_spec())), operation=operation, old=old)
    obj = document["request"]["object"]
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(leaf_paths(obj)[1:]))
        node = obj
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = draw(JSON)
    return document


@FUZZ
@given(document=scrambled_review())
def test_random_values_anywhere_never_break_the_webhook(
    webhook: Webhook, document: dict[str, Any]
) -> None:
    response = webhook.post(document)
    assert response.status_code in (200, 400), response.get_data(as_text=True)
    if response.status_code == 400:
        return
    answer = response.get_json()["response"]
    assert answer["uid"] == document["request"]["uid"]
    assert answer.get("status", {}).get("code") != 500, answer["status"]["message"]
