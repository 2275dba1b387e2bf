"""``mamori operator`` configuration: flags and MAMORI_* variables, and clear errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from mamori.operator import command
from mamori.operator.config import OperatorConfig
from mamori.settings import load_settings


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(argv)


def test_flags_beat_environment_and_defaults(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("{}")
    config = load_settings(
        OperatorConfig,
        parse("--kubeconfig", str(kubeconfig), "--no-leader-election", "--workers", "3"),
        {
            "MAMORI_WORKERS": "9",
            "MAMORI_ECR_ENDPOINT_URL": "http://127.0.0.1:1",
            "MAMORI_NAMESPACE": "ops",
        },
    )
    assert config.kubeconfig == kubeconfig
    assert config.leader_election is False
    assert config.workers == 3
    assert config.ecr_endpoint_url == "http://127.0.0.1:1"
    assert config.namespace == "ops"
    assert config.log_format == "json"
    assert config.replica_identity()  # hostname-pid when not given


@pytest.mark.parametrize(
    ("argv", "environ", "fragment"),
    [
        (("--log-format", "xml"), {}, "--log-format"),
        (("--workers", "many"), {}, "--workers='many': expected an integer"),
        ((), {"MAMORI_STATUS_INTERVAL": "-1"}, "MAMORI_STATUS_INTERVAL"),
        (("--kubeconfig", "/nonexistent/kubeconfig"), {}, "no such file"),
        (("--lease-seconds", "0"), {}, "--lease-seconds must be greater than 0"),
    ],
)
def test_bad_settings_exit_2_with_the_reason(
    argv: tuple[str, ...],
    environ: dict[str, str],
    fragment: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    assert command.run(parse(*argv)) == 2
    error = capsys.readouterr().err
    assert error.startswith("mamori operator: error:")
    assert fragment in error
