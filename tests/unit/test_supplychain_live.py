"""The per-review registry lookup (mamori.supplychain.live): budget, caches, failures as answers.

Pure logic over a small fake of the registry client (tags → digests, and a repository of
hand-signed cosign content from the cosign unit tests) and a clock the tests move; the real
registry is the integration tests' (test_admission_signatures.py, test_registry_resolution.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from mamori.engine import evaluate
from mamori.images import ImageReference, parse_reference
from mamori.policy import Policy, load_policies
from mamori.supplychain.cosign import load_public_keys
from mamori.supplychain.credentials import MalformedPullSecret
from mamori.supplychain.digest_cache import DigestCache
from mamori.supplychain.live import EvidenceConfig, RegistryEvidence, RequestLookup
from mamori.supplychain.lookup import ImageAnswers, LookupReport, answers_for
from mamori.supplychain.registry import (
    Credentials,
    Fetched,
    RegistryError,
    RegistryUnavailable,
    Resolution,
    Unauthorized,
)
from mamori.supplychain.requirements import SignatureRequirement
from tests.unit.test_cosign_verify import (
    SIGNER,
    STRANGER,
    FakeRepository,
    b64,
    digest_of,
    pem,
    put_legacy,
    sign,
    simple_signing_payload,
)
from tests.webhook.reviews import pod_spec, policy_document, workload

SIGNED = "sha256:" + "1" * 64
UNSIGNED = "sha256:" + "2" * 64
OTHER = "sha256:" + "3" * 64
REPOSITORY = "registry.example/app"
SECRET = Credentials("robot", "pull-password")
BUDGET = 2.0
VERIFIED_TTL = 300.0
REFUSED_TTL = 30.0
TRUSTING_SIGNER = SignatureRequirement(
    index=0, images=(), cosign_keys=load_public_keys([pem(SIGNER)])
)
TRUSTING_STRANGER = SignatureRequirement(
    index=1, images=(), cosign_keys=load_public_keys([pem(STRANGER)])
)


class Clock:
    """Monotonic seconds that move only when a test (or a slow fake registry) moves them."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeClient:
    """What live.py asks of a RegistryClient: resolve a tag, read manifests and blobs.

    Every call is recorded with the credentials it came with; ``failure`` is raised by every
    call while set; each call takes ``latency`` seconds of the injected clock.
    """

    clock: Clock
    tags: dict[str, str] = field(default_factory=dict)  # "app:1.0" → digest
    content: FakeRepository = field(default_factory=FakeRepository)
    failure: RegistryError | None = None
    latency: float = 0.0
    calls: list[tuple[str, str, Credentials | None]] = field(default_factory=list)
    time_left: list[float | None] = field(default_factory=list)  # the cap each call was given
    # tags kept like RegistryClient keeps them (key: tag + who); lifetime 0: never kept
    cache: DigestCache[Resolution] = field(
        default_factory=lambda: DigestCache(ttl=0, max_entries=64)
    )

    def cache_key(self, reference: ImageReference, credentials: Credentials | None) -> str:
        who = "anonymous" if credentials is None else credentials.username
        return f"{reference.path}:{reference.tag} {who}"

    def cached(
        self, reference: ImageReference, *, credentials: Credentials | None = None
    ) -> Resolution | None:
        return self.cache.get(self.cache_key(reference, credentials))

    def _call(self, kind: str, what: str, credentials: Credentials | None) -> None:
        self.calls.append((kind, what, credentials))
        self.clock.advance(self.latency)
        if self.failure is not None:
            raise self.failure

    def resolve(
        self,
        reference: ImageReference,
        *,
        credentials: Credentials | None = None,
        time_left: float | None = None,
    ) -> Resolution:
        self.time_left.append(time_left)
        kept = self.cached(reference, credentials=credentials)
        if kept is not None:
            return kept._replace(cached=True)
        self._call("resolve", str(reference), credentials)
        resolution = Resolution(reference, self.tags[f"{reference.path}:{reference.tag}"], None)
        self.cache.put(self.cache_key(reference, credentials), resolution)
        return resolution

    def get_manifest(
        self,
        reference: ImageReference,
        tag_or_digest: str,
        *,
        credentials: Credentials | None,
        time_left: float | None = None,
    ) -> Fetched | None:
        self.time_left.append(time_left)
        self._call("manifest", tag_or_digest, credentials)
        body = self.content.manifest(tag_or_digest)
        return None if body is None else Fetched(digest_of(body), None, body)

    def get_referrers(
        self,
        reference: ImageReference,
        digest: str,
        *,
        credentials: Credentials | None,
        time_left: float | None = None,
    ) -> Fetched | None:
        self.time_left.append(time_left)
        self._call("referrers", digest, credentials)
        return None  # no referrers API: the tag-schema fallback is read

    def get_blob(
        self,
        reference: ImageReference,
        digest: str,
        *,
        credentials: Credentials | None,
        time_left: float | None = None,
    ) -> Fetched | None:
        self.time_left.append(time_left)
        self._call("blob", digest, credentials)
        body = self.content.blob(digest)
        return None if body is None else Fetched(digest, None, body)

    def count(self, kind: str) -> int:
        return sum(1 for call in self.calls if call[0] == kind)


