"""The chart on the real API server: every rendered object accepted, ``helm install`` working end
to end, and the webhook's certificate rotated under a stream of admissions without one failure.

There is no kubelet here, so the chart's pods never run; what they would do is done by the same
code on loopback, with the identities the chart creates:

* the operator's certificate pass (:class:`CertificateKeeper`, configured from the installed
  operator Deployment's environment, authenticated as the chart's operator ServiceAccount)
  creates the Secrets and injects the CA into the installed webhook configuration;
* a stand-in for the kubelet projects the serving Secret into files the way a Secret volume is
  updated (an atomic swap of the ``..data`` symlink);
* ``mamori webhook`` serves those files, watching the chart's ClusterSecurityPolicy as the
  chart's webhook ServiceAccount, at the URL the chart's ``webhook.urlOverride`` registered.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kopf
import kubernetes.client
import kubernetes.config
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from kubernetes.client.rest import ApiException

from mamori.kubeconfig import load_client_configuration
from mamori.settings import load_settings
from mamori_operator.api.kube import Kube
from mamori_operator.certificates.keeper import CertificateKeeper
from mamori_operator.certificates.plan import certificates_from_pem
from mamori_operator.certificates.settings import CertificateSettings
from mamori_operator.config import OperatorConfig
from mamori_operator.metrics import Metrics
from mamori_operator.runtime import run_operator
from tests.chart.helm import CHART, ROOT, SCENARIOS, Helm, documents
from tests.cluster_fixtures import Kubectl, KubectlResult
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

CRD_FILES = (
    *sorted((CHART / "crds").glob("*.yaml")),
    *sorted((ROOT / "tests/chart/fixtures/crds").glob("*.yaml")),
    ROOT / "tests/fixtures/crds/vulnerabilityreports.aquasecurity.github.io.yaml",
    *sorted((ROOT / "tests/fixtures/crds").glob("*.monitoring.coreos.com.yaml")),
)
SCENARIO_FILES = {"default": (), **{path.stem: (path,) for path in SCENARIOS}}
TEST_LABEL = "mamori.io/chart-test"
DENIED = 'admission webhook "validate.mamori.io" denied the request'
SERVING_LOG = re.compile(r"serving TLS certificate serial ([0-9a-f]+)")


# -- shared fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crds(kubectl: Kubectl) -> None:
    """mamori's CRDs, and test stand-ins for cert-manager's, Trivy's and the Prometheus
    Operator's, established."""
    for path in CRD_FILES:
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    names = [yaml.safe_load(path.read_text())["metadata"]["name"] for path in CRD_FILES]
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in names))


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory, kubeconfig: Path) -> Helm:
    return Helm.find(tmp_path_factory.mktemp("helm-home"), kubeconfig=kubeconfig)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def create_namespace(kubectl: Kubectl, name: str, labels: Mapping[str, str] | None = None) -> str:
    metadata = {"name": name, "labels": dict(labels or {})}
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}
    kubectl("create", "-f", "-", input=json.dumps(body))
    return name


# -- every object accepted ----------------------------------------------------------------------


