"""Signed images at admission: what ``spec.imageSignatures`` costs a review, cached and not.

Issue 10 asks three things of signature checks at admission: a cached review stays within 10 %
of today's webhook figure, an uncached one over loopback stays under 50 ms p99, and every
registry call has a deadline well inside the webhook's ``timeoutSeconds``. This script measures
all three in one run, on loopback only:

* the real registry (distribution, TLS + htpasswd; ``make supplychain``) from the integration
  tests' support, N images pushed with crane and signed with the real cosign (half the legacy
  ``.sig`` tag, half the bundle form) and a few with the real notation;
* ``Admission.review`` in-process (the webhook's own object, its registry access built from
  :class:`WebhookSettings` by ``build_registry_access``, credentials from a dockerconfigjson
  file) on the admission benchmark's four-container Deployment (bench/admission/payload.py)
  with its images pointed at the loopback registry, by digest and by tag: (a) the production
  policy, (b) the same with ``imageSignatures``, answers cached, (c) uncached: the same classes
  with every cache's lifetime 0, so each review resolves every tag and fetches and verifies
  every signature over TLS (the registry client still knows the endpoint wants Basic, as a
  running webhook does); (d) Notation;
* tag → digest resolution alone (``RegistryClient.resolve``): cached, uncached, first contact;
* what an uncached review does on the wire, and the pieces a cached review adds;
* the deadline: the same review against a loopback server that accepts and never answers, and
  against a relay that holds every connection to the real registry (registry_faults.py).

Per-review times are taken one call at a time (perf_counter_ns, garbage collector paused inside
a block, as timeit does); cases alternate within each round. Not a test: the figures go into
docs/benchmarks.md by hand. Every server started here is stopped on the way out, failure or not.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bench.admission import payload
from bench.admission.registry_faults import delayed_proxy, silent_server
from bench.admission.signed_registry import (
    COSIGNED,
    NOTARISED,
    Signed,
    SignedImage,
    credentials_file,
    push_and_sign,
)
from mamori.images import parse_reference
from mamori.policy import Policy, parse_policy
from mamori.supplychain.configured import CredentialsFile, registry_tls_context
from mamori.supplychain.live import EvidenceConfig, RegistryEvidence
from mamori.supplychain.registry import Credentials, RegistryClient, RegistryClientConfig
from mamori_webhook.admission import Admission
from mamori_webhook.metrics import AdmissionMetrics
from mamori_webhook.policy_source import StaticPolicySource
from mamori_webhook.registry_access import RegistryAccess, build_registry_access
from mamori_webhook.settings import WebhookSettings
from tests.integration.registry_support import running_registry

CONTAINERS = 4  # the payload's init container and three containers
TODAY_COLUMN = "today"


# --- policies and reviews ---------------------------------------------------------------------


def policy(address: str, *, digests: bool, signatures: Signed | None) -> Policy:
    """The admission benchmark's production policy, trusting the loopback registry too;
    ``digests``: requireImageDigest (off for the by-tag reviews, which it would deny)."""
    return parse_policy(policy_document(address, digests=digests, signatures=signatures))


def policy_document(address: str, *, digests: bool, signatures: Signed | None) -> dict[str, Any]:
    """:func:`policy` as the ClusterSecurityPolicy document (what a served webhook loads)."""
    document = copy.deepcopy(payload.POLICY)
    spec = document["spec"]
    spec["trustedRegistries"] = [*spec["trustedRegistries"], address]
    spec["requireImageDigest"] = digests
    if signatures is not None:
        entries: list[dict[str, Any]] = [
            {
                "images": [f"{address}/{COSIGNED}"],
                "cosign": {"publicKeys": [signatures.cosign_key.read_text()]},
            }
        ]
        if signatures.notation is not None:
            certificates = signatures.notation.certificates.read_text()
            entries.append(
                {
                    "images": [f"{address}/{NOTARISED}"],
                    "notation": {"trustedCertificates": [certificates]},
                }
            )
        spec["imageSignatures"] = entries
    return document


def review_body(images: Sequence[str] | None) -> bytes:
    """payload's Deployment review, its four images replaced by ``images`` (None: as it is)."""
    review = payload.review()
    if images is not None:
        pod = review["request"]["object"]["spec"]["template"]["spec"]
        containers = [*pod["initContainers"], *pod["containers"]]
        assert len(containers) == len(images) == CONTAINERS
        for container, image in zip(containers, images, strict=True):
            container["image"] = image
    return json.dumps(review, separators=(",", ":")).encode()


