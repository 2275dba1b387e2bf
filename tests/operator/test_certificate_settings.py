"""``mamori operator --manage-certificates`` settings: flags and MAMORI_* variables, and errors
that say which flag is wrong and why."""

from __future__ import annotations

import argparse
import datetime

import pytest

from mamori.settings import SettingsError, add_arguments, load_settings
from mamori_operator.certificates.keeper import CertificateKeeper
from mamori_operator.certificates.settings import CertificateSettings


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser, CertificateSettings)
    return parser.parse_args(argv)


def test_defaults_are_off_and_consistent() -> None:
    settings = load_settings(CertificateSettings, parse(), {})
    assert settings.manage_certificates is False
    lifetimes = settings.lifetimes()
    assert lifetimes.serving_validity == datetime.timedelta(days=90)
    assert lifetimes.ca_renew_before == datetime.timedelta(days=365)
    assert settings.check_interval == 60.0


def test_flags_beat_the_environment() -> None:
    settings = load_settings(
        CertificateSettings,
        parse("--manage-certificates", "--certificate-hosts", "127.0.0.1, webhook.local"),
        {"MAMORI_CERTIFICATE_SECRET": "tls", "MAMORI_CERTIFICATE_HOSTS": "ignored"},
    )
    assert settings.manage_certificates is True
    assert settings.certificate_secret == "tls"
    assert settings.certificate_hosts == ("127.0.0.1", "webhook.local")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        pytest.param(
            {"MAMORI_CERTIFICATE_OVERLAP": "15 minutes"},
            "--certificate-overlap (MAMORI_CERTIFICATE_OVERLAP)='15 minutes'",
            id="malformed-duration",
        ),
        pytest.param(
            {"MAMORI_CERTIFICATE_RENEW_BEFORE": "90d"},
            "renew-before must be between 0 and its validity",
            id="renewal-at-birth",
        ),
        pytest.param(
            {"MAMORI_CERTIFICATE_CA_RENEW_BEFORE": "30d"},
            "two overlaps plus",
            id="ca-rotation-cannot-finish",
        ),
        pytest.param(
            {"MAMORI_CERTIFICATE_CHECK_INTERVAL": "0s"},
            "--certificate-check-interval must be greater than 0",
            id="no-interval",
        ),
    ],
)
def test_unusable_settings_fail_at_start_naming_the_flag(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match="certificate") as raised:
        load_settings(CertificateSettings, parse(), environ)
    assert message in str(raised.value)


def test_the_certificate_names_the_service_in_its_namespace_and_the_extra_hosts() -> None:
    settings = CertificateSettings(
        certificate_service="mamori-webhook", certificate_hosts=("127.0.0.1", "mamori-webhook")
    )
    keeper = CertificateKeeper(kube=None, settings=settings, namespace="ops")  # type: ignore[arg-type]
    assert keeper.hosts == (
        "mamori-webhook.ops.svc",
        "mamori-webhook.ops",
        "mamori-webhook",
        "127.0.0.1",
    )


def test_mamori_operator_takes_the_certificate_flags() -> None:
    """The chart sets MAMORI_MANAGE_CERTIFICATES and friends: `mamori operator` must read them."""
    from mamori_operator import command

    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    args = parser.parse_args(["--manage-certificates", "--certificate-overlap", "5m"])
    settings = load_settings(CertificateSettings, args, {"MAMORI_CERTIFICATE_SECRET": "tls"})
    assert settings.manage_certificates is True
    assert settings.certificate_overlap == "5m"
    assert settings.certificate_secret == "tls"
