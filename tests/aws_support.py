"""moto in server mode on loopback, with IAM deciding: real signed requests, real AccessDenied.

moto runs as its own process (``python -m moto.server``). Users are made while moto still
accepts anything; ``enforce_iam`` then switches authentication on, so from there every call is
checked against the users' IAM policies. No network beyond 127.0.0.1, no cluster.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from tests.helpers import wait_for

LOOPBACK = "127.0.0.1,localhost"
AWS_VARIABLES_TO_CLEAR = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_ECR",
)


@dataclass(frozen=True)
class AccessKey:
    id: str
    secret: str


@dataclass(frozen=True)
class MotoServer:
    url: str
    region: str

    def session(self, key: AccessKey) -> boto3.session.Session:
        return boto3.session.Session(
            aws_access_key_id=key.id, aws_secret_access_key=key.secret, region_name=self.region
        )

    def create_user(
        self, name: str, allow: Sequence[str] = (), deny: Sequence[str] = ()
    ) -> AccessKey:
        """An IAM user with inline Allow and Deny policies; call before :meth:`enforce_iam`."""
        bootstrap = boto3.session.Session(aws_access_key_id="boot", aws_secret_access_key="boot")
        iam = bootstrap.client("iam", endpoint_url=self.url, region_name=self.region)
        iam.create_user(UserName=name)
        for effect, actions in (("Allow", allow), ("Deny", deny)):
            if actions:
                iam.put_user_policy(
                    UserName=name,
                    PolicyName=effect.lower(),
                    PolicyDocument=policy_document(effect, actions),
                )
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return AccessKey(str(key["AccessKeyId"]), str(key["SecretAccessKey"]))

    def enforce_iam(self) -> None:
        """From here on, IAM decides every request (moto counts requests before it enforces)."""
        self.post("/moto-api/reset-auth", b"0")

    def post(self, path: str, payload: object) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status in (200, 201)


def policy_document(effect: str, actions: Sequence[str]) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": effect, "Action": list(actions), "Resource": "*"}],
        }
    )


@contextmanager
def moto_server(log_path: Path, *, region: str = "us-east-1") -> Iterator[MotoServer]:
    """A moto server on a free loopback port for the duration of the block."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "NO_PROXY": LOOPBACK, "no_proxy": LOOPBACK}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        wait_for(
            lambda: _answers(url) or process.poll() is not None,
            timeout=30,
            message="moto server answering",
        )
        assert process.poll() is None, log_path.read_text()
        yield MotoServer(url=url, region=region)
    finally:
        process.terminate()
        process.wait(10)


def use_credentials(patch: pytest.MonkeyPatch, key: AccessKey | None) -> None:
    """boto3's default chain finds ``key`` (or no credentials at all), and nothing else."""
    if key is None:
        patch.delenv("AWS_ACCESS_KEY_ID", raising=False)
        patch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    else:
        patch.setenv("AWS_ACCESS_KEY_ID", key.id)
        patch.setenv("AWS_SECRET_ACCESS_KEY", key.secret)
    patch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    patch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    patch.setenv("NO_PROXY", LOOPBACK)
    for name in AWS_VARIABLES_TO_CLEAR:
        patch.delenv(name, raising=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/moto-api/data.json", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False
