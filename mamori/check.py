"""``mamori check``: the admission rules run over manifests, before they reach a cluster.

Exit status is the contract CI pipelines rely on: 0 when every workload is allowed (Warn and
Audit findings included), 1 when at least one is denied, 2 for a usage or input error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from mamori.engine import evaluate
from mamori.findings import Decision
from mamori.manifests import Document, InputError, expand_paths, read_documents
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


@dataclass(slots=True)
class Report:
    results: list[Result] = field(default_factory=list)
    skipped: int = 0
    errors: list[InputError] = field(default_factory=list)

    @property
    def denied(self) -> int:
        return sum(1 for r in self.results if not r.decision.allowed)

    @property
    def exit_code(self) -> int:
        if self.errors:
            return EXIT_ERROR
        return EXIT_DENIED if self.denied else EXIT_ALLOWED

    def summary(self) -> dict[str, int]:
        summary = {
            "workloads": len(self.results),
            "allowed": len(self.results) - self.denied,
            "denied": self.denied,
            "skipped": self.skipped,
        }
        if self.errors:
            summary["errors"] = len(self.errors)
        return summary

    def to_dict(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "results": [r.to_dict() for r in self.results],
            "summary": self.summary(),
        }
        if self.errors:
            document["errors"] = [
                {"source": e.source, "line": e.line, "message": e.message} for e in self.errors
            ]
        return document


def run_check(
    paths: Sequence[str], policies: Sequence[Policy], *, default_namespace: str = "default"
) -> Report:
    """Judge every workload found under ``paths``; count the rest as skipped."""
    report = Report()
    for source in expand_paths(list(paths)):
        if isinstance(source, InputError):
            report.errors.append(source)
            continue
        for document in read_documents(source):
            if isinstance(document, InputError):
                report.errors.append(document)
                continue
            metadata = document.body.get("metadata")
            metadata = metadata if isinstance(metadata, dict) else {}
            namespace = metadata.get("namespace") or default_namespace
            decision = evaluate(document.body, policies, namespace=str(namespace))
            if decision is None:
                report.skipped += 1
                continue
            report.results.append(
                Result(
                    document=document,
                    kind=str(document.body.get("kind")),
                    namespace=str(namespace),
                    name=str(metadata.get("name") or metadata.get("generateName") or ""),
                    decision=decision,
                )
            )
    return report


def write_json(report: Report, stream: TextIO) -> None:
    json.dump(report.to_dict(), stream, indent=2)
    stream.write("\n")


def write_text(report: Report, stream: TextIO) -> None:
    """Human output: one block per workload with findings, then a summary line."""
    for result in report.results:
        decision = result.decision
        if not decision.violations and not decision.advice:
            continue
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
    summary = report.summary()
    stream.write(
        f"{summary['workloads']} workloads: {summary['allowed']} allowed, "
        f"{summary['denied']} denied; {summary['skipped']} other objects skipped\n"
    )