@pytest.mark.parametrize("scenario", list(SCENARIO_FILES))
def test_the_api_server_accepts_every_rendered_object(
    helm: Helm, kubectl: Kubectl, crds: None, namespace: str, scenario: str
) -> None:
    """Server-side dry run with strict field validation: schema, defaults and admission.

    Rendered as ``helm install`` renders, looking at the cluster (``--dry-run=server``): the
    PolicyReport CRDs are left out when the cluster has them from someone else, as here once
    another test installed them."""
    rendered = helm.template(
        release=unique("dry"),
        namespace=namespace,
        values=SCENARIO_FILES[scenario],
        extra=("--dry-run=server",),
    ).stdout
    objects = documents(rendered)
    result = kubectl("apply", "--dry-run=server", "--validate=strict", "-f", "-", input=rendered)
    accepted = [line for line in result.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(accepted) == len(objects), result.stdout + result.stderr
    assert "Warning" not in result.stderr, result.stderr


# -- helpers for a live installation ------------------------------------------------------------


class SecretProjection:
    """Files from a Secret, updated the way the kubelet updates a Secret volume.

    The data goes into a fresh timestamped directory, then the ``..data`` symlink is swapped to
    it with one rename; ``tls.crt`` and friends are symlinks through ``..data``. A reader never
    sees half an update.
    """

    def __init__(self, directory: Path, keys: tuple[str, ...]) -> None:
        self.directory = directory
        self.keys = keys
        directory.mkdir(parents=True, exist_ok=True)
        self.current: dict[str, bytes] = {}

    def path(self, key: str) -> Path:
        return self.directory / key

    def project(self, data: Mapping[str, bytes]) -> bool:
        wanted = {key: data[key] for key in self.keys if key in data}
        if wanted == self.current:
            return False
        stamp = datetime.datetime.now(datetime.UTC).strftime("..%Y_%m_%d_%H_%M_%S.%f")
        target = self.directory / stamp
        target.mkdir()
        for key, value in wanted.items():
            (target / key).write_bytes(value)
        link = self.directory / "..data_tmp"
        link.unlink(missing_ok=True)
        link.symlink_to(stamp)
        link.rename(self.directory / "..data")
        for key in wanted:
            if not self.path(key).is_symlink():
                self.path(key).symlink_to(Path("..data") / key)
        self.current = dict(wanted)
        return True


@dataclass
class ServedWebhook:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def served_webhook(
    *, port: int, projection: SecretProjection, kubeconfig: Path, log_path: Path
) -> Iterator[ServedWebhook]:
    """``mamori webhook`` watching the cluster's policies, serving the projected pair."""
    argv = [
        sys.executable, "-P", "-m", "mamori.cli", "webhook",
        "--listen", f"127.0.0.1:{port}",
        "--tls-cert", str(projection.path("tls.crt")),
        "--tls-key", str(projection.path("tls.key")),
        "--kubeconfig", str(kubeconfig),
        "--workers", "1",
        "--threads", "8",
        "--log-format", "text",
    ]  # fmt: skip
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MAMORI_")}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )
    webhook = ServedWebhook(process, f"https://127.0.0.1:{port}", log_path)
    try:
        yield webhook
    finally:
        webhook.stop()


def readyz(webhook: ServedWebhook, ca_file: Path) -> bool:
    if webhook.process.poll() is not None:
        raise AssertionError(f"mamori webhook exited:\n{webhook.log()}")
    context = ssl.create_default_context(cafile=str(ca_file))
    try:
        with urllib.request.urlopen(f"{webhook.url}/readyz", timeout=2, context=context) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def service_account_kubeconfig(
    kubectl: Kubectl, *, admin: Path, namespace: str, account: str, destination: Path
) -> Path:
    """A kubeconfig that authenticates as a ServiceAccount (a TokenRequest token)."""
    token = kubectl("create", "token", account, "-n", namespace, "--duration=1h").stdout.strip()
    config = yaml.safe_load(admin.read_text())
    cluster = config["clusters"][0]
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": account, "context": {"cluster": cluster["name"], "user": account}}],
        "current-context": account,
    }
    destination.touch(mode=0o600)
    destination.write_text(yaml.safe_dump(document))
    return destination


