"""Evidence for the background audit: scans and signatures of what running pods run, and how
long a verdict built on them counts.

Policies with ``spec.vulnerabilities`` or ``spec.imageSignatures`` judge more than the pod's
manifest. The audit gives the engine, per pod, one :class:`PodEvidence`: a
:class:`~mamori.scans.ScanLookup` over the ImageScans the operator already holds, and a
:class:`~mamori.supplychain.lookup.RegistryLookup` that answers a digest from what the kubelet
reports (:mod:`running_images`) and asks registries only for signatures and for images not
started yet. It notes what it consulted, so the verdict gets an :class:`EvidenceStamp`: the
verdict counts until a signature answer would be asked again (verified: 5 minutes, refused or
unreachable: 30 seconds), an exception expires or a scan grows older than ``maxScanAge``, and
while the ImageScan of every digest it judged is the one it saw. A newly signed or newly
scanned image is judged again within those bounds; a pod whose policies need no evidence gets
no stamp and costs no more than before.

Signature answers are kept here (with the moment they stop counting), not in the registry
layer: a verdict then never outlives the answer it rests on. With pods' own credentials
(:class:`PodAskers`: their imagePullSecrets), a refusal is kept per identity that got it, so a
pod without a Secret never lends its refusal to one with it; a verified signature is about the
digest, whoever asked. An audit pass spends at most ``pass_budget`` seconds asking registries: a
pod it could not get to keeps its previous verdict and is judged in the next pass (no false
finding for lack of time).
"""

from __future__ import annotations

import datetime
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from mamori.engine import uses_registry, uses_scans
from mamori.images import ImageReference
from mamori.policy import Policy
from mamori.scans import InvalidImageScan, ScanResult, scan_result_from_object
from mamori.supplychain.digest_cache import DigestCache
from mamori.supplychain.lookup import DigestAnswer, SignatureAnswer
from mamori.supplychain.requirements import SignatureRequirement
from mamori_operator.state.cluster import ClusterState, ImageScanRecord, PodRecord
from mamori_operator.status.running_images import RunningDigests

logger = logging.getLogger(__name__)
NOT_THIS_PASS = "it was not checked in this audit pass"


class RegistryAsker(Protocol):
    """One pod's questions to registries, within its own time (a
    :class:`~mamori.supplychain.live.RequestLookup`); ``calls`` counts round trips started."""

    @property
    def calls(self) -> int: ...

    def digest(self, reference: ImageReference) -> DigestAnswer: ...

    def signature(
        self, reference: ImageReference, digest: str, requirement: SignatureRequirement
    ) -> SignatureAnswer: ...


AskerFactory = Callable[[float], RegistryAsker]
"""A :class:`RegistryAsker` that stops asking at the given time (``time.monotonic``)."""


