"""``--certificate-*``: where the webhook's certificates live and how long they last."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from mamori.durations import parse_duration
from mamori.settings import SettingsError, named, setting
from mamori_operator.certificates.plan import CertificateConfigError, Lifetimes


@dataclass(frozen=True)
class CertificateSettings:
    """Where the certificates live and how long they last; flags ``--certificate-*``."""

    manage_certificates: bool = setting(
        False,
        help="create and renew the webhook's CA and serving certificate and keep the webhook "
        "configuration's caBundle current (off when cert-manager does it)",
    )
    certificate_secret: str = setting(
        "mamori-webhook-tls",
        help="Secret the webhook pods mount (tls.crt, tls.key, ca.crt), in --namespace",
        metavar="NAME",
    )
    certificate_ca_secret: str = setting(
        "mamori-webhook-ca",
        help="Secret holding the CA's key, in --namespace; only the operator reads it",
        metavar="NAME",
    )
    certificate_webhook_configuration: str = setting(
        "mamori",
        help="ValidatingWebhookConfiguration whose caBundle is kept current",
        metavar="NAME",
    )
    certificate_service: str = setting(
        "mamori-webhook",
        help="the webhook's Service; its DNS names in --namespace go into the certificate",
        metavar="NAME",
    )
    certificate_hosts: tuple[str, ...] = setting(
        (),
        help="more DNS names or IP addresses for the certificate, comma-separated (a URL-mode "
        "or hostNetwork webhook)",
        metavar="HOSTS",
    )
    certificate_validity: str = setting(
        "90d", help="lifetime of the serving certificate", metavar="DURATION"
    )
    certificate_renew_before: str = setting(
        "30d", help="renew the serving certificate this long before it expires", metavar="DURATION"
    )
    certificate_ca_validity: str = setting("1825d", help="lifetime of the CA", metavar="DURATION")
    certificate_ca_renew_before: str = setting(
        "365d", help="start replacing the CA this long before it expires", metavar="DURATION"
    )
    certificate_overlap: str = setting(
        "15m",
        help="how long a new CA is trusted before pods serve a pair it signed, and the old CA "
        "after they do (longer than the kubelet takes to update a mounted Secret)",
        metavar="DURATION",
    )
    certificate_check_interval: str = setting(
        "1m", help="how often the certificates are checked", metavar="DURATION"
    )

    def validate(self) -> None:
        for name in _DURATION_FIELDS:
            self._duration(name)
        try:
            self.lifetimes().validate()
        except CertificateConfigError as error:
            raise SettingsError(f"--certificate-*: {error}") from None
        if self._duration("certificate_check_interval") <= datetime.timedelta(0):
            raise SettingsError(
                f"{named('certificate_check_interval', with_env=False)} must be greater than 0"
            )

    def lifetimes(self) -> Lifetimes:
        return Lifetimes(
            ca_validity=self._duration("certificate_ca_validity"),
            ca_renew_before=self._duration("certificate_ca_renew_before"),
            serving_validity=self._duration("certificate_validity"),
            serving_renew_before=self._duration("certificate_renew_before"),
            overlap=self._duration("certificate_overlap"),
        )

    @property
    def check_interval(self) -> float:
        return self._duration("certificate_check_interval").total_seconds()

    def _duration(self, name: str) -> datetime.timedelta:
        value = getattr(self, name)
        try:
            return parse_duration(value)
        except ValueError as error:
            raise SettingsError(f"{named(name)}={value!r}: {error}") from None


_DURATION_FIELDS = (
    "certificate_validity",
    "certificate_renew_before",
    "certificate_ca_validity",
    "certificate_ca_renew_before",
    "certificate_overlap",
    "certificate_check_interval",
)