def deployment_env(kubectl: Kubectl, namespace: str, name: str) -> dict[str, str]:
    body = json.loads(kubectl("get", "deployment", name, "-n", namespace, "-o", "json").stdout)
    container = body["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def secret_data(core: kubernetes.client.CoreV1Api, namespace: str, name: str) -> dict[str, bytes]:
    secret = core.read_namespaced_secret(name, namespace)
    return {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}


def ca_bundle(kubectl: Kubectl, configuration: str) -> bytes:
    """The configuration's caBundle, which every entry must carry alike (the API server calls
    each entry with its own)."""
    body = json.loads(
        kubectl("get", "validatingwebhookconfiguration", configuration, "-o", "json").stdout
    )
    encoded = {hook["clientConfig"].get("caBundle", "") for hook in body["webhooks"]}
    assert len(encoded) == 1, body["webhooks"]
    return base64.b64decode(encoded.pop())


def api_client(kubeconfig: Path) -> kubernetes.client.ApiClient:
    configuration = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(
        config_file=str(kubeconfig), client_configuration=configuration
    )
    return kubernetes.client.ApiClient(configuration)


def restricted_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "app",
                    "image": "app:1",
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def privileged_pod(name: str) -> dict[str, Any]:
    pod = restricted_pod(name)
    pod["spec"]["containers"][0]["securityContext"] = {"privileged": True}
    return pod


@dataclass
class Installation:
    """A helm release with its operator's certificate pass and its webhook running locally."""

    release: str
    namespace: str  # the release's
    target: str  # a namespace the webhook and the policy cover
    configuration: str  # the ValidatingWebhookConfiguration
    tls_secret: str
    ca_secret: str
    keeper: CertificateKeeper
    projection: SecretProjection
    webhook: ServedWebhook
    core: kubernetes.client.CoreV1Api
    kubeconfigs: dict[str, Path]  # "operator", "webhook": the chart's ServiceAccounts
    projected: list[dict[str, bytes]] = field(default_factory=list)

    def sync_files(self) -> bool:
        """What the kubelet does for a Secret volume: copy a changed Secret into the files."""
        data = secret_data(self.core, self.namespace, self.tls_secret)
        changed = self.projection.project(data)
        if changed:
            self.projected.append(data)
        return changed


@contextlib.contextmanager
def installed(
    *,
    helm: Helm,
    kubectl: Kubectl,
    kubeconfig: Path,
    directory: Path,
    extra_settings: Mapping[str, str] | None = None,
) -> Iterator[Installation]:
    """``helm install`` with the webhook at a loopback URL; certificates and webhook running.

    The webhook configuration and the policy cover only a namespace labelled for this test, so
    the release cannot judge any other test's objects.
    """
    # Never all digits: helm --set would read the label value as a number (schema: string).
    test_id = f"t{uuid.uuid4().hex[:7]}"
    release = f"chart-{test_id}"
    # Both namespaces carry the label: only the webhook's exclusion keeps the release's out.
    namespace = create_namespace(kubectl, f"{release}-system", {TEST_LABEL: test_id})
    target = create_namespace(kubectl, f"{release}-apps", {TEST_LABEL: test_id})
    port = free_port()
    label = TEST_LABEL.replace(".", "\\.")  # --set treats dots as nesting
    settings = {
        "webhook.urlOverride": f"https://127.0.0.1:{port}/validate",
        "certificates.extraHosts[0]": "127.0.0.1",
        f"webhook.namespaceSelector.matchLabels.{label}": test_id,
        "policy.name": release,
        f"policy.namespaceSelector.matchLabels.{label}": test_id,
        **(extra_settings or {}),
    }
    helm(
        "install", release, str(CHART), f"--namespace={namespace}",
        *(f"--set={key}={value}" for key, value in settings.items()),
    )  # fmt: skip
    kube: Kube | None = None
    try:
        env = deployment_env(kubectl, namespace, f"{release}-mamori-operator")
        certificate_settings = load_settings(CertificateSettings, None, env)
        accounts = {
            role: service_account_kubeconfig(
                kubectl,
                admin=kubeconfig,
                namespace=namespace,
                account=f"{release}-mamori-{role}",
                destination=directory / f"{role}.kubeconfig",
            )
            for role in ("operator", "webhook")
        }
        kube = Kube(load_client_configuration(accounts["operator"]), metrics=Metrics(), pool=2)
        keeper = CertificateKeeper(kube, settings=certificate_settings, namespace=namespace)
        keeper.reconcile()  # the operator's startup pass, with the operator's own RBAC
        core = kubernetes.client.CoreV1Api(api_client(kubeconfig))
        projection = SecretProjection(directory / "tls", ("tls.crt", "tls.key", "ca.crt"))
        first = secret_data(core, namespace, certificate_settings.certificate_secret)
        projection.project(first)  # the kubelet mounts the Secret before the container starts
        with served_webhook(
            port=port,
            projection=projection,
            kubeconfig=accounts["webhook"],
            log_path=directory / "webhook.log",
        ) as webhook:
            yield Installation(
                release=release,
                namespace=namespace,
                target=target,
                configuration=certificate_settings.certificate_webhook_configuration,
                tls_secret=certificate_settings.certificate_secret,
                ca_secret=certificate_settings.certificate_ca_secret,
                keeper=keeper,
                projection=projection,
                webhook=webhook,
                core=core,
                kubeconfigs=accounts,
                projected=[first],
            )
    finally:
        if kube is not None:
            kube.close()
        helm("uninstall", release, f"--namespace={namespace}", check=False)


# -- helm install ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def installation(
    helm: Helm,
    kubectl: Kubectl,
    kubeconfig: Path,
    crds: None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Installation]:
    with installed(
        helm=helm,
        kubectl=kubectl,
        kubeconfig=kubeconfig,
        directory=tmp_path_factory.mktemp("chart-install"),
    ) as current:
        wait_for(
            lambda: readyz(current.webhook, current.projection.path("ca.crt")),
            timeout=60,
            message="the webhook ready with the operator-issued certificate",
        )
        yield current


