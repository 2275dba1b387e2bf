"""The operator's audit gets Amazon ECR tokens the webhook's way: the same core provider, from
its own settings (``registry_ecr_credentials``, ``registry_ecr_endpoint``), as its own AWS
identity (boto3's chain; here the environment's keys). Against moto in server mode on loopback
with IAM deciding, as tests/unit/test_ecr_credentials.py proves the webhook's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mamori.images import parse_reference
from mamori.supplychain.ecr_tokens import EcrTokenError
from mamori.supplychain.registry import Credentials
from mamori_operator.config import OperatorConfig
from mamori_operator.status.registry_access import audit_token_provider
from mamori_webhook.ecr_credentials import ecr_token_provider
from tests.aws_support import AccessKey
from tests.unit.test_ecr_credentials import ACCOUNT, REGION, Moto, ecr_image, moto

__all__ = ["moto"]  # the module-scoped moto server fixture, started anew for this module
REPOSITORY = Path(__file__).resolve().parents[2]


def as_identity(monkeypatch: pytest.MonkeyPatch, key: AccessKey) -> None:
    """boto3's default chain finds ``key`` in the environment, and nothing else."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key.id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key.secret)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def audit_config(moto: Moto, *, enabled: bool = True) -> OperatorConfig:
    return OperatorConfig(registry_ecr_credentials=enabled, registry_ecr_endpoint=moto.server.url)


def test_the_audit_gets_the_token_moto_issues_for_the_images_account(
    moto: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_identity(monkeypatch, moto.puller)
    provider = audit_token_provider(audit_config(moto))
    assert provider is not None
    assert provider(parse_reference(ecr_image())) == Credentials("AWS", f"{ACCOUNT}-auth-token")
    assert provider(parse_reference("registry.example/team/app:1.0")) is None


def test_a_refusal_names_the_operators_identity_not_the_webhooks(
    moto: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_identity(monkeypatch, moto.stranger)
    provider = audit_token_provider(audit_config(moto))
    assert provider is not None
    with pytest.raises(EcrTokenError) as refused:
        provider(parse_reference(ecr_image()))
    message = str(refused.value)
    assert f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com" in message
    assert "the operator's AWS identity needs ecr:GetAuthorizationToken" in message
    assert moto.stranger.secret not in message


def test_the_webhooks_refusal_names_the_webhook(
    moto: Moto, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_identity(monkeypatch, moto.stranger)
    provider = ecr_token_provider(endpoint_url=moto.server.url)
    with pytest.raises(EcrTokenError, match="the webhook's AWS identity needs"):
        provider(parse_reference(ecr_image()))


def test_without_the_setting_the_audit_asks_no_ecr(moto: Moto) -> None:
    assert audit_token_provider(audit_config(moto, enabled=False)) is None


def test_the_core_loads_no_aws_sdk_until_ecr_is_asked() -> None:
    """The shared token logic lives in the core; boto3 is imported on the first client."""
    probe = (
        "import json, sys\n"
        "import mamori.supplychain.ecr_tokens as t\n"
        "t.EcrTokenProvider(t.EcrCredentialsConfig())\n"
        "print(json.dumps(sorted(m for m in ('boto3', 'botocore') if m in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
