"""Read the ECR settings that posture judges: four read-only calls, errors said in words.

Credentials come from boto3's default chain (IRSA, EKS Pod Identity, profiles, variables);
``endpoint_url`` and ``max_attempts`` work as for the ECR scan provider, with botocore's
standard retries backing off on throttling. Every AWS failure becomes a :class:`FetchError`
whose message names what to do (the IAM action to grant, the repository that is missing) and
never repeats AWS's own text where that text could carry credentials.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from mamori_operator.registry.posture import RegistryScanning, Repository, ScanRule

T = TypeVar("T")
NAMES_PER_CALL = 100  # DescribeRepositories takes at most 100 names
PERMISSIONS_DOC = 'docs/install-eks.md, "ECR posture"'
ACCESS_ERRORS = frozenset({"AccessDeniedException", "AccessDenied"})
CREDENTIAL_ERRORS = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "ExpiredTokenException",
        "ExpiredToken",
        "IncompleteSignature",
        "MissingAuthenticationToken",
    }
)
THROTTLING_ERRORS = frozenset(
    {"ThrottlingException", "LimitExceededException", "TooManyRequestsException"}
)
NOT_FOUND = "RepositoryNotFoundException"
XML_CODE = re.compile(r"<Code>([^<]*)</Code>")
XML_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")
ACCESS_KEY = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA|AGPA|ANPA|ANVA|AIPA|ABIA|ACCA)[A-Z0-9]{12,}\b")


@dataclass(frozen=True, slots=True)
class AwsSettings:
    """Where and how persistently to ask ECR."""

    region: str | None = None
    endpoint_url: str | None = None
    max_attempts: int = 5


@dataclass(frozen=True, slots=True)
class RegistrySnapshot:
    """One region's registry as read: its scanning configuration and the repositories asked for."""

    region: str
    scanning: RegistryScanning
    repositories: tuple[Repository, ...]


class FetchError(Exception):
    """A read that failed, in words for the user: no traceback, no credentials."""


def ecr_client(settings: AwsSettings, session: boto3.session.Session | None = None) -> Any:
    """An ECR client for ``settings``; a missing region is a :class:`FetchError`."""
    config = Config(
        retries={"mode": "standard", "max_attempts": settings.max_attempts},
        connect_timeout=5,
        read_timeout=20,
    )
    try:
        return (session or boto3.session.Session()).client(
            "ecr",
            region_name=settings.region,
            endpoint_url=settings.endpoint_url,
            config=config,
        )
    except (BotoCoreError, ValueError) as error:
        raise _botocore_problem(error, "ecr:DescribeRepositories") from None


def read_registry(client: Any, names: Sequence[str] = ()) -> RegistrySnapshot:
    """The named repositories (none: every repository in the region) and the registry's scanning."""
    described = describe_repositories(client, names)
    scanning = read_scanning(client)
    region = str(client.meta.region_name)
    repositories = tuple(read_repository(client, item, region) for item in described)
    return RegistrySnapshot(region=region, scanning=scanning, repositories=repositories)


def describe_repositories(client: Any, names: Sequence[str] = ()) -> list[Mapping[str, Any]]:
    """DescribeRepositories, every page; a missing name is an error naming every missing one."""
    if not names:
        return _call(lambda: _pages(client, {}), "DescribeRepositories")
    found: list[Mapping[str, Any]] = []
    unique = list(dict.fromkeys(names))
    for start in range(0, len(unique), NAMES_PER_CALL):
        chunk = unique[start : start + NAMES_PER_CALL]
        try:
            found.extend(
                _call(partial(_pages, client, {"repositoryNames": chunk}), "DescribeRepositories")
            )
        except _NotFound:
            missing = [name for name in chunk if not _exists(client, name)]
            raise FetchError(_missing(missing, client)) from None
    return found


def read_scanning(client: Any) -> RegistryScanning:
    """GetRegistryScanningConfiguration: scan type and rules for the caller's registry."""
    response = _call(client.get_registry_scanning_configuration, "GetRegistryScanningConfiguration")
    configuration = response.get("scanningConfiguration") or {}
    rules = tuple(
        ScanRule(
            frequency=str(rule.get("scanFrequency", "")),
            filters=tuple(
                str(item.get("filter", "")) for item in rule.get("repositoryFilters") or []
            ),
        )
        for rule in configuration.get("rules") or []
    )
    return RegistryScanning(scan_type=str(configuration.get("scanType") or "BASIC"), rules=rules)


def read_repository(client: Any, item: Mapping[str, Any], region: str) -> Repository:
    """One DescribeRepositories entry, completed with its lifecycle and repository policies."""
    name = str(item["repositoryName"])
    registry_id = str(item.get("registryId", ""))
    scanning = item.get("imageScanningConfiguration") or {}
    encryption = item.get("encryptionConfiguration") or {}
    exclusions = item.get("imageTagMutabilityExclusionFilters") or []
    return Repository(
        name=name,
        arn=str(item.get("repositoryArn", "")),
        region=region,
        registry_id=registry_id,
        tag_mutability=str(item.get("imageTagMutability") or "MUTABLE"),
        mutability_exclusions=tuple(str(entry.get("filter", "")) for entry in exclusions),
        scan_on_push=bool(scanning.get("scanOnPush", False)),
        encryption_type=str(encryption.get("encryptionType") or "AES256"),
        kms_key=str(encryption.get("kmsKey") or ""),
        lifecycle_policy=_optional_text(
            client.get_lifecycle_policy,
            "GetLifecyclePolicy",
            "lifecyclePolicyText",
            "LifecyclePolicyNotFoundException",
            name=name,
            registry_id=registry_id,
        ),
        repository_policy=_optional_text(
            client.get_repository_policy,
            "GetRepositoryPolicy",
            "policyText",
            "RepositoryPolicyNotFoundException",
            name=name,
            registry_id=registry_id,
        ),
    )