class PodAskers(Protocol):
    """Registry askers with one pod's own credentials (the Secrets it names)."""

    def asker(self, until: float, pod: PodRecord) -> RegistryAsker:
        """As :data:`AskerFactory`, asking as ``pod``'s identity."""

    def whose(self, pod: PodRecord) -> str:
        """Whose credentials ``pod``'s askers use; "" for the operator's own."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EvidenceTimes:
    """How long answers count and how long the audit may ask (seconds).

    ``verified_ttl`` and ``refused_ttl`` are the webhook's signature cache lifetimes (a refusal
    or an unreachable registry is asked again sooner). ``pod_budget`` bounds one pod's registry
    calls, ``pass_budget`` all of one audit pass (the housekeeper's other work waits for it).
    """

    verified_ttl: float = 300.0
    refused_ttl: float = 30.0
    pod_budget: float = 2.0
    pass_budget: float = 10.0
    max_entries: int = 4096


@dataclass(frozen=True, slots=True)
class EvidenceStamp:
    """What a verdict judged with evidence rests on: it counts until ``expires``
    (``time.monotonic``), while each judged digest's ImageScan is the record seen (None: none)."""

    expires: float
    scans: tuple[tuple[str, ImageScanRecord | None], ...]


class _Kept(NamedTuple):
    answer: SignatureAnswer
    expires: float


def needs_evidence(policy: Policy) -> bool:
    """True when the policy runs a rule that judges scans or asks registries."""
    return uses_scans([policy]) or uses_registry([policy])


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class AuditEvidence:
    """Per operator run: the way to registries, and the signature answers worth keeping."""

    def __init__(
        self,
        state: ClusterState,
        *,
        ask: AskerFactory,
        pods: PodAskers | None = None,
        times: EvidenceTimes | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime.datetime] = utc_now,
    ) -> None:
        self.state = state
        self.times = times or EvidenceTimes()
        self._ask = ask
        self._pods = pods
        self._clock = clock
        self._wall_clock = wall_clock
        limit = self.times.max_entries
        self._verified: DigestCache[_Kept] = DigestCache(
            ttl=self.times.verified_ttl, max_entries=limit, clock=clock
        )
        self._refused: DigestCache[_Kept] = DigestCache(
            ttl=self.times.refused_ttl, max_entries=limit, clock=clock
        )

    def begin_pass(self, policies: Sequence[Policy]) -> AuditPass | None:
        """The evidence of one audit pass; None when no policy needs any (the cheap path)."""
        needing = [policy for policy in policies if needs_evidence(policy)]
        if not needing:
            return None
        return AuditPass(self, needing, now=self._clock(), wall_now=self._wall_clock())

    def clock(self) -> float:
        return self._clock()

    def ask(self, until: float, pod: PodRecord | None = None) -> RegistryAsker:
        if pod is not None and self._pods is not None:
            return self._pods.asker(until, pod)
        return self._ask(until)

    def whose(self, pod: PodRecord | None) -> str:
        return self._pods.whose(pod) if pod is not None and self._pods is not None else ""

    def kept_signature(self, key: str, whose: Callable[[], str] = lambda: "") -> _Kept | None:
        """A verified answer (anyone's), else a refusal ``whose()`` identity got."""
        return self._verified.get(key) or self._refused.get(_refusal_key(key, whose()))

    def keep_signature(self, key: str, answer: SignatureAnswer, whose: str = "") -> float:
        """Keep ``answer`` (a refusal as ``whose``'s); return when it stops counting."""
        ttl = self.times.verified_ttl if answer.verified else self.times.refused_ttl
        expires = self._clock() + ttl
        if answer.verified:
            self._verified.put(key, _Kept(answer, expires))
        else:
            self._refused.put(_refusal_key(key, whose), _Kept(answer, expires))
        return expires


def _refusal_key(key: str, whose: str) -> str:
    return f"{key}|{whose}" if whose else key


class AuditPass:
    """One audit pass: which namespaces need evidence, the scans read so far, the time left."""

    def __init__(
        self,
        evidence: AuditEvidence,
        needing: Sequence[Policy],
        *,
        now: float,
        wall_now: datetime.datetime,
    ) -> None:
        self.evidence = evidence
        self.now = now
        self.wall_now = wall_now
        self.deadline = now + evidence.times.pass_budget
        self._needing = needing
        self._namespaces: dict[str, bool] = {}
        self._scans: dict[str, tuple[ImageScanRecord | None, ScanResult | None]] = {}
        gates = [p.plan.settings.vulnerabilities for p in needing]
        gates_present = [gate for gate in gates if gate is not None]
        self._max_ages = tuple(
            {gate.max_scan_age for gate in gates_present if gate.max_scan_age is not None}
        )
        upcoming = [
            exception.expires
            for gate in gates_present
            for exception in gate.exceptions
            if exception.expires > wall_now
        ]
        self._next_exception_expiry = min(upcoming) if upcoming else None

    def needs(self, namespace: str, labels: Mapping[str, str]) -> bool:
        """True when a policy that selects the namespace judges scans or signatures."""
        known = self._namespaces.get(namespace)
        if known is None:
            known = self._namespaces[namespace] = any(
                policy.selects(namespace, labels) for policy in self._needing
            )
        return known

    def holds(self, stamp: EvidenceStamp) -> bool:
        """True while a verdict with this stamp still counts."""
        if self.now >= stamp.expires:
            return False
        state = self.evidence.state
        return all(state.image_scan(digest) is record for digest, record in stamp.scans)

    def for_pod(self, running: RunningDigests, pod: PodRecord | None = None) -> PodEvidence:
        """``pod``: whose credentials its registry questions use (see :class:`PodAskers`)."""
        return PodEvidence(self, running, pod)

    def out_of_time(self) -> bool:
        return self.evidence.clock() >= self.deadline

    def scan(self, digest: str) -> tuple[ImageScanRecord | None, ScanResult | None]:
        """The digest's ImageScan record and what it says (read once per pass)."""
        record = self.evidence.state.image_scan(digest)
        known = self._scans.get(digest)
        if known is not None and known[0] is record:
            return known
        result = None
        if record is not None:
            try:
                result = scan_result_from_object(
                    {"metadata": {"name": record.name}, "spec": record.spec}
                )
            except InvalidImageScan as error:  # judged as unscanned, as the webhook does
                logger.debug("ImageScan %s is malformed and is skipped: %s", record.name, error)
        self._scans[digest] = (record, result)
        return record, result

    def scan_expiry(self, result: ScanResult) -> float:
        """When a verdict on ``result`` may change by time alone: an exception expires, or the
        scan grows older than a policy's ``maxScanAge`` (``time.monotonic``; inf: never)."""
        moments = []
        if self._next_exception_expiry is not None:
            moments.append(self._next_exception_expiry)
        if result.scanned_at is not None:
            moments.extend(
                result.scanned_at + age
                for age in self._max_ages
                if result.scanned_at + age > self.wall_now
            )
        if not moments:
            return math.inf
        return self.now + (min(moments) - self.wall_now).total_seconds()


