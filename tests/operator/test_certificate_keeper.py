"""The certificate keeper (mamori_operator/certificates/keeper.py) on the real API server,
by an injected clock.

The plan's arithmetic is tested in tests/unit/test_certs.py; here the keeper's own job: what it
writes and in which order, that it renews before expiry when its clock says so, that a served
pair stays trusted through a CA rotation, that two keepers cannot interleave their writes, and
that its timer survives a pass that fails because the API server is out of reach.
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mamori.kubeconfig import load_client_configuration
from mamori_operator.api.kube import Kube, KubeError
from mamori_operator.certificates.keeper import CertificateKeeper
from mamori_operator.certificates.plan import certificates_from_pem, signed_by
from mamori_operator.certificates.settings import CertificateSettings
from mamori_operator.metrics import Metrics
from tests.cluster_fixtures import Kubectl
from tests.helpers import wait_for
from tests.integration.faults import LoopbackProxy
from tests.integration.operator_support import webhook_configuration_body

pytestmark = pytest.mark.integration
START = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime.datetime:
        return self.now


class HookedKube(Kube):
    """The real client, with a hook that runs once before its next create or replace."""

    def __init__(self, kubeconfig: Path) -> None:
        super().__init__(load_client_configuration(kubeconfig), metrics=Metrics(), pool=2)
        self.before_write: Callable[[], None] | None = None

    def _hook(self) -> None:
        hook, self.before_write = self.before_write, None
        if hook is not None:
            hook()

    def create(self, path: str, body: Any, *, resource: str) -> dict[str, Any]:
        self._hook()
        return super().create(path, body, resource=resource)

    def replace(self, path: str, body: Any, *, resource: str) -> dict[str, Any]:
        self._hook()
        return super().replace(path, body, resource=resource)


@pytest.fixture
def webhook_configuration(kubectl: Kubectl) -> Iterator[str]:
    name = f"keeper-{uuid.uuid4().hex[:6]}"
    kubectl("create", "-f", "-", input=json.dumps(webhook_configuration_body(name)))
    yield name
    kubectl("delete", "validatingwebhookconfiguration", name, "--ignore-not-found")


@pytest.fixture
def kubes() -> Iterator[list[Kube]]:
    made: list[Kube] = []
    yield made
    for kube in made:
        kube.close()


@pytest.fixture
def make_keeper(
    kubeconfig: Path, namespace: str, webhook_configuration: str, kubes: list[Kube]
) -> Callable[..., CertificateKeeper]:
    def make(
        clock: Clock, *, config: Path | None = None, check_interval: str = "1m"
    ) -> CertificateKeeper:
        kube = HookedKube(config or kubeconfig)
        kubes.append(kube)
        settings = CertificateSettings(
            manage_certificates=True,
            certificate_webhook_configuration=webhook_configuration,
            certificate_check_interval=check_interval,
        )
        return CertificateKeeper(kube, settings=settings, namespace=namespace, clock=clock)

    return make


class Stored:
    """What the keeper left in the cluster, read back through the API."""

    def __init__(self, keeper: CertificateKeeper) -> None:
        kube, settings, namespace = keeper.kube, keeper.settings, keeper.namespace
        secrets = f"/api/v1/namespaces/{namespace}/secrets"
        self.tls = _data(kube.get(f"{secrets}/{settings.certificate_secret}", resource="secrets"))
        self.ca = _data(kube.get(f"{secrets}/{settings.certificate_ca_secret}", resource="secrets"))
        configuration = kube.get(
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/"
            + settings.certificate_webhook_configuration,
            resource="validatingwebhookconfigurations",
        )
        assert configuration is not None
        self.bundles = [
            base64.b64decode(hook["clientConfig"].get("caBundle") or "")
            for hook in configuration["webhooks"]
        ]

    @property
    def served(self) -> Any:
        (certificate, *_) = certificates_from_pem(self.tls["tls.crt"])
        return certificate

    def trusted_by_the_api_server(self) -> bool:
        """Every webhook's caBundle holds the CA that signed the pair the pods serve."""
        return all(
            any(signed_by(self.served, ca) for ca in certificates_from_pem(bundle))
            for bundle in self.bundles
        )


