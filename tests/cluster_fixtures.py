"""pytest fixtures for tests that talk to a real Kubernetes API server.

One control plane per test session (etcd + kube-apiserver from ``make controlplane``, see
mamori_dev/controlplane.py), or the cluster named by ``MAMORI_TEST_KUBECONFIG`` when that is set. If
neither works, every test that needs it fails with the reason: an integration test never skips.

Loaded for the whole tree by tests/conftest.py (``pytest_plugins``), because the webhook's and the
operator's tests use these fixtures too. Fixtures: ``control_plane`` (session), ``kubeconfig``
(session, a Path), ``kubectl`` (session, runs the real kubectl), ``kube_api`` (session,
a kubernetes.client.ApiClient), ``namespace`` (per test, a fresh namespace's name),
``make_namespace`` (per test, a factory for more, with labels).

Fault tests get a control plane of their own per test, never the session's (see
tests/integration/faults.py): ``private_control_plane`` (a started LocalControlPlane; extra
kube-apiserver flags come from ``private_apiserver_args``, which a module overrides or a test
parametrizes), ``private_kubectl`` (the real kubectl bound to it), ``apiserver_proxy`` (a started
LoopbackProxy in front of its API server) and ``proxied_kubeconfig`` (its admin kubeconfig going
through that proxy). All are stopped after the test, failed or not. A module-scoped fault
fixture uses ``faults.private_control_plane()`` directly.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import kubernetes.client
import kubernetes.config
import pytest

from mamori.settings import SettingsError, load_settings
from mamori_dev.controlplane import ControlPlaneError, ControlPlaneSettings, LocalControlPlane
from tests.integration import faults

EXISTING_CLUSTER_ENV = "MAMORI_TEST_KUBECONFIG"
KUBECTL_TIMEOUT = 120.0


@dataclass(frozen=True)
class ClusterUnderTest:
    """What the fixtures hand out: how to reach the API server, and our own control plane."""

    kubeconfig: Path
    kubectl_binary: Path
    kubectl_cache: Path
    local: LocalControlPlane | None  # None when MAMORI_TEST_KUBECONFIG names another cluster


class KubectlResult(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


class KubectlFailed(AssertionError):
    """kubectl exited non-zero where the test expected success."""


@dataclass(frozen=True)
class Kubectl:
    """Runs the real kubectl (built from the same pin as the server) against the test cluster."""

    cluster: ClusterUnderTest

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = KUBECTL_TIMEOUT,
    ) -> KubectlResult:
        """``kubectl ARGS``; with ``check`` a non-zero exit fails the test with stderr shown."""
        argv = [
            str(self.cluster.kubectl_binary),
            f"--kubeconfig={self.cluster.kubeconfig}",
            f"--cache-dir={self.cluster.kubectl_cache}",
            *args,
        ]
        done = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        result = KubectlResult(done.returncode, done.stdout, done.stderr)
        if done.returncode != 0 and self.cluster.local is not None:
            self.cluster.local.check_running()  # a crashed server explains itself, with its log
        if check and done.returncode != 0:
            raise KubectlFailed(
                f"kubectl {' '.join(args)} exited {done.returncode}\n"
                f"stderr:\n{done.stderr}\nstdout:\n{done.stdout}"
            )
        return result


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterUnderTest]:
    """Start the local control plane once per session (or use MAMORI_TEST_KUBECONFIG)."""
    try:
        settings = load_settings(ControlPlaneSettings, None, os.environ)
    except SettingsError as error:
        pytest.fail(f"control plane settings: {error}", pytrace=False)
    kubectl_binary = settings.controlplane_bin / "kubectl"
    if not kubectl_binary.is_file():
        pytest.fail(f"{kubectl_binary} is missing: run `make controlplane`", pytrace=False)
    kubectl_cache = tmp_path_factory.mktemp("kubectl-cache")
    existing = os.environ.get(EXISTING_CLUSTER_ENV)
    if existing:
        path = Path(existing)
        if not path.is_file():
            pytest.fail(f"{EXISTING_CLUSTER_ENV}={existing}: no such file", pytrace=False)
        yield ClusterUnderTest(path, kubectl_binary, kubectl_cache, local=None)
        return
    local = LocalControlPlane(settings)
    try:
        local.start()
    except ControlPlaneError as error:
        pytest.fail(f"the local control plane did not start:\n{error}", pytrace=False)
    try:
        yield ClusterUnderTest(local.kubeconfig, kubectl_binary, kubectl_cache, local=local)
    finally:
        local.stop()


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ClusterUnderTest) -> Path:
    return control_plane.kubeconfig


@pytest.fixture(scope="session")
def kubectl(control_plane: ClusterUnderTest) -> Kubectl:
    return Kubectl(control_plane)


@pytest.fixture(scope="session")
def kube_api(control_plane: ClusterUnderTest) -> Iterator[kubernetes.client.ApiClient]:
    """An API client for the test cluster (its own Configuration: no global state touched)."""
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(control_plane.kubeconfig), client_configuration=configuration
    )
    with kubernetes.client.ApiClient(configuration) as client:
        yield client


class NamespaceFactory:
    """Creates namespaces for one test (labels set at creation) and deletes them after it."""

    def __init__(self, kubectl: Kubectl, test_name: str) -> None:
        self._kubectl = kubectl
        self._test_name = test_name
        self.created: list[str] = []

    def __call__(self, *, name: str | None = None, labels: Mapping[str, str] | None = None) -> str:
        """Create a namespace (a fresh unique name unless ``name`` is given); return its name.

        Labels go in with the create, never as a later patch: the API server matches webhooks'
        namespaceSelectors against its cached copy, which could still lack a late label.
        """
        name = name or namespace_name(self._test_name)
        manifest = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": dict(labels or {})},
        }
        self._kubectl("create", "-f", "-", input=json.dumps(manifest))
        self.created.append(name)
        return name

    def delete_all(self) -> None:
        for name in self.created:
            self._kubectl(
                "delete", "namespace", name, "--wait=false", "--ignore-not-found", check=False
            )


@pytest.fixture
def make_namespace(kubectl: Kubectl, request: pytest.FixtureRequest) -> Iterator[NamespaceFactory]:
    """``make_namespace(labels={...})`` → a new namespace's name, deleted after the test.

    Without a controller-manager a deleted namespace stays Terminating for good, which is why
    every test gets new names rather than reusing one.
    """
    factory = NamespaceFactory(kubectl, request.node.name)
    yield factory
    factory.delete_all()


@pytest.fixture
def namespace(make_namespace: NamespaceFactory) -> str:
    """A namespace of this test's own, deleted afterwards."""
    return make_namespace()


