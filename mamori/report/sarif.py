"""``mamori check --output sarif``: SARIF 2.1.0, the format code-scanning pages read.

One run, one result per finding, at the line of the finding's field (see
:mod:`mamori.report.locate`). Results are written as they are judged; the tool's ``rules``
(every rule ID that appeared, in order of appearance, which ``ruleIndex`` counts) and the
invocation (input errors and notes) follow them, since JSON objects have no order.

Levels: a finding under an Enforce policy is an ``error``, under Warn a ``warning``, under Audit
a ``note``, and advice (which never denies) a ``note``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from mamori import __version__
from mamori.check import STDIN_NAME, ErrorSink, Note, Outcome, Result, Tally
from mamori.findings import Enforcement, Violation
from mamori.manifests import InputError

SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
SRCROOT = "%SRCROOT%"
LEVELS = {Enforcement.ENFORCE: "error", Enforcement.WARN: "warning", Enforcement.AUDIT: "note"}
# Rules documented under a heading other than their ID (docs/rules.md).
RULE_SECTIONS = {
    "image-digest": "digests",
    "image-reference": "how-an-image-reference-is-read",
    "trusted-registry": "trusted-registries",
}
DOCKERFILE_SECTION = "dockerfile.md#the-rules"


def level_of(violation: Violation) -> str:
    return "note" if violation.advisory else LEVELS[violation.enforcement]


def rule_doc(rule_id: str) -> str:
    """Where a rule is explained, relative to the docs folder."""
    if rule_id.startswith(("dockerfile-", "hadolint-")):
        return DOCKERFILE_SECTION
    return f"rules.md#{RULE_SECTIONS.get(rule_id, rule_id)}"


def rule_summary(rule_id: str) -> str:
    """The rule's one-line summary from its registry, or its ID for rules mamori does not own."""
    from mamori.rules import RULES

    if rule_id in RULES:
        return RULES.get(rule_id).summary
    if rule_id.startswith("dockerfile-"):
        from mamori.dockerfile.rules import DOCKERFILE_RULES

        for rule in DOCKERFILE_RULES:
            if rule.id == rule_id:
                return rule.summary
    if rule_id.startswith("hadolint-"):
        return f"hadolint {rule_id.removeprefix('hadolint-')}"
    return rule_id


