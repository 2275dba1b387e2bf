"""The webhook's TLS certificates, kept by the operator: Secrets and the webhook's ``caBundle``.

With ``--manage-certificates`` the leading operator replica keeps three things in step, using
the plan of :mod:`~mamori_operator.certificates.plan`: a CA Secret (CA certificate and key,
plus the CA being retired during a rotation; only the operator reads it), the serving Secret
the webhook pods mount
(``tls.crt``, ``tls.key`` and the trusted bundle as ``ca.crt``), and the ``caBundle`` of every
webhook in the ValidatingWebhookConfiguration. A pass runs at startup (the webhook cannot serve
before it) and then every ``--certificate-check-interval`` (sooner while the webhook
configuration does not exist yet: Helm creates it after the operator).

Writes go in the order that keeps admissions working: the CA Secret first (so a new CA is never
lost), then the ``caBundle`` (so the API server trusts a new CA before any pod serves a pair it
signed), then the serving Secret, which the kubelet copies into the webhook pods within a minute
or two; the webhook reloads it without a restart (:mod:`mamori_webhook.tls`). Every write carries
the resourceVersion it read, so two replicas can never interleave their steps.

Settings arrive as a :class:`CertificateSettings` on ``memo.certificates`` (built by
``mamori operator`` from its flags); without it, or with the switch off (cert-manager installs),
this module does nothing.
"""

from __future__ import annotations

import base64
import datetime
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from mamori_operator.api.kube import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    Kube,
)
from mamori_operator.certificates.plan import (
    CertificateState,
    certificate_pem,
    load_state,
    plan,
    service_hosts,
)
from mamori_operator.certificates.settings import CertificateSettings
from mamori_operator.metrics import CERTIFICATES

logger = logging.getLogger(__name__)

CA_CERTIFICATE, CA_KEY, PREVIOUS_CA = "ca.crt", "ca.key", "previous-ca.crt"
TLS_CERTIFICATE, TLS_KEY, TLS_BUNDLE = "tls.crt", "tls.key", "ca.crt"
COMPONENT_LABEL = "app.kubernetes.io/component"
WEBHOOK_CONFIGURATIONS = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
RETRY_AFTER_FAILURE = 10.0  # seconds; a failed pass is retried sooner than the check interval
# Helm creates the webhook configuration after the operator's Deployment, so the first pass
# often finds none: look again after 1 s, then 2, 4 ... up to the check interval, so that the
# caBundle is in place seconds after ``helm install`` rather than one check interval later.
FIRST_LOOK_FOR_CONFIGURATION = 1.0


@dataclass(frozen=True)
class PassResult:
    """What one pass found and did (for logs and tests)."""

    reasons: tuple[str, ...]
    written: tuple[str, ...]
    state: CertificateState
    webhook_configuration_found: bool