def namespace_name(test_name: str) -> str:
    """A valid, unique namespace name that still says which test made it."""
    readable = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:48].strip("-")
    return f"{readable or 'test'}-{uuid.uuid4().hex[:6]}"


# -- fault tests ----------------------------------------------------------------------------------


@pytest.fixture
def private_apiserver_args() -> tuple[str, ...]:
    """Extra kube-apiserver flags for ``private_control_plane`` (e.g. ``--watch-cache=false``)."""
    return ()


@pytest.fixture
def private_control_plane(
    private_apiserver_args: tuple[str, ...],
) -> Iterator[LocalControlPlane]:
    """etcd + kube-apiserver for this test alone: it may kill, cut and compact at will."""
    with faults.private_control_plane(apiserver_args=private_apiserver_args) as plane:
        yield plane


@pytest.fixture
def private_kubectl(
    private_control_plane: LocalControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Kubectl:
    """The real kubectl against ``private_control_plane`` (its admin kubeconfig)."""
    cluster = ClusterUnderTest(
        private_control_plane.kubeconfig,
        private_control_plane.kubectl,
        tmp_path_factory.mktemp("private-kubectl-cache"),
        local=private_control_plane,
    )
    return Kubectl(cluster)


@pytest.fixture
def apiserver_proxy(private_control_plane: LocalControlPlane) -> Iterator[faults.LoopbackProxy]:
    """A LoopbackProxy in front of ``private_control_plane``'s API server, stopped after."""
    port = int(private_control_plane.server.rsplit(":", 1)[1])
    with faults.LoopbackProxy((faults.LOOPBACK, port)) as proxy:
        yield proxy


@pytest.fixture
def proxied_kubeconfig(
    private_control_plane: LocalControlPlane,
    apiserver_proxy: faults.LoopbackProxy,
    tmp_path: Path,
) -> Path:
    """The private control plane's admin kubeconfig, going through ``apiserver_proxy``."""
    return faults.write_proxied_kubeconfig(
        private_control_plane.kubeconfig, tmp_path / "proxied-kubeconfig", apiserver_proxy
    )