def groups(images: Sequence[SignedImage], *, mixed: bool) -> list[list[SignedImage]]:
    """Images four at a time; ``mixed``: two legacy and two bundle in each."""
    if not mixed:
        return [list(images[i : i + CONTAINERS]) for i in range(0, len(images), CONTAINERS)][
            : len(images) // CONTAINERS
        ]
    legacy = [image for image in images if image.form == "legacy"]
    bundle = [image for image in images if image.form == "bundle"]
    pairs = min(len(legacy), len(bundle)) // 2
    return [
        [legacy[2 * i], bundle[2 * i], legacy[2 * i + 1], bundle[2 * i + 1]] for i in range(pairs)
    ]


def bodies(group_list: list[list[SignedImage]], *, by: str) -> list[bytes]:
    return [review_body([getattr(image, by) for image in group]) for group in group_list]


def uncached_access(
    settings: WebhookSettings, client_config: RegistryClientConfig
) -> RegistryAccess:
    """The webhook's registry access with every cache's lifetime at 0: nothing is kept
    between reviews (tag → digest, verified, refused); what the client learnt about the
    endpoint (it wants Basic) stays, as in a running webhook."""
    assert settings.registry_credentials is not None
    file = CredentialsFile(settings.registry_credentials)
    file.load()
    evidence = RegistryEvidence(
        RegistryClient(client_config),
        EvidenceConfig(budget=settings.registry_budget, verified_ttl=0, refused_ttl=0),
    )
    return RegistryAccess(evidence, credentials_file=file)


def client_config(settings: WebhookSettings, *, cache_ttl: float) -> RegistryClientConfig:
    """As build_registry_access makes it from ``settings``, with its own cache lifetime."""
    return RegistryClientConfig(
        deadline=settings.registry_timeout,
        ssl_context=registry_tls_context(settings.registry_ca_file),
        cache_ttl=cache_ttl,
    )


def admission(policy_: Policy, registry: Callable[..., Any] | None) -> Admission:
    return Admission(
        policy_source=StaticPolicySource([policy_]),
        metrics=AdmissionMetrics(),
        registry=registry,
    )


# --- timing ------------------------------------------------------------------------------------


@dataclass
class Case:
    """One row: a review (or a rotation of reviews) through one Admission, timed per call."""

    name: str
    call: Callable[[], object]
    samples: int
    warm: int = 1
    times_ns: list[int] = field(default_factory=list)
    note: str = ""

    def run_block(self) -> None:
        for _ in range(self.warm):
            self.call()
        gc.collect()
        gc_was_on = gc.isenabled()
        gc.disable()
        clock = time.perf_counter_ns
        call = self.call
        taken = self.times_ns
        try:
            for _ in range(self.samples):
                started = clock()
                call()
                taken.append(clock() - started)
        finally:
            if gc_was_on:
                gc.enable()

    def stats_us(self) -> dict[str, float]:
        ordered = sorted(self.times_ns)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return {
            "n": len(ordered),
            "min_us": ordered[0] / 1e3,
            "median_us": statistics.median(ordered) / 1e3,
            "p99_us": p99 / 1e3,
            "max_us": ordered[-1] / 1e3,
        }


def rotation(review: Callable[[bytes], object], items: Sequence[bytes]) -> Callable[[], object]:
    """Each call reviews the next body of ``items``, round and round."""
    position = [0]

    def call() -> object:
        body = items[position[0] % len(items)]
        position[0] += 1
        return review(body)

    return call


def check_allowed(name: str, admit: Admission, body: bytes, *, violations: bool = False) -> None:
    """Refuse to time a review that is not the one meant: allowed, and (b) with no finding."""
    verdict = admit.review(body)
    response = verdict.response["response"]
    if response.get("allowed") is not True:
        raise SystemExit(f"{name}: the review was not allowed: {response.get('status')}")
    decision = verdict.decision
    if not violations and decision is not None and decision.violations:
        found = "; ".join(v.message for v in decision.violations)[:400]
        raise SystemExit(f"{name}: unexpected findings: {found}")


