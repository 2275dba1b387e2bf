"""``mamori operator`` configuration: flags and MAMORI_* variables, and clear errors."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mamori.settings import load_settings
from mamori_operator import command
from mamori_operator.config import OperatorConfig


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


# A mamori line about a policy and a NetworkPolicy, and one of kopf's per-object lines.
LOGGING_SCRIPT = textwrap.dedent(
    """
    import logging
    import kopf
    from mamori.logs import log_context
    from mamori_operator.command import configure_logging
    from mamori_operator.config import OperatorConfig

    configure_logging(OperatorConfig(log_format="json"))
    logging.getLogger("mamori_operator.network.reconciler").info(
        "applied NetworkPolicy shop/mamori-prod",
        extra=log_context(policy="prod", namespace="shop", name="mamori-prod", rule="network"),
    )
    settings = kopf.OperatorSettings()
    settings.posting.enabled = False  # no event queue outside a running operator
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": "shop", "name": "web-0"}}
    kopf_logger = kopf.ObjectLogger(body=kopf.Body(body), settings=settings)
    kopf_logger.warning("handler failed")
    kopf_logger.info("handled")  # kopf.objects below WARNING is quiet without --verbose
    """
)


def test_configured_logging_writes_mamori_json_once_per_line() -> None:
    done = subprocess.run(
        [sys.executable, "-c", LOGGING_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    entries = [json.loads(line) for line in done.stderr.splitlines()]
    assert [entry["message"] for entry in entries] == [
        "applied NetworkPolicy shop/mamori-prod",
        "handler failed",
    ], done.stderr
    mamori, kopf_line = entries
    keys = ["time", "level", "logger", "message", "policy", "namespace", "name", "rule", "pid"]
    assert list(mamori) == keys  # the webhook's fields, in the webhook's order
    assert [mamori[key] for key in keys[4:8]] == ["prod", "shop", "mamori-prod", "network"]
    assert list(kopf_line) == ["time", "level", "logger", "message", "namespace", "name", "pid"]
    assert (kopf_line["logger"], kopf_line["level"]) == ("kopf.objects", "warning")
    assert (kopf_line["namespace"], kopf_line["name"]) == ("shop", "web-0")
