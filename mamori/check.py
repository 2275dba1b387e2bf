"""``mamori check``: the admission rules run over manifests, before they reach a cluster.

Exit status is the contract CI pipelines rely on: 0 when every workload is allowed (Warn and
Audit findings included), 1 when at least one is denied, 2 for a usage or input error.

Results stream: each object is judged and written as it is read, and only counts are kept, so
memory stays flat however many documents a pipeline feeds in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from mamori.engine import evaluate
from mamori.findings import Decision
from mamori.manifests import Document, InputError, ReadLimits, expand_paths, read_documents
from mamori.policy.model import Policy

EXIT_ALLOWED = 0
EXIT_DENIED = 1
EXIT_ERROR = 2


@dataclass(frozen=True, slots=True)
class Result:
    document: Document
    kind: str
    namespace: str
    name: str
    decision: Decision

    def to_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "source": self.document.source,
            "document": self.document.index,
            "kind": self.kind,
            "namespace": self.namespace,
            "name": self.name,
            "allowed": self.decision.allowed,
            "violations": [v.to_dict() for v in self.decision.violations],
        }
        if self.document.item is not None:
            result["item"] = self.document.item
        if self.decision.advice:
            result["advice"] = [v.to_dict() for v in self.decision.advice]
        return result


@dataclass(frozen=True, slots=True)
class Skipped:
    """An object of a kind that runs no pods."""

    document: Document


Outcome = Result | Skipped | InputError


@dataclass(slots=True)
class Tally:
    """What the summary line and the exit status need: counts, never the results themselves."""

    workloads: int = 0
    denied: int = 0
    skipped: int = 0
    errors: int = 0

    def add(self, outcome: Outcome) -> None:
        if isinstance(outcome, Result):
            self.workloads += 1
            self.denied += 0 if outcome.decision.allowed else 1
        elif isinstance(outcome, Skipped):
            self.skipped += 1
        else:
            self.errors += 1

    @property
    def exit_code(self) -> int:
        if self.errors:
            return EXIT_ERROR
        return EXIT_DENIED if self.denied else EXIT_ALLOWED

    def summary(self) -> dict[str, int]:
        summary = {
            "workloads": self.workloads,
            "allowed": self.workloads - self.denied,
            "denied": self.denied,
            "skipped": self.skipped,
        }
        if self.errors:
            summary["errors"] = self.errors
        return summary


def judge(
    paths: Sequence[str],
    policies: Sequence[Policy],
    *,
    default_namespace: str = "default",
    limits: ReadLimits | None = None,
) -> Iterator[Outcome]:
    """Judge every object found under ``paths``, one at a time, in reading order."""
    for source in expand_paths(list(paths)):
        if isinstance(source, InputError):
            yield source
            continue
        for document in read_documents(source, limits=limits):
            if isinstance(document, InputError):
                yield document
                continue
            yield judge_document(document, policies, default_namespace=default_namespace)


def judge_document(
    document: Document, policies: Sequence[Policy], *, default_namespace: str
) -> Result | Skipped:
    metadata = document.body.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    namespace = metadata.get("namespace") or default_namespace
    decision = evaluate(document.body, policies, namespace=str(namespace))
    if decision is None:
        return Skipped(document)
    return Result(
        document=document,
        kind=str(document.body.get("kind")),
        namespace=str(namespace),
        name=str(metadata.get("name") or metadata.get("generateName") or ""),
        decision=decision,
    )


ErrorSink = Callable[[InputError], None]


def write_json(outcomes: Iterable[Outcome], stream: TextIO, *, on_error: ErrorSink) -> Tally:
    """The documented JSON report, written result by result (errors are gathered for the end)."""
    tally = Tally()
    errors: list[dict[str, Any]] = []
    stream.write('{\n  "results": [')
    for outcome in outcomes:
        tally.add(outcome)
        if isinstance(outcome, InputError):
            on_error(outcome)
            errors.append(
                {"source": outcome.source, "line": outcome.line, "message": outcome.message}
            )
        elif isinstance(outcome, Result):
            stream.write(",\n    " if tally.workloads > 1 else "\n    ")
            stream.write(json.dumps(outcome.to_dict()))
    stream.write("\n  ],\n" if tally.workloads else "],\n")
    stream.write(f'  "summary": {json.dumps(tally.summary())}')
    if errors:
        stream.write(',\n  "errors": [\n    ')
        stream.write(",\n    ".join(json.dumps(error) for error in errors))
        stream.write("\n  ]")
    stream.write("\n}\n")
    return tally


def write_text(outcomes: Iterable[Outcome], stream: TextIO, *, on_error: ErrorSink) -> Tally:
    """Human output: one block per workload with findings as it is judged, then a summary."""
    tally = Tally()
    for outcome in outcomes:
        tally.add(outcome)
        if isinstance(outcome, InputError):
            on_error(outcome)
        elif isinstance(outcome, Result):
            write_result_text(outcome, stream)
    summary = tally.summary()
    stream.write(
        f"{summary['workloads']} workloads: {summary['allowed']} allowed, "
        f"{summary['denied']} denied; {summary['skipped']} other objects skipped\n"
    )
    return tally


def write_result_text(result: Result, stream: TextIO) -> None:
    decision = result.decision
    if not decision.violations and not decision.advice:
        return
    verdict = "DENIED" if not decision.allowed else "allowed"
    where = f"{result.document.source}:{result.document.line}"
    stream.write(f"{where} {result.kind} {result.namespace}/{result.name}: {verdict}\n")
    for violation in decision.violations:
        mark = "✗" if violation.enforcement.value == "Enforce" else "!"
        stream.write(
            f"  {mark} {violation.render()}  (policy {violation.policy}, "
            f"{violation.enforcement.value})\n"
        )
    for hint in decision.advice:
        stream.write(f"  i {hint.render()}\n")