class _NotFound(Exception):
    """DescribeRepositories said one of the names does not exist (which: asked one by one)."""


def _pages(client: Any, arguments: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    paginator = client.get_paginator("describe_repositories")
    return [item for page in paginator.paginate(**arguments) for item in page["repositories"]]


def _exists(client: Any, name: str) -> bool:
    try:
        _call(
            lambda: client.describe_repositories(repositoryNames=[name]),
            "DescribeRepositories",
            name,
        )
    except _NotFound:
        return False
    return True


def _missing(names: Sequence[str], client: Any) -> str:
    listed = ", ".join(repr(name) for name in names) or "one of the names given"
    plural = "repositories" if len(names) > 1 else "repository"
    return (
        f"{plural} {listed} not found in the registry of region {client.meta.region_name} "
        "(check the name and --region; names do not include the registry host)"
    )


def _optional_text(
    call: Callable[..., Mapping[str, Any]],
    operation: str,
    key: str,
    absent: str,
    *,
    name: str,
    registry_id: str,
) -> str | None:
    arguments = {"repositoryName": name, **({"registryId": registry_id} if registry_id else {})}
    try:
        response = _call(lambda: call(**arguments), operation, name, absent=absent)
    except _Absent:
        return None
    except _NotFound:
        raise FetchError(f"repository {name!r} disappeared while it was being read") from None
    return str(response.get(key) or "") or None


class _Absent(Exception):
    """The optional setting (a lifecycle or repository policy) is not set."""


def _call(
    call: Callable[[], T], operation: str, repository: str | None = None, *, absent: str = ""
) -> T:
    """Run one AWS call (every page of it) and turn its failures into words."""
    try:
        return call()
    except ClientError as error:
        code, _ = error_code(error)
        if absent and code == absent:
            raise _Absent() from None
        if code == NOT_FOUND:
            raise _NotFound() from None
        raise _client_problem(error, operation, repository) from None
    except (BotoCoreError, ValueError) as error:
        raise _botocore_problem(error, _action(operation)) from None


def _action(operation: str) -> str:
    return f"ecr:{operation}" if operation else "the ECR API"


def error_code(error: ClientError) -> tuple[str, str]:
    """The error's code and message, also when a JSON call got an XML error body.

    Some front doors (and moto) answer an authentication or authorization failure with an XML
    ``ErrorResponse`` whatever the protocol; botocore then reports the HTTP status as the code
    and the whole document as the message.
    """
    details = error.response.get("Error", {})
    code, message = str(details.get("Code", "")), str(details.get("Message", ""))
    if message.lstrip().startswith("<"):
        found_code = XML_CODE.search(message)
        found_message = XML_MESSAGE.search(message)
        code = found_code.group(1) if found_code else code
        message = found_message.group(1) if found_message else ""
    return code, message


def _client_problem(error: ClientError, operation: str, repository: str | None) -> FetchError:
    code, text = error_code(error)
    action = _action(error.operation_name or operation)
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    on = f" on repository {repository!r}" if repository else ""
    if code in CREDENTIAL_ERRORS:
        return FetchError(
            f"AWS rejected the credentials ({code}) when calling {action}: they are unknown, "
            "expired or do not match; check the credential chain (AWS_PROFILE, "
            "AWS_ACCESS_KEY_ID, IRSA, EKS Pod Identity)"
        )
    if code in ACCESS_ERRORS or status == 403:
        return FetchError(
            f"access denied: the AWS identity mamori runs as may not call {action}{on}; "
            f"grant {action} ({PERMISSIONS_DOC})"
        )
    if code in THROTTLING_ERRORS:
        return FetchError(
            f"ECR kept throttling {action}{on} after every retry; retry later, or raise "
            "--max-attempts"
        )
    message = scrub(text)
    return FetchError(f"{action}{on} failed: {code or status}: {message}".rstrip(": "))


def _botocore_problem(error: Exception, action: str) -> FetchError:
    if isinstance(error, NoRegionError):
        return FetchError("no AWS region: pass --region, or set AWS_REGION")
    if isinstance(error, NoCredentialsError):
        return FetchError(
            "no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID, or run with IRSA "
            "or EKS Pod Identity"
        )
    if isinstance(error, PartialCredentialsError):
        return FetchError(f"incomplete AWS credentials: {error}")
    if isinstance(error, (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError)):
        return FetchError(f"cannot reach ECR for {action}: {scrub(str(error))}")
    return FetchError(f"{action} failed: {type(error).__name__}: {scrub(str(error))}")


def scrub(text: str, limit: int = 300) -> str:
    """AWS's message on one line, access key IDs masked, cut to ``limit`` characters."""
    line = ACCESS_KEY.sub("<access-key-id>", " ".join(text.split()))
    return line if len(line) <= limit else line[: limit - 3] + "..."
