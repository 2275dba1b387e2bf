"""The image run for real, with runc, under the chart's securityContext (see runc.py): the CLI's
exit codes over a mounted manifest, the webhook over TLS from the host, the operator's entry
point. The root filesystem is read-only, so any write outside /tmp fails the test that caused it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
import yaml

from tests.helpers import wait_for
from tests.image.runc import Bind, Container, readable_by_the_container
from tests.image.seccomp import EPERM
from tests.webhook.reviews import UNTRUSTED_IMAGE, pod_spec, policy_document, review, workload
from tests.webhook.served import Pki, write_policy

pytestmark = pytest.mark.image

Containers = Callable[..., Container]
WRITE_FAILURES = re.compile(r"Read-only file system|Permission denied|Errno 30|Errno 13")
LISTENING = re.compile(r"serving on https://127\.0\.0\.1:(\d+)")

PROBE = """
import ctypes, json, os, sys
status = dict(line.split(":\\t", 1) for line in open("/proc/self/status").read().splitlines())
def write(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        return "ok"
    except OSError as error:
        return error.strerror
libc = ctypes.CDLL(None, use_errno=True)
keyctl = libc.syscall(250 if os.uname().machine == "x86_64" else 219, 0, -3, 0)
print(json.dumps({
    "uid": os.getuid(), "gid": os.getgid(), "groups": os.getgroups(),
    "CapEff": status["CapEff"].strip(), "CapBnd": status["CapBnd"].strip(),
    "NoNewPrivs": status["NoNewPrivs"].strip(), "Seccomp": status["Seccomp"].strip(),
    "keyctl_errno": ctypes.get_errno() if keyctl == -1 else 0,
    "write_tmp": write("/tmp/probe"), "write_root": write("/probe"),
    "write_venv": write(sys.prefix + "/probe"), "write_etc": write("/etc/probe"),
}))
"""


def assert_wrote_nothing_outside_tmp(output: str) -> None:
    found = WRITE_FAILURES.search(output)
    assert found is None, f"the image tried to write where it may not:\n{output}"


def probe(containers: Containers, *, seccomp: bool = True) -> dict[str, object]:
    done = containers(entrypoint=["python", "-c", PROBE], seccomp=seccomp).run()
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_the_container_runs_as_the_chart_runs_it(containers: Containers) -> None:
    seen = probe(containers)
    assert (seen["uid"], seen["gid"], seen["groups"]) == (65532, 65532, [])
    assert seen["CapEff"] == seen["CapBnd"] == "0000000000000000"
    assert seen["NoNewPrivs"] == "1" and seen["Seccomp"] == "2"
    assert seen["write_tmp"] == "ok"
    assert seen["write_root"] == seen["write_venv"] == seen["write_etc"] == "Read-only file system"


def test_the_seccomp_profile_refuses_what_runtime_default_refuses(containers: Containers) -> None:
    """keyctl is allowed to any process but refused by the profile: the filter is really on."""
    assert probe(containers)["keyctl_errno"] == EPERM
    assert probe(containers, seccomp=False)["keyctl_errno"] != EPERM


def test_no_installer_runs_in_the_container(containers: Containers) -> None:
    for python in ("python", "/opt/mamori/bin/python"):
        done = containers(entrypoint=[python, "-m", "pip", "--version"]).run()
        assert done.returncode == 1 and "No module named pip" in done.stderr, done


def test_everything_mamori_imports_loads_from_the_slimmed_virtualenv(
    containers: Containers,
) -> None:
    """Every module of the three packages imports, the development one is absent, and the AWS
    clients the operator builds can be made."""
    script = (
        "import importlib, importlib.util, pkgutil, boto3\n"
        "names = []\n"
        "for top in ('mamori', 'mamori_webhook', 'mamori_operator'):\n"
        "    package = importlib.import_module(top)\n"
        "    found = pkgutil.walk_packages(package.__path__, top + '.')\n"
        "    names += [m.name for m in found if not m.name.endswith('.__main__')]\n"
        "[importlib.import_module(name) for name in names]\n"
        "assert importlib.util.find_spec('mamori_dev') is None\n"
        "session = boto3.session.Session()\n"
        "for service in ('ecr', 'sts'): session.client(service, region_name='ap-northeast-1')\n"
        "print(len(names))\n"
    )
    done = containers(entrypoint=["python", "-c", script]).run()
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 90
    assert_wrote_nothing_outside_tmp(done.stdout + done.stderr)


def test_no_argument_prints_the_help(containers: Containers) -> None:
    done = containers().run()
    assert done.returncode == 0, done.stderr
    assert "check" in done.stdout and "webhook" in done.stdout and "operator" in done.stdout


def test_the_operator_entry_point_starts(containers: Containers) -> None:
    done = containers(args=["operator", "--help"]).run()
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: mamori operator")
    assert_wrote_nothing_outside_tmp(done.stdout + done.stderr)


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    directory = tmp_path / "manifests"
    directory.mkdir()
    compliant = workload("Deployment", name="web")
    privileged = workload("Deployment", name="root")
    privileged["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"] = True
    (directory / "web.yaml").write_text(yaml.safe_dump(compliant))
    (directory / "root.yaml").write_text(yaml.safe_dump(privileged))
    (directory / "broken.yml").write_text("kind: Deployment\nspec: [unclosed\n")
    readable_by_the_container(directory)
    return directory


@pytest.mark.parametrize(
    ("paths", "status", "expected"),
    [
        pytest.param(["web.yaml"], 0, "allowed", id="compliant-0"),
        pytest.param(["web.yaml", "root.yaml"], 1, "privileged", id="privileged-1"),
        pytest.param(["broken.yml"], 2, "broken.yml", id="unreadable-2"),
        pytest.param(["missing.yaml"], 2, "missing.yaml", id="missing-2"),
    ],
)
def test_check_over_a_mounted_manifest_exits_as_documented(
    containers: Containers, manifests: Path, paths: list[str], status: int, expected: str
) -> None:
    args = ["check", *(f"/manifests/{path}" for path in paths)]
    done = containers(args=args, binds=[Bind(manifests, "/manifests")]).run()
    assert done.returncode == status, done.stdout + done.stderr
    assert expected in done.stdout + done.stderr
    assert_wrote_nothing_outside_tmp(done.stdout + done.stderr)


@pytest.fixture
def served_webhook(containers: Containers, tmp_path: Path) -> Iterator[tuple[str, Pki]]:
    """`mamori webhook` in the container, configured as the chart does (MAMORI_* variables, the
    certificate from a Secret-like volume), on a policy file instead of the cluster's."""
    pki = Pki(tmp_path / "tls")
    pki.directory.mkdir()
    pki.write_initial()
    policy = tmp_path / "policy"
    policy.mkdir()
    trusting_acme = policy_document("image", trustedRegistries=["ghcr.io/acme"])
    write_policy(policy / "policy.yaml", trusting_acme)
    readable_by_the_container(pki.directory, policy)
    container = containers(
        args=["webhook", "--policy", "/etc/mamori/policy/policy.yaml"],
        env={
            "MAMORI_LISTEN": "127.0.0.1:0",
            "MAMORI_TLS_CERT": "/etc/mamori/tls/tls.crt",
            "MAMORI_TLS_KEY": "/etc/mamori/tls/tls.key",
            "MAMORI_WORKERS": "2",
            "MAMORI_THREADS": "2",
        },
        binds=[Bind(pki.directory, "/etc/mamori/tls"), Bind(policy, "/etc/mamori/policy")],
    )
    log_file = tmp_path / "webhook.log"
    process = container.start(log_file)
    status: int | None = None
    try:

        def port() -> int | None:
            output = log_file.read_text(errors="replace")
            assert process.poll() is None, f"the webhook exited:\n{output}"
            found = LISTENING.search(output)
            return int(found.group(1)) if found else None

        url = f"https://127.0.0.1:{wait_for(port, timeout=60, message='webhook listening')}"
        yield url, pki
    finally:
        status = container.stop(process)
        output = log_file.read_text(errors="replace")
        assert_wrote_nothing_outside_tmp(output)
    assert status == 0, f"the webhook did not stop cleanly on SIGTERM:\n{output}"


def test_the_webhook_serves_readyz_and_judges_reviews_over_tls(
    served_webhook: tuple[str, Pki],
) -> None:
    url, pki = served_webhook
    session = requests.Session()
    session.trust_env = False
    session.verify = str(pki.ca_file)

    def ready() -> bool:
        try:
            return session.get(f"{url}/readyz", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    wait_for(ready, timeout=60, message="webhook /readyz")
    allowed = session.post(f"{url}/validate", json=review(workload("Pod")), timeout=10).json()
    assert allowed["response"]["allowed"] is True
    bad = review(workload("Pod", spec=pod_spec(UNTRUSTED_IMAGE)))
    denied = session.post(f"{url}/validate", json=bad, timeout=10).json()["response"]
    assert denied["allowed"] is False
    assert denied["uid"] == bad["request"]["uid"]
    assert "trusted-registry" in denied["status"]["message"]
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{url}/readyz", timeout=5, verify=True)  # a real TLS server, not plain HTTP


def test_a_write_outside_tmp_fails_the_check(containers: Containers) -> None:
    """The read-only check has teeth: a command that writes to the root filesystem fails it."""
    done = containers(entrypoint=["python", "-c", "open('/opt/mamori/x', 'w')"]).run()
    assert done.returncode != 0
    with pytest.raises(AssertionError, match="may not"):
        assert_wrote_nothing_outside_tmp(done.stderr)
