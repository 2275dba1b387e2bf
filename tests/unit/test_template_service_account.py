"""A workload's pod template is judged with the pull Secrets its pods will get: its own, or,
when it lists none, its ServiceAccount's (read when a registry call first needs credentials,
kept like a Secret). A Pod has them already: no ServiceAccount is read for it. The reads
themselves are proven on the real API server (tests/integration/test_admission_sa_pull_secrets.py).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from mamori.supplychain.live import EvidenceConfig, RegistryEvidence
from mamori.supplychain.lookup import TAG_POINTS_TO, DigestAnswer
from mamori.supplychain.pull_secrets import (
    AccountSecrets,
    PulledSecret,
    PullSecretNames,
    PullSecretStore,
    account_where,
    image_pull_secret_names,
)
from mamori.supplychain.registry import Unauthorized
from mamori_webhook.registry_access import RegistryAccess
from tests.unit.test_supplychain_live import SIGNED, TRUSTING_SIGNER, Clock, FakeClient, sign_legacy
from tests.webhook.reviews import pod_spec, workload
from tests.webhook.test_pull_secrets import (
    IMAGE,
    NAMESPACE,
    ROBOT,
    ROBOT_SECRET,
    Fetches,
    reference,
)


def template(kind: str, **spec_fields: Any) -> dict[str, Any]:
    spec = pod_spec()
    spec.update(spec_fields)
    return workload(kind, spec=spec)


WHOSE = [
    pytest.param(template("Deployment"), (), "default", id="deployment-default-account"),
    pytest.param(
        template("Deployment", serviceAccountName="builder"), (), "builder", id="named-account"
    ),
    pytest.param(
        template("StatefulSet", serviceAccount="legacy"), (), "legacy", id="deprecated-field"
    ),
    pytest.param(
        template("CronJob", serviceAccountName="nightly"), (), "nightly", id="cronjob-template"
    ),
    pytest.param(
        template("Job", serviceAccountName="b", imagePullSecrets=[{"name": "own"}]),
        ("own",),
        None,
        id="own-secrets-win-as-the-plugin-adds-none",
    ),
    pytest.param(template("Pod", serviceAccountName="builder"), (), None, id="pod-already-merged"),
    pytest.param({"apiVersion": "v1", "kind": "ConfigMap"}, (), None, id="not-a-workload"),
]


@pytest.mark.parametrize(("resource", "names", "account"), WHOSE)
def test_a_template_that_lists_no_secrets_names_its_service_account(
    resource: dict[str, Any], names: tuple[str, ...], account: str | None
) -> None:
    found = image_pull_secret_names(resource)
    assert (tuple(found), found.service_account) == (names, account)


class Accounts:
    """A fake API server's ServiceAccounts: name → the Secrets it names; every GET recorded."""

    def __init__(self, accounts: dict[str, tuple[str, ...]]) -> None:
        self.accounts = accounts
        self.asked: list[tuple[str, str]] = []

    def __call__(self, namespace: str, name: str) -> AccountSecrets:
        self.asked.append((namespace, name))
        if name not in self.accounts:
            return AccountSecrets((), f"{account_where(namespace, name)} does not exist")
        return AccountSecrets(self.accounts[name])


class Reviews:
    """A RegistryAccess over the fake registry client, its Secrets and ServiceAccounts from
    fakes that record every read."""

    def __init__(
        self,
        secrets: dict[tuple[str, str], PulledSecret],
        accounts: dict[str, tuple[str, ...]],
        *,
        ttl: float = 0,
    ) -> None:
        self.clock = Clock()
        self.client = FakeClient(self.clock, tags={"app:1.0": SIGNED})
        sign_legacy(self.client, SIGNED)
        self.fetches = Fetches(secrets)
        self.accounts = Accounts(accounts)
        evidence = RegistryEvidence(
            self.client,  # type: ignore[arg-type]
            EvidenceConfig(budget=2.0),
            clock=self.clock,
        )
        store = PullSecretStore(self.fetches, accounts=self.accounts, ttl=ttl, clock=self.clock)
        self.access = RegistryAccess(evidence, pull_secrets=store)

    def lookup(self, names: PullSecretNames) -> Any:
        return self.access.for_request(namespace=NAMESPACE, pull_secret_names=names)

    def sent(self) -> list[Any]:
        return [credentials for _, _, credentials in self.client.calls]


