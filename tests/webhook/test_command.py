"""``mamori webhook`` refuses to start on a bad configuration, saying what to set (exit 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mamori_dev.localca import LocalCA
from tests.webhook.reviews import policy_document
from tests.webhook.served import ROOT, write_policy


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("command")
    ca = LocalCA()
    pair, other = ca.issue_server("a"), ca.issue_server("b")
    pair.write(certificate=directory / "tls.crt", key=directory / "tls.key")
    (directory / "other.key").write_bytes(other.key_pem)
    (directory / "garbage.crt").write_text("not a certificate\n")
    write_policy(directory / "good.yaml", policy_document("p"))
    write_policy(directory / "bad.yaml", policy_document("p", enforcement="Sometimes"))
    return {path.name: path for path in directory.iterdir()}


def webhook(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAMORI_")}
    return subprocess.run(
        [sys.executable, "-m", "mamori.cli", "webhook", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
        env={**clean, **(env or {})},
    )


def tls(files: dict[str, Path], key: str = "tls.key", cert: str = "tls.crt") -> list[str]:
    return ["--tls-cert", str(files[cert]), "--tls-key", str(files[key])]


def refused(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, done.stderr
    errors = [
        line for line in done.stderr.splitlines() if line.startswith("mamori webhook: error: ")
    ]
    assert len(errors) == 1, done.stderr
    return errors[0]


def test_certificate_flags_are_required() -> None:
    assert "--tls-cert (or MAMORI_TLS_CERT) must be set" in refused(webhook())


def test_missing_certificate_file(files: dict[str, Path]) -> None:
    args = ["--tls-cert", "/nonexistent/tls.crt", "--tls-key", str(files["tls.key"])]
    assert "--tls-cert (MAMORI_TLS_CERT)=/nonexistent/tls.crt: no such file" in refused(
        webhook(*args)
    )


def test_unreadable_certificate(files: dict[str, Path]) -> None:
    stderr = refused(webhook(*tls(files, cert="garbage.crt"), "--policy", str(files["good.yaml"])))
    assert "garbage.crt: not a PEM certificate" in stderr


def test_key_of_another_certificate(files: dict[str, Path]) -> None:
    stderr = refused(webhook(*tls(files, key="other.key"), "--policy", str(files["good.yaml"])))
    assert "cannot be served" in stderr
    assert "PRIVATE KEY" not in stderr


def test_invalid_policy_file_names_the_field(files: dict[str, Path]) -> None:
    stderr = refused(webhook(*tls(files), "--policy", str(files["bad.yaml"])))
    assert 'policy "p": spec.enforcement: must be one of Enforce, Warn, Audit' in stderr


def test_bad_listen_address(files: dict[str, Path]) -> None:
    stderr = refused(webhook(*tls(files), "--listen", "8443"))
    assert "--listen (MAMORI_LISTEN)='8443': expected HOST:PORT" in stderr


def test_settings_from_environment_are_validated(files: dict[str, Path]) -> None:
    stderr = refused(webhook(*tls(files), env={"MAMORI_WORKERS": "0"}))
    assert "--workers (MAMORI_WORKERS) must be at least 1" in stderr
    stderr = refused(webhook(*tls(files), env={"MAMORI_THREADS": "many"}))
    assert "MAMORI_THREADS='many': expected an integer" in stderr


def test_without_policy_file_a_cluster_must_be_reachable(files: dict[str, Path]) -> None:
    stderr = refused(webhook(*tls(files), env={"KUBECONFIG": "/nonexistent/kubeconfig"}))
    assert "no policy source: pass --policy FILE" in stderr


REGISTRY_REFUSALS = [
    # (what, extra args, files to write: name → text, what stderr says)
    ("budget of zero", ["--registry-budget", "0"], {},
     "--registry-budget (MAMORI_REGISTRY_BUDGET) must be greater than 0"),
    ("negative timeout", ["--registry-timeout", "-1"], {},
     "--registry-timeout='-1': expected a non-negative number"),
    ("no such CA file", ["--registry-ca-file", "/nonexistent/ca.pem"], {},
     "--registry-ca-file (MAMORI_REGISTRY_CA_FILE)=/nonexistent/ca.pem: no such file"),
    ("CA file that is no certificate", ["--registry-ca-file", "{dir}/ca.pem"],
     {"ca.pem": "not a certificate\n"}, "registry access cannot be set up: SSLError"),
    ("credentials that are not JSON", ["--registry-credentials", "{dir}/config.json"],
     {"config.json": '{"auths": {"registry.example": {"auth": "c2VjcmV0'},
     "registry credentials file"),
    ("credentials with a bad auth", ["--registry-credentials", "{dir}/config.json"],
     {"config.json": '{"auths": {"registry.example": {"auth": "bm90LWEtcGFpcg=="}}}'},
     "registry.example"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("what", "extra", "written", "says"),
    REGISTRY_REFUSALS,
    ids=[case[0] for case in REGISTRY_REFUSALS],
)
def test_registry_settings_that_cannot_work_stop_the_start(
    files: dict[str, Path],
    tmp_path: Path,
    what: str,
    extra: list[str],
    written: dict[str, str],
    says: str,
) -> None:
    for name, text in written.items():
        (tmp_path / name).write_text(text)
    args = [arg.replace("{dir}", str(tmp_path)) for arg in extra]
    stderr = refused(webhook(*tls(files), "--policy", str(files["good.yaml"]), *args))
    assert says in stderr
    assert "c2VjcmV0" not in stderr and "not-a-pair" not in stderr  # never the secret