# --- what an uncached review does on the wire ------------------------------------------------


@contextmanager
def wire_counter() -> Iterator[dict[str, int]]:
    """Count TLS connections opened and HTTP requests sent by the registry client meanwhile
    (wrapping ``Connection.connect`` and the client's ``request``; restored on the way out)."""
    from mamori.supplychain import bounded_http, registry

    counts = {"connections": 0, "requests": 0}
    namespace = vars(registry)  # the client calls the name it imported
    connect, send = bounded_http.Connection.connect, namespace["request"]

    def counted_connect(self: bounded_http.Connection) -> None:
        counts["connections"] += 1
        connect(self)

    def counted_request(*args: Any, **kwargs: Any) -> Any:
        counts["requests"] += 1
        return send(*args, **kwargs)

    bounded_http.Connection.connect = counted_connect  # type: ignore[method-assign]
    namespace["request"] = counted_request
    try:
        yield counts
    finally:
        bounded_http.Connection.connect = connect  # type: ignore[method-assign]
        namespace["request"] = send


def wire_per_review(review: Callable[[bytes], object], items: Sequence[bytes]) -> dict[str, float]:
    """Connections and requests per review, over one pass of ``items`` (not timed)."""
    with wire_counter() as counts:
        for body in items:
            review(body)
    return {name: value / len(items) for name, value in counts.items()}


# --- where a cached review's extra time goes ------------------------------------------------


def parts_us(
    settings: WebhookSettings, signed: Signed, signing: Policy
) -> dict[str, dict[str, float]]:
    """µs per call (min and median of 5,000 single calls, each timed on its own like the
    reviews: per-call minima hold up under load where loop averages do not) of the pieces a
    cached signature review adds, per review or per image."""
    from mamori.supplychain.credentials import CredentialSource

    access = build_registry_access(settings)
    image = signed.of("legacy")[0]
    tagged, pinned = parse_reference(image.tagged), parse_reference(image.pinned)
    requirement = signing.rules.signatures[0]
    assert settings.registry_credentials is not None
    source = CredentialSource(configured=CredentialsFile(settings.registry_credentials).load())
    credentials = source.credentials_for(tagged)
    client = access.evidence.client
    lookup = access.for_request()
    lookup.digest(tagged)
    assert lookup.signature(pinned, image.digest, requirement).verified
    pieces: dict[str, Callable[[], object]] = {
        "per review: RegistryAccess.for_request() (stat of the credentials file included)": (
            access.for_request
        ),
        "per tagged image: CredentialSource.credentials_for (keyring match)": lambda: (
            source.credentials_for(tagged)
        ),
        "per tagged image: RegistryClient.cache_key (HMAC of the credentials)": lambda: (
            client.cache_key(tagged, credentials)
        ),
        "per tagged image: RequestLookup.digest, cached (all of the above but for_request)": (
            lambda: access.evidence.for_request(source.credentials_for).digest(tagged)
        ),
        "per image: RequestLookup.signature, cached": lambda: lookup.signature(
            pinned, image.digest, requirement
        ),
        "per image and entry: SignatureRequirement.covers": lambda: requirement.covers(pinned),
    }
    figures = {}
    for name, call in pieces.items():
        case = Case(name, call, samples=5000, warm=100)
        case.run_block()
        stats = case.stats_us()
        figures[name] = {"min_us": stats["min_us"], "median_us": stats["median_us"]}
    return figures


# --- the deadline: registries that hang or answer late ---------------------------------------