def create_pod(
    kubectl: Kubectl, namespace: str, pod: Mapping[str, Any], *extra: str
) -> KubectlResult:
    return kubectl("create", "-n", namespace, *extra, "-f", "-", input=json.dumps(pod), check=False)


def can_i(kubectl: Kubectl, account: str, namespace: str, *args: str) -> bool:
    result = kubectl(
        "auth", "can-i", *args, f"--as=system:serviceaccount:{namespace}:{account}", check=False
    )
    assert result.stdout.strip() in ("yes", "no"), result.stderr
    return result.stdout.strip() == "yes"


def test_helm_install_creates_the_release(
    installation: Installation, helm: Helm, kubectl: Kubectl
) -> None:
    status = json.loads(
        helm(
            "status", installation.release, f"--namespace={installation.namespace}", "-o", "json"
        ).stdout
    )
    assert status["info"]["status"] == "deployed"
    prefix = f"{installation.release}-mamori"
    namespaced = {
        "deployment": [f"{prefix}-webhook", f"{prefix}-operator"],
        "service": [f"{prefix}-webhook"],
        "serviceaccount": [f"{prefix}-webhook", f"{prefix}-operator"],
        "poddisruptionbudget": [f"{prefix}-webhook", f"{prefix}-operator"],
        "role": [f"{prefix}-operator"],
        "rolebinding": [f"{prefix}-operator"],
    }
    for kind, names in namespaced.items():
        kubectl("get", kind, *names, "-n", installation.namespace)
    kubectl("get", "clusterrole", f"{prefix}-webhook", f"{prefix}-operator")
    kubectl("get", "clusterrolebinding", f"{prefix}-webhook", f"{prefix}-operator")
    kubectl("get", "validatingwebhookconfiguration", installation.configuration)
    kubectl("get", "clustersecuritypolicy", installation.release)


def test_the_operator_issued_the_certificate_and_injected_its_ca(
    installation: Installation, kubectl: Kubectl
) -> None:
    core = installation.core
    tls = core.read_namespaced_secret(installation.tls_secret, installation.namespace)
    ca = core.read_namespaced_secret(installation.ca_secret, installation.namespace)
    assert tls.type == "kubernetes.io/tls"
    assert set(tls.data) == {"tls.crt", "tls.key", "ca.crt"}  # the CA key never reaches pods
    assert set(ca.data) == {"ca.crt", "ca.key"}
    bundle = ca_bundle(kubectl, installation.configuration)
    assert bundle == base64.b64decode(tls.data["ca.crt"])
    served = x509.load_pem_x509_certificate(base64.b64decode(tls.data["tls.crt"]))
    (authority,) = certificates_from_pem(bundle)
    served.verify_directly_issued_by(authority)
    names = served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    webhook_service = f"{installation.release}-mamori-webhook"
    assert f"{webhook_service}.{installation.namespace}.svc" in names.get_values_for_type(
        x509.DNSName
    )


