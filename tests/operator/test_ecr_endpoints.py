"""Which ECR API endpoint each registry host leads to (commercial, China, FIPS, dual-stack).

Creating a boto3 client resolves the endpoint without sending anything, so this needs no network.
"""

from __future__ import annotations

import boto3
import pytest

from mamori.images import parse_ecr_host
from mamori_operator.scanning.providers.ecr import EcrProvider


@pytest.mark.parametrize(
    ("host", "endpoint"),
    [
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com", "https://api.ecr.eu-west-1.amazonaws.com"),
        (
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
            "https://api.ecr.cn-north-1.amazonaws.com.cn",
        ),
        (
            "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com",
            "https://ecr-fips.us-east-1.amazonaws.com",
        ),
        ("123456789012.dkr-ecr.us-west-2.on.aws", "https://ecr.us-west-2.api.aws"),
    ],
)
def test_endpoint_follows_the_image_host(host: str, endpoint: str) -> None:
    parsed = parse_ecr_host(host)
    assert parsed is not None
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="y")
    client = EcrProvider(session=session)._client(parsed)
    assert client.meta.endpoint_url == endpoint
    assert client.meta.region_name == parsed.region


def test_an_endpoint_override_wins_and_clients_are_reused() -> None:
    parsed = parse_ecr_host("123456789012.dkr.ecr-fips.us-east-1.amazonaws.com")
    assert parsed is not None
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="y")
    provider = EcrProvider(session=session, endpoint_url="http://127.0.0.1:5000")
    client = provider._client(parsed)
    assert client.meta.endpoint_url == "http://127.0.0.1:5000"
    assert provider._client(parsed) is client