class PodEvidence:
    """The scans and registry answers the engine gets for one pod; notes what they rest on.

    ``deferred`` is set when the pass ran out of time for registries before this pod's
    questions were answered: its verdict is not to be trusted, nor kept.
    """

    def __init__(
        self, audit_pass: AuditPass, running: RunningDigests, pod: PodRecord | None = None
    ) -> None:
        self._pass = audit_pass
        self._running = running
        self._pod = pod
        self._whose: str | None = None
        self._asker: RegistryAsker | None = None
        self._asker_until = 0.0
        self._expires = math.inf
        self._scans: dict[str, ImageScanRecord | None] = {}
        self.deferred = False

    def stamp(self) -> EvidenceStamp | None:
        """What the verdict rests on; None when it consulted nothing that can change."""
        if self._expires == math.inf and not self._scans:
            return None
        return EvidenceStamp(self._expires, tuple(sorted(self._scans.items(), key=_by_digest)))

    # -- ScanLookup -------------------------------------------------------------------------

    def scan(self, digest: str) -> ScanResult | None:
        record, result = self._pass.scan(digest)
        self._scans[digest] = record
        if result is not None:
            self._until(self._pass.scan_expiry(result))
        return result

    def now(self) -> datetime.datetime:
        return self._pass.wall_now

    def unavailable(self) -> str | None:
        return None  # the operator holds every ImageScan once it has synced

    # -- RegistryLookup ---------------------------------------------------------------------

    def digest(self, reference: ImageReference) -> DigestAnswer:
        if reference.digest is not None:
            return DigestAnswer(reference.digest)
        running = self._running.digests(reference)
        if len(running) == 1:
            return DigestAnswer(running[0], note="what its container runs")
        if running:
            return DigestAnswer(
                None, f"its containers run different digests ({', '.join(running)})"
            )
        # not started yet: what the tag points to now, as admission judged it
        if self._pass.out_of_time():
            self.deferred = True
            return DigestAnswer(None, NOT_THIS_PASS)
        asker = self._ask()
        answer = asker.digest(reference)
        now = self._pass.evidence.clock()
        if answer.digest is None and now >= self._asker_until:
            self._until(now)  # this pod's time ran out: judged again next pass
            self.deferred = self.deferred or self._pass.out_of_time()
        else:  # the tag may move, or the registry come back
            self._until(now + self._pass.evidence.times.refused_ttl)
        return answer

    def signature(
        self, reference: ImageReference, digest: str, requirement: SignatureRequirement
    ) -> SignatureAnswer:
        evidence = self._pass.evidence
        key = f"{reference.registry}/{reference.path}@{digest}#{requirement.fingerprint}"
        kept = evidence.kept_signature(key, self._identity)
        if kept is not None:
            self._until(kept.expires)
            return kept.answer
        if self._pass.out_of_time():
            self.deferred = True
            return SignatureAnswer(False, NOT_THIS_PASS)
        asker = self._ask()
        started = asker.calls
        answer = asker.signature(reference, digest, requirement)
        if asker.calls == started:  # nothing was asked: this pod's time ran out
            self._until(evidence.clock())
            self.deferred = self.deferred or self._pass.out_of_time()
            return answer
        self._until(evidence.keep_signature(key, answer, self._identity()))
        return answer

    def _identity(self) -> str:
        if self._whose is None:
            self._whose = self._pass.evidence.whose(self._pod)
        return self._whose

    def _ask(self) -> RegistryAsker:
        if self._asker is None:
            evidence = self._pass.evidence
            self._asker_until = min(
                evidence.clock() + evidence.times.pod_budget, self._pass.deadline
            )
            self._asker = evidence.ask(self._asker_until, self._pod)
        return self._asker

    def _until(self, moment: float) -> None:
        self._expires = min(self._expires, moment)


def _by_digest(item: tuple[str, ImageScanRecord | None]) -> str:
    return item[0]
