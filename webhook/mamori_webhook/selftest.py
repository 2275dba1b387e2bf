"""``python -m mamori_webhook.selftest``: ``helm test``: checks an installed webhook.

It runs in a pod of the release, from the mamori image, and calls the webhook the way the API
server does: over TLS, through the Service, trusting only the CA the webhook's certificate was
issued by. It checks that the webhook is ready and that it answers an AdmissionReview for a
privileged pod, with a denial when the chart's own policy enforces. Exit status 0: passed;
1: failed (the reason is printed); 2: misconfigured.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mamori.settings import SettingsError, load_settings, setting


@dataclass(frozen=True)
class SelftestSettings:
    """Where the webhook is and what it should answer; MAMORI_SELFTEST_* variables."""

    selftest_url: str = setting(help="the webhook's base URL, https://<service>.<namespace>.svc")
    selftest_ca_file: Path = setting(help="PEM CA bundle the webhook's certificate chains to")
    selftest_namespace: str = setting("default", help="namespace the reviewed pod claims")
    selftest_expect_denied: bool = setting(
        True, help="expect a denial (false when no enforcing policy covers the namespace)"
    )
    selftest_timeout: float = setting(10.0, help="seconds per request")

    def validate(self) -> None:
        if not self.selftest_url.startswith("https://"):
            raise SettingsError(f"MAMORI_SELFTEST_URL={self.selftest_url!r}: expected https://…")
        if not self.selftest_ca_file.is_file():
            raise SettingsError(f"MAMORI_SELFTEST_CA_FILE={self.selftest_ca_file}: no such file")


class SelftestFailed(Exception):
    """The webhook answered wrongly or not at all."""


def privileged_pod_review(namespace: str) -> dict[str, Any]:
    """An AdmissionReview creating a pod that every enforced PSS level denies."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "mamori-selftest", "namespace": namespace},
        "spec": {
            "containers": [
                {
                    "name": "probe",
                    "image": "mamori-selftest-probe:1",
                    "securityContext": {"privileged": True},
                }
            ]
        },
    }
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "name": "mamori-selftest",
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:mamori:selftest"},
            "object": pod,
            "oldObject": None,
            "dryRun": True,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def run(settings: SelftestSettings) -> list[str]:
    """Run the checks; return what passed, or raise :class:`SelftestFailed`."""
    context = ssl.create_default_context(cafile=str(settings.selftest_ca_file))
    base = settings.selftest_url.rstrip("/")
    passed = []
    status, body = _call(f"{base}/readyz", context=context, timeout=settings.selftest_timeout)
    if status != 200:
        raise SelftestFailed(f"GET /readyz answered {status}: {body}")
    passed.append("the webhook is ready and its certificate chains to the issued CA")

    review = privileged_pod_review(settings.selftest_namespace)
    status, body = _call(
        f"{base}/validate",
        context=context,
        timeout=settings.selftest_timeout,
        payload=review,
    )
    if status != 200:
        raise SelftestFailed(f"POST /validate answered {status}: {body}")
    response = json.loads(body).get("response") or {}
    if response.get("uid") != review["request"]["uid"]:
        raise SelftestFailed(f"the review's uid was not echoed: {body}")
    if settings.selftest_expect_denied:
        if response.get("allowed") is not False:
            raise SelftestFailed(f"a privileged pod was allowed: {body}")
        message = (response.get("status") or {}).get("message", "")
        passed.append(f"a privileged pod is denied: {message}")
    else:
        passed.append(f"a review was answered (allowed={response.get('allowed')})")
    return passed


def _call(
    url: str,
    *,
    context: ssl.SSLContext,
    timeout: float,
    payload: Mapping[str, Any] | None = None,
) -> tuple[int, str]:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"} if data else {}
    )
    try:
        with urllib.request.urlopen(request, context=context, timeout=timeout) as answer:
            return answer.status, answer.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as error:
        raise SelftestFailed(f"{url}: {getattr(error, 'reason', error)}") from None


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    del argv  # configured by environment only (a pod's env)
    try:
        settings = load_settings(SelftestSettings, None, os.environ if environ is None else environ)
    except SettingsError as error:
        print(f"mamori selftest: error: {error}", file=sys.stderr)
        return 2
    try:
        passed = run(settings)
    except SelftestFailed as error:
        print(f"mamori selftest: FAILED: {error}", file=sys.stderr)
        return 1
    for line in passed:
        print(f"mamori selftest: ok: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