def _data(secret: dict[str, Any] | None) -> dict[str, bytes]:
    assert secret is not None
    return {key: base64.b64decode(value) for key, value in (secret.get("data") or {}).items()}


def test_the_first_pass_writes_the_ca_then_the_bundle_then_the_serving_pair(
    make_keeper: Callable[..., CertificateKeeper], webhook_configuration: str
) -> None:
    keeper = make_keeper(Clock())
    result = keeper.reconcile()
    assert result.written == (
        "Secret mamori-webhook-ca",
        f"ValidatingWebhookConfiguration {webhook_configuration}",
        "Secret mamori-webhook-tls",
    )
    stored = Stored(keeper)
    assert stored.bundles == [stored.tls["ca.crt"]] * 2
    assert stored.trusted_by_the_api_server()
    assert stored.served.not_valid_after_utc == START + 90 * DAY
    assert set(stored.ca) == {"ca.crt", "ca.key"}
    assert keeper.passes == 1


def test_the_serving_pair_is_renewed_when_the_clock_reaches_the_renewal_point(
    make_keeper: Callable[..., CertificateKeeper],
) -> None:
    clock = Clock()
    keeper = make_keeper(clock)
    keeper.reconcile()
    first = Stored(keeper)

    clock.now = START + 60 * DAY - datetime.timedelta(minutes=1)  # 90d validity, renew 30d before
    assert keeper.reconcile().written == ()
    clock.now = START + 60 * DAY + datetime.timedelta(minutes=1)
    assert keeper.reconcile().written == ("Secret mamori-webhook-tls",)

    renewed = Stored(keeper)
    assert renewed.served.serial_number != first.served.serial_number
    assert first.served.not_valid_after_utc > clock.now  # renewed before the old pair expired
    assert renewed.served.not_valid_after_utc >= clock.now + 89 * DAY
    assert renewed.ca == first.ca and renewed.bundles == first.bundles  # same CA
    assert renewed.trusted_by_the_api_server()
    assert keeper.reconcile().written == ()  # and it stays put


def test_the_served_pair_stays_trusted_through_five_years_and_a_ca_rotation(
    make_keeper: Callable[..., CertificateKeeper],
) -> None:
    clock = Clock()
    keeper = make_keeper(clock)
    overlap = datetime.timedelta(minutes=15, seconds=1)
    cas_seen: list[bytes] = []
    retiring_ca_kept = False
    while clock.now < START + 1900 * DAY:
        result = keeper.reconcile()
        stored = Stored(keeper)
        assert stored.trusted_by_the_api_server(), f"untrusted pair at {clock.now}"
        assert stored.served.not_valid_after_utc > clock.now, f"expired pair at {clock.now}"
        if stored.ca["ca.crt"] not in cas_seen:
            cas_seen.append(stored.ca["ca.crt"])
        retiring_ca_kept = retiring_ca_kept or "previous-ca.crt" in stored.ca
        # After a write, take the next step as soon as the overlap allows; else 10 days later.
        clock.now += overlap if result.written else 10 * DAY
    assert len(cas_seen) == 2, "the CA was rotated once in five years (1825d, renewed 365d early)"
    assert retiring_ca_kept, "the old CA was never kept while the new one took over"


def test_two_keepers_cannot_interleave_their_writes(
    make_keeper: Callable[..., CertificateKeeper],
) -> None:
    clock = Clock()
    first, second = make_keeper(clock), make_keeper(clock)
    assert isinstance(second.kube, HookedKube)
    # second has read "nothing there" and is about to create when first does its whole pass.

    def first_pass_meanwhile() -> None:
        first.reconcile()

    second.kube.before_write = first_pass_meanwhile
    with pytest.raises(KubeError) as raised:
        second.reconcile()
    assert raised.value.status == 409
    stored = Stored(first)
    assert stored.trusted_by_the_api_server()
    assert second.reconcile().written == ()  # it now finds first's consistent set and keeps it