def test_a_violating_pod_is_denied_through_the_installed_webhook(
    installation: Installation, kubectl: Kubectl
) -> None:
    refused = create_pod(kubectl, installation.target, privileged_pod("privileged"))
    assert refused.returncode != 0
    assert DENIED in refused.stderr, refused.stderr
    assert installation.release in refused.stderr  # the chart's policy is the one that denied
    assert "privileged" in refused.stderr

    created = create_pod(kubectl, installation.target, restricted_pod("restricted"))
    assert created.returncode == 0, created.stderr

    # The release's own namespace carries the same label, so the policy covers it; only the
    # webhook configuration's exclusion keeps it from being judged (mamori must heal itself).
    exempt = create_pod(kubectl, installation.namespace, privileged_pod("mamori-itself"))
    assert exempt.returncode == 0, exempt.stderr


def test_status_writes_of_mamori_annotations_reach_the_installed_webhook(
    installation: Installation, kubectl: Kubectl
) -> None:
    """The chart's pods/status entry, called with the CA the operator injected into it too."""
    name = "status-claim"
    created = create_pod(kubectl, installation.target, restricted_pod(name))
    assert created.returncode == 0, created.stderr
    claim = json.dumps({"metadata": {"annotations": {"mamori.io/scan-status": "clean"}}})
    refused = kubectl(
        "patch", "pod", name, "-n", installation.target, "--subresource=status", "--type=merge",
        "-p", claim, check=False,
    )  # fmt: skip
    assert refused.returncode != 0
    assert 'admission webhook "status-annotations.mamori.io" denied' in refused.stderr, refused


