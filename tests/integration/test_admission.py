"""Admission on the real API server: `mamori webhook` over TLS, registered the way the chart does,
judging what the real kubectl sends.

The webhook runs as its own process (``mamori webhook --policy FILE``) on loopback with a
certificate from a test CA; a ValidatingWebhookConfiguration points the API server at it. Each
configuration selects namespaces by a label that carries this module's run id, so these tests
share the session's control plane with every other test without judging their objects.

Refusals are checked where users see them: kubectl's exit status and stderr (mamori's message,
the rule IDs), and the object's absence afterwards.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.cluster_fixtures import Kubectl, NamespaceFactory
from tests.helpers import wait_for
from tests.webhook.served import Pki, Served, start_webhook, write_policy

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:6]
SELECTOR = "mamori.io/admission-test"
WEBHOOK_NAME = "validate.mamori.io"
TRUSTED_IMAGE = "registry.k8s.io/pause:3.10"
UNTRUSTED_IMAGE = "docker.io/library/nginx:1.27"
EXEMPT_NAMESPACE = f"exempt-{RUN}"
DENIED = f'admission webhook "{WEBHOOK_NAME}" denied the request: mamori denied'
NOT_FOUND = "(NotFound)"

# Every kind that makes or carries pods, as the chart registers them.
WEBHOOK_RULES = [
    {
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "resources": ["pods", "pods/ephemeralcontainers", "replicationcontrollers", "podtemplates"],
    },
    {
        "apiGroups": ["apps"],
        "apiVersions": ["v1"],
        "resources": ["deployments", "replicasets", "statefulsets", "daemonsets"],
    },
    {"apiGroups": ["batch"], "apiVersions": ["v1"], "resources": ["jobs", "cronjobs"]},
]


# -- manifests ---------------------------------------------------------------------------------


def pod_spec(*, image: str = TRUSTED_IMAGE) -> dict[str, Any]:
    """A pod spec that satisfies the restricted level; each bad case changes one thing."""
    return {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [
            {
                "name": "app",
                "image": image,
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
    }


def pod(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": dict(spec)}


def deployment(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": dict(spec)},
        },
    }


def cronjob(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    job_spec = {**spec, "restartPolicy": "Never"}
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name},
        "spec": {
            "schedule": "0 3 * * *",
            "jobTemplate": {"spec": {"template": {"spec": job_spec}}},
        },
    }


def root_spec() -> dict[str, Any]:
    spec = pod_spec()
    spec["securityContext"].update(runAsNonRoot=False, runAsUser=0)
    return spec


def no_seccomp_spec() -> dict[str, Any]:
    spec = pod_spec()
    del spec["securityContext"]["seccompProfile"]
    return spec


def privileged_spec() -> dict[str, Any]:
    spec = pod_spec()
    context = spec["containers"][0]["securityContext"]
    del context["allowPrivilegeEscalation"]  # with privileged: true the API server refuses false
    context["privileged"] = True
    return spec


def policy(name: str, *, enforcement: str) -> dict[str, Any]:
    return {
        "apiVersion": "mamori.io/v1alpha1",
        "kind": "ClusterSecurityPolicy",
        "metadata": {"name": name},
        "spec": {
            "enforcement": enforcement,
            "podSecurity": "restricted",
            "trustedRegistries": ["registry.k8s.io", "ghcr.io/acme"],
            "exemptNamespaces": [EXEMPT_NAMESPACE],
        },
    }


# -- the webhook process and its registration --------------------------------------------------


@contextmanager
def running_webhook(*, policies: list[dict[str, Any]], directory: Path) -> Iterator[Served]:
    """Start ``mamori webhook`` on a loopback port with a test CA's certificate; stop it after."""
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(directory)
    pki.write_initial()
    webhook = start_webhook(
        pki=pki,
        log_file=directory / "webhook.log",
        policy_file=write_policy(directory / "policy.yaml", *policies),
    )
    try:
        yield webhook
    finally:
        webhook.stop()


def webhook_configuration(
    *, name: str, webhook: Served, selector_value: str, failure_policy: str = "Fail"
) -> dict[str, Any]:
    rules = [{**rule, "operations": ["CREATE", "UPDATE"]} for rule in WEBHOOK_RULES]
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": [
            {
                "name": WEBHOOK_NAME,
                "clientConfig": {
                    "url": f"{webhook.url}/validate",
                    "caBundle": webhook_ca_bundle(webhook),
                },
                "rules": rules,
                "namespaceSelector": {"matchLabels": {SELECTOR: selector_value}},
                "failurePolicy": failure_policy,
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10,
            }
        ],
    }