def deadline_figures(
    settings: WebhookSettings, signed: Signed, work: Path, *, repeats: int, delay: float
) -> dict[str, dict[str, Any]]:
    """Wall time of one review whose images all live on a registry that never answers, or
    whose every connection is held ``delay`` seconds (each call answers within its timeout)."""
    results: dict[str, dict[str, Any]] = {}
    key = signed.cosign_key.read_text()
    fake = "sha256:" + "0" * 64
    with silent_server() as port:
        address = f"127.0.0.1:{port}"
        hung = {
            "hung registry, 4 images by tag": [
                f"{address}/team/app-{i}:v1" for i in range(CONTAINERS)
            ],
            "hung registry, 4 images by digest": [
                f"{address}/team/app-{i}@{fake}" for i in range(CONTAINERS)
            ],
        }
        for name, images in hung.items():
            access = build_registry_access(settings)
            results[name] = _timed_reviews(
                admission(_fault_policy(address, address, key), access.for_request),
                review_body(images),
                repeats,
            )
    bundles = signed.of("bundle")[:CONTAINERS]
    with delayed_proxy(signed.registry.port, delay) as port:
        address = f"127.0.0.1:{port}"
        # the proxy's address needs the registry's credentials too
        proxied = credentials_file(signed.registry, work, also=[address], name="proxied.json")
        slow_settings = dataclasses.replace(settings, registry_credentials=proxied)
        cases = {
            f"slow registry ({delay:g}s per connection), 4 x bundle by tag": [
                f"{address}/{image.repository}:{image.tag}" for image in bundles
            ],
            f"slow registry ({delay:g}s per connection), 4 x bundle by digest": [
                f"{address}/{image.repository}@{image.digest}" for image in bundles
            ],
        }
        for name, images in cases.items():
            access = build_registry_access(slow_settings)
            results[name] = _timed_reviews(
                admission(_fault_policy(address, f"{address}/{COSIGNED}", key), access.for_request),
                review_body(images),
                repeats,
            )
    return results


def _fault_policy(address: str, prefix: str, key: str) -> Policy:
    document = copy.deepcopy(payload.POLICY)
    spec = document["spec"]
    spec["trustedRegistries"] = [*spec["trustedRegistries"], address]
    spec["requireImageDigest"] = False
    spec["imageSignatures"] = [{"images": [prefix], "cosign": {"publicKeys": [key]}}]
    return parse_policy(document)


def _timed_reviews(admit: Admission, body: bytes, repeats: int) -> dict[str, Any]:
    took, message, allowed = [], "", None
    for _ in range(repeats):
        started = time.perf_counter()
        verdict = admit.review(body)
        took.append(time.perf_counter() - started)
        response = verdict.response["response"]
        allowed = response.get("allowed")
        message = str((response.get("status") or {}).get("message", ""))
    return {"seconds": took, "allowed": allowed, "message": message[:1500]}


# --- tag → digest alone -----------------------------------------------------------------------


def resolve_cases(
    settings: WebhookSettings, signed: Signed, samples: int
) -> tuple[list[Case], Callable[[], None]]:
    """``RegistryClient.resolve`` alone: cached, uncached (endpoint known), first contact (a
    new client each call: the 401 challenge, then the request with credentials); and the
    function that refreshes the cached client's answers before its block."""
    registry = signed.registry
    credentials = Credentials(registry.username, registry.password)
    references = [parse_reference(image.tagged) for image in signed.images]
    cached = RegistryClient(client_config(settings, cache_ttl=30.0))
    uncached = RegistryClient(client_config(settings, cache_ttl=0))
    fresh_config = client_config(settings, cache_ttl=30.0)

    def first_contact(reference: Any) -> object:
        return RegistryClient(fresh_config).resolve(reference, credentials=credentials)

    def warm_all() -> None:
        for reference in references:
            cached.resolve(reference, credentials=credentials)

    warm_all()
    rotate_cached = _rotate_refs(lambda r: cached.resolve(r, credentials=credentials), references)
    return [
        Case("resolve: cached", rotate_cached, samples * 4, warm=0, note="refreshed per block"),
        Case(
            "resolve: uncached",
            _rotate_refs(lambda r: uncached.resolve(r, credentials=credentials), references),
            samples,
        ),
        Case("resolve: first contact", _rotate_refs(first_contact, references), samples // 2),
    ], warm_all


def _rotate_refs(call: Callable[[Any], object], references: Sequence[Any]) -> Callable[[], object]:
    position = [0]

    def rotated() -> object:
        reference = references[position[0] % len(references)]
        position[0] += 1
        return call(reference)

    return rotated


# --- the run ------------------------------------------------------------------------------------


def load() -> str:
    return "/".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=48, help="cosign-signed images to push")
    parser.add_argument("--notation-images", type=int, default=8, help="0: no Notation rows")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=2000, help="cached reviews per block")
    parser.add_argument(
        "--uncached-samples", type=int, default=60, help="uncached reviews per block"
    )
    parser.add_argument("--deadline-repeats", type=int, default=2, help="0: skip the hung case")
    parser.add_argument(
        "--slow-delay", type=float, default=1.2, help="seconds the slow registry holds each call"
    )
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args(argv)
    if args.images < 2 * CONTAINERS:
        parser.error(f"--images must be at least {2 * CONTAINERS}")

    started = time.monotonic()
    loads = {"start": load()}
    print(f"load average at start: {loads['start']}", flush=True)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mamori-sigbench-")))
        registry = stack.enter_context(running_registry(work / "registry"))
        run = os.urandom(4).hex()
        setup_started = time.monotonic()
        signed = push_and_sign(
            registry,
            work,
            count=args.images,
            notation_count=args.notation_images,
            run=run,
        )
        print(
            f"registry {registry.address}: pushed and signed {len(signed.images)} images in "
            f"{time.monotonic() - setup_started:.1f}s",
            flush=True,
        )
        settings = WebhookSettings(
            tls_cert=Path("unused"),
            tls_key=Path("unused"),
            registry_ca_file=registry.ca_file,
            registry_credentials=credentials_file(registry, work),
        )
        figures = measure(args, settings, signed, loads)
        if args.deadline_repeats:
            figures["deadline"] = deadline_figures(
                settings, signed, work, repeats=args.deadline_repeats, delay=args.slow_delay
            )
    loads["end"] = load()
    figures["load_average"] = loads
    figures["seconds"] = time.monotonic() - started
    figures["settings"] = {
        "registry_timeout": settings.registry_timeout,
        "registry_budget": settings.registry_budget,
        "registry_cache_ttl": settings.registry_cache_ttl,
    }
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