def sign_legacy(client: FakeClient, digest: str, key: object = SIGNER) -> None:
    """A cosign legacy signature of ``digest`` by ``key``, stored as cosign stores it."""
    payload = simple_signing_payload(digest)
    put_legacy(client.content, payload=payload, signature=b64(sign(key, payload)), image=digest)  # type: ignore[arg-type]


@dataclass
class World:
    clock: Clock
    client: FakeClient
    evidence: RegistryEvidence
    asked_credentials: list[str] = field(default_factory=list)
    credentials: Callable[[ImageReference], Credentials | None] = lambda reference: SECRET

    def review(self) -> RequestLookup:
        """A new admission review's lookup (its own budget, its own memo)."""

        def credentials_for(reference: ImageReference) -> Credentials | None:
            self.asked_credentials.append(str(reference))
            return self.credentials(reference)

        return self.evidence.for_request(credentials_for)


@pytest.fixture
def world() -> World:
    clock = Clock()
    client = FakeClient(clock, tags={"app:1.0": SIGNED, "app:2.0": UNSIGNED, "app:3.0": OTHER})
    sign_legacy(client, SIGNED)
    config = EvidenceConfig(
        budget=BUDGET, verified_ttl=VERIFIED_TTL, refused_ttl=REFUSED_TTL, max_entries=64
    )
    evidence = RegistryEvidence(client, config, clock=clock)  # type: ignore[arg-type]
    return World(clock, client, evidence)


def ref(text: str) -> ImageReference:
    return parse_reference(f"{REPOSITORY}{text}")


# --- digests ----------------------------------------------------------------------------------


def test_a_digest_reference_is_its_own_answer_with_no_call_and_no_credentials(
    world: World,
) -> None:
    lookup = world.review()
    answer = lookup.digest(ref(f"@{SIGNED}"))
    assert (answer.digest, answer.problem, answer.resolved) == (SIGNED, "", False)
    assert world.client.calls == []
    assert world.asked_credentials == []
    assert lookup.calls == 0


def test_a_tag_is_resolved_with_the_images_credentials(world: World) -> None:
    lookup = world.review()
    answer = lookup.digest(ref(":1.0"))
    assert (answer.digest, answer.problem, answer.resolved) == (SIGNED, "", True)
    assert world.client.calls == [("resolve", f"{REPOSITORY}:1.0", SECRET)]
    assert lookup.calls == 1


def test_each_tag_is_resolved_once_per_review_and_again_by_the_next(world: World) -> None:
    first = world.review()
    answers = [first.digest(ref(tag)) for tag in (":1.0", ":2.0", ":1.0", ":2.0", ":1.0")]
    assert [answer.digest for answer in answers] == [SIGNED, UNSIGNED, SIGNED, UNSIGNED, SIGNED]
    assert world.client.count("resolve") == 2
    assert world.asked_credentials == [f"{REPOSITORY}:1.0", f"{REPOSITORY}:2.0"]
    world.review().digest(ref(":1.0"))  # the memo is the review's, not the process's
    assert world.client.count("resolve") == 3


