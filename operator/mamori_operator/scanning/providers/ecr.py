"""Amazon ECR image scanning (basic scanning and enhanced scanning by Amazon Inspector).

The image host names the registry: account, region and endpoint flavour (commercial, China,
FIPS, dual-stack) come from :func:`mamori.images.parse_ecr_host`, so one operator serves images
from any number of accounts and regions. Credentials come from boto3's default chain, which
covers IRSA (web identity) and EKS Pod Identity. botocore's standard retry mode backs off on
throttling. ``DescribeImageScanFindings`` reports both scan types; enhanced findings carry the
fixed version, basic findings do not.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from mamori.images import EcrHost, InvalidReference, parse_ecr_host, parse_reference
from mamori.policy.terms import Provider, Severity
from mamori_operator.scanning.model import (
    Outcome,
    ProviderAnswer,
    ScanReport,
    VulnerabilityFinding,
    top_findings,
)
from mamori_operator.scanning.providers import register
from mamori_operator.scanning.providers.base import ProviderWiring, ScanTarget

NAME = Provider.ECR.value
COMPLETE = frozenset({"COMPLETE", "ACTIVE"})
PENDING = frozenset({"IN_PROGRESS", "PENDING"})
NOT_SCANNED = frozenset({"UNSUPPORTED_IMAGE", "FINDINGS_UNAVAILABLE", "SCAN_ELIGIBILITY_EXPIRED"})
UNSCANNED_ERRORS = frozenset(
    {"ScanNotFoundException", "ImageNotFoundException", "RepositoryNotFoundException"}
)
ACCESS_ERRORS = frozenset(
    {"AccessDeniedException", "AccessDenied", "UnrecognizedClientException", "InvalidClientTokenId"}
)
THROTTLING_ERRORS = frozenset(
    {"ThrottlingException", "LimitExceededException", "TooManyRequestsException"}
)


class EcrProvider:
    """Looks digests up in ECR; one boto3 client per (region, FIPS, dual-stack), made lazily."""

    name = NAME

    def __init__(
        self,
        *,
        session: boto3.session.Session | None = None,
        endpoint_url: str | None = None,
        max_attempts: int = 5,
        top: int = 20,
    ) -> None:
        self.session = session or boto3.session.Session()
        self.endpoint_url = endpoint_url
        self.max_attempts = max_attempts
        self.top = top
        self._clients: dict[tuple[str, bool, bool], Any] = {}
        self._lock = threading.Lock()

    def scope(self, target: ScanTarget) -> str:
        return ""

    def lookup(self, target: ScanTarget) -> ProviderAnswer | None:
        try:
            reference = parse_reference(target.image)
        except InvalidReference:
            return None
        host = parse_ecr_host(reference.hostname) if reference.port is None else None
        if host is None:
            return None
        try:
            pages = list(
                self._client(host)
                .get_paginator("describe_image_scan_findings")
                .paginate(
                    registryId=host.account_id,
                    repositoryName=reference.path,
                    imageId={"imageDigest": target.digest},
                )
            )
        except ClientError as error:
            return answer_from_error(error)
        except BotoCoreError as error:  # no credentials, endpoint unreachable, bad response
            return ProviderAnswer(
                NAME, Outcome.ERROR, message=str(error), reason=type(error).__name__, healthy=False
            )
        return answer_from_pages(
            pages, digest=target.digest, repository=reference.name, top=self.top
        )

    def _client(self, host: EcrHost) -> Any:
        key = (host.region, host.fips, host.dual_stack)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                config = Config(
                    retries={"mode": "standard", "max_attempts": self.max_attempts},
                    use_fips_endpoint=host.fips and self.endpoint_url is None,
                    use_dualstack_endpoint=host.dual_stack and self.endpoint_url is None,
                    connect_timeout=5,
                    read_timeout=20,
                )
                client = self.session.client(
                    "ecr", region_name=host.region, endpoint_url=self.endpoint_url, config=config
                )
                self._clients[key] = client
            return client


def answer_from_error(error: ClientError) -> ProviderAnswer:
    """Map an ECR error to an answer: "no scan" is a result, the rest are provider failures."""
    details = error.response.get("Error", {})
    code = str(details.get("Code", ""))
    message = f"{code}: {details.get('Message', '')}".strip()
    if code in UNSCANNED_ERRORS:
        return ProviderAnswer(NAME, Outcome.UNSCANNED, message=message, reason=code)
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in ACCESS_ERRORS or status == 403:
        return ProviderAnswer(
            NAME, Outcome.ERROR, message=message, reason="AccessDenied", healthy=False
        )
    if code in THROTTLING_ERRORS:
        return ProviderAnswer(
            NAME, Outcome.ERROR, message=message, reason="Throttled", healthy=False
        )
    return ProviderAnswer(
        NAME, Outcome.ERROR, message=message, reason=code or "Error", healthy=False
    )


def answer_from_pages(
    pages: Iterable[Mapping[str, Any]], *, digest: str, repository: str, top: int
) -> ProviderAnswer:
    """Fold the pages of one DescribeImageScanFindings call into an answer."""
    pages = list(pages)
    if not pages:
        return ProviderAnswer(NAME, Outcome.UNSCANNED, message="empty response")
    first = pages[0]
    scan_status = first.get("imageScanStatus") or {}
    status = str(scan_status.get("status", ""))
    description = str(scan_status.get("description", "") or "")
    if status in PENDING:
        return ProviderAnswer(NAME, Outcome.PENDING, message=f"{status}: {description}".strip(": "))
    if status in NOT_SCANNED:
        return ProviderAnswer(
            NAME, Outcome.UNSCANNED, message=f"{status}: {description}", reason=status
        )
    if status not in COMPLETE:
        return ProviderAnswer(
            NAME,
            Outcome.ERROR,
            message=f"scan {status or 'status missing'}: {description}",
            reason="ScanFailed",
        )
    findings_block = first.get("imageScanFindings") or {}
    counts: dict[Severity, int] = {}  # UNDEFINED and UNTRIAGED count as UNKNOWN
    for name, number in (findings_block.get("findingSeverityCounts") or {}).items():
        severity = Severity.parse(name)
        counts[severity] = counts.get(severity, 0) + int(number)
    findings: list[VulnerabilityFinding] = []
    for page in pages:
        block = page.get("imageScanFindings") or {}
        findings.extend(_basic_finding(item) for item in block.get("findings") or [])
        findings.extend(_enhanced_finding(item) for item in block.get("enhancedFindings") or [])
    if not counts:
        for finding in findings:
            counts[finding.severity] = counts.get(finding.severity, 0) + 1
    return ProviderAnswer(
        NAME,
        Outcome.COMPLETE,
        report=ScanReport(
            digest=digest,
            repository=repository,
            scanner="ecr-enhanced" if _is_enhanced(pages) else "ecr-basic",
            scanned_at=_timestamp(findings_block.get("imageScanCompletedAt")),
            counts=counts,
            findings=top_findings(findings, top),
        ),
    )


def _basic_finding(item: Mapping[str, Any]) -> VulnerabilityFinding:
    attributes = {a.get("key"): a.get("value", "") for a in item.get("attributes") or []}
    return VulnerabilityFinding(
        id=str(item.get("name", "")),
        severity=Severity.parse(item.get("severity")),
        package=str(attributes.get("package_name", "")),
        installed_version=str(attributes.get("package_version", "")),
    )


def _enhanced_finding(item: Mapping[str, Any]) -> VulnerabilityFinding:
    details = item.get("packageVulnerabilityDetails") or {}
    packages = details.get("vulnerablePackages") or [{}]
    package = packages[0] if packages else {}
    return VulnerabilityFinding(
        id=str(details.get("vulnerabilityId") or item.get("title") or item.get("findingArn", "")),
        severity=Severity.parse(item.get("severity")),
        package=str(package.get("name", "")),
        installed_version=str(package.get("version", "")),
        fixed_version=str(package.get("fixedInVersion", "") or ""),
    )


def _is_enhanced(pages: list[Mapping[str, Any]]) -> bool:
    return any((p.get("imageScanFindings") or {}).get("enhancedFindings") for p in pages) or (
        str((pages[0].get("imageScanStatus") or {}).get("status")) == "ACTIVE"
    )


def _timestamp(value: object) -> str:
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value or "")


@register(Provider.ECR, cached=True)
def _build(wiring: ProviderWiring) -> EcrProvider:
    config = wiring.config
    return EcrProvider(
        endpoint_url=config.ecr_endpoint_url,
        max_attempts=config.aws_max_attempts,
        top=config.top_findings,
    )