class Artifacts:
    """Where a source is, as SARIF names it: relative to ``root`` (``%SRCROOT%``) when inside
    it, else an absolute ``file:`` URI; standard input has no URI, only a description."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self._last: tuple[str, dict[str, Any]] | None = None  # a file's results come together

    def location(self, source: str) -> dict[str, Any]:
        if self._last is None or self._last[0] != source:
            self._last = (source, self._locate(source))
        return dict(self._last[1])

    def _locate(self, source: str) -> dict[str, Any]:
        if source == STDIN_NAME:
            return {"description": {"text": "standard input"}}
        path = os.path.abspath(source)
        relative = os.path.relpath(path, self.root)
        if relative != ".." and not relative.startswith(".." + os.sep):
            return {"uri": quote(Path(relative).as_posix()), "uriBaseId": SRCROOT}
        return {"uri": Path(path).as_uri()}

    def base_ids(self) -> dict[str, Any]:
        return {SRCROOT: {"uri": Path(self.root).as_uri() + "/"}}


class RuleTable:
    """The rules that appeared, in order: their index, and their ``reportingDescriptor``s."""

    def __init__(self, docs_url: str | None) -> None:
        self._docs_url = docs_url
        self._index: dict[str, int] = {}
        self._descriptors: list[dict[str, Any]] = []

    def index(self, violation: Violation) -> int:
        position = self._index.get(violation.rule)
        if position is None:
            position = self._index[violation.rule] = len(self._descriptors)
            self._descriptors.append(self._describe(violation))
        return position

    def _describe(self, violation: Violation) -> dict[str, Any]:
        doc = rule_doc(violation.rule)
        descriptor: dict[str, Any] = {
            "id": violation.rule,
            "shortDescription": {"text": rule_summary(violation.rule)},
            "help": {"text": f"See docs/{doc} in mamori's documentation."},
            "defaultConfiguration": {"level": level_of(violation)},
        }
        if self._docs_url:
            descriptor["helpUri"] = f"{self._docs_url.rstrip('/')}/{doc}"
        return descriptor

    def descriptors(self) -> list[dict[str, Any]]:
        return self._descriptors


def docs_url() -> str | None:
    """The documentation's address from the installed package's metadata, if it names one."""
    from importlib.metadata import PackageNotFoundError, metadata

    try:
        urls = metadata("mamori").get_all("Project-URL") or []
    except PackageNotFoundError:
        return None
    for entry in urls:
        label, _, url = str(entry).partition(",")
        if label.strip().lower() == "documentation" and url.strip().startswith("https://"):
            return url.strip()
    return None


def write_sarif(
    outcomes: Iterable[Outcome],
    stream: TextIO,
    *,
    on_error: ErrorSink,
    root: str = ".",
    docs: str | None = None,
) -> Tally:
    """Write one SARIF log for every outcome; ``root`` is what ``%SRCROOT%`` stands for,
    ``docs`` the address of the docs folder for ``helpUri`` (none: the help text only)."""
    tally = Tally()
    artifacts = Artifacts(root)
    rules = RuleTable(docs)
    notifications: list[dict[str, Any]] = []
    stream.write(f'{{\n  "$schema": "{SCHEMA}",\n  "version": "2.1.0",\n  "runs": [\n    {{\n')
    stream.write('      "results": [')
    written = 0
    for outcome in outcomes:
        tally.add(outcome)
        if isinstance(outcome, InputError):
            on_error(outcome)
            notifications.append(_error_notification(outcome, artifacts))
        elif isinstance(outcome, Note):
            notifications.append({"level": "note", "message": {"text": outcome.message}})
        elif isinstance(outcome, Result):
            for result in _results(outcome, artifacts, rules):
                stream.write(",\n        " if written else "\n        ")
                stream.write(json.dumps(result))
                written += 1
    stream.write("\n      ],\n" if written else "],\n")
    tool = {"driver": {"name": "mamori", "version": __version__, "rules": rules.descriptors()}}
    invocation = {
        "executionSuccessful": not tally.errors,
        "exitCode": tally.exit_code,
        "toolExecutionNotifications": notifications,
    }
    stream.write(f'      "tool": {json.dumps(tool)},\n')
    stream.write(f'      "invocations": [{json.dumps(invocation)}],\n')
    stream.write(f'      "originalUriBaseIds": {json.dumps(artifacts.base_ids())},\n')
    stream.write(f'      "properties": {{"summary": {json.dumps(tally.summary())}}}\n')
    stream.write("    }\n  ]\n}\n")
    return tally


def _results(outcome: Result, artifacts: Artifacts, rules: RuleTable) -> Iterable[dict[str, Any]]:
    decision = outcome.decision
    document = outcome.document
    subject = f"{outcome.kind} {outcome.namespace}/{outcome.name}"
    for position, violation in enumerate((*decision.violations, *decision.advice)):
        line = outcome.line_of(position) or document.line
        properties: dict[str, Any] = {
            "policy": violation.policy,
            "enforcement": violation.enforcement.value,
            "advisory": violation.advisory,
            "field": violation.field,
            "container": violation.container,
            "object": {
                "kind": outcome.kind,
                "namespace": outcome.namespace,
                "name": outcome.name,
                "document": document.index,
            },
        }
        if document.item is not None:
            properties["object"]["item"] = document.item
        yield {
            "ruleId": violation.rule,
            "ruleIndex": rules.index(violation),
            "level": level_of(violation),
            "message": {"text": f"{subject}: {violation.field}: {violation.message}"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": artifacts.location(document.source),
                        "region": {"startLine": max(line, 1)},
                    },
                    "logicalLocations": [
                        {"fullyQualifiedName": f"{subject} {violation.field}", "kind": "member"}
                    ],
                }
            ],
            "properties": properties,
        }


def _error_notification(problem: InputError, artifacts: Artifacts) -> dict[str, Any]:
    location: dict[str, Any] = {"artifactLocation": artifacts.location(problem.source)}
    if problem.line:
        location["region"] = {"startLine": problem.line}
    return {
        "level": "error",
        "message": {"text": problem.render()},
        "locations": [{"physicalLocation": location}],
    }