def test_an_answer_the_client_had_cached_is_not_counted_as_a_call(world: World) -> None:
    def cached_resolve(
        reference: ImageReference,
        *,
        credentials: Credentials | None = None,
        time_left: float | None = None,
    ) -> Resolution:
        return Resolution(reference, SIGNED, None, cached=True)

    world.client.resolve = cached_resolve  # type: ignore[method-assign]
    lookup = world.review()
    assert lookup.digest(ref(":1.0")).digest == SIGNED
    assert lookup.calls == 0


# --- failures are answers, never cached ---------------------------------------------------------

REGISTRY_FAILURES = [
    pytest.param(
        RegistryUnavailable(f"{REPOSITORY}:1.0", "ConnectionRefusedError"),
        "the registry is unreachable or failing (ConnectionRefusedError)",
        id="unreachable",
    ),
    pytest.param(
        Unauthorized(f"{REPOSITORY}:1.0", "HTTP 401"),
        "the registry refused the credentials (or anonymous access) (HTTP 401)",
        id="refused-credentials",
    ),
]


@pytest.mark.parametrize(("failure", "reason"), REGISTRY_FAILURES)
def test_a_registry_failure_resolving_is_an_answer_and_the_next_review_asks_again(
    world: World, failure: RegistryError, reason: str
) -> None:
    world.client.failure = failure
    answer = world.review().digest(ref(":1.0"))
    assert (answer.digest, answer.problem) == (None, reason)
    world.client.failure = None
    assert world.review().digest(ref(":1.0")).digest == SIGNED
    assert world.client.count("resolve") == 2


@pytest.mark.parametrize(("failure", "reason"), REGISTRY_FAILURES)
def test_a_registry_failure_reading_signatures_is_an_answer_and_not_cached(
    world: World, failure: RegistryError, reason: str
) -> None:
    world.client.failure = failure
    answer = world.review().signature(ref(":1.0"), SIGNED, TRUSTING_SIGNER)
    assert answer == (False, f"it could not be checked: {reason}")
    world.client.failure = None
    answer = world.review().signature(ref(":1.0"), SIGNED, TRUSTING_SIGNER)
    assert answer.verified, answer.detail
    assert world.client.count("manifest") == 2


def test_a_credentials_failure_is_an_answer_and_the_next_review_asks_again(world: World) -> None:
    def malformed(reference: ImageReference) -> Credentials | None:
        raise MalformedPullSecret('imagePullSecrets[0] Secret "regcred": not JSON')

    world.credentials = malformed
    lookup = world.review()
    digest = lookup.digest(ref(":1.0"))
    signature = lookup.signature(ref(":1.0"), SIGNED, TRUSTING_SIGNER)
    reason = 'no registry credentials: imagePullSecrets[0] Secret "regcred": not JSON'
    assert (digest.digest, digest.problem) == (None, reason)
    assert signature == (False, f"it could not be checked: {reason}")
    assert world.client.calls == []  # nothing was asked without the pod's credentials
    world.credentials = lambda reference: SECRET
    lookup = world.review()
    assert lookup.digest(ref(":1.0")).digest == SIGNED
    assert lookup.signature(ref(":1.0"), SIGNED, TRUSTING_SIGNER).verified
    assert world.asked_credentials.count(f"{REPOSITORY}:1.0") == 4


# --- signature answers: verified kept long, refused kept short ------------------------------


def test_a_verified_signature_is_kept_for_its_ttl(world: World) -> None:
    answer = world.review().signature(ref(":1.0"), SIGNED, TRUSTING_SIGNER)
    assert answer.verified and answer.detail.startswith("signed (legacy .sig tag")
    asked = len(world.client.calls)
    world.clock.advance(VERIFIED_TTL - 1)
    lookup = world.review()
    assert lookup.signature(ref(":1.0"), SIGNED, TRUSTING_SIGNER) == answer
    assert (len(world.client.calls), lookup.calls) == (asked, 0)
    assert world.asked_credentials == [f"{REPOSITORY}:1.0"]  # a cached answer needs none
    world.clock.advance(2)
    assert world.review().signature(ref(":1.0"), SIGNED, TRUSTING_SIGNER).verified
    assert len(world.client.calls) == 2 * asked


