"""The webhook's ImageScan index: lists and events in, results by digest out, bounded."""

from __future__ import annotations

import datetime
import json
import logging
import threading
from typing import Any

import pytest

from mamori.policy.terms import Severity
from mamori.scans import InvalidImageScan, scan_result_from_object
from mamori_webhook.scan_index import ScanIndex
from tests.helpers import wait_for

NOW = datetime.datetime(2026, 11, 29, tzinfo=datetime.UTC)


def digest(n: int) -> str:
    return f"sha256:{n:064x}"


def image_scan(of: str, **spec: Any) -> dict[str, Any]:
    body = {
        "digest": of,
        "scanner": "trivy-0.58",
        "scannedAt": "2026-11-28T09:00:00Z",
        "summary": {"critical": 1},
        "findings": [{"id": "CVE-2026-1111", "severity": "CRITICAL"}],
        **spec,
    }
    return {"metadata": {"name": of.replace(":", "-")}, "spec": body}


def unlisted(**_: Any) -> Any:
    raise AssertionError("the index is fed directly here")


def index(max_entries: int = 10) -> ScanIndex:
    return ScanIndex(unlisted, max_entries=max_entries, clock=lambda: NOW)


def test_an_image_scan_is_read_into_a_result() -> None:
    result = scan_result_from_object(image_scan(digest(1)))
    assert result.digest == digest(1)
    assert result.scanner == "trivy-0.58"
    assert result.scanned_at == datetime.datetime(2026, 11, 28, 9, tzinfo=datetime.UTC)
    assert result.counts[Severity.CRITICAL] == 1 and result.counts[Severity.LOW] == 0
    assert [(f.id, f.severity) for f in result.findings] == [("CVE-2026-1111", Severity.CRITICAL)]


@pytest.mark.parametrize(
    ("obj", "problem"),
    [
        ({"metadata": {"name": "x"}}, "spec: must be an object"),
        (image_scan("sha256:xyz"), "spec.digest:"),
        ({**image_scan(digest(1)), "metadata": {"name": "sha256-other"}}, "metadata.name:"),
        (image_scan(digest(1), scanner=""), "spec.scanner:"),
        (image_scan(digest(1), scannedAt="yesterday"), "spec.scannedAt:"),
        (image_scan(digest(1), summary={"critical": -1}), "spec.summary.critical:"),
        (image_scan(digest(1), findings=[{"id": "CVE-1", "severity": "BAD"}]), "spec.findings[0]"),
    ],
)
def test_a_malformed_image_scan_is_refused_by_field(obj: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidImageScan, match=problem.replace("[", r"\[").replace("]", r"\]")):
        scan_result_from_object(obj)


def test_lists_and_events_keep_the_index_current(caplog: pytest.LogCaptureFixture) -> None:
    scans = index()
    broken = image_scan(digest(3), findings="many")
    with caplog.at_level(logging.WARNING, logger="mamori_webhook.scans"):
        scans.replace([image_scan(digest(1)), image_scan(digest(2)), broken])
    assert scans.scan(digest(1)) is not None and scans.scan(digest(2)) is not None
    assert scans.scan(digest(3)) is None
    assert f"ImageScan {broken['metadata']['name']} is malformed and is skipped" in caplog.text
    assert scans.now() == NOW

    scans.event("DELETED", image_scan(digest(1)))
    scans.event("ADDED", image_scan(digest(4)))
    scans.event("MODIFIED", image_scan(digest(2), scanner=""))  # broken by an edit: dropped
    assert [scans.scan(digest(n)) is not None for n in (1, 2, 4)] == [False, False, True]

    scans.replace([image_scan(digest(5))])  # a re-list replaces everything
    assert len(scans) == 1 and scans.scan(digest(4)) is None


def test_the_index_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    scans = index(max_entries=2)
    with caplog.at_level(logging.WARNING, logger="mamori_webhook.scans"):
        scans.replace([image_scan(digest(n)) for n in range(3)])
        scans.event("ADDED", image_scan(digest(9)))
    assert len(scans) == 2 and scans.scan(digest(9)) is None
    assert caplog.text.count("more than 2 ImageScans") == 1
    scans.event("MODIFIED", image_scan(digest(0), scanner="grype"))  # known digests still update
    result = scans.scan(digest(0))
    assert result is not None and result.scanner == "grype"


def test_an_index_that_cannot_list_settles_unavailable_and_recovers() -> None:
    """A list the webhook may not read (RBAC, no CRD) must not keep every pod unready: the index
    settles as unavailable, naming why, and becomes available once a list succeeds."""
    allowed = threading.Event()

    def listing(**kwargs: Any) -> Any:
        if not allowed.is_set():
            raise RuntimeError("403 Forbidden: imagescans.mamori.io")
        if kwargs.get("watch"):
            allowed.wait(5)
            raise RuntimeError("watch ended")
        return Page({"items": [], "metadata": {"resourceVersion": "7"}})

    scans = ScanIndex(listing, clock=lambda: NOW)
    assert scans.unavailable() == "ImageScans are not followed"
    scans.start()
    try:
        wait_for(lambda: scans.settled, timeout=10, message="the first failed list")
        assert not scans.synced
        assert "listing ImageScans failed" in (scans.unavailable() or "")
        assert "403 Forbidden" in (scans.unavailable() or "")
        allowed.set()
        wait_for(lambda: scans.synced, timeout=30, message="a list after the failure")
        assert scans.unavailable() is None
    finally:
        scans.stop()


class Page:
    """The part of a urllib3 response that ListWatch reads."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.data = json.dumps(body).encode()

    def release_conn(self) -> None:
        return None
