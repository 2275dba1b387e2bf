"""``make demo``: the whole story on a local control plane, with real kubectl.

Starts etcd + kube-apiserver (built from Go modules), installs the CRDs, serves the webhook over
TLS and registers it with the API server, runs the operator, then walks through what an admin
sees: the CI check, a refused ``kubectl apply`` with its message, warning mode, a compliant
deploy, NetworkPolicies appearing, a pod getting its scan annotations, and ``kubectl get csp``.
Everything is stopped on exit or Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from mamori_dev.controlplane import ControlPlaneError, LocalControlPlane
from mamori_dev.localca import LocalCA

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CRDS = ROOT / "charts" / "mamori" / "crds"
BOLD, DIM, RESET = "\033[1m", "\033[2m", "\033[0m"


class DemoError(RuntimeError):
    """A step of the story did not turn out as it should."""


class Terminal:
    """Prints the story: headings, the commands as a person would type them, their output."""

    def __init__(self, *, color: bool) -> None:
        self.color = color

    def heading(self, text: str) -> None:
        self._print(f"\n{BOLD}== {text}{RESET}" if self.color else f"\n== {text}")

    def say(self, text: str) -> None:
        self._print(text)

    def command(self, argv: Sequence[str], output: str) -> None:
        shown = " ".join(shlex.quote(part) for part in argv)
        self._print(f"{DIM}${RESET} {shown}" if self.color else f"$ {shown}")
        if output.strip():
            self._print("  " + output.rstrip().replace("\n", "\n  "))

    @staticmethod
    def _print(text: str) -> None:
        print(text, flush=True)


class Cluster:
    """Runs real kubectl (and mamori) against the demo's API server and shows each call."""

    def __init__(self, *, kubectl: Path, kubeconfig: Path, terminal: Terminal) -> None:
        self.kubectl_path = kubectl
        self.kubeconfig = kubeconfig
        self.terminal = terminal
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig)}

    def kubectl(
        self, *args: str, stdin: str | None = None, expect_ok: bool | None = True, show: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.kubectl_path), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
            check=False,
        )
        if show:
            self.terminal.command(["kubectl", *args], done.stdout + done.stderr)
        if expect_ok is not None and (done.returncode == 0) != expect_ok:
            verdict = "failed" if expect_ok else "succeeded, but should have been refused"
            raise DemoError(f"kubectl {' '.join(args)} {verdict}:\n{done.stdout}{done.stderr}")
        return done

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json", show=False).stdout)


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def background(argv: Sequence[str], *, env: dict[str, str], log: Path) -> Iterator[None]:
    """Run a mamori component for the length of the demo; its log goes to ``log``."""
    with log.open("wb") as sink:
        process = subprocess.Popen(
            list(argv), stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def webhook_configuration(*, url: str, ca_pem: bytes) -> dict[str, Any]:
    """What the chart installs, pointed at the local webhook by URL."""
    import base64

    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "mamori"},
        "webhooks": [
            {
                "name": "validate.mamori.io",
                "clientConfig": {"url": url, "caBundle": base64.b64encode(ca_pem).decode()},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": [
                            "pods",
                            "pods/ephemeralcontainers",
                            "replicationcontrollers",
                            "podtemplates",
                        ],
                    },
                    {
                        "apiGroups": ["apps"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["deployments", "replicasets", "statefulsets", "daemonsets"],
                    },
                    {
                        "apiGroups": ["batch"],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["jobs", "cronjobs"],
                    },
                ],
                "namespaceSelector": {
                    "matchExpressions": [
                        {
                            "key": "kubernetes.io/metadata.name",
                            "operator": "NotIn",
                            "values": ["kube-system", "kube-node-lease"],
                        }
                    ]
                },
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "timeoutSeconds": 3,
                "admissionReviewVersions": ["v1"],
            }
        ],
    }


def mamori_command() -> list[str]:
    # -P: never let the working directory's operator/ shadow the standard library's operator.
    return [sys.executable, "-P", "-m", "mamori.cli"]