def test_a_refusal_expires_sooner_so_a_digest_signed_later_is_admitted(world: World) -> None:
    refused = world.review().signature(ref(":2.0"), UNSIGNED, TRUSTING_SIGNER)
    assert refused == (False, "no cosign signature found")
    asked = len(world.client.calls)
    sign_legacy(world.client, UNSIGNED)
    world.clock.advance(REFUSED_TTL - 1)
    assert world.review().signature(ref(":2.0"), UNSIGNED, TRUSTING_SIGNER) == refused
    assert len(world.client.calls) == asked
    world.clock.advance(2)  # past the refusal's TTL, still far inside a verified answer's
    assert world.review().signature(ref(":2.0"), UNSIGNED, TRUSTING_SIGNER).verified
    assert len(world.client.calls) > asked


def test_an_answer_for_one_set_of_keys_is_never_reused_for_another(world: World) -> None:
    assert world.review().signature(ref(":1.0"), SIGNED, TRUSTING_SIGNER).verified
    other = world.review().signature(ref(":1.0"), SIGNED, TRUSTING_STRANGER)
    assert other == (
        False,
        "cosign signatures found (legacy .sig tag (simple signing)), but none by a trusted key "
        "or certificate",
    )


# --- the budget -------------------------------------------------------------------------------

USED_UP = f"the {BUDGET:g}s this request may spend asking registries is used up"


def test_past_its_budget_a_review_answers_that_it_is_used_up_without_asking(
    world: World,
) -> None:
    world.client.latency = 0.75 * BUDGET  # a slow registry: two calls exceed the budget
    lookup = world.review()
    assert lookup.digest(ref(":1.0")).digest == SIGNED
    assert lookup.digest(ref(":2.0")).digest == UNSIGNED  # started with time left
    asked = len(world.client.calls)
    assert lookup.digest(ref(":3.0")) == (None, USED_UP, False, "")
    assert lookup.signature(ref(":2.0"), UNSIGNED, TRUSTING_SIGNER) == (
        False,
        f"it could not be checked: {USED_UP}",
    )
    assert len(world.client.calls) == asked
    # what needs no registry call is still answered
    assert lookup.digest(ref(":1.0")).digest == SIGNED  # the review's memo
    assert lookup.digest(ref(f"@{OTHER}")).digest == OTHER  # a digest reference
    assert lookup.report().exhausted  # counted by the webhook's metrics
    assert lookup.report().calls == 2


def test_an_exhausted_budget_still_serves_cached_signatures_and_the_next_review_has_its_own(
    world: World,
) -> None:
    verified = world.review().signature(ref(":1.0"), SIGNED, TRUSTING_SIGNER)
    assert verified.verified
    world.client.latency = 2 * BUDGET
    slow = world.review()
    assert slow.digest(ref(":3.0")).digest == OTHER  # one call, past the whole budget
    assert slow.signature(ref(":1.0"), SIGNED, TRUSTING_SIGNER) == verified
    assert slow.digest(ref(":2.0")).problem == USED_UP
    world.client.latency = 0.0
    assert world.review().digest(ref(":2.0")).digest == UNSIGNED


def test_a_review_within_its_budget_reports_it_was_not_exhausted(world: World) -> None:
    lookup = world.review()
    lookup.digest(ref(":1.0"))
    assert not lookup.report().exhausted


def test_the_budget_is_counted_from_the_start_of_the_review(world: World) -> None:
    lookup = world.review()
    world.clock.advance(BUDGET)  # the rules took the time before any registry call
    assert lookup.digest(ref(":1.0")).problem == USED_UP
    assert world.client.calls == []


def test_every_registry_call_is_capped_by_what_is_left_of_the_budget(world: World) -> None:
    """A signature check makes several calls; each gets the budget's remainder as its cap, so
    the budget bounds the review and not only when a new question starts."""
    world.client.latency = 0.1
    lookup = world.review()
    lookup.signature(ref(f"@{SIGNED}"), SIGNED, TRUSTING_SIGNER)
    caps = world.client.time_left
    assert len(caps) >= 2
    assert all(cap is not None for cap in caps)
    assert caps[0] == pytest.approx(BUDGET)
    assert caps[1] == pytest.approx(BUDGET - 0.1)  # shrinking as the review spends its budget


