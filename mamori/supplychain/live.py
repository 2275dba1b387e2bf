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
from mamori.supplychain.lookup import (
    TAG_POINTS_TO,
    DigestAnswer,
    ImageAnswers,
    LookupReport,
    Questions,
    SignatureAnswer,
)
from mamori.supplychain.registry import Credentials, RegistryClient, RegistryError
from mamori.supplychain.requirements import SignatureRequirement
from mamori.supplychain.single_flight import SingleFlight
from mamori.supplychain.verdicts import Malformed, NotSigned, UnknownKey, Untrusted, Verified

CredentialsFor = Callable[[ImageReference], "Credentials | None"]
NoteFor = Callable[[ImageReference], str]
"""What a failed answer about an image should add (the missing pull Secrets); "": nothing."""
AnswersKey = tuple[ImageReference, tuple[str, ...], "Credentials | None"]
PodKey = tuple[tuple[str, ...], tuple[ImageReference, ...], tuple["Credentials | None", ...]]
"""The coverage of a policy's entries, a pod's images, and whose credentials resolve its tags."""
"""An image, the fingerprints of the requirements asked of it, and for a tag whose
credentials resolved it (a digest is the same for everyone; a tag's answer is not shared)."""


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
        # One verification per digest and key set at a time: threads whose kept answer expired
        # together share the answer of the one that asks (single_flight.py).
        self.verifying: SingleFlight[SignatureAnswer] = SingleFlight()
        # Whole answers per image (digest and every requirement's verdict), each kept until the
        # first of its parts would leave its own cache: the same images come back with every
        # replica and rollout, and one look-up then answers what took a dozen.
        self._answers: dict[AnswersKey, tuple[float, ImageAnswers]] = {}
        self._answers_lock = threading.Lock()
        self.answers_hits = 0
        self.answers_misses = 0
        # Pods whose every covered image was verified, until the first of those images' whole
        # answers ends: replicas and rollouts send the same images again and again, and one
        # look-up then answers the pod (no entry matched per image, no answer per image).
        self._pods: dict[PodKey, tuple[float, int]] = {}

    def executor(self) -> ThreadPoolExecutor:
        """The threads that ask registries ahead of a review's rules, made on first use (in a
        gunicorn worker: after the fork)."""
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.config.concurrency, thread_name_prefix="mamori-registry"
                )
            return self._executor

    def for_request(
        self,
        credentials_for: CredentialsFor = no_credentials,
        note_for: NoteFor | None = None,
    ) -> RequestLookup:
        """A lookup for one admission request, with its own budget and credentials (and what
        its failed answers should add, such as the pod's missing pull Secrets)."""
        return RequestLookup(
            self, credentials_for, self._clock() + self.config.budget, note_for=note_for
        )

    def signature_cache_stats(self) -> tuple[CacheStats, CacheStats]:
        """(verified, refused) cache counters, for metrics."""
        return self._verified.stats(), self._refused.stats()

    def now(self) -> datetime.datetime:
        return self._wall_clock()

    def remaining(self, until: float) -> float:
        return until - self._clock()

    def kept_answers(self, key: AnswersKey) -> tuple[float, ImageAnswers] | None:
        """An image's whole answers, and until when they count, while every part of them
        still counts; None: ask."""
        kept = self._answers.get(key)
        if kept is not None:
            if self._clock() < kept[0]:
                self.answers_hits += 1
                return kept
            with self._answers_lock:
                self._answers.pop(key, None)
        self.answers_misses += 1
        return None

    def keep_answers(self, key: AnswersKey, answers: ImageAnswers, until: float) -> None:
        if self.config.max_entries == 0:
            return
        with self._answers_lock:
            self._answers[key] = (until, answers)
            while len(self._answers) > self.config.max_entries:
                del self._answers[next(iter(self._answers))]  # the oldest kept

    def verified_pod(self, key: PodKey) -> int | None:
        """How many images of a pod were all verified, while every one's whole answer still
        counts; None: judge them image by image."""
        kept = self._pods.get(key)
        if kept is not None:
            if self._clock() < kept[0]:
                return kept[1]
            with self._answers_lock:
                self._pods.pop(key, None)
        return None

    def keep_verified_pod(self, key: PodKey, covered: int, until: float) -> None:
        if self.config.max_entries == 0:
            return
        with self._answers_lock:
            self._pods[key] = (until, covered)
            while len(self._pods) > self.config.max_entries:
                del self._pods[next(iter(self._pods))]  # the oldest kept

    def signature_expires(self, key: str, answer: SignatureAnswer) -> float | None:
        """When a kept signature answer stops counting; None when it was not kept (a failure)."""
        return (self._verified if answer.verified else self._refused).expires_at(key)

    def cached_signature(self, key: str) -> SignatureAnswer | None:
        return self._verified.get(key) or self._refused.get(key)

    def keep_signature(self, key: str, answer: SignatureAnswer) -> None:
        (self._verified if answer.verified else self._refused).put(key, answer)


