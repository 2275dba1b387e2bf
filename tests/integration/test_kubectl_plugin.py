"""``kubectl mamori why``, run by the real kubectl as a plugin against the real API server.

kubectl finds ``kubectl-mamori`` on PATH (the console script the package installs into
.venv/bin); the plugin reads the ClusterSecurityPolicies, the namespace and the object over
HTTPS and explains the verdict. No webhook runs here, so the API server admits the workloads
whatever the policies say: the verdict printed is the plugin's own, from the same engine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml

from tests.cluster_fixtures import ClusterUnderTest, Kubectl, NamespaceFactory, namespace_name
from tests.helpers import wait_for
from tests.unit.test_why_explain import RESTRICTED_POD_SPEC
from tests.webhook.cluster import TEST_LABEL, Scope, install_policy_crd, unique

pytestmark = pytest.mark.integration

VENV_BIN = Path(sys.executable).parent
PLUGIN = VENV_BIN / "kubectl-mamori"


def web_deployment(namespace: str) -> dict[str, Any]:
    """Compliant with restricted but for one thing: hostNetwork (rule host-namespaces)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {**RESTRICTED_POD_SPEC, "hostNetwork": True},
            },
        },
    }


def web_pod(namespace: str) -> dict[str, Any]:
    """A compliant pod the Deployment selects, as the operator would have annotated it."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web-1",
            "namespace": namespace,
            "labels": {"app": "web"},
            "annotations": {"mamori.io/scan-status": "clean"},
        },
        "spec": RESTRICTED_POD_SPEC,
    }


def kubectl_mamori(
    cluster: ClusterUnderTest, *args: str, kubeconfig: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``kubectl mamori ARGS`` with .venv/bin on PATH, as a user runs it."""
    environment = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "KUBECONFIG": str(kubeconfig or cluster.kubeconfig),
    }
    return subprocess.run(
        [str(cluster.kubectl_binary), "mamori", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def scope(
    kube_api: kubernetes.client.ApiClient, make_namespace: NamespaceFactory
) -> Iterator[Scope]:
    assert PLUGIN.is_file(), f"{PLUGIN} is missing: run `.venv/bin/pip install -e .`"
    install_policy_crd(kube_api)
    scope = Scope(kube_api, make_namespace)
    yield scope
    scope.cleanup()


def apply(kubectl: Kubectl, *objects: dict[str, Any]) -> None:
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                  "items": list(objects)}))  # fmt: skip


