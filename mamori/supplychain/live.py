"""Registry answers for admission: tags resolved and signatures verified, cached, within a budget.

One :class:`RegistryEvidence` per process holds what is worth keeping between requests: the
registry client (its tag → digest and token caches) and verified signature answers per
(repository, digest, trusted keys). Each admission request gets its own
:class:`RequestLookup` (:meth:`RegistryEvidence.for_request`): the credentials for that pod's
images and one time budget for all its registry calls, so a pod with ten images from a slow
registry is still answered within the webhook's timeout.

Failures of the registry (unreachable, timeout, refused credentials, oversize answers) are
answers too, with the reason in words, and are never cached: the next request asks again.
"""

from __future__ import annotations

import datetime
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from mamori.images import ImageReference
from mamori.supplychain import cosign
from mamori.supplychain.artifacts import RepositorySource
from mamori.supplychain.credentials import CredentialsError
from mamori.supplychain.digest_cache import CacheStats, DigestCache
from mamori.supplychain.lookup import TAG_POINTS_TO, DigestAnswer, SignatureAnswer
from mamori.supplychain.registry import Credentials, RegistryClient, RegistryError
from mamori.supplychain.requirements import SignatureRequirement
from mamori.supplychain.verdicts import Malformed, NotSigned, UnknownKey, Untrusted, Verified