def webhook_ca_bundle(webhook: Served) -> str:
    return base64.b64encode(webhook.ca_file.read_bytes()).decode()


@contextmanager
def registered(kubectl: Kubectl, configuration: dict[str, Any]) -> Iterator[str]:
    name = configuration["metadata"]["name"]
    kubectl("apply", "-f", "-", input=json.dumps(configuration))
    try:
        yield name
    finally:
        kubectl("delete", "validatingwebhookconfiguration", name, "--ignore-not-found")


def apply(kubectl: Kubectl, namespace: str, manifest: Mapping[str, Any], *extra: str) -> Any:
    return kubectl(
        "apply", "-n", namespace, *extra, "-f", "-", input=json.dumps(manifest), check=False
    )


def exists(kubectl: Kubectl, namespace: str, manifest: Mapping[str, Any]) -> bool:
    kind, name = manifest["kind"].lower(), manifest["metadata"]["name"]
    result = kubectl("get", "-n", namespace, kind, name, "-o", "name", check=False)
    if result.returncode != 0 and NOT_FOUND not in result.stderr:
        raise AssertionError(f"kubectl get {kind} {name} failed: {result.stderr}")
    return result.returncode == 0


def wait_until_judged(kubectl: Kubectl, namespace: str, *, expect: str) -> None:
    """The API server picks up a new or changed webhook configuration a moment after the write."""
    probe = pod(f"probe-{uuid.uuid4().hex[:6]}", pod_spec(image=UNTRUSTED_IMAGE))
    wait_for(
        lambda: expect in apply(kubectl, namespace, probe, "--dry-run=server").stderr,
        timeout=30,
        interval=0.25,
        message=f"{expect!r} in kubectl's answer for an untrusted image in {namespace}",
    )


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def webhook_directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("admission")


@contextlib.contextmanager
def policy_behind_a_webhook(kubectl: Kubectl, directory: Path, enforcement: str) -> Iterator[str]:
    """One webhook process judging one policy; yields the label value that opts a namespace in."""
    kind = enforcement.lower()
    with running_webhook(
        policies=[policy(f"admission-{kind}", enforcement=enforcement)],
        directory=directory / kind,
    ) as webhook:
        value = f"{RUN}-{kind}"
        config = webhook_configuration(
            name=f"mamori-{kind}-{RUN}", webhook=webhook, selector_value=value
        )
        with registered(kubectl, config):
            yield value
        assert webhook.process.poll() is None, webhook.log()


@pytest.fixture(scope="module")
def enforcing(kubectl: Kubectl, webhook_directory: Path) -> Iterator[str]:
    """An Enforce policy behind the webhook; yields the label value that opts a namespace in."""
    with policy_behind_a_webhook(kubectl, webhook_directory, "Enforce") as value:
        yield value


@pytest.fixture(scope="module")
def warning(kubectl: Kubectl, webhook_directory: Path) -> Iterator[str]:
    """A Warn policy behind a second webhook process; yields its namespace label value."""
    with policy_behind_a_webhook(kubectl, webhook_directory, "Warn") as value:
        yield value


@pytest.fixture
def enforced_namespace(enforcing: str, make_namespace: NamespaceFactory, kubectl: Kubectl) -> str:
    name = make_namespace(labels={SELECTOR: enforcing})
    wait_until_judged(kubectl, name, expect=DENIED)
    return name


# -- tests -------------------------------------------------------------------------------------

REFUSED = [
    pytest.param(
        pod("root", root_spec()), ["run-as-non-root", "run-as-user"], id="pod-running-as-root"
    ),
    pytest.param(pod("no-seccomp", no_seccomp_spec()), ["seccomp-profile"], id="pod-no-seccomp"),
    pytest.param(
        pod("untrusted", pod_spec(image=UNTRUSTED_IMAGE)),
        ["trusted-registry"],
        id="pod-untrusted-registry",
    ),
    pytest.param(deployment("privileged", privileged_spec()), ["privileged"], id="deployment"),
    pytest.param(
        cronjob("untrusted", pod_spec(image=UNTRUSTED_IMAGE)), ["trusted-registry"], id="cronjob"
    ),
]


