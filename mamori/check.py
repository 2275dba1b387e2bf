"""``mamori check``: the admission rules run over manifests, before they reach a cluster.

Exit status is the contract CI pipelines rely on: 0 when every workload is allowed (Warn and
Audit findings included), 1 when at least one is denied, 2 for a usage or input error.

Results stream: each object is judged and written as it is read, and only counts are kept, so
memory stays flat however many documents a pipeline feeds in.

Dockerfiles (``Dockerfile``, ``Containerfile``, ``*.Dockerfile``, ``Dockerfile.*``) are judged
by the same policies (``mamori.dockerfile``), imported only when one is found, and reported in
the same shape (``kind: Dockerfile``, a ``line`` for each finding).

The CI reports (``--output sarif``, ``--output junit``) live in :mod:`mamori.report`, imported
only when chosen; they ask :func:`judge` to ``locate`` each finding at its field's line.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TextIO

from mamori.engine import evaluate, uses_registry, uses_scans
from mamori.findings import Decision
from mamori.manifests import (
    STDIN,
    Document,
    InputError,
    ReadLimits,
    expand_paths,
    is_dockerfile,
    read_documents,
)

if TYPE_CHECKING:
    from mamori.dockerfile.judge import DockerfileOptions  # loaded when a Dockerfile is found
    from mamori.policy.model import Policy
    from mamori.supplychain.lookup import RegistryLookup

EXIT_ALLOWED = 0
EXIT_DENIED = 1
EXIT_ERROR = 2
STDIN_NAME = "<stdin>"  # how reports name standard input (as mamori.manifests does)


class Result(NamedTuple):
    """One workload's verdict. (Named tuples, not dataclasses, for what ``mamori check``
    defines at every start: see :class:`mamori.findings.Finding`.)"""

    document: Document
    kind: str
    namespace: str
    name: str
    decision: Decision
    lines: tuple[int, ...] = ()
    """The line of each violation, then of each piece of advice: always for a Dockerfile, for
    a manifest when judged with ``locate`` (the line of the finding's field)."""

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
        if self.lines:
            findings = [*result["violations"], *result.get("advice", ())]
            for finding, line in zip(findings, self.lines, strict=True):
                finding["line"] = line
        return result

    def line_of(self, position: int) -> int | None:
        """The line of the ``position``-th finding (violations, then advice), when known."""
        return self.lines[position] if position < len(self.lines) else None


class Skipped(NamedTuple):
    """An object of a kind that runs no pods."""

    document: Document


UNSCANNED_NOTE = (
    "image-vulnerabilities was not checked: mamori check has no scan results (the webhook "
    "judges images by the cluster's ImageScans)"
)
UNSIGNED_NOTE = (
    "image-signatures was not checked: mamori check asks no registry unless given "
    "--registry-access (the webhook verifies each image's signature in its registry)"
)


class Note(NamedTuple):
    """Something the text report mentions that is neither a result nor an error (a linter
    that is not installed)."""

    message: str


Outcome = Result | Skipped | InputError | Note


class Tally:
    """What the summary line and the exit status need: counts, never the results themselves."""

    __slots__ = ("denied", "errors", "skipped", "workloads")

    def __init__(self) -> None:
        self.workloads = 0
        self.denied = 0
        self.skipped = 0
        self.errors = 0

    def add(self, outcome: Outcome) -> None:
        if isinstance(outcome, Result):
            self.workloads += 1
            self.denied += 0 if outcome.decision.allowed else 1
        elif isinstance(outcome, Skipped):
            self.skipped += 1
        elif isinstance(outcome, InputError):
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
    dockerfile_options: DockerfileOptions | None = None,
    locate: bool = False,
    registry: Callable[[], RegistryLookup] | None = None,
) -> Iterator[Outcome]:
    """Judge every object found under ``paths``, one at a time, in reading order.

    ``dockerfile_options`` default to :meth:`DockerfileOptions.discover` (hadolint if installed),
    looked up at the first Dockerfile. With ``locate``, each finding of a manifest gets the line
    of its field (``Result.lines``), as the SARIF and JUnit reports need. ``registry`` gives
    each object its registry lookup (``--registry-access``); None: rules that need one are not
    judged, and a note says so.
    """
    options = dockerfile_options
    noted = False
    if uses_scans(policies):
        yield Note(UNSCANNED_NOTE)
    if registry is None and uses_registry(policies):
        yield Note(UNSIGNED_NOTE)
    for source in expand_paths(list(paths)):
        if isinstance(source, InputError):
            yield source
            continue
        if is_dockerfile(source):
            if options is None:
                from mamori.dockerfile.judge import DockerfileOptions

                options = DockerfileOptions.discover()
            if options.hadolint is None and not noted:
                from mamori.dockerfile.hadolint import MISSING_NOTE

                noted = True
                yield Note(MISSING_NOTE)
            yield from judge_dockerfile(
                source, policies, default_namespace=default_namespace, options=options
            )
            continue
        if locate:
            yield from judge_located(
                source, policies, default_namespace=default_namespace, limits=limits,
                registry=registry,
            )  # fmt: skip
            continue
        for document in read_documents(source, limits=limits):
            if isinstance(document, InputError):
                yield document
                continue
            yield judge_document(
                document, policies, default_namespace=default_namespace, registry=registry
            )