CredentialsFor = Callable[[ImageReference], "Credentials | None"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceConfig:
    """How long answers are kept, and how long one request may spend asking registries.

    ``budget`` (seconds) bounds all registry calls of one admission request together; it must
    leave room inside the webhook's ``timeoutSeconds``. Verified signatures are kept
    ``verified_ttl`` seconds, refusals ``refused_ttl`` (short: a digest signed a moment ago is
    admitted soon after), at most ``max_entries`` answers.
    """

    budget: float = 2.0
    verified_ttl: float = 300.0
    refused_ttl: float = 30.0
    max_entries: int = 4096
    concurrency: int = 4
    """Images of one review asked about at once (threads shared by the process's reviews)."""

    def __post_init__(self) -> None:
        if not self.budget > 0:
            raise ValueError(f"budget must be positive seconds, got {self.budget!r}")
        if min(self.verified_ttl, self.refused_ttl, self.max_entries) < 0:
            raise ValueError("cache lifetimes and size must not be negative")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")


def no_credentials(reference: ImageReference) -> Credentials | None:
    return None


class RegistryEvidence:
    """What the process knows from registries; shared by every request thread."""

    def __init__(
        self,
        client: RegistryClient,
        config: EvidenceConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self.client = client
        self.config = config or EvidenceConfig()
        self._clock = clock
        self._wall_clock = wall_clock
        self._verified: DigestCache[SignatureAnswer] = DigestCache(
            ttl=self.config.verified_ttl, max_entries=self.config.max_entries, clock=clock
        )
        self._refused: DigestCache[SignatureAnswer] = DigestCache(
            ttl=self.config.refused_ttl, max_entries=self.config.max_entries, clock=clock
        )
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()

    def executor(self) -> ThreadPoolExecutor:
        """The threads that ask registries ahead of a review's rules, made on first use (in a
        gunicorn worker: after the fork)."""
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.config.concurrency, thread_name_prefix="mamori-registry"
                )
            return self._executor

    def for_request(self, credentials_for: CredentialsFor = no_credentials) -> RequestLookup:
        """A lookup for one admission request, with its own budget and credentials."""
        return RequestLookup(self, credentials_for, self._clock() + self.config.budget)

    def signature_cache_stats(self) -> tuple[CacheStats, CacheStats]:
        """(verified, refused) cache counters, for metrics."""
        return self._verified.stats(), self._refused.stats()

    def now(self) -> datetime.datetime:
        return self._wall_clock()

    def remaining(self, until: float) -> float:
        return until - self._clock()

    def cached_signature(self, key: str) -> SignatureAnswer | None:
        return self._verified.get(key) or self._refused.get(key)

    def keep_signature(self, key: str, answer: SignatureAnswer) -> None:
        (self._verified if answer.verified else self._refused).put(key, answer)


class RequestLookup:
    """A :class:`~mamori.supplychain.lookup.RegistryLookup` for one request: its rule asks in
    turn; :meth:`prefetch` may ask ahead on the process's registry threads."""

    def __init__(self, evidence: RegistryEvidence, credentials_for: CredentialsFor, until: float):
        self._evidence = evidence
        self._credentials_for = credentials_for
        self._until = until
        self._digests: dict[ImageReference, DigestAnswer] = {}
        self._signatures: dict[str, SignatureAnswer] = {}  # this review's answers, failures too
        self.calls = 0  # registry round trips started for this request (cache misses)

    def prefetch(
        self, questions: Sequence[tuple[ImageReference, Sequence[SignatureRequirement]]]
    ) -> None:
        """Ask about several images at once, ahead of the rule's own questions (which then
        find the answers kept): a pod's images are judged in the time of the slowest, not of
        all of them together. Waits at most for what is left of the budget; answers not in by
        then are asked again, in turn, by the rule, and then say the budget is used up."""
        pending = [(ref, reqs) for ref, reqs in questions if not self._answered(ref, reqs)]
        if len(pending) < 2:
            return  # nothing to gain from threads
        executor = self._evidence.executor()
        futures = [executor.submit(self._answer, ref, reqs) for ref, reqs in pending]
        wait(futures, timeout=max(self._left(), 0.0))

    def _answered(
        self, reference: ImageReference, requirements: Sequence[SignatureRequirement]
    ) -> bool:
        """Whether every answer about the image is known without asking (cached answers are
        kept for the rule's own pass, so it finds them at once)."""
        digest = reference.digest
        if digest is None:
            known = self._digests.get(reference) or self._cached_digest(reference)
            if known is None:
                return False
            if known.digest is None:
                return True  # the tag's failure is the answer
            digest = known.digest
        for requirement in requirements:
            key = self._signature_key(reference, digest, requirement)
            if key in self._signatures:
                continue
            cached = self._evidence.cached_signature(key)
            if cached is None:
                return False
            self._signatures[key] = cached
        return True

    def _cached_digest(self, reference: ImageReference) -> DigestAnswer | None:
        """The tag's digest from the client's cache, kept for the rule's pass; None: ask."""
        try:
            kept = self._evidence.client.cached(
                reference, credentials=self._credentials_for(reference)
            )
        except CredentialsError:
            return None  # the rule's own question says why
        if kept is None:
            return None
        answer = DigestAnswer(kept.digest, resolved=True, note=TAG_POINTS_TO)
        self._digests[reference] = answer
        return answer

    def _answer(
        self, reference: ImageReference, requirements: Sequence[SignatureRequirement]
    ) -> None:
        answer = self.digest(reference)
        if answer.digest is not None:
            for requirement in requirements:
                self.signature(reference, answer.digest, requirement)

    @staticmethod
    def _signature_key(
        reference: ImageReference, digest: str, requirement: SignatureRequirement
    ) -> str:
        return f"{reference.registry}/{reference.path}@{digest}#{requirement.fingerprint}"

    def digest(self, reference: ImageReference) -> DigestAnswer:
        if reference.digest is not None:
            return DigestAnswer(reference.digest)
        known = self._digests.get(reference)
        if known is not None:
            return known
        problem = self._out_of_time()
        if problem:
            return DigestAnswer(None, problem)
        client = self._evidence.client
        try:
            resolution = client.resolve(
                reference, credentials=self._credentials_for(reference), time_left=self._left()
            )
        except RegistryError as error:
            answer = DigestAnswer(None, _registry_problem(error))
        except CredentialsError as error:
            answer = DigestAnswer(None, f"no registry credentials: {error}")
        else:
            self.calls += not resolution.cached
            answer = DigestAnswer(resolution.digest, resolved=True, note=TAG_POINTS_TO)
        self._digests[reference] = answer
        return answer

    def signature(
        self, reference: ImageReference, digest: str, requirement: SignatureRequirement
    ) -> SignatureAnswer:
        key = self._signature_key(reference, digest, requirement)
        known = self._signatures.get(key)
        if known is not None:
            return known
        cached = self._evidence.cached_signature(key)
        if cached is not None:
            return cached
        problem = self._out_of_time()
        if problem:
            return SignatureAnswer(False, f"it could not be checked: {problem}")
        self.calls += 1
        try:
            answer = self._verify(reference, digest, requirement)
        except RegistryError as error:
            answer = SignatureAnswer(False, f"it could not be checked: {_registry_problem(error)}")
        except CredentialsError as error:
            answer = SignatureAnswer(
                False, f"it could not be checked: no registry credentials: {error}"
            )
        else:
            self._evidence.keep_signature(key, answer)
        self._signatures[key] = answer  # failures too: this review does not ask twice
        return answer

    def _verify(
        self, reference: ImageReference, digest: str, requirement: SignatureRequirement
    ) -> SignatureAnswer:
        source = RepositorySource(
            self._evidence.client, reference, self._credentials_for(reference), self._left
        )
        reasons: list[str] = []
        if requirement.cosign_keys:
            verdict = cosign.verify_image(source, digest, requirement.cosign_keys)
            if isinstance(verdict, Verified):
                return SignatureAnswer(True, describe_verified(verdict))
            reasons.append(describe_refused(verdict, "cosign"))
        if requirement.notation is not None:
            from mamori.supplychain import notation

            verdict = notation.verify_image(
                source, digest, requirement.notation, now=self._evidence.now()
            )
            if isinstance(verdict, Verified):
                return SignatureAnswer(True, describe_verified(verdict))
            reasons.append(describe_refused(verdict, "Notation"))
        return SignatureAnswer(False, "; ".join(reasons))

    def _left(self) -> float:
        """Seconds of this request's budget left: every registry call's deadline is capped by
        it, so the budget bounds the whole review, not only when a new question starts."""
        return self._evidence.remaining(self._until)

    def _out_of_time(self) -> str:
        if self._evidence.remaining(self._until) > 0:
            return ""
        budget = self._evidence.config.budget
        return f"the {budget:g}s this request may spend asking registries is used up"


def describe_verified(verdict: Verified) -> str:
    return f"signed ({verdict.form.value}, signer sha256:{verdict.key_id[:16]}…)"


def describe_refused(verdict: NotSigned | UnknownKey | Malformed | Untrusted, tool: str) -> str:
    """Why a verdict is not a signature the requirement accepts, in an admin's words."""
    if isinstance(verdict, NotSigned):
        return f"no {tool} signature found"
    if isinstance(verdict, UnknownKey):
        forms = ", ".join(form.value for form in verdict.forms)
        return f"{tool} signatures found ({forms}), but none by a trusted key or certificate"
    if isinstance(verdict, Malformed):
        return f"the {tool} signature is refused: {verdict.reason}"
    return f"the {tool} signature is refused: {verdict.reason}"


def _registry_problem(error: RegistryError) -> str:
    """The failure in words; the image is named by the message around it."""
    return f"{error.reason} ({error.detail})" if error.detail else error.reason