@pytest.mark.parametrize(("manifest", "rules"), REFUSED)
def test_violations_are_refused_with_mamoris_reasons(
    kubectl: Kubectl, enforced_namespace: str, manifest: dict[str, Any], rules: list[str]
) -> None:
    result = apply(kubectl, enforced_namespace, manifest)
    assert result.returncode == 1, result
    subject = f'{manifest["kind"]} "{manifest["metadata"]["name"]}"'
    assert f"{DENIED} {subject}" in result.stderr
    for rule_id in rules:
        assert f"[{rule_id}]" in result.stderr, result.stderr
    assert not exists(kubectl, enforced_namespace, manifest)


def test_compliant_pod_and_deployment_are_created(
    kubectl: Kubectl, enforced_namespace: str
) -> None:
    for manifest in (pod("web", pod_spec()), deployment("web", pod_spec())):
        result = apply(kubectl, enforced_namespace, manifest)
        assert result.returncode == 0, result.stderr
        findings = [line for line in result.stderr.splitlines() if "(advice)" not in line]
        assert findings == []  # no warnings either (advisory hints aside)
        assert exists(kubectl, enforced_namespace, manifest)


def test_server_dry_run_is_judged_the_same_and_stores_nothing(
    kubectl: Kubectl, enforced_namespace: str
) -> None:
    bad = pod("untrusted", pod_spec(image=UNTRUSTED_IMAGE))
    dry = apply(kubectl, enforced_namespace, bad, "--dry-run=server")
    real = apply(kubectl, enforced_namespace, bad)
    assert dry.returncode == real.returncode == 1
    assert DENIED in dry.stderr
    assert dry.stderr == real.stderr
    good = pod("fine", pod_spec())
    accepted = apply(kubectl, enforced_namespace, good, "--dry-run=server")
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.strip() == "pod/fine created (server dry run)"
    assert not exists(kubectl, enforced_namespace, good)


def test_warn_policy_prints_warnings_and_creates(
    kubectl: Kubectl, warning: str, make_namespace: NamespaceFactory
) -> None:
    namespace = make_namespace(labels={SELECTOR: warning})
    wait_until_judged(kubectl, namespace, expect="Warning:")
    manifest = pod("untrusted", pod_spec(image=UNTRUSTED_IMAGE))
    result = apply(kubectl, namespace, manifest)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert warnings, result.stderr
    assert all("admission-warn:" in line for line in warnings)
    assert any("[trusted-registry]" in line and UNTRUSTED_IMAGE in line for line in warnings)
    assert exists(kubectl, namespace, manifest)


def test_exempt_namespace_is_not_judged(
    kubectl: Kubectl, enforcing: str, enforced_namespace: str, make_namespace: NamespaceFactory
) -> None:
    # Same label as the enforced namespace (the webhook is called), but the policy exempts it.
    exempt = make_namespace(name=EXEMPT_NAMESPACE, labels={SELECTOR: enforcing})
    manifest = pod("untrusted", pod_spec(image=UNTRUSTED_IMAGE))
    assert DENIED in apply(kubectl, enforced_namespace, manifest).stderr
    result = apply(kubectl, exempt, manifest)
    assert result.returncode == 0, result.stderr
    assert exists(kubectl, exempt, manifest)


def test_failure_policy_decides_when_the_webhook_is_down(
    kubectl: Kubectl, make_namespace: NamespaceFactory, tmp_path: Path
) -> None:
    label = f"{RUN}-outage-{uuid.uuid4().hex[:4]}"
    namespace = make_namespace(labels={SELECTOR: label})
    with running_webhook(
        policies=[policy("admission-outage", enforcement="Enforce")], directory=tmp_path
    ) as webhook:
        config = webhook_configuration(
            name=f"mamori-outage-{label}", webhook=webhook, selector_value=label
        )
        with registered(kubectl, config):
            wait_until_judged(kubectl, namespace, expect=DENIED)
            assert webhook.stop() == 0, webhook.log()

            good = pod("while-down", pod_spec())
            refused = apply(kubectl, namespace, good)
            assert refused.returncode == 1
            assert f'failed calling webhook "{WEBHOOK_NAME}"' in refused.stderr
            assert "mamori denied" not in refused.stderr
            assert not exists(kubectl, namespace, good)

            ignoring = copy.deepcopy(config)
            ignoring["webhooks"][0]["failurePolicy"] = "Ignore"
            kubectl("apply", "-f", "-", input=json.dumps(ignoring))
            wait_for(
                lambda: apply(kubectl, namespace, good, "--dry-run=server").returncode == 0,
                timeout=30,
                interval=0.25,
                message="failurePolicy Ignore to take effect",
            )
            allowed = apply(kubectl, namespace, good)
            assert allowed.returncode == 0, allowed.stderr
            assert exists(kubectl, namespace, good)