class CertificateKeeper:
    """One pass on demand (:meth:`reconcile`), or passes on a timer in a thread (:meth:`start`)."""

    def __init__(
        self,
        kube: Kube,
        *,
        settings: CertificateSettings,
        namespace: str,
        clock: Callable[[], datetime.datetime] | None = None,
    ) -> None:
        self.kube = kube
        self.settings = settings
        self.namespace = namespace
        self.clock = clock or _utc_now
        self.lifetimes = settings.lifetimes()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0
        self._configuration_wait = 0.0  # >0 while the webhook configuration has not been seen

    @property
    def hosts(self) -> tuple[str, ...]:
        names = service_hosts(self.settings.certificate_service, self.namespace)
        return tuple(dict.fromkeys([*names, *self.settings.certificate_hosts]))

    def reconcile(self) -> PassResult:
        """Read the Secrets and the webhook configuration, take the next step, write it."""
        settings = self.settings
        ca_secret = self._get(_secret_path(self.namespace, settings.certificate_ca_secret))
        tls_secret = self._get(_secret_path(self.namespace, settings.certificate_secret))
        configuration = self.kube.get(
            _configuration_path(settings.certificate_webhook_configuration),
            resource="validatingwebhookconfigurations",
        )
        ca_data, tls_data = _secret_data(ca_secret), _secret_data(tls_secret)
        published = _published_bundle(configuration) or tls_data.get(TLS_BUNDLE)
        current = load_state(
            ca_certificate=ca_data.get(CA_CERTIFICATE),
            ca_key=ca_data.get(CA_KEY),
            previous_ca=ca_data.get(PREVIOUS_CA),
            serving_certificate=tls_data.get(TLS_CERTIFICATE),
            serving_key=tls_data.get(TLS_KEY),
            published_bundle=published,
        )
        step = plan(current, hosts=self.hosts, now=self.clock(), lifetimes=self.lifetimes)
        for reason in step.reasons:
            logger.info("certificates: %s", reason)
        state, written = step.state, []
        desired_ca, desired_tls = _ca_secret_data(state), _tls_secret_data(state)
        if ca_data != desired_ca:
            self._write_secret(
                ca_secret, settings.certificate_ca_secret, desired_ca, secret_type="Opaque"
            )
            written.append(f"Secret {settings.certificate_ca_secret}")
        if configuration is not None and _needs_bundle(configuration, state.ca_bundle):
            self._inject_bundle(configuration, state.ca_bundle)
            written.append(
                f"ValidatingWebhookConfiguration {settings.certificate_webhook_configuration}"
            )
        if tls_data != desired_tls:
            self._write_secret(
                tls_secret,
                settings.certificate_secret,
                desired_tls,
                secret_type="kubernetes.io/tls",
            )
            written.append(f"Secret {settings.certificate_secret}")
        if configuration is None:
            logger.warning(
                "certificates: ValidatingWebhookConfiguration %s not found; its caBundle will be "
                "set once it exists",
                settings.certificate_webhook_configuration,
            )
        if written:
            logger.info("certificates: wrote %s", ", ".join(written))
        self._configuration_wait = (
            0.0
            if configuration is not None
            else min(
                settings.check_interval,
                max(FIRST_LOOK_FOR_CONFIGURATION, self._configuration_wait * 2),
            )
        )
        self.passes += 1
        self._measure(state)
        return PassResult(step.reasons, tuple(written), state, configuration is not None)

    # -- the timer ------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mamori-certificates", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _next_delay(self) -> float:
        return self._configuration_wait or self.settings.check_interval

    def _run(self) -> None:
        delay = self._next_delay()
        while not self._stop.wait(delay):
            try:
                self.reconcile()
            except Exception:  # a failed pass must not end the timer; the next one retries
                self.kube.metrics.count_reconcile(CERTIFICATES, failed=True)
                logger.exception(
                    "certificates: pass failed; retrying in %.0fs", RETRY_AFTER_FAILURE
                )
                delay = min(self.settings.check_interval, RETRY_AFTER_FAILURE)
            else:
                delay = self._next_delay()

    def _measure(self, state: CertificateState) -> None:
        """A pass went through: count it, and show when what is now stored expires."""
        metrics = self.kube.metrics
        metrics.count_reconcile(CERTIFICATES, failed=False)
        for name, pair in (("ca", state.authority), ("serving", state.serving)):
            if pair is not None:
                metrics.certificate_expires(name, pair.not_after)

    # -- API calls ------------------------------------------------------------------------------

    def _get(self, path: str) -> dict[str, Any] | None:
        return self.kube.get(path, resource="secrets")

    def _write_secret(
        self,
        existing: Mapping[str, Any] | None,
        name: str,
        data: Mapping[str, bytes],
        *,
        secret_type: str,
    ) -> None:
        encoded = {key: base64.b64encode(value).decode("ascii") for key, value in data.items()}
        if existing is None:
            body = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": name,
                    "namespace": self.namespace,
                    "labels": {
                        MANAGED_BY_LABEL: MANAGED_BY,
                        COMPONENT_LABEL: "webhook-certificate",
                    },
                },
                "type": secret_type,
                "data": encoded,
            }
            self.kube.create(_secret_path(self.namespace), body, resource="secrets")
            return
        # Carries the resourceVersion read above: a concurrent writer makes this fail (409).
        replacement = {**existing, "data": encoded}
        self.kube.replace(_secret_path(self.namespace, name), replacement, resource="secrets")

    def _inject_bundle(self, configuration: Mapping[str, Any], bundle: bytes) -> None:
        encoded = base64.b64encode(bundle).decode("ascii")
        metadata = configuration.get("metadata") or {}
        patch = {
            "metadata": {"resourceVersion": metadata.get("resourceVersion")},
            "webhooks": [
                {"name": webhook["name"], "clientConfig": {"caBundle": encoded}}
                for webhook in configuration.get("webhooks") or []
            ],
        }
        self.kube.request(
            "PATCH",
            _configuration_path(str(metadata.get("name"))),
            resource="validatingwebhookconfigurations",
            body=patch,
            content_type=STRATEGIC_MERGE,
            query=[("fieldManager", "mamori-certificates")],
        )


# -- helpers ------------------------------------------------------------------------------------


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _secret_path(namespace: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{quote(namespace)}/secrets"
    return base if name is None else f"{base}/{quote(name)}"


def _configuration_path(name: str) -> str:
    return f"{WEBHOOK_CONFIGURATIONS}/{quote(name)}"


def _secret_data(secret: Mapping[str, Any] | None) -> dict[str, bytes]:
    data = (secret or {}).get("data") or {}
    decoded = {}
    for key, value in data.items():
        try:
            decoded[key] = base64.b64decode(value, validate=True)
        except (ValueError, TypeError):
            continue  # unreadable entries count as missing and are rewritten
    return decoded


def _ca_secret_data(state: CertificateState) -> dict[str, bytes]:
    authority = state.authority
    if authority is None:
        return {}
    data = {CA_CERTIFICATE: authority.certificate_pem, CA_KEY: authority.key_pem}
    if state.previous_ca is not None:
        data[PREVIOUS_CA] = certificate_pem(state.previous_ca)
    return data


def _tls_secret_data(state: CertificateState) -> dict[str, bytes]:
    serving = state.serving
    if serving is None:
        return {}
    return {
        TLS_CERTIFICATE: serving.certificate_pem,
        TLS_KEY: serving.key_pem,
        TLS_BUNDLE: state.ca_bundle,
    }


def _published_bundle(configuration: Mapping[str, Any] | None) -> bytes | None:
    for webhook in (configuration or {}).get("webhooks") or []:
        encoded = (webhook.get("clientConfig") or {}).get("caBundle")
        if encoded:
            try:
                return base64.b64decode(encoded)
            except (ValueError, TypeError):
                return None
    return None


def _needs_bundle(configuration: Mapping[str, Any], bundle: bytes) -> bool:
    encoded = base64.b64encode(bundle).decode("ascii")
    return any(
        (webhook.get("clientConfig") or {}).get("caBundle") != encoded
        for webhook in configuration.get("webhooks") or []
    )