def test_kubectl_lists_the_plugin(control_plane: ClusterUnderTest) -> None:
    done = subprocess.run(
        [str(control_plane.kubectl_binary), "plugin", "list"],
        env={**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert str(PLUGIN) in done.stdout.splitlines(), done.stdout + done.stderr


def test_why_explains_a_deployment_under_warn_then_under_enforce(
    control_plane: ClusterUnderTest, kubectl: Kubectl, scope: Scope
) -> None:
    # Short, readable names: this run's output is quoted in docs/troubleshooting.md.
    labels = {TEST_LABEL: scope.label, "env": "dev"}
    namespace = scope.make_namespace(name=namespace_name("shop"), labels=labels)
    judging = scope.policy(unique("restricted"), enforcement="Warn")
    prod_only = scope.policy(
        unique("prod-only"),
        namespaceSelector={"matchLabels": {TEST_LABEL: scope.label, "env": "prod"}},
    )
    exempting = scope.policy(unique("exempt-shop"), exemptNamespaces=[namespace])
    apply(kubectl, web_deployment(namespace), web_pod(namespace))

    warned = kubectl_mamori(control_plane, "why", "deploy/web", "-n", namespace)
    print(f"$ kubectl mamori why deploy/web -n {namespace}\n{warned.stdout}", end="")
    assert warned.returncode == 0, warned.stderr
    lines = warned.stdout.splitlines()
    assert lines[0] == f"Deployment web in namespace {namespace}: allowed"
    matches = f"spec.namespaceSelector matches ({TEST_LABEL}={scope.label})"
    assert f"  {judging} (Warn): {matches}" in lines
    assert "    ! [host-namespaces] spec.template.spec.hostNetwork" in lines
    assert (
        "        fix: no hostNetwork, hostPID or hostIPC (docs/rules.md#host-namespaces)" in lines
    )
    assert (
        f"  {prod_only} (Enforce): spec.namespaceSelector does not match: env=prod, "
        "but the namespace has env=dev"
    ) in lines
    assert f"  {exempting} (Enforce): namespace {namespace} is in spec.exemptNamespaces" in lines
    assert "  web-1 Pending scan-status=clean; as it runs now: allowed, 0 violations" in lines
    assert lines[-1] == "Verdict: allowed (violations: 0 Enforce, 1 Warn, 0 Audit)"

    scope.patch_policy(judging, {"enforcement": "Enforce"})
    denied = kubectl_mamori(control_plane, "why", "deploy/web", "-n", namespace)
    print(f"$ kubectl mamori why deploy/web -n {namespace}\n{denied.stdout}", end="")
    assert denied.returncode == 1, denied.stderr
    assert denied.stdout.startswith(f"Deployment web in namespace {namespace}: DENIED\n")
    assert "    ✗ [host-namespaces] spec.template.spec.hostNetwork\n" in denied.stdout

    as_json = kubectl_mamori(
        control_plane, "why", "deployment", "web", "-n", namespace, "-o", "json"
    )
    assert as_json.returncode == 1, as_json.stderr
    document = json.loads(as_json.stdout)
    assert document["allowed"] is False
    assert document["namespaceLabels"][TEST_LABEL] == scope.label
    policies = {entry["name"]: entry for entry in document["policies"]}
    assert [policies[name]["selected"] for name in (judging, prod_only, exempting)] == [
        True,
        False,
        False,
    ]
    [violation] = policies[judging]["violations"]
    assert (violation["rule"], violation["enforcement"], violation["container"]) == (
        "host-namespaces",
        "Enforce",
        None,
    )
    assert [(pod["name"], pod["scan"]) for pod in document["pods"]] == [
        ("web-1", {"mamori.io/scan-status": "clean"})
    ]

    bare = kubectl_mamori(control_plane, "why", "web", "-n", namespace)  # no pod: the Deployment
    assert (bare.returncode, bare.stdout.splitlines()[0]) == (
        1,
        f"Deployment web in namespace {namespace}: DENIED",
    )
    pod = kubectl_mamori(control_plane, "why", "pod/web-1", "-n", namespace)
    assert pod.returncode == 0, pod.stdout + pod.stderr
    assert pod.stdout.startswith(f"Pod web-1 in namespace {namespace}: allowed\n")


@pytest.mark.parametrize(
    ("words", "message"),
    [
        pytest.param(["deploy/nope"], 'deployment "nope" not found in namespace "{ns}"', id="kind"),
        pytest.param(["nope"], 'pod or deployment "nope" not found in namespace "{ns}"', id="bare"),
        pytest.param(["sts", "web"], 'statefulset "web" not found in namespace "{ns}"', id="sts"),
    ],
)
def test_a_missing_object_exits_2_naming_it_and_its_namespace(
    control_plane: ClusterUnderTest,
    kubectl: Kubectl,
    scope: Scope,
    words: list[str],
    message: str,
) -> None:
    namespace = scope.namespace()
    apply(kubectl, web_deployment(namespace))
    done = kubectl_mamori(control_plane, "why", *words, "-n", namespace)
    assert done.returncode == 2
    assert done.stderr == f"mamori why: error: {message.format(ns=namespace)}\n"
    assert done.stdout == ""


def two_context_kubeconfig(admin: Path, *, token: str, namespace: str, directory: Path) -> Path:
    """Contexts ``reader`` (current: a ServiceAccount's token, handed out by an exec credential
    plugin) and ``admin`` (the control plane's client certificate), both in ``namespace``."""
    credential = directory / "credential.json"
    credential.write_text(json.dumps({
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": token},
    }))  # fmt: skip
    exec_plugin = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": "cat",
        "args": [str(credential)],
        "interactiveMode": "Never",
    }
    config = yaml.safe_load(admin.read_text())
    cluster = config["clusters"][0]
    admin_user = config["users"][0]
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [admin_user, {"name": "reader", "user": {"exec": exec_plugin}}],
        "contexts": [
            {"name": name, "context": {"cluster": cluster["name"], "user": user,
                                       "namespace": namespace}}
            for name, user in (("reader", "reader"), ("admin", admin_user["name"]))
        ],
        "current-context": "reader",
    }  # fmt: skip
    destination = directory / "kubeconfig"
    destination.touch(mode=0o600)
    destination.write_text(yaml.safe_dump(document))
    return destination