def test_a_template_is_asked_about_with_its_service_accounts_secret() -> None:
    reviews = Reviews({(NAMESPACE, "regcred"): ROBOT_SECRET}, {"builder": ("regcred",)})
    lookup = reviews.lookup(PullSecretNames((), service_account="builder"))
    assert lookup.digest(reference(IMAGE)) == DigestAnswer(SIGNED, "", True, TAG_POINTS_TO)
    assert lookup.signature(reference(IMAGE), SIGNED, TRUSTING_SIGNER).verified
    assert set(reviews.sent()) == {ROBOT}
    assert reviews.accounts.asked == [(NAMESPACE, "builder")]  # once for the whole review
    assert reviews.fetches.asked == [(NAMESPACE, "regcred")]


def test_nothing_is_read_while_nothing_needs_credentials() -> None:
    reviews = Reviews({(NAMESPACE, "regcred"): ROBOT_SECRET}, {"builder": ("regcred",)})
    pinned = reference(f"registry.example/app@{SIGNED}")
    lookup = reviews.lookup(PullSecretNames((), service_account="builder"))
    assert lookup.digest(pinned) == DigestAnswer(SIGNED)  # a digest needs no registry call
    assert (reviews.accounts.asked, reviews.fetches.asked) == ([], [])


def test_a_missing_service_account_is_no_error_but_named_in_a_refusal() -> None:
    reviews = Reviews({}, {})
    reviews.client.failure = Unauthorized(IMAGE, "HTTP 401 without credentials")
    answer = reviews.lookup(PullSecretNames((), service_account="default")).digest(reference(IMAGE))
    assert answer == DigestAnswer(
        None,
        "the registry refused the credentials (or anonymous access) (HTTP 401 without "
        'credentials); imagePullSecrets: ServiceAccount "default" in namespace "team" does not '
        "exist",
    )
    assert reviews.sent() == [None] and reviews.fetches.asked == []


def test_a_missing_service_account_does_not_fail_an_image_the_registry_serves() -> None:
    reviews = Reviews({}, {})
    lookup = reviews.lookup(PullSecretNames((), service_account="default"))
    assert lookup.digest(reference(IMAGE)).digest == SIGNED


def test_a_pod_reads_no_service_account() -> None:
    reviews = Reviews({(NAMESPACE, "regcred"): ROBOT_SECRET}, {"default": ("regcred",)})
    lookup = reviews.lookup(image_pull_secret_names(template("Pod")))
    assert lookup.digest(reference(IMAGE)).digest == SIGNED
    assert (reviews.accounts.asked, reviews.fetches.asked, reviews.sent()) == ([], [], [None])


def test_a_service_account_and_its_absence_are_kept_for_the_ttl(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    accounts = Accounts({"builder": ("regcred",)})
    store = PullSecretStore(Fetches({}), accounts=accounts, ttl=30, clock=clock)
    caplog.set_level(logging.INFO, logger="mamori.supplychain.pull_secrets")
    for _ in range(3):
        assert store.account(NAMESPACE, "builder") == AccountSecrets(("regcred",))
        assert store.account(NAMESPACE, "absent").names == ()
        clock.advance(10)
    assert accounts.asked == [(NAMESPACE, "builder"), (NAMESPACE, "absent")]
    assert [record.getMessage() for record in caplog.records] == [
        'imagePullSecrets: ServiceAccount "absent" in namespace "team" does not exist; the pod '
        "template is judged without its Secrets"
    ]
    accounts.accounts["builder"] = ("rotated",)
    clock.advance(1)  # 31 s after the first read
    assert store.account(NAMESPACE, "builder") == AccountSecrets(("rotated",))


def test_without_an_account_reader_no_service_account_is_read() -> None:
    store = PullSecretStore(Fetches({}))
    assert store.account(NAMESPACE, "builder") == AccountSecrets(())