def judge_located(
    source: str,
    policies: Sequence[Policy],
    *,
    default_namespace: str,
    limits: ReadLimits | None,
    registry: Callable[[], RegistryLookup] | None = None,
) -> Iterator[Result | Skipped | InputError]:
    """Judge one source's objects, with the line of each finding's field (standard input is
    copied aside first, so that its documents can be read again)."""
    from contextlib import nullcontext

    from mamori.report.locate import FieldLocator, spooled_stdin

    with spooled_stdin() if source == STDIN else nullcontext(source) as readable:
        locator = FieldLocator(readable)
        try:
            for document in read_documents(readable, limits=limits):
                if source == STDIN:  # named as the user gave it, not as the copy is
                    document = document._replace(source=STDIN_NAME)
                if isinstance(document, InputError):
                    yield document
                    continue
                outcome = judge_document(
                    document, policies, default_namespace=default_namespace, registry=registry
                )
                if isinstance(outcome, Result) and (
                    outcome.decision.violations or outcome.decision.advice
                ):
                    findings = (*outcome.decision.violations, *outcome.decision.advice)
                    lines = locator.lines(document, [finding.field for finding in findings])
                    outcome = outcome._replace(lines=lines)
                yield outcome
        finally:
            locator.close()


def judge_document(
    document: Document,
    policies: Sequence[Policy],
    *,
    default_namespace: str,
    registry: Callable[[], RegistryLookup] | None = None,
) -> Result | Skipped:
    metadata = document.body.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    namespace = metadata.get("namespace") or default_namespace
    decision = evaluate(
        document.body,
        policies,
        namespace=str(namespace),
        registry=None if registry is None else registry(),
    )
    if decision is None:
        return Skipped(document)
    return Result(
        document=document,
        kind=str(document.body.get("kind")),
        namespace=str(namespace),
        name=str(metadata.get("name") or metadata.get("generateName") or ""),
        decision=decision,
    )


def judge_dockerfile(
    path: str,
    policies: Sequence[Policy],
    *,
    default_namespace: str,
    options: DockerfileOptions,
) -> Iterator[Result | Note | InputError]:
    """One Dockerfile's result, as if its image ran in ``default_namespace``."""
    from mamori.dockerfile.judge import judge_dockerfile as judge_file

    verdict = judge_file(path, policies, namespace=default_namespace, options=options)
    if isinstance(verdict, InputError):
        yield verdict
        return
    for note in verdict.notes:
        yield Note(note)
    yield Result(
        document=Document(verdict.source, 0, verdict.line, {}),
        kind="Dockerfile",
        namespace=default_namespace,
        name=verdict.name,
        decision=verdict.decision,
        lines=verdict.lines,
    )


ErrorSink = Callable[[InputError], None]


class Writer(Protocol):
    def __call__(
        self, outcomes: Iterable[Outcome], stream: TextIO, *, on_error: ErrorSink
    ) -> Tally:
        """Write a report of ``outcomes`` as they come; the tally decides the exit status."""
        ...


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
        elif isinstance(outcome, Note):
            stream.write(f"note: {outcome.message}\n")
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
    for position, violation in enumerate(decision.violations):
        mark = "✗" if violation.enforcement.value == "Enforce" else "!"
        stream.write(
            f"  {mark} {_at(result, position)}{violation.render()}  (policy {violation.policy}, "
            f"{violation.enforcement.value})\n"
        )
    for position, hint in enumerate(decision.advice, start=len(decision.violations)):
        stream.write(f"  i {_at(result, position)}{hint.render()}\n")


def _at(result: Result, position: int) -> str:
    line = result.line_of(position)
    return "" if line is None else f"line {line}: "
