"""Served, with and without ``spec.imageSignatures``: what signature checks cost the webhook as
it runs (TLS front, workers, the registry client of each worker), once every answer is cached.

bench/admission/signatures.py times ``Admission.review`` in process; this is ``bash
bench/admission/run.sh --signatures``: ``mamori webhook`` itself under bench.py's load. Set up
once, with signatures.py's code: the real loopback registry (``make supplychain``), four images
pushed and signed with the real cosign (two in the legacy ``.sig`` form, two bundles) and
``--notation-images`` with the real notation (so that the policy carries a Notation entry too),
a credentials file and the registry's CA. Then four webhooks, each its own process with
``--policy``, ``--registry-ca-file`` and ``--registry-credentials``, on the admission
benchmark's four-container Deployment with its images on that registry:

* (a) the production policy (trusting the loopback registry), (b) the same with
  ``imageSignatures``; each by digest and by tag (``requireImageDigest`` off for both by tag);
* each round measures the four in turn (the order reversed every other round), each after its
  own 2 s of untimed load, so every answer is cached when the clock starts (the first review of
  each webhook asks the registry; tags are asked again once per worker per
  ``--registry-cache-ttl``, signatures once per ``verified_ttl``).

The webhooks reach the registry through a counting TCP relay (registry_faults.delayed_proxy,
no delay), so the report says how often the registry was asked during each timed part. Not a
test: the figures go into docs/benchmarks.md by hand. Everything started here (webhooks, relay,
registry) is stopped on the way out, failure or not.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import sys
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.admission.bench import (
    HEY_WORKERS,
    Result,
    Server,
    best_of,
    check_allowed,
    measure,
    prepare_workspace,
    request_files,
    server_side_mean_ms,
    warm_up,
    webhook_args,
)
from bench.admission.registry_faults import BURST_WINDOW, RelayTraffic, delayed_proxy
from bench.admission.signatures import CONTAINERS, groups, load, policy_document, review_body
from bench.admission.signed_registry import credentials_file, push_and_sign
from mamori.supplychain.live import EvidenceConfig
from mamori_webhook.settings import WebhookSettings
from tests.integration.registry_support import running_registry

WAYS = (("digest", "pinned"), ("tag", "tagged"))


@dataclass
class Case:
    """One webhook under test and the review it is sent."""

    name: str
    server: Server
    files: dict[str, Path]


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    loads = {"start": load()}
    print(f"load average at start: {loads['start']}", flush=True)
    traffic = RelayTraffic()
    results: list[Result] = []
    registry_asked: list[dict[str, Any]] = []
    first_review: dict[str, dict[str, int]] = {}
    with ExitStack() as stack:
        work, _, common = prepare_workspace(args, prefix="mamori-served-sig-")
        registry = stack.enter_context(running_registry(work / "registry"))
        setup_started = time.monotonic()
        signed = push_and_sign(
            registry,
            work,
            count=CONTAINERS,
            notation_count=args.notation_images,
            run=os.urandom(4).hex(),
        )
        print(f"registry {registry.address}: pushed and signed {len(signed.images)} images in "
              f"{time.monotonic() - setup_started:.1f}s", flush=True)  # fmt: skip
        relay_port = stack.enter_context(delayed_proxy(registry.port, 0, traffic=traffic))
        address = f"127.0.0.1:{relay_port}"
        registry_flags = [
            "--registry-ca-file", str(registry.ca_file),
            "--registry-credentials", str(credentials_file(registry, work, also=[address])),
            *webhook_args(args),
        ]  # fmt: skip
        images = groups(signed.of("legacy") + signed.of("bundle"), mixed=True)[0]
        cases, pointed = [], {}
        for by, attribute in WAYS:
            pointed[by] = [
                getattr(dataclasses.replace(image, address=address), attribute) for image in images
            ]
            files = request_files(work, f"by-{by}", review_body(pointed[by]), ca=work / "ca.crt")
            for signing in (False, True):
                name = f"(b) by {by}: + imageSignatures" if signing else f"(a) by {by}: production"
                document = policy_document(
                    address, digests=by == "digest", signatures=signed if signing else None
                )
                policy_file = work / f"policy-{'b' if signing else 'a'}-{by}.yaml"
                policy_file.write_text(yaml.safe_dump(document))
                server = Server(
                    name,
                    [
                        sys.executable, "-m", "mamori.cli", "webhook", *common,
                        "--policy", str(policy_file), *registry_flags,
                    ],
                    log=work / f"webhook-{'b' if signing else 'a'}-{by}.log",
                    ca_file=work / "ca.crt",
                )  # fmt: skip
                stack.callback(server.stop)
                mark = traffic.mark()
                check_allowed(server, files["body"].read_bytes(), named=True)
                first_review[name] = traffic.since(mark)
                cases.append(Case(name, server, files))
        print(f"images through the relay, by tag: {', '.join(pointed['tag'])}", flush=True)
        loads_per_round = []
        for round_number in range(1, args.rounds + 1):
            loads_per_round.append(load())
            print(f"round {round_number}/{args.rounds}, load average {loads_per_round[-1]}",
                  flush=True)  # fmt: skip
            for case in cases if round_number % 2 else list(reversed(cases)):
                warm_up(case.server, args, case.files)
                mark, questions = traffic.mark(), questions_asked(case.server)
                result = measure(case.server, args, case.files, warm=False)
                asked: dict[str, Any] = traffic.since(mark)
                after = questions_asked(case.server)
                asked["questions"] = (
                    after - questions if after is not None and questions is not None else None
                )
                result.round = round_number
                results.append(result)
                registry_asked.append({"target": case.name, "round": round_number, **asked})
        mean_ms = {case.name: server_side_mean_ms(case.server) for case in cases}
    loads["rounds"] = " | ".join(loads_per_round)
    loads["end"] = load()
    order = [case.name for case in cases]
    results.sort(key=lambda r: (r.round, order.index(r.target)))
    document = {
        "results": [asdict(r) for r in results],
        "registry_during_timed_part": registry_asked,
        "registry_for_first_review": first_review,
        "server_side_mean_ms": mean_ms,
        "load_average": loads,
        "seconds": time.monotonic() - started,
        "images": pointed,
        "settings": vars(args) | {"json": str(args.json)} | registry_defaults(),
    }
    report(document, results, args)
    if args.json:
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)  # kept on failure: the webhooks' logs are there
    return 0 if all(r.errors == 0 for r in results) else 1


def questions_asked(server: Server) -> float | None:
    """The webhook's own count of questions its reviews asked registries (tags resolved,
    signatures read; both workers), or None from a webhook without the metric."""
    _, text = server.get("/metrics")
    found = re.search(rb"^mamori_webhook_registry_calls_total ([\d.e+-]+)$", text, re.M)
    return float(found.group(1)) if found else None


def registry_defaults() -> dict[str, float]:
    """How long the webhook keeps answers when no flag says otherwise."""
    settings = WebhookSettings(tls_cert=Path("unused"), tls_key=Path("unused"))
    return {
        "registry_cache_ttl": settings.registry_cache_ttl,
        "verified_ttl": EvidenceConfig(budget=settings.registry_budget).verified_ttl,
    }


def report(document: dict[str, Any], results: list[Result], args: argparse.Namespace) -> None:
    loads, settings = document["load_average"], document["settings"]
    print(
        f"\nload average: start {loads['start']}, rounds {loads['rounds']}, end {loads['end']}; "
        f"{document['seconds']:.0f}s in all\n"
        f"The admission benchmark's Deployment, its 4 images (2 cosign legacy + 2 bundle) on the "
        f"loopback registry through a counting relay; server: {args.workers} workers x "
        f"{args.threads} threads; saturation: wrk -t{args.wrk_threads} -c{args.connections} "
        f"{args.duration}s; latency: {args.rate}/s for {args.rate_duration}s, evenly spaced "
        f"({args.pacer} client) and in bursts (hey -c{HEY_WORKERS}); {args.rounds} rounds, the "
        f"order reversed every other one; webhook caches: tags "
        f"{settings['registry_cache_ttl']:g}s, verified signatures {settings['verified_ttl']:g}s\n"
    )
    header = (
        "| webhook | round | saturated reviews/s | p50 / p99 ms (saturated) | server CPU ms/review "
        f"| {args.rate}/s even: p50 / p99 / max ms | {args.rate}/s bursts: p50 / p99 ms "
        "| registry in the timed part: connections / requests / largest burst / questions* "
        "| errors |"
    )
    print(header)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    asked = {(a["target"], a["round"]): a for a in document["registry_during_timed_part"]}
    for r in results:
        print(row(r, str(r.round), asked[(r.target, r.round)]))
    print("\nBest round of each measure; registry column: all rounds together\n")
    print(header)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for target in dict.fromkeys(r.target for r in results):
        mine = [a for a in asked.values() if a["target"] == target]
        total: dict[str, Any] = {
            name: sum(a[name] for a in mine) for name in ("connections", "requests")
        }
        total["largest_burst"] = max(a["largest_burst"] for a in mine)
        questions = [a["questions"] for a in mine]
        total["questions"] = None if None in questions else sum(questions)
        print(row(best_of([r for r in results if r.target == target]), "best", total))
    print(
        "\n* as the counting relay saw them (TLS records: requests told from handshakes and alerts "
        f"by place and size); largest burst: most requests within {BURST_WINDOW * 1000:g} ms; "
        "questions: the webhook's mamori_webhook_registry_calls_total (a tag resolved, a digest's "
        "signatures read: one or more requests each)"
    )
    print("registry traffic of each webhook's first review (one worker, nothing cached yet):")
    for name, first in document["registry_for_first_review"].items():
        print(f"  {name}: {first['connections']} connections, {first['requests']} requests")
    print("server-side mean per review over the whole run (warm-ups and first reviews included):")
    for name, value in document["server_side_mean_ms"].items():
        print(f"  {name}: {value:.3f} ms")
    print()
    for by, _ in WAYS:
        print(ratio_line(results, f"(a) by {by}: production", f"(b) by {by}: + imageSignatures"))
    print(ratio_line(results, "(a) by digest: production", "(b) by tag: + imageSignatures"))


def ratio_line(results: list[Result], plain: str, signing: str) -> str:
    """(b)/(a): CPU per review (cost: above 1 is dearer), saturated rate (above 1 is faster),
    even-rate p50 and p99 of each one's best round; best to best, then round by round."""
    a = [r for r in results if r.target == plain]
    b = [r for r in results if r.target == signing]
    best_a, best_b = best_of(a), best_of(b)
    cpu_rounds = " / ".join(
        f"{y.server_cpu_ms_per_review / x.server_cpu_ms_per_review:.2f}"
        for x, y in zip(a, b, strict=True)
    )
    rate_rounds = " / ".join(
        f"{y.saturated_rps / x.saturated_rps:.2f}" for x, y in zip(a, b, strict=True)
    )
    return (
        f"{signing} / {plain}: server CPU per review "
        f"{best_b.server_cpu_ms_per_review / best_a.server_cpu_ms_per_review:.2f}x best to best "
        f"(rounds {cpu_rounds}); saturated reviews/s "
        f"{best_b.saturated_rps / best_a.saturated_rps:.2f}x (rounds {rate_rounds}); even p50 "
        f"{best_b.paced_p50_ms / best_a.paced_p50_ms:.2f}x, p99 "
        f"{best_b.paced_p99_ms / best_a.paced_p99_ms:.2f}x"
    )


def row(r: Result, label: str, asked: dict[str, Any]) -> str:
    return (
        f"| {r.target} | {label} | {r.saturated_rps:,.0f} | {r.saturated_p50_ms:.2f} / "
        f"{r.saturated_p99_ms:.2f} | {r.server_cpu_ms_per_review:.3f} | "
        f"{r.paced_p50_ms:.2f} / {r.paced_p99_ms:.2f} / {r.paced_max_ms:.1f} | "
        f"{r.hey_p50_ms:.2f} / {r.hey_p99_ms:.2f} | "
        f"{asked['connections']} / {asked['requests']} / {asked['largest_burst']} / "
        f"{'-' if asked['questions'] is None else format(asked['questions'], '.0f')} | {r.errors} |"
    )