DEMO_POLICY = """\
apiVersion: mamori.io/v1alpha1
kind: ClusterSecurityPolicy
metadata:
  name: production
spec:
  enforcement: {enforcement}
  podSecurity: restricted
  trustedRegistries: [registry.k8s.io, ghcr.io/acme]
  exemptNamespaces: [kube-system]
  namespaceSelector:
    matchLabels: {{environment: production}}
  networkPolicy:
    defaultDeny: [Ingress, Egress]
    allowDNS: true
    blockInstanceMetadata: true
  imageScan:
    providers: [imagescan]
    severityThreshold: HIGH
"""
SCANNED_DIGEST = "sha256:" + "5ca1ab1e" * 8
SCANNED_IMAGE = f"ghcr.io/acme/api@{SCANNED_DIGEST}"
IMAGE_SCAN = f"""\
apiVersion: mamori.io/v1alpha1
kind: ImageScan
metadata:
  name: {SCANNED_DIGEST.replace(":", "-")}
spec:
  digest: "{SCANNED_DIGEST}"
  repository: ghcr.io/acme/api
  scanner: trivy-0.58 (written by CI)
  scannedAt: "2026-11-28T09:00:00Z"
  summary: {{critical: 1, high: 2, medium: 4}}
  findings:
    - {{id: CVE-2026-0001, severity: CRITICAL, package: openssl, installedVersion: 3.0.1,
       fixedVersion: 3.0.16}}
"""
API_POD = f"""\
apiVersion: v1
kind: Pod
metadata: {{name: api, namespace: shop}}
spec:
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    seccompProfile: {{type: RuntimeDefault}}
  containers:
    - name: api
      image: {SCANNED_IMAGE}
      securityContext:
        allowPrivilegeEscalation: false
        capabilities: {{drop: [ALL]}}
"""