# --- whole answers per image (answer_all: what the rule asks on every review) ------------------

TAG_TTL = 10.0
TWO_IMAGES = [(ref(f"@{SIGNED}"), (TRUSTING_SIGNER,)), (ref(":1.0"), (TRUSTING_SIGNER,))]


@pytest.fixture
def kept_world(world: World) -> World:
    """The world with tags kept for TAG_TTL, as the real client keeps them."""
    world.client.cache = DigestCache(ttl=TAG_TTL, max_entries=64, clock=world.clock)
    return world


def verified(answers: list[ImageAnswers]) -> list[list[bool]]:
    return [[answer.verified for answer in found.signatures] for found in answers]


def test_whole_answers_are_kept_and_the_next_review_asks_nothing(kept_world: World) -> None:
    world = kept_world
    first = answers_for(world.review(), TWO_IMAGES)
    assert verified(first) == [[True], [True]]
    assert [found.digest.digest for found in first] == [SIGNED, SIGNED]
    asked = len(world.client.calls)
    lookup = world.review()
    assert answers_for(lookup, TWO_IMAGES) == first
    assert (len(world.client.calls), lookup.calls) == (asked, 0)
    assert world.evidence.answers_hits == 2
    assert lookup.report() == LookupReport(kept=2, asked=0, calls=0, exhausted=False, waited=0.0)


def test_a_review_that_asks_reports_its_calls_and_its_wait(kept_world: World) -> None:
    world = kept_world
    lookup = world.review()
    answers_for(lookup, [(ref(f"@{OTHER}"), (TRUSTING_SIGNER,)), (ref(":1.0"), (TRUSTING_SIGNER,))])
    report = lookup.report()
    assert (report.kept, report.asked, report.exhausted) == (0, 2, False)
    assert report.calls == 3  # a tag resolved, two digests' signatures read (a request or two)
    assert report.waited > 0


def test_kept_answers_end_with_their_first_part_a_moved_tag_is_seen(kept_world: World) -> None:
    world = kept_world
    answers_for(world.review(), TWO_IMAGES)
    world.client.tags["app:1.0"] = UNSIGNED  # the tag moves; the kept answer lasts TAG_TTL
    world.clock.advance(TAG_TTL - 1)
    assert verified(answers_for(world.review(), TWO_IMAGES)) == [[True], [True]]
    world.clock.advance(2)
    later = answers_for(world.review(), TWO_IMAGES)
    assert [found.digest.digest for found in later] == [SIGNED, UNSIGNED]
    assert verified(later) == [[True], [False]]
    assert later[1].signatures[0].detail == "no cosign signature found"


def test_a_kept_refusal_lasts_only_the_refused_ttl(kept_world: World) -> None:
    world = kept_world
    image = [(ref(f"@{UNSIGNED}"), (TRUSTING_SIGNER,))]
    assert verified(answers_for(world.review(), image)) == [[False]]
    sign_legacy(world.client, UNSIGNED)
    world.clock.advance(REFUSED_TTL - 1)
    assert verified(answers_for(world.review(), image)) == [[False]]
    world.clock.advance(2)
    assert verified(answers_for(world.review(), image)) == [[True]]


def test_a_failure_is_never_kept_whole(kept_world: World) -> None:
    world = kept_world
    world.client.failure = RegistryUnavailable(REPOSITORY, "ConnectionRefusedError")
    lookup = world.review()
    failed = answers_for(lookup, TWO_IMAGES)
    assert lookup.report().calls == len(world.client.calls)  # failed round trips count too
    assert failed[1].digest.digest is None and not failed[0].signatures[0].verified
    world.client.failure = None
    assert verified(answers_for(world.review(), TWO_IMAGES)) == [[True], [True]]
    assert world.evidence.answers_hits == 0


def test_a_tags_kept_answer_is_never_served_to_other_credentials(kept_world: World) -> None:
    world = kept_world
    answers_for(world.review(), TWO_IMAGES)
    resolved = world.client.count("resolve")
    other = Credentials("other-robot", "other-password")
    world.credentials = lambda reference: other
    answers_for(world.review(), TWO_IMAGES)
    assert world.client.count("resolve") == resolved + 1
    assert world.client.calls[-1] == ("resolve", f"{REPOSITORY}:1.0", other)