class RequestLookup:
    """A :class:`~mamori.supplychain.lookup.RegistryLookup` for one request: its rule asks in
    turn; :meth:`prefetch` may ask ahead on the process's registry threads."""

    def __init__(
        self,
        evidence: RegistryEvidence,
        credentials_for: CredentialsFor,
        until: float,
        *,
        note_for: NoteFor | None = None,
    ):
        self._evidence = evidence
        self._credentials_for = credentials_for
        self._note_for = note_for  # added to every failed answer it returns; never kept
        self._until = until
        self._digests: dict[ImageReference, DigestAnswer] = {}
        self._signatures: dict[str, SignatureAnswer] = {}  # this review's answers, failures too
        self.calls = 0  # registry round trips started for this request (cache misses)
        self._kept = self._asked = 0  # images answered whole from the process's answers, or not
        self._exhausted = False
        self._waited = 0.0
        self._timing = False  # inside answer_all, which times its own asking
        self._answered_until: float | None = None  # the last answer_all's answers, together

    def report(self) -> LookupReport:
        """What this review's lookup did (for the webhook's metrics)."""
        return LookupReport(self._kept, self._asked, self.calls, self._exhausted, self._waited)

    def answer_all(self, questions: Questions) -> list[ImageAnswers]:
        """Every image's answers: kept whole ones at once, the rest asked (ahead, together,
        then in turn) and kept whole when every part of them was cached."""
        evidence = self._evidence
        answers: list[ImageAnswers | None] = []
        missing: list[int] = []
        keys: list[AnswersKey | None] = []
        ends: list[float | None] = []
        for reference, requirements in questions:
            key = self._answers_key(reference, requirements)
            kept = None if key is None else evidence.kept_answers(key)
            if kept is None:
                missing.append(len(answers))
                answers.append(None)
            else:
                ends.append(kept[0])
                answers.append(kept[1])
            keys.append(key)
        self._kept += len(questions) - len(missing)
        if missing:
            self._asked += len(missing)
            started = time.perf_counter()
            self._timing = True
            try:
                self.prefetch([questions[i] for i in missing])
                for i in missing:
                    reference, requirements = questions[i]
                    found = self._in_turn(reference, requirements)
                    answers[i] = found
                    key = keys[i]
                    until = None
                    if key is not None:
                        until = self._kept_until(reference, requirements, found, key[2])
                        if until is not None:
                            evidence.keep_answers(key, found, until)
                    ends.append(until)
            finally:
                self._timing = False
                self._waited += time.perf_counter() - started
        # until when all of these answers count together (None: some part is not kept)
        self._answered_until = None if None in ends else min(ends, default=None)  # type: ignore[type-var]
        return [
            self._noted_answers(reference, found)
            for (reference, _), found in zip(questions, answers, strict=True)
            if found is not None
        ]

    def _in_turn(
        self, reference: ImageReference, requirements: Sequence[SignatureRequirement]
    ) -> ImageAnswers:
        """One image's answers as asked (no notes: these may be kept for other pods)."""
        digest = self._digest(reference)
        if digest.digest is None:
            return ImageAnswers(digest, ())
        return ImageAnswers(
            digest, tuple(self._signature(reference, digest.digest, r) for r in requirements)
        )

    def _noted_answers(self, reference: ImageReference, found: ImageAnswers) -> ImageAnswers:
        if self._note_for is None or (
            found.digest.digest is not None and all(s.verified for s in found.signatures)
        ):
            return found
        return ImageAnswers(
            self._noted_digest(reference, found.digest),
            tuple(self._noted_signature(reference, s) for s in found.signatures),
        )

    def _noted_digest(self, reference: ImageReference, answer: DigestAnswer) -> DigestAnswer:
        note = (
            "" if answer.digest is not None or self._note_for is None else self._note_for(reference)
        )
        return answer._replace(problem=f"{answer.problem}; {note}") if note else answer

    def _noted_signature(
        self, reference: ImageReference, answer: SignatureAnswer
    ) -> SignatureAnswer:
        note = "" if answer.verified or self._note_for is None else self._note_for(reference)
        return answer._replace(detail=f"{answer.detail}; {note}") if note else answer

    def verified_before(
        self, entries: Sequence[SignatureRequirement], references: Sequence[ImageReference]
    ) -> bool:
        """Whether a pod of these images was found all verified under these entries, and every
        image's whole answer still counts (then the rule has nothing to say)."""
        key = self._pod_key(entries, references)
        covered = None if key is None else self._evidence.verified_pod(key)
        if covered is None:
            return False
        self._kept += covered
        return True

    def remember_verified(
        self,
        entries: Sequence[SignatureRequirement],
        references: Sequence[ImageReference],
        covered: int,
    ) -> None:
        """The pod's ``covered`` images were all verified by the last :meth:`answer_all`: keep
        that until the first of their whole answers ends (not at all if one is not kept)."""
        until = self._answered_until
        key = self._pod_key(entries, references)
        if until is not None and key is not None:
            self._evidence.keep_verified_pod(key, covered, until)

    def _pod_key(
        self, entries: Sequence[SignatureRequirement], references: Sequence[ImageReference]
    ) -> PodKey | None:
        try:
            whose = tuple([self._credentials_for(r) for r in references if r.digest is None])
        except CredentialsError:
            return None
        return (tuple([entry.coverage for entry in entries]), tuple(references), whose)

    def _answers_key(
        self, reference: ImageReference, requirements: Sequence[SignatureRequirement]
    ) -> AnswersKey | None:
        fingerprints = tuple([requirement.fingerprint for requirement in requirements])
        if reference.digest is not None:
            return (reference, fingerprints, None)
        try:
            return (reference, fingerprints, self._credentials_for(reference))
        except CredentialsError:
            return None  # asked in turn, which says why

    def _kept_until(
        self,
        reference: ImageReference,
        requirements: Sequence[SignatureRequirement],
        found: ImageAnswers,
        credentials: Credentials | None,
    ) -> float | None:
        """The moment the first part of ``found`` leaves its cache; None when a part was
        never kept (a failure, a lifetime of 0), so the whole is asked again next time."""
        digest = found.digest.digest
        if digest is None or len(found.signatures) != len(requirements):
            return None
        ends: list[float | None] = []
        if reference.digest is None:
            client = self._evidence.client
            ends.append(client.cache.expires_at(client.cache_key(reference, credentials)))
        for requirement, answer in zip(requirements, found.signatures, strict=True):
            key = self._signature_key(reference, digest, requirement)
            ends.append(self._evidence.signature_expires(key, answer))
        if any(end is None for end in ends):
            return None
        return min(end for end in ends if end is not None)

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
        answer = self._digest(reference)
        if answer.digest is not None:
            for requirement in requirements:
                self._signature(reference, answer.digest, requirement)

    @staticmethod
    def _signature_key(
        reference: ImageReference, digest: str, requirement: SignatureRequirement
    ) -> str:
        return f"{reference.registry}/{reference.path}@{digest}#{requirement.fingerprint}"

    def digest(self, reference: ImageReference) -> DigestAnswer:
        return self._noted_digest(reference, self._digest(reference))

    def signature(
        self, reference: ImageReference, digest: str, requirement: SignatureRequirement
    ) -> SignatureAnswer:
        return self._noted_signature(reference, self._signature(reference, digest, requirement))

    def _digest(self, reference: ImageReference) -> DigestAnswer:
        if reference.digest is not None:
            return DigestAnswer(reference.digest)
        known = self._digests.get(reference)
        if known is not None:
            return known
        problem = self._out_of_time()
        if problem:
            return DigestAnswer(None, problem)
        client = self._evidence.client
        started = time.perf_counter()
        try:
            resolution = client.resolve(
                reference, credentials=self._credentials_for(reference), time_left=self._left()
            )
        except RegistryError as error:
            self.calls += 1  # a failure never comes from the cache: it was asked
            answer = DigestAnswer(None, _registry_problem(error))
        except CredentialsError as error:
            answer = DigestAnswer(None, f"no registry credentials: {error}")
        else:
            self.calls += not resolution.cached
            answer = DigestAnswer(resolution.digest, resolved=True, note=TAG_POINTS_TO)
        self._time_asked(started)
        self._digests[reference] = answer
        return answer

    def _time_asked(self, started: float) -> None:
        """Count the wait of a question asked outside :meth:`answer_all` (which times its
        own, threads included, as one wait)."""
        if not self._timing:
            self._waited += time.perf_counter() - started

    def _signature(
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
        started = time.perf_counter()
        try:
            answer, shared = self._evidence.verifying.run(
                key, lambda: self._verify(reference, digest, requirement), wait=self._left()
            )
            self.calls += not shared
        except RegistryError as error:
            self.calls += 1
            answer = SignatureAnswer(False, f"it could not be checked: {_registry_problem(error)}")
        except CredentialsError as error:
            self.calls += 1
            answer = SignatureAnswer(
                False, f"it could not be checked: no registry credentials: {error}"
            )
        else:
            self._evidence.keep_signature(key, answer)
        self._time_asked(started)
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
        self._exhausted = True
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