def story(cluster: Cluster, terminal: Terminal) -> None:
    """The walk-through itself; every step checks its outcome, so the demo cannot lie."""
    terminal.heading("1. Offline, in CI: mamori check examples/")
    done = subprocess.run(
        [*mamori_command(), "check", str(EXAMPLES / "good"), str(EXAMPLES / "bad")],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    terminal.command(["mamori", "check", "examples/good", "examples/bad"], done.stdout)
    terminal.say(f"exit status {done.returncode} (1: something is denied)")
    if done.returncode != 1:
        raise DemoError(f"mamori check should exit 1 here:\n{done.stdout}{done.stderr}")

    terminal.heading("2. A policy in the cluster; a namespace it selects")
    cluster.kubectl("apply", "-f", "-", stdin=DEMO_POLICY.format(enforcement="Enforce"))
    cluster.kubectl("create", "namespace", "shop")
    cluster.kubectl("label", "namespace", "shop", "environment=production")
    cluster.kubectl("create", "namespace", "monitoring")
    cluster.kubectl("label", "namespace", "monitoring", "environment=production")

    terminal.heading("3. kubectl apply of unsafe workloads is refused, with the fix")
    for manifest in ("root-pod.yaml", "privileged-daemonset.yaml", "untrusted-cronjob.yaml"):
        cluster.kubectl("apply", "-f", str(EXAMPLES / "bad" / manifest), expect_ok=False)

    terminal.heading("4. Warn mode: the same root pod is admitted, kubectl prints warnings")
    cluster.kubectl("apply", "-f", "-", stdin=DEMO_POLICY.format(enforcement="Warn"))
    wait_for(
        lambda: "Warning:" in cluster.kubectl(
            "apply", "--dry-run=server", "-f", str(EXAMPLES / "bad" / "root-pod.yaml"),
            show=False, expect_ok=None,
        ).stderr,
        timeout=15,
        what="the webhook to see the policy change",
    )  # fmt: skip
    cluster.kubectl("apply", "-f", str(EXAMPLES / "bad" / "root-pod.yaml"))
    cluster.kubectl("delete", "pod", "root-shell", "-n", "shop", "--wait=false")
    cluster.kubectl("apply", "-f", "-", stdin=DEMO_POLICY.format(enforcement="Enforce"))

    terminal.heading("5. A compliant Deployment is created")
    cluster.kubectl("apply", "-f", str(EXAMPLES / "good" / "web-deployment.yaml"))

    terminal.heading("6. The operator: NetworkPolicies in every selected namespace")
    wait_for(
        lambda: cluster.get_json("networkpolicies", "-n", "shop")["items"],
        timeout=30,
        what="the operator to create NetworkPolicies in namespace shop",
    )
    cluster.kubectl("get", "networkpolicies", "-A", "-l", "app.kubernetes.io/managed-by=mamori")

    terminal.heading("7. Image-scan status on pods (here from an ImageScan written by CI)")
    cluster.kubectl("apply", "-f", "-", stdin=IMAGE_SCAN)
    cluster.kubectl("create", "-f", "-", stdin=API_POD)
    terminal.say(
        "(the image is pinned by digest, so the operator knows what to look up before any "
        "node runs it; on a node, the digest the kubelet reports is used)"
    )
    wait_for(
        lambda: (
            cluster.get_json("pod", "api", "-n", "shop")["metadata"]
            .get("annotations", {})
            .get("mamori.io/scan-status")
        ),
        timeout=30,
        what="the operator to annotate pod shop/api",
    )
    columns = [
        "POD:.metadata.name",
        r"SCAN-STATUS:.metadata.annotations.mamori\.io/scan-status",
        r"SUMMARY:.metadata.annotations.mamori\.io/scan-summary",
        r"SCANNED-AT:.metadata.annotations.mamori\.io/scanned-at",
    ]
    cluster.kubectl("get", "pod", "api", "-n", "shop", "-o", "custom-columns=" + ",".join(columns))

    terminal.heading("8. Everything readable from the policy: kubectl get csp")
    wait_for(
        lambda: cluster.get_json("csp", "production").get("status", {}).get("conditions"),
        timeout=30,
        what="the operator to write the policy status",
    )
    cluster.kubectl("get", "csp")
    cluster.kubectl("get", "imagescans")


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mamori_dev.demo", description=__doc__)
    parser.add_argument(
        "--wait",
        action=argparse.BooleanOptionalAction,
        default=sys.stdin.isatty(),
        help="keep everything running for you to explore until Ctrl-C (default: on a terminal)",
    )
    args = parser.parse_args(argv)
    terminal = Terminal(color=sys.stdout.isatty())
    try:
        with tempfile.TemporaryDirectory(prefix="mamori-demo-") as scratch:
            return _run(Path(scratch), terminal=terminal, wait=args.wait)
    except KeyboardInterrupt:
        terminal.say("\nstopped.")
        return 130
    except (DemoError, ControlPlaneError) as error:
        print(f"mamori demo: error: {error}", file=sys.stderr)
        return 1


def _run(scratch: Path, *, terminal: Terminal, wait: bool) -> int:
    terminal.heading("0. Local control plane: etcd + kube-apiserver v1.36 (built from Go modules)")
    with LocalControlPlane() as control_plane:
        kubeconfig = scratch / "kubeconfig"
        control_plane.write_kubeconfig(kubeconfig)
        cluster = Cluster(kubectl=control_plane.kubectl, kubeconfig=kubeconfig, terminal=terminal)
        cluster.kubectl("version")
        cluster.kubectl("apply", "--server-side", "-f", str(CRDS))
        cluster.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        cluster.kubectl("create", "namespace", "mamori-system")

        ca = LocalCA("mamori-demo-webhook-ca")
        ca.issue_server("mamori-webhook", hosts=("127.0.0.1",)).write(
            certificate=scratch / "tls.crt", key=scratch / "tls.key"
        )
        port = free_port()
        env = {**os.environ, "KUBECONFIG": str(kubeconfig), "MAMORI_LOG_FORMAT": "text"}
        webhook = [
            *mamori_command(), "webhook", "--listen", f"127.0.0.1:{port}",
            "--tls-cert", str(scratch / "tls.crt"), "--tls-key", str(scratch / "tls.key"),
            # The operator runs with the admin kubeconfig here; in a cluster, its ServiceAccount.
            "--trusted-annotation-writers", "mamori-admin",
        ]  # fmt: skip
        operator = [*mamori_command(), "operator", "--kubeconfig", str(kubeconfig)]
        with (
            background(webhook, env=env, log=scratch / "webhook.log"),
            background(operator, env=env, log=scratch / "operator.log"),
        ):
            wait_for(
                lambda: _ready(port, ca.certificate_pem, scratch),
                timeout=30,
                what=f"the webhook on 127.0.0.1:{port} (log: {scratch / 'webhook.log'})",
            )
            terminal.say(f"webhook: https://127.0.0.1:{port}/validate (TLS), operator running")
            cluster.kubectl(
                "apply", "-f", "-",
                stdin=json.dumps(
                    webhook_configuration(
                        url=f"https://127.0.0.1:{port}/validate", ca_pem=ca.certificate_pem
                    )
                ),
            )  # fmt: skip
            story(cluster, terminal)
            terminal.heading("Done")
            if wait:
                terminal.say(
                    f"Everything is still running. In another terminal:\n"
                    f"  export KUBECONFIG={kubeconfig}\n"
                    f"  {control_plane.kubectl} get csp\n"
                    f"Logs: {scratch}/webhook.log, {scratch}/operator.log. Ctrl-C stops it all."
                )
                control_plane.wait_while_running()
    return 0


def _ready(port: int, ca_pem: bytes, scratch: Path) -> bool:
    import ssl
    import urllib.request

    bundle = scratch / "webhook-ca.crt"
    bundle.write_bytes(ca_pem)
    context = ssl.create_default_context(cafile=str(bundle))
    try:
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}/readyz", context=context, timeout=2
        ) as response:
            return bool(response.status == 200)
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(run())
