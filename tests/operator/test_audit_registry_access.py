"""The audit's registry flags: a CA or credentials file that cannot be used stops the start with
the reason, and a rotated credentials file is picked up without a restart."""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path

import pytest

from mamori.settings import load_settings
from mamori.supplychain.configured import ConfiguredCredentials, CredentialsFile
from mamori_operator import command
from mamori_operator.config import OperatorConfig


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(argv)


def docker_config(host: str, user: str, password: str) -> str:
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    return json.dumps({"auths": {host: {"auth": auth}}})


def test_the_registry_flags_reach_the_config(tmp_path: Path) -> None:
    ca, credentials = tmp_path / "ca.pem", tmp_path / "config.json"
    ca.write_text("unused here")
    credentials.write_text(docker_config("registry.example", "u", "p"))
    config = load_settings(
        OperatorConfig,
        parse("--registry-ca-file", str(ca), "--registry-timeout", "0.5"),
        {"MAMORI_REGISTRY_CREDENTIALS": str(credentials), "MAMORI_REGISTRY_BUDGET": "3"},
    )
    assert (config.registry_ca_file, config.registry_credentials) == (ca, credentials)
    assert (config.registry_timeout, config.registry_budget) == (0.5, 3.0)


@pytest.mark.parametrize(
    ("files", "flags", "fragment"),
    [
        pytest.param({}, ("--registry-ca-file", "{dir}/absent.pem"), "no such file", id="no-ca"),
        pytest.param(
            {}, ("--registry-credentials", "{dir}/absent.json"), "no such file", id="no-creds"
        ),
        pytest.param(
            {},
            ("--registry-budget", "0"),
            "--registry-budget (MAMORI_REGISTRY_BUDGET) must be greater than 0",
            id="zero-budget",
        ),
        pytest.param(
            {"ca.pem": "not a certificate"},
            ("--registry-ca-file", "{dir}/ca.pem"),
            "--registry-ca-file/--registry-credentials cannot be used",
            id="ca-not-pem",
        ),
        pytest.param(
            {"config.json": "{not json"},
            ("--registry-credentials", "{dir}/config.json"),
            "--registry-ca-file/--registry-credentials cannot be used",
            id="credentials-not-json",
        ),
    ],
)
def test_unusable_registry_settings_stop_the_start_with_the_reason(
    files: dict[str, str],
    flags: tuple[str, ...],
    fragment: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name, content in files.items():
        (tmp_path / name).write_text(content)
    argv = [flag.format(dir=tmp_path) for flag in flags]
    assert command.run(parse(*argv)) == command.EXIT_USAGE
    error = capsys.readouterr().err
    assert error.startswith("mamori operator: error:")
    assert fragment in error


def test_a_rotated_credentials_file_is_read_again_and_a_broken_one_keeps_the_last(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.json"
    path.write_text(docker_config("registry.example", "first", "one"))
    file = CredentialsFile(path)
    file.load()
    path.write_text(docker_config("registry.example", "second", "two-longer"))
    found = file.current().for_image("registry.example/app:1")
    assert found is not None and found.username == "second"
    path.write_text("{broken")
    found = file.current().for_image("registry.example/app:1")
    assert found is not None and found.username == "second"


def test_one_credential_source_serves_until_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(docker_config("registry.example", "first", "one"))
    now = [0.0]
    file = CredentialsFile(path, clock=lambda: now[0])
    file.load()
    configured = ConfiguredCredentials(file)
    source = configured.current()
    assert configured.current() is source  # reused, not built per review or pod
    path.write_text(docker_config("registry.example", "second", "two-longer"))
    now[0] += 2  # past the file's look interval
    rotated = configured.current()
    assert rotated is not source
    found = rotated.credentials_for("registry.example/app:1")
    assert found is not None and found.username == "second"
    assert ConfiguredCredentials().current().credentials_for("registry.example/app:1") is None