def measure(
    args: argparse.Namespace, settings: WebhookSettings, signed: Signed, loads: dict[str, str]
) -> dict[str, Any]:
    address = signed.registry.address
    mixed = groups(signed.of("legacy") + signed.of("bundle"), mixed=True)
    sets = {
        "2 legacy + 2 bundle": mixed,
        "4 x legacy": groups(signed.of("legacy"), mixed=False),
        "4 x bundle": groups(signed.of("bundle"), mixed=False),
    }
    if len(signed.of("notation")) >= CONTAINERS:
        sets["4 x Notation"] = groups(signed.of("notation"), mixed=False)
    cached_access = build_registry_access(settings)
    uncached = uncached_access(settings, client_config(settings, cache_ttl=0))

    today = admission(parse_policy(payload.POLICY), cached_access.for_request)
    today_body = review_body(None)
    check_allowed("today", today, today_body)
    cases = [
        Case(
            f"{TODAY_COLUMN}: payload as in docs (ECR images), production policy",
            lambda: today.review(today_body),
            args.samples,
        )
    ]
    wire: dict[str, dict[str, float]] = {}
    signing: dict[str, Policy] = {}
    for by, attribute in (("digest", "pinned"), ("tag", "tagged")):
        plain = policy(address, digests=by == "digest", signatures=None)
        signing[by] = policy(address, digests=by == "digest", signatures=signed)
        a = admission(plain, cached_access.for_request)
        b = admission(signing[by], cached_access.for_request)
        c = admission(signing[by], uncached.for_request)
        for images, label in ((mixed[0], ""), (sets.get("4 x Notation", [None])[0], "Notation")):
            if images is None:
                continue
            body = review_body([getattr(image, attribute) for image in images])
            check_allowed(f"(a) by {by}", a, body)
            check_allowed(f"(b) by {by}", b, body)
            if label:
                name = f"(d) by {by}: Notation, cached"
            else:
                cases.append(Case(f"(a) by {by}: production policy", partial(a.review, body),
                                  args.samples))  # fmt: skip
                name = f"(b) by {by}: + imageSignatures, cached"
            cases.append(Case(name, partial(b.review, body), args.samples))
        for kind, group_list in sets.items():
            items = bodies(group_list, by=attribute)
            for item in items:
                check_allowed(f"(c) {kind} by {by}", c, item)
            name = f"(c) by {by}: uncached, {kind}"
            if kind == "4 x Notation":
                name = f"(d) by {by}: Notation, uncached"
            wire[name] = wire_per_review(c.review, items)
            samples = args.uncached_samples if kind == "2 legacy + 2 bundle" else None
            samples = samples or max(10, args.uncached_samples // 2)
            cases.append(Case(name, rotation(c.review, items), samples, warm=0))
    resolve, refresh = resolve_cases(settings, signed, max(50, args.uncached_samples * 2))
    parts = parts_us(settings, signed, signing["tag"])

    first_sight: list[float] = []
    loads_per_round = []
    for round_number in range(1, args.rounds + 1):
        loads_per_round.append(load())
        print(f"round {round_number}/{args.rounds}, load average {loads_per_round[-1]}",
              flush=True)  # fmt: skip
        # first sight: a fresh webhook access, each digest never seen (tag resolve + verify)
        fresh = build_registry_access(settings)
        first = admission(signing["tag"], fresh.for_request)
        for item in bodies(mixed, by="tagged"):
            began = time.perf_counter()
            first.review(item)
            first_sight.append((time.perf_counter() - began) * 1e3)
        order = cases if round_number % 2 else list(reversed(cases))
        for case in order:
            case.run_block()
        refresh()
        for case in resolve:
            case.run_block()
    loads["rounds"] = " | ".join(loads_per_round)
    return {
        "rows": {case.name: case.stats_us() for case in [*cases, *resolve]},
        "wire_per_uncached_review": wire,
        "cached_parts_us": parts,
        "first_sight_ms": first_sight,
        "images": {form: len(signed.of(form)) for form in ("legacy", "bundle", "notation")},
        "rounds": args.rounds,
    }


# --- the report ---------------------------------------------------------------------------------


def report(figures: dict[str, Any]) -> None:
    rows = figures["rows"]
    print()
    print(f"load average: start {figures['load_average']['start']}, rounds "
          f"{figures['load_average']['rounds']}, end {figures['load_average']['end']}")  # fmt: skip
    print(f"settings: {figures['settings']}; images {figures['images']}; "
          f"{figures['rounds']} rounds; {figures['seconds']:.0f}s in all")  # fmt: skip
    print()
    print("| case | n | min µs | median µs | p99 µs | max µs |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, stats in rows.items():
        print(
            f"| {name} | {stats['n']} | {stats['min_us']:,.1f} | {stats['median_us']:,.1f} | "
            f"{stats['p99_us']:,.1f} | {stats['max_us']:,.1f} |"
        )
    print()
    for by in ("digest", "tag"):
        a = rows.get(f"(a) by {by}: production policy")
        b = rows.get(f"(b) by {by}: + imageSignatures, cached")
        if a and b:
            print(
                f"(b)/(a) by {by}: min {b['min_us'] / a['min_us']:.3f}, "
                f"median {b['median_us'] / a['median_us']:.3f}, p99 {b['p99_us'] / a['p99_us']:.3f}"
            )
    for name, stats in rows.items():
        if "uncached" in name or "Notation" in name or name.startswith("resolve"):
            p50, p99 = stats["median_us"] / 1e3, stats["p99_us"] / 1e3
            print(f"{name}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    print()
    print("per uncached review, on the wire (one pass, not timed):")
    for name, counts in figures["wire_per_uncached_review"].items():
        print(f"  {name}: {counts['connections']:.1f} TLS connections, "
              f"{counts['requests']:.1f} HTTP requests")  # fmt: skip
    print("where a cached review's extra time goes (per call, min / median):")
    for name, value in figures["cached_parts_us"].items():
        print(f"  {name}: {value['min_us']:.2f} / {value['median_us']:.2f} µs")
    sight = sorted(figures["first_sight_ms"])
    if sight:
        print(
            f"first sight (fresh webhook access, by tag, 2 legacy + 2 bundle, n={len(sight)}): "
            f"min {sight[0]:.2f} / median {statistics.median(sight):.2f} / "
            f"max {sight[-1]:.2f} ms"
        )
    for name, result in figures.get("deadline", {}).items():
        seconds = ", ".join(f"{value:.2f}" for value in result["seconds"])
        print(f"{name}: review took {seconds} s; allowed {result['allowed']}")
        for line in result["message"].splitlines()[1:]:
            print(f"    {line[:220]}")


if __name__ == "__main__":
    sys.exit(main())