def test_answers_kept_for_one_set_of_keys_are_never_reused_for_another(
    kept_world: World,
) -> None:
    world = kept_world
    assert verified(answers_for(world.review(), TWO_IMAGES)) == [[True], [True]]
    strangers = [(reference, (TRUSTING_STRANGER,)) for reference, _ in TWO_IMAGES]
    assert verified(answers_for(world.review(), strangers)) == [[False], [False]]


def test_kept_whole_answers_are_bounded(kept_world: World) -> None:
    world = kept_world
    digests = [f"sha256:{n:064x}" for n in range(1, 80)]
    for digest in digests:
        answers_for(world.review(), [(ref(f"@{digest}"), (TRUSTING_SIGNER,))])
    assert len(world.evidence._answers) == 64  # max_entries: the oldest went first
    assert (ref(f"@{digests[0]}"), (TRUSTING_SIGNER.fingerprint,), None) not in (
        world.evidence._answers
    )


# --- whole pods: every image verified, kept until the first image's answer ends ------------------


def signing_policy(key: object = SIGNER) -> Policy:
    document = policy_document(
        "signed",
        enforcement="Enforce",
        podSecurity="privileged",
        imageSignatures=[{"images": [REPOSITORY], "cosign": {"publicKeys": [pem(key).decode()]}}],
    )
    (policy,) = load_policies([document])
    return policy


def judged(world: World, *images: str, policy: Policy | None = None) -> tuple[bool, RequestLookup]:
    """Whether a review of a Pod with ``images`` is allowed, and the review's lookup."""
    lookup = world.review()
    decision = evaluate(
        workload("Pod", spec=pod_spec(*images)), [policy or signing_policy()], registry=lookup
    )
    assert decision is not None
    return decision.allowed, lookup


POD = (f"{REPOSITORY}@{SIGNED}", f"{REPOSITORY}:1.0")


def test_a_pod_seen_all_verified_is_answered_whole_without_a_call(kept_world: World) -> None:
    world = kept_world
    allowed, first = judged(world, *POD)
    assert allowed and first.report().asked == 2
    asked = len(world.client.calls)
    world.asked_credentials.clear()
    allowed, again = judged(world, *POD)
    assert allowed
    assert again.report() == LookupReport(kept=2, asked=0, calls=0, exhausted=False, waited=0.0)
    assert len(world.client.calls) == asked
    assert world.evidence.answers_hits == 0  # not even the images' whole answers were looked up
    assert world.asked_credentials == [f"{REPOSITORY}:1.0"]  # the tag's: part of the pod's key


def test_a_kept_pod_ends_with_its_tag_and_a_moved_tag_is_denied(kept_world: World) -> None:
    world = kept_world
    assert judged(world, *POD)[0]
    world.client.tags["app:1.0"] = UNSIGNED
    world.clock.advance(TAG_TTL - 1)
    assert judged(world, *POD)[0]  # within the tag's lifetime, as for any cached tag
    world.clock.advance(2)
    assert not judged(world, *POD)[0]


def test_a_pod_with_a_finding_is_never_kept_whole(kept_world: World) -> None:
    world = kept_world
    pod = (f"{REPOSITORY}@{SIGNED}", f"{REPOSITORY}@{UNSIGNED}")
    assert not judged(world, *pod)[0]
    assert not judged(world, *pod)[0]
    assert world.evidence._pods == {}


def test_a_kept_pod_is_not_reused_for_other_keys_other_images_or_other_credentials(
    kept_world: World,
) -> None:
    world = kept_world
    assert judged(world, *POD)[0]
    assert not judged(world, *POD, policy=signing_policy(STRANGER))[0]  # other keys
    assert not judged(world, *POD, f"{REPOSITORY}@{UNSIGNED}")[0]  # one image more
    resolved = world.client.count("resolve")
    world.credentials = lambda reference: Credentials("other-robot", "other-password")
    allowed, lookup = judged(world, *POD)
    assert allowed  # judged again, image by image: the digest's answer is anyone's, the tag asked
    assert (lookup.report().kept, lookup.report().asked) == (1, 1)
    assert world.client.count("resolve") == resolved + 1