def test_no_access_is_an_error_and_unreadable_labels_are_said(
    control_plane: ClusterUnderTest, kubectl: Kubectl, scope: Scope, tmp_path: Path
) -> None:
    namespace = scope.namespace()
    policy = scope.policy(enforcement="Warn")
    apply(kubectl, web_deployment(namespace))
    role = f"{namespace}-policy-reader"
    kubectl("create", "serviceaccount", "reader", "-n", namespace)
    kubectl("create", "role", "reader", "-n", namespace, "--verb=get,list",
            "--resource=deployments,pods")  # fmt: skip
    kubectl("create", "rolebinding", "reader", "-n", namespace, "--role=reader",
            f"--serviceaccount={namespace}:reader")  # fmt: skip
    token = kubectl("create", "token", "reader", "-n", namespace, "--duration=1h").stdout.strip()
    config = two_context_kubeconfig(
        control_plane.kubeconfig, token=token, namespace=namespace, directory=tmp_path
    )
    try:
        # As the reader (the current context, its namespace): policies cannot be listed.
        refused = kubectl_mamori(control_plane, "why", "deploy/web", kubeconfig=config)
        assert refused.returncode == 2, refused.stdout
        assert refused.stderr.startswith(
            "mamori why: error: cannot list ClusterSecurityPolicies: HTTP 403: "
            f'clustersecuritypolicies.mamori.io is forbidden: User "system:serviceaccount:'
            f'{namespace}:reader" cannot list'
        ), refused.stderr

        # --context admin, with --kubeconfig given as a flag: everything can be read.
        admin = kubectl_mamori(
            control_plane, "why", "deploy/web", "--context", "admin", "--kubeconfig", str(config)
        )
        assert admin.returncode == 0, admin.stderr
        assert f"  {policy} (Warn): spec.namespaceSelector matches" in admin.stdout

        # Allowed to list policies but not to read namespaces: the label selector cannot match.
        kubectl("create", "clusterrole", role, "--verb=list",
                "--resource=clustersecuritypolicies.mamori.io")  # fmt: skip
        kubectl("create", "clusterrolebinding", role, f"--clusterrole={role}",
                f"--serviceaccount={namespace}:reader")  # fmt: skip

        def answered() -> subprocess.CompletedProcess[str] | None:
            done = kubectl_mamori(control_plane, "why", "deploy/web", kubeconfig=config)
            return done if done.returncode != 2 else None

        partial = wait_for(
            answered,
            timeout=30,
            message="the ClusterRoleBinding to take effect",
        )
        assert partial is not None and partial.returncode == 0, partial
        lines = partial.stdout.splitlines()
        assert (
            "  namespace labels: unknown (selectors judged on the namespace's name only)" in lines
        )
        assert any(
            line.startswith(f'  note: cannot read namespace "{namespace}" (HTTP 403: ')
            for line in lines
        ), partial.stdout
        assert (
            f"  {policy} (Warn): spec.namespaceSelector does not match: "
            f"{TEST_LABEL}={scope.label}, but the namespace has no label {TEST_LABEL}"
        ) in lines
    finally:
        kubectl("delete", "clusterrolebinding", role, "--ignore-not-found")
        kubectl("delete", "clusterrole", role, "--ignore-not-found")
