"""The pod's imagePullSecrets at admission (``--pod-pull-secrets``): found, read lazily, kept.

Where a pod names its Secrets, what a Secret's data gives, how long Secrets and their absences
are kept, that a review reads them only when a registry call needs credentials, that a missing
one is named in the answer it spoiled, and that admission hands the names over. The reads
themselves are proven on the real API server (a Secret made by ``kubectl create secret
docker-registry``, a missing one, one of another type, one the reader may not get).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import kubernetes.client
import orjson
import pytest

from mamori.images import ImageReference, parse_reference
from mamori.policy import load_policies
from mamori.supplychain.live import EvidenceConfig, RegistryEvidence
from mamori.supplychain.lookup import TAG_POINTS_TO, DigestAnswer, SignatureAnswer, answers_for
from mamori.supplychain.pull_secrets import (
    PulledSecret,
    PullSecretStore,
    image_pull_secret_names,
    registry_data,
)
from mamori.supplychain.registry import Credentials, Unauthorized
from mamori.supplychain.requirements import SignatureRequirement
from mamori_webhook.admission import Admission
from mamori_webhook.command import StartupError, check_registry_access
from mamori_webhook.metrics import AdmissionMetrics
from mamori_webhook.policy_source import StaticPolicySource
from mamori_webhook.pull_secrets import KubeSecretFetch
from mamori_webhook.registry_access import RegistryAccess
from mamori_webhook.settings import WebhookSettings
from tests.cluster_fixtures import Kubectl
from tests.unit.test_cosign_verify import SIGNER, pem
from tests.unit.test_supplychain_live import (
    SIGNED,
    TRUSTING_SIGNER,
    UNSIGNED,
    Clock,
    FakeClient,
    sign_legacy,
)
from tests.webhook.reviews import pod_spec, policy_document, review, workload

NAMESPACE = "team"
ROBOT = Credentials("robot", "robot-password")
ROTATED = Credentials("robot", "rotated-password")
IMAGE = "registry.example/app:1.0"


def docker_config(server: str, credentials: Credentials) -> bytes:
    """``.dockerconfigjson`` as ``kubectl create secret docker-registry`` writes it."""
    pair = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
    auths = {server: {"username": credentials.username, "password": credentials.password}}
    auths[server]["auth"] = pair
    return json.dumps({"auths": auths}).encode()


ROBOT_SECRET = PulledSecret({".dockerconfigjson": docker_config("registry.example", ROBOT)})


# --- where a pod names its Secrets ------------------------------------------------------------


def with_pull_secrets(kind: str, entries: Any) -> dict[str, Any]:
    spec = pod_spec()
    spec["imagePullSecrets"] = entries
    return workload(kind, spec=spec)


NAMES = [
    pytest.param(with_pull_secrets("Pod", [{"name": "a"}, {"name": "b"}]), ("a", "b"), id="pod"),
    pytest.param(with_pull_secrets("Deployment", [{"name": "a"}]), ("a",), id="deployment"),
    pytest.param(with_pull_secrets("CronJob", [{"name": "a"}]), ("a",), id="cronjob-template"),
    pytest.param(with_pull_secrets("PodTemplate", [{"name": "a"}]), ("a",), id="podtemplate"),
    pytest.param(workload("Pod"), (), id="none-named"),
    pytest.param(
        with_pull_secrets("Pod", [{"name": ""}, {}, "a", {"name": 7}, {"name": "b"}]),
        ("b",),
        id="entries-without-a-name-skipped",
    ),
    pytest.param(with_pull_secrets("Pod", {"name": "a"}), (), id="not-a-list"),
    pytest.param(
        {**with_pull_secrets("Deployment", [{"name": "a"}]), "apiVersion": "example.com/v1"},
        (),
        id="not-a-workload-group",
    ),
    pytest.param({"apiVersion": "v1", "kind": "ConfigMap"}, (), id="not-a-workload"),
    pytest.param(
        {"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": "x"}},
        (),
        id="malformed-template",
    ),
]


@pytest.mark.parametrize(("resource", "expected"), NAMES)
def test_the_secret_names_come_from_the_pod_spec_wherever_the_kind_keeps_it(
    resource: dict[str, Any], expected: tuple[str, ...]
) -> None:
    assert image_pull_secret_names(resource) == expected


# --- what a Secret gives ----------------------------------------------------------------------

CONFIG = docker_config("registry.example", ROBOT)
DATA = [
    pytest.param(
        "kubernetes.io/dockerconfigjson",
        {".dockerconfigjson": base64.b64encode(CONFIG).decode()},
        PulledSecret({".dockerconfigjson": CONFIG}),
        id="dockerconfigjson",
    ),
    pytest.param(
        "kubernetes.io/dockercfg",
        {".dockercfg": base64.b64encode(b"{}").decode()},
        PulledSecret({".dockercfg": b"{}"}),
        id="legacy-dockercfg",
    ),
    pytest.param(
        "Opaque",
        {".dockerconfigjson": base64.b64encode(CONFIG).decode()},
        PulledSecret(
            {},
            "S is of type Opaque, not kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg",
        ),
        id="another-type-is-not-used-as-by-the-kubelet",
    ),
    pytest.param(
        "kubernetes.io/dockerconfigjson",
        {".dockercfg": base64.b64encode(b"{}").decode()},
        PulledSecret({}, "S has no .dockerconfigjson key"),
        id="key-of-another-type",
    ),
    pytest.param(
        "kubernetes.io/dockerconfigjson",
        {".dockerconfigjson": "not base64!"},
        PulledSecret(None, "S: .dockerconfigjson is not base64"),
        id="not-base64",
    ),
]


@pytest.mark.parametrize(("kind", "data", "expected"), DATA)
def test_a_secret_gives_the_key_its_type_names(
    kind: str, data: dict[str, str], expected: PulledSecret
) -> None:
    assert registry_data(kind, data, where="S") == expected


# --- the store: kept for a TTL, absences too, logged once per TTL ------------------------------


class Fetches:
    """A fake API server: Secrets by (namespace, name); every GET recorded."""

    def __init__(self, secrets: dict[tuple[str, str], PulledSecret]) -> None:
        self.secrets = secrets
        self.asked: list[tuple[str, str]] = []

    def __call__(self, namespace: str, name: str) -> PulledSecret:
        self.asked.append((namespace, name))
        missing = PulledSecret(None, f'Secret "{name}" in namespace "{namespace}" does not exist')
        return self.secrets.get((namespace, name), missing)


def test_a_secret_is_read_once_per_ttl(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    fetches = Fetches({(NAMESPACE, "regcred"): ROBOT_SECRET})
    store = PullSecretStore(fetches, ttl=30, clock=clock)
    assert store.get(NAMESPACE, "regcred") == ROBOT_SECRET
    clock.advance(29)
    assert store.get(NAMESPACE, "regcred") == ROBOT_SECRET
    assert fetches.asked == [(NAMESPACE, "regcred")]
    rotated = PulledSecret({".dockerconfigjson": docker_config("registry.example", ROTATED)})
    fetches.secrets[(NAMESPACE, "regcred")] = rotated
    clock.advance(2)
    assert store.get(NAMESPACE, "regcred") == rotated
    assert len(fetches.asked) == 2
    assert not caplog.records


def test_an_absent_secret_is_remembered_and_logged_once_per_ttl(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    fetches = Fetches({})
    store = PullSecretStore(fetches, ttl=30, clock=clock)
    caplog.set_level(logging.WARNING, logger="mamori_webhook.pull_secrets")
    for _ in range(3):
        assert store.get(NAMESPACE, "absent").data is None
        clock.advance(10)
    assert len(fetches.asked) == 1
    assert [record.getMessage() for record in caplog.records] == [
        'imagePullSecrets: Secret "absent" in namespace "team" does not exist; '
        "registries are asked without it"
    ]
    clock.advance(1)  # 31 s after the first read
    store.get(NAMESPACE, "absent")
    assert (len(fetches.asked), len(caplog.records)) == (2, 2)


def test_the_store_is_bounded() -> None:
    fetches = Fetches({})
    store = PullSecretStore(fetches, ttl=30, max_entries=2, clock=Clock())
    for name in ("a", "b", "c", "a"):
        store.get(NAMESPACE, name)
    assert fetches.asked == [(NAMESPACE, name) for name in ("a", "b", "c", "a")]


# --- a review's lookup: the pod's Secrets first, read only when needed --------------------------


class Reviews:
    """A RegistryAccess over the fake registry client, reading Secrets from ``fetches`` with
    no cache of its own (ttl 0), so that every read the lookup makes is seen."""

    def __init__(self, secrets: dict[tuple[str, str], PulledSecret]) -> None:
        self.clock = Clock()
        self.client = FakeClient(self.clock, tags={"app:1.0": SIGNED})
        sign_legacy(self.client, SIGNED)
        self.fetches = Fetches(secrets)
        evidence = RegistryEvidence(
            self.client,  # type: ignore[arg-type]
            EvidenceConfig(budget=2.0),
            clock=self.clock,
        )
        store = PullSecretStore(self.fetches, ttl=0, clock=self.clock)
        self.access = RegistryAccess(evidence, pull_secrets=store)

    def lookup(self, *names: str, namespace: str | None = NAMESPACE) -> Any:
        return self.access.for_request(namespace=namespace, pull_secret_names=names)

    def sent(self) -> list[Credentials | None]:
        return [credentials for _, _, credentials in self.client.calls]


def reference(text: str) -> ImageReference:
    return parse_reference(text)


def test_the_registry_is_asked_with_the_pods_secret() -> None:
    reviews = Reviews({(NAMESPACE, "regcred"): ROBOT_SECRET})
    lookup = reviews.lookup("regcred")
    assert lookup.digest(reference(IMAGE)) == DigestAnswer(SIGNED, "", True, TAG_POINTS_TO)
    assert lookup.signature(reference(IMAGE), SIGNED, TRUSTING_SIGNER).verified
    assert set(reviews.sent()) == {ROBOT}
    assert reviews.fetches.asked == [(NAMESPACE, "regcred")]  # once for the whole review


def test_no_secret_is_read_while_nothing_needs_the_registry() -> None:
    reviews = Reviews({(NAMESPACE, "regcred"): ROBOT_SECRET})
    assert reviews.lookup("regcred").signature(reference(IMAGE), SIGNED, TRUSTING_SIGNER).verified
    read = len(reviews.fetches.asked)
    lookup = reviews.lookup("regcred")  # the next review: the signature is cached
    pinned = reference(f"registry.example/app@{SIGNED}")
    assert lookup.digest(pinned) == DigestAnswer(SIGNED)
    assert lookup.signature(pinned, SIGNED, TRUSTING_SIGNER).verified
    assert len(reviews.fetches.asked) == read == 1


@pytest.mark.parametrize(
    ("names", "namespace"),
    [pytest.param((), NAMESPACE, id="no-secrets-named"), pytest.param(("x",), None, id="no-ns")],
)
def test_without_names_or_a_namespace_nothing_is_read_and_the_registry_is_asked_anonymously(
    names: Sequence[str], namespace: str | None
) -> None:
    reviews = Reviews({})
    assert reviews.lookup(*names, namespace=namespace).digest(reference(IMAGE)).digest == SIGNED
    assert (reviews.fetches.asked, reviews.sent()) == ([], [None])


def test_a_missing_secret_is_named_in_the_answer_the_registry_refused() -> None:
    reviews = Reviews({})
    reviews.client.failure = Unauthorized(IMAGE, "HTTP 401 without credentials")
    lookup = reviews.lookup("absent")
    answer = lookup.digest(reference(IMAGE))
    assert answer == DigestAnswer(
        None,
        "the registry refused the credentials (or anonymous access) (HTTP 401 without "
        'credentials); imagePullSecrets: Secret "absent" in namespace "team" does not exist',
    )
    assert reviews.sent() == [None]  # asked anonymously, as the kubelet pulls without it
    signature = lookup.signature(reference(IMAGE), SIGNED, TRUSTING_SIGNER)
    assert not signature.verified
    assert signature.detail.endswith(
        'imagePullSecrets: Secret "absent" in namespace "team" does not exist'
    )


def test_whole_answers_name_the_missing_secret_and_report_what_was_asked() -> None:
    reviews = Reviews({})
    reviews.client.failure = Unauthorized(IMAGE, "HTTP 401 without credentials")
    lookup = reviews.lookup("absent")
    pinned = reference(f"registry.example/app@{SIGNED}")
    questions = [(reference(IMAGE), (TRUSTING_SIGNER,)), (pinned, (TRUSTING_SIGNER,))]
    tagged, by_digest = answers_for(lookup, questions)
    missing = 'imagePullSecrets: Secret "absent" in namespace "team" does not exist'
    assert tagged.digest.digest is None and tagged.digest.problem.endswith(missing)
    assert tagged.signatures == ()
    assert not by_digest.signatures[0].verified
    assert by_digest.signatures[0].detail.endswith(missing)
    report = lookup.report()
    assert (report.kept, report.asked, report.calls) == (0, 2, 2)
    reviews.client.failure = None
    _, signed = answers_for(reviews.lookup("absent"), questions)
    assert signed.signatures[0].verified and missing not in signed.signatures[0].detail


def test_one_pods_missing_secret_is_never_named_in_another_pods_kept_answer() -> None:
    reviews = Reviews({(NAMESPACE, "regcred"): ROBOT_SECRET})
    unsigned = [(reference(f"registry.example/app@{UNSIGNED}"), (TRUSTING_SIGNER,))]
    (first,) = answers_for(reviews.lookup("absent"), unsigned)
    missing = 'imagePullSecrets: Secret "absent" in namespace "team" does not exist'
    assert first.signatures[0].detail.endswith(missing)
    (kept,) = answers_for(reviews.lookup("regcred"), unsigned)  # the refusal, kept 30 s
    assert kept.signatures[0] == (False, "no cosign signature found")


def test_a_missing_secret_does_not_fail_an_image_the_registry_serves_anyway() -> None:
    reviews = Reviews({})
    lookup = reviews.lookup("absent")
    assert lookup.digest(reference(IMAGE)) == DigestAnswer(SIGNED, "", True, TAG_POINTS_TO)
    signature = lookup.signature(reference(IMAGE), SIGNED, TRUSTING_SIGNER)
    assert signature.verified and "imagePullSecrets" not in signature.detail


def test_a_malformed_secret_is_named_by_its_place_in_the_pods_list() -> None:
    bad = PulledSecret({".dockerconfigjson": b"{not json"})
    reviews = Reviews({(NAMESPACE, "bad"): bad})
    answer = reviews.lookup("absent", "bad").digest(reference(IMAGE))
    assert answer.digest is None
    assert answer.problem.startswith(
        'no registry credentials: imagePullSecrets[1] Secret "bad" key .dockerconfigjson: not JSON'
    )
    assert reviews.client.calls == []


def test_the_reviewed_object_is_read_for_secret_names_only_with_the_flag() -> None:
    reviews = Reviews({(NAMESPACE, "regcred"): ROBOT_SECRET})
    pod = workload("Pod", spec={**pod_spec(IMAGE), "imagePullSecrets": [{"name": "regcred"}]})
    lookup = reviews.access.for_request(namespace=NAMESPACE, pod=pod)
    assert lookup.digest(reference(IMAGE)).digest == SIGNED
    assert (reviews.fetches.asked, set(reviews.sent())) == ([(NAMESPACE, "regcred")], {ROBOT})
    unread = {"kind": "Pod", "apiVersion": "v1", "spec": "never looked at without the flag"}
    plain = RegistryAccess(reviews.access.evidence).for_request(namespace=NAMESPACE, pod=unread)
    assert plain.digest(reference(IMAGE)).digest == SIGNED


def test_without_the_flag_the_pods_secrets_are_never_read() -> None:
    reviews = Reviews({(NAMESPACE, "regcred"): ROBOT_SECRET})
    access = RegistryAccess(reviews.access.evidence)
    lookup = access.for_request(namespace=NAMESPACE, pull_secret_names=("regcred",))
    assert lookup.digest(reference(IMAGE)).digest == SIGNED
    assert (reviews.fetches.asked, reviews.sent()) == ([], [None])


# --- admission hands the names over -----------------------------------------------------------


class Recorder:
    """A registry for reviews that records what each review asked it with."""

    def __init__(self) -> None:
        self.asked: list[dict[str, Any]] = []

    def __call__(self, *, namespace: str | None, pod: Any) -> Any:
        names = tuple(image_pull_secret_names(pod))
        self.asked.append({"namespace": namespace, "pull_secret_names": names})
        return Signed()


class Signed:
    def digest(self, reference: ImageReference) -> DigestAnswer:
        return DigestAnswer(reference.digest or SIGNED, resolved=reference.digest is None)

    def signature(
        self, reference: ImageReference, digest: str, requirement: SignatureRequirement
    ) -> SignatureAnswer:
        return SignatureAnswer(True, "signed")


def signature_policies() -> StaticPolicySource:
    key = pem(SIGNER).decode()
    document = policy_document(
        "signed",
        enforcement="Enforce",
        podSecurity="privileged",
        imageSignatures=[{"images": ["registry.example/app"], "cosign": {"publicKeys": [key]}}],
    )
    return StaticPolicySource(load_policies([document]))


@pytest.mark.parametrize(
    ("kind", "names"),
    [("Pod", ("regcred", "other")), ("CronJob", ("regcred",)), ("Deployment", ())],
)
def test_admission_passes_the_namespace_and_the_pods_secret_names(
    kind: str, names: tuple[str, ...]
) -> None:
    recorder = Recorder()
    admission = Admission(
        policy_source=signature_policies(), metrics=AdmissionMetrics(), registry=recorder
    )
    spec = pod_spec(IMAGE)
    if names:
        spec["imagePullSecrets"] = [{"name": name} for name in names]
    verdict = admission.review(orjson.dumps(review(workload(kind, spec=spec), namespace="shop")))
    assert verdict.response["response"]["allowed"], verdict.response
    assert recorder.asked == [{"namespace": "shop", "pull_secret_names": names}]


def test_admission_asks_no_registry_when_no_policy_does() -> None:
    recorder = Recorder()
    source = StaticPolicySource(load_policies([policy_document("plain", podSecurity="baseline")]))
    admission = Admission(policy_source=source, metrics=AdmissionMetrics(), registry=recorder)
    spec = pod_spec(IMAGE)
    spec["imagePullSecrets"] = [{"name": "regcred"}]
    admission.review(orjson.dumps(review(workload("Pod", spec=spec))))
    assert recorder.asked == []


# --- the reads, on the real API server ----------------------------------------------------------


@pytest.mark.integration
def test_secrets_are_read_from_the_api_server_as_the_kubelet_would_use_them(
    kubectl: Kubectl, kube_api: kubernetes.client.ApiClient, namespace: str
) -> None:
    kubectl(
        "create", "secret", "docker-registry", "regcred", "-n", namespace,
        "--docker-server=registry.example", f"--docker-username={ROBOT.username}",
        f"--docker-password={ROBOT.password}",
    )  # fmt: skip
    kubectl("create", "secret", "generic", "plain", "-n", namespace, "--from-literal=a=b")
    fetch = KubeSecretFetch(kube_api, timeout=5)
    found = fetch(namespace, "regcred")
    assert found.problem == ""
    assert found.data is not None
    config = json.loads(found.data[".dockerconfigjson"])
    assert config["auths"]["registry.example"]["username"] == ROBOT.username
    assert fetch(namespace, "absent") == PulledSecret(
        None, f'Secret "absent" in namespace "{namespace}" does not exist'
    )
    assert fetch(namespace, "plain") == PulledSecret(
        {},
        f'Secret "plain" in namespace "{namespace}" is of type Opaque, not '
        "kubernetes.io/dockerconfigjson or kubernetes.io/dockercfg",
    )


@pytest.mark.integration
def test_a_secret_the_webhook_may_not_read_is_an_answer_not_an_error(
    kubectl: Kubectl, kube_api: kubernetes.client.ApiClient, namespace: str
) -> None:
    kubectl("create", "secret", "generic", "regcred", "-n", namespace, "--from-literal=a=b")
    nobody = kubernetes.client.ApiClient(
        kube_api.configuration, header_name="Impersonate-User", header_value="mamori-nobody"
    )
    with nobody:
        pulled = KubeSecretFetch(nobody, timeout=5)(namespace, "regcred")
    assert pulled == PulledSecret(
        None,
        f'the webhook may not read Secret "regcred" in namespace "{namespace}" '
        "(it needs get on secrets there)",
    )


# --- the flag ---------------------------------------------------------------------------------


def test_the_flag_without_a_cluster_to_read_from_stops_the_start(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")  # no cluster, no context
    settings = WebhookSettings(
        tls_cert=Path("unused.crt"),
        tls_key=Path("unused.key"),
        kubeconfig=kubeconfig,
        pod_pull_secrets=True,
    )
    with pytest.raises(StartupError) as stopped:
        check_registry_access(settings)
    assert "--pod-pull-secrets: no cluster to read imagePullSecrets from" in str(stopped.value)
    check_registry_access(dataclasses.replace(settings, pod_pull_secrets=False))


def test_the_flag_is_off_by_default_and_says_what_it_needs() -> None:
    field = {field.name: field for field in dataclasses.fields(WebhookSettings)}["pod_pull_secrets"]
    assert field.default is False
    assert "needs get on secrets" in field.metadata["help"]