def test_the_timer_survives_a_pass_that_cannot_reach_the_api_server(
    private_control_plane: Any,
    apiserver_proxy: LoopbackProxy,
    proxied_kubeconfig: Path,
    make_keeper: Callable[..., CertificateKeeper],
    caplog: pytest.LogCaptureFixture,
) -> None:
    direct = HookedKube(private_control_plane.kubeconfig)
    try:
        direct.create(
            "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
            webhook_configuration_body("mamori"),
            resource="validatingwebhookconfigurations",
        )
    finally:
        direct.close()
    keeper = make_keeper(Clock(), config=proxied_kubeconfig, check_interval="1s")
    keeper.namespace = "default"
    keeper.settings = CertificateSettings(manage_certificates=True, certificate_check_interval="1s")
    caplog.set_level(logging.ERROR, logger="mamori_operator.certificates.keeper")
    keeper.start()
    try:
        wait_for(lambda: keeper.passes >= 1, timeout=15, message="a first timer pass")
        apiserver_proxy.cut()
        wait_for(
            lambda: any("pass failed" in r.getMessage() for r in caplog.records),
            timeout=15,
            message="a failed pass while the API server is cut off",
        )
        failed_at = keeper.passes
        apiserver_proxy.restore()
        wait_for(lambda: keeper.passes > failed_at, timeout=15, message="a pass after restore")
        assert keeper._thread is not None and keeper._thread.is_alive()
    finally:
        keeper.stop()
    assert keeper._thread is not None and not keeper._thread.is_alive()
    assert Stored(keeper).trusted_by_the_api_server()


def test_the_timer_renews_once_its_clock_reaches_the_renewal_point(
    make_keeper: Callable[..., CertificateKeeper],
) -> None:
    clock = Clock()
    keeper = make_keeper(clock, check_interval="1s")
    keeper.reconcile()
    first = Stored(keeper).served
    keeper.start()
    try:
        passes = keeper.passes
        wait_for(lambda: keeper.passes >= passes + 1, timeout=15, message="a timer pass")
        assert Stored(keeper).served.serial_number == first.serial_number  # nothing due yet
        clock.now = START + 61 * DAY
        wait_for(
            lambda: Stored(keeper).served.serial_number != first.serial_number,
            timeout=15,
            message="the timer to renew the serving pair",
        )
    finally:
        keeper.stop()
    assert keeper._thread is not None and not keeper._thread.is_alive()
    assert Stored(keeper).trusted_by_the_api_server()


def test_a_configuration_created_after_the_first_pass_gets_its_bundle_within_seconds(
    kubeconfig: Path, namespace: str, kubectl: Kubectl, kubes: list[Kube]
) -> None:
    """Helm creates the webhook configuration after the operator's Deployment: the first pass
    finds none, and the bundle must follow within seconds, not one check interval (1m) later,
    or every admission fails certificate verification in the meantime."""
    name = f"late-{uuid.uuid4().hex[:6]}"
    kube = HookedKube(kubeconfig)
    kubes.append(kube)
    settings = CertificateSettings(
        manage_certificates=True,
        certificate_webhook_configuration=name,
        certificate_check_interval="1m",
    )
    keeper = CertificateKeeper(kube, settings=settings, namespace=namespace, clock=Clock())
    assert keeper.reconcile().webhook_configuration_found is False
    keeper.start()
    try:
        kubectl("create", "-f", "-", input=json.dumps(webhook_configuration_body(name)))
        wait_for(
            lambda: Stored(keeper).trusted_by_the_api_server(),
            timeout=10,
            message="the caBundle of a configuration created after the first pass",
        )
    finally:
        keeper.stop()
        kubectl("delete", "validatingwebhookconfiguration", name, "--ignore-not-found")