def test_the_helm_test_check_passes_against_the_running_webhook(
    installation: Installation, helm: Helm
) -> None:
    hooks = documents(
        helm("get", "hooks", installation.release, f"--namespace={installation.namespace}").stdout
    )
    (test_pod,) = [h for h in hooks if h["kind"] == "Pod"]
    assert test_pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (container,) = test_pod["spec"]["containers"]
    rendered_env = {e["name"]: e["value"] for e in container["env"]}
    assert rendered_env["MAMORI_SELFTEST_EXPECT_DENIED"] == "false"  # the policy needs a label
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MAMORI_")},
        **rendered_env,
        # Where the pod would reach the Service and mount ca.crt, the test has these instead:
        "MAMORI_SELFTEST_URL": installation.webhook.url,
        "MAMORI_SELFTEST_CA_FILE": str(installation.projection.path("ca.crt")),
        "MAMORI_SELFTEST_NAMESPACE": installation.target,
        "MAMORI_SELFTEST_EXPECT_DENIED": "true",
    }
    done = subprocess.run(
        [sys.executable, "-P", *container["command"][1:]],  # -P: not the repo's operator/
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "a privileged pod is denied" in done.stdout


def test_rbac_grants_what_the_programs_need_and_nothing_more(
    installation: Installation, kubectl: Kubectl
) -> None:
    """Both programs already ran with these identities above; here, what they cannot do."""
    namespace, prefix = installation.namespace, f"{installation.release}-mamori"
    webhook, operator = f"{prefix}-webhook", f"{prefix}-operator"
    assert can_i(kubectl, webhook, namespace, "watch", "clustersecuritypolicies.mamori.io")
    assert can_i(kubectl, webhook, namespace, "list", "namespaces")
    assert not can_i(kubectl, webhook, namespace, "get", "secrets", "-n", namespace)
    assert not can_i(kubectl, webhook, namespace, "create", "pods", "-n", installation.target)
    assert not can_i(kubectl, webhook, namespace, "patch", "validatingwebhookconfigurations")

    own_secret = f"secret/{installation.ca_secret}"
    assert can_i(kubectl, operator, namespace, "get", own_secret, "-n", namespace)
    assert can_i(kubectl, operator, namespace, "update", own_secret, "-n", namespace)
    assert not can_i(kubectl, operator, namespace, "get", "secret/other", "-n", namespace)
    assert not can_i(kubectl, operator, namespace, "list", "secrets", "-n", namespace)
    assert not can_i(kubectl, operator, namespace, "get", own_secret, "-n", installation.target)
    configuration = f"validatingwebhookconfiguration/{installation.configuration}"
    assert can_i(kubectl, operator, namespace, "patch", configuration)
    assert not can_i(kubectl, operator, namespace, "patch", "validatingwebhookconfiguration/x")
    assert not can_i(kubectl, operator, namespace, "delete", "pods", "-n", installation.target)
    assert can_i(kubectl, operator, namespace, "patch", "pods", "-n", installation.target)


def test_the_operator_runs_with_nothing_but_the_charts_rbac(
    installation: Installation, kubectl: Kubectl, caplog: pytest.LogCaptureFixture
) -> None:
    """The whole operator (every kopf watch, the Lease, status writes, the certificate pass) as
    the chart's ServiceAccount, configured from the chart's Deployment: a missing rule would
    show as a 403 that stops it or a status that never appears."""
    env = deployment_env(kubectl, installation.namespace, f"{installation.release}-mamori-operator")
    kubeconfig = installation.kubeconfigs["operator"]
    config = load_settings(OperatorConfig, None, {**env, "MAMORI_KUBECONFIG": str(kubeconfig)})
    config = dataclasses.replace(
        config, namespace=installation.namespace, identity="chart-test", health_port=0
    )
    certificates = load_settings(CertificateSettings, None, env)
    memo = kopf.Memo(certificates=certificates)
    stop, ready = threading.Event(), threading.Event()
    outcome: list[Any] = []

    def operate() -> None:
        try:
            outcome.append(run_operator(config, memo=memo, stop=stop, ready=ready))
        except BaseException as error:
            outcome.append(error)

    thread = in_thread(operate, "operator-as-chart")
    try:
        wait_for(lambda: outcome or ready.is_set(), timeout=60, message="operator ready")
        assert not outcome, outcome

        def ready_condition() -> dict[str, Any] | None:
            policy = json.loads(
                kubectl("get", "clustersecuritypolicy", installation.release, "-o", "json").stdout
            )
            conditions = (policy.get("status") or {}).get("conditions") or []
            return next((c for c in conditions if c["type"] == "Ready"), None)

        condition = wait_for(ready_condition, timeout=30, message="the policy's Ready condition")
        assert condition["status"] == "True", condition
        lease = json.loads(
            kubectl(
                "get", "lease", config.lease_name, "-n", installation.namespace, "-o", "json"
            ).stdout
        )
        assert lease["spec"]["holderIdentity"] == "chart-test"
        refused = [r.getMessage() for r in caplog.records if "403" in r.getMessage()]
        assert refused == [], "the operator was refused something"
    finally:
        stop.set()
        thread.join(60)
    assert outcome == [0]


def test_helm_upgrade_keeps_the_injected_ca_bundle(
    installation: Installation, helm: Helm, kubectl: Kubectl
) -> None:
    before = ca_bundle(kubectl, installation.configuration)
    assert before
    helm(
        "upgrade", installation.release, str(CHART), f"--namespace={installation.namespace}",
        "--reuse-values", "--set=webhook.timeoutSeconds=5",
    )  # fmt: skip
    body = json.loads(
        kubectl(
            "get", "validatingwebhookconfiguration", installation.configuration, "-o", "json"
        ).stdout
    )
    assert [hook["timeoutSeconds"] for hook in body["webhooks"]] == [5, 5]
    assert ca_bundle(kubectl, installation.configuration) == before
    refused = create_pod(kubectl, installation.target, privileged_pod("after-upgrade"))
    assert DENIED in refused.stderr, refused.stderr


# -- certificate rotation under load ------------------------------------------------------------


ROTATING = {
    # Real clocks, short lives: a new CA is due 3 s after the last one, and each overlap is 2 s,
    # so a full CA rotation (add, switch, retire) completes every few seconds.
    "certificates.caValidity": "1h",
    "certificates.caRenewBefore": "59m57s",
    "certificates.validity": "30m",
    "certificates.renewBefore": "1m",
    "certificates.overlap": "2s",
    "certificates.checkInterval": "1s",
}
WANTED_AUTHORITIES = 4  # the first CA and three rotations


@dataclass
class Stream:
    """Admission requests in a loop: a compliant pod must pass, a privileged one be denied."""

    api: kubernetes.client.CoreV1Api
    namespace: str
    stop: threading.Event = field(default_factory=threading.Event)
    allowed: int = 0
    denied: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        while not self.stop.is_set():
            name = unique("stream")
            try:
                self.api.create_namespaced_pod(self.namespace, restricted_pod(name), dry_run="All")
            except ApiException as error:
                self._fail(f"compliant pod refused: {error.status} {error.body}")
            else:
                self._count(allowed=1)
            try:
                self.api.create_namespaced_pod(self.namespace, privileged_pod(name), dry_run="All")
            except ApiException as error:
                if DENIED in status_message(error):
                    self._count(denied=1)
                else:
                    self._fail(f"privileged pod: {error.status} {error.body}")
            else:
                self._fail("privileged pod allowed")

    def _count(self, *, allowed: int = 0, denied: int = 0) -> None:
        with self.lock:
            self.allowed += allowed
            self.denied += denied

    def _fail(self, message: str) -> None:
        with self.lock:
            self.failures.append(message[:1500])


def status_message(error: ApiException) -> str:
    """The API server's Status message (the webhook's reason is inside it)."""
    try:
        return str(json.loads(error.body or "{}").get("message", ""))
    except ValueError:
        return str(error.body)


def in_thread(target: Callable[[], None], name: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def test_certificate_rotation_under_a_stream_of_admissions(
    helm: Helm,
    kubectl: Kubectl,
    kubeconfig: Path,
    crds: None,
    tmp_path: Path,
) -> None:
    """CA and serving pair replaced again and again while admissions flow: not one fails."""
    with installed(
        helm=helm,
        kubectl=kubectl,
        kubeconfig=kubeconfig,
        directory=tmp_path,
        extra_settings=ROTATING,
    ) as current:
        wait_for(
            lambda: readyz(current.webhook, current.projection.path("ca.crt")),
            timeout=60,
            message="the webhook ready",
        )
        api = kubernetes.client.CoreV1Api(api_client(kubeconfig))
        wait_for(  # the API server has the configuration and the webhook the policy
            lambda: DENIED in create_pod(kubectl, current.target, privileged_pod("first")).stderr,
            timeout=30,
            message="the first denial",
        )
        stop_kubelet = threading.Event()

        def kubelet() -> None:
            while not stop_kubelet.wait(0.25):
                current.sync_files()

        stream = Stream(api, current.target)
        started = time.monotonic()
        current.keeper.start()
        threads = [in_thread(kubelet, "kubelet")]
        threads += [in_thread(stream.run, f"stream-{i}") for i in range(2)]

        def authorities() -> set[bytes]:
            return {
                ca.fingerprint(hashes.SHA256())
                for data in list(current.projected)
                for ca in certificates_from_pem(data.get("ca.crt", b""))
            }

        def served_pairs() -> set[int]:
            return {
                x509.load_pem_x509_certificate(data["tls.crt"]).serial_number
                for data in list(current.projected)
            }

        try:
            wait_for(  # stops early at the first failure, which the assertions below show
                lambda: len(served_pairs()) >= WANTED_AUTHORITIES or stream.failures,
                timeout=120,
                interval=0.5,
                message=f"{WANTED_AUTHORITIES} CAs through rotation",
            )
        finally:
            stream.stop.set()
            stop_kubelet.set()
            current.keeper.stop()
            for thread in threads:
                thread.join(30)
        elapsed = time.monotonic() - started

        assert stream.failures == []
        served = {
            x509.load_pem_x509_certificate(data["tls.crt"]).serial_number
            for data in current.projected
        }
        bundles = [certificates_from_pem(data["ca.crt"]) for data in current.projected]
        assert max(len(bundle) for bundle in bundles) == 2  # old and new CA, during the overlap
        assert len(served) >= WANTED_AUTHORITIES  # a new pair for every CA
        reloaded = {int(serial, 16) for serial in SERVING_LOG.findall(current.webhook.log())}
        # Loaded on demand, at the first handshake after a change: a pair that lived while the
        # API server kept its connections open may never be loaded, and that is fine.
        assert reloaded <= served and len(reloaded) >= WANTED_AUTHORITIES - 1
        assert current.webhook.process.poll() is None  # picked up without a restart
        assert stream.allowed >= 20 and stream.denied >= 20
        print(
            f"rotation: {len(authorities())} CAs, {len(served)} serving pairs in {elapsed:.1f}s; "
            f"{stream.allowed + stream.denied} admissions, 0 failed"
        )
