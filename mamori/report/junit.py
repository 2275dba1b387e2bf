"""``mamori check --output junit``: JUnit XML, the test report CI systems show per merge request.

One ``testsuite`` per file (or standard input), one ``testcase`` per judged object, in reading
order. A denied object's test fails, its ``failure`` listing every violation with the line of
its field; Warn and Audit findings and advice never fail a test and are shown in the test's
``system-out``. An input error is a test in ``error``. Notes (a linter not installed) go to the
``system-out`` of the suite being written.

A file's suite is written when the file is done (its counts come first), so memory holds one
file's results at a time, never the whole run.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import TextIO

from mamori.check import ErrorSink, Note, Outcome, Result, Tally
from mamori.findings import Violation
from mamori.manifests import InputError

# Characters XML 1.0 cannot carry, even escaped (names come from the user's files).
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """``text`` with what XML 1.0 cannot hold replaced by U+FFFD."""
    return NOT_XML.sub("\ufffd", text)


def finding_line(violation: Violation, line: int | None) -> str:
    where = f"line {line}: " if line else ""
    kind = "advice" if violation.advisory else violation.enforcement.value
    return f"{where}{violation.render()}  (policy {violation.policy}, {kind})"


class Suite:
    """The tests of one source, gathered until the source is done."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.cases: list[ET.Element] = []
        self.failures = 0
        self.errors = 0
        self.notes: list[str] = []

    def add_result(self, result: Result) -> None:
        decision = result.decision
        case = self._case(f"{result.kind} {result.namespace}/{result.name}", result.document.line)
        findings = (*decision.violations, *decision.advice)
        lines = [
            finding_line(violation, result.line_of(position) or result.document.line)
            for position, violation in enumerate(findings)
        ]
        if not decision.allowed:
            self.failures += 1
            denials = len(decision.denials)
            failure = ET.SubElement(
                case,
                "failure",
                message=xml_text(
                    f"denied: {denials} violation{'s' if denials != 1 else ''} under Enforce "
                    f"({', '.join(sorted({v.rule for v in decision.denials}))})"
                ),
                type="denied",
            )
            failure.text = xml_text("\n".join(lines[: len(decision.violations)]) + "\n")
            lines = lines[len(decision.violations) :]
        if lines:
            ET.SubElement(case, "system-out").text = xml_text("\n".join(lines) + "\n")

    def add_error(self, problem: InputError) -> None:
        self.errors += 1
        case = self._case("input error", problem.line)
        error = ET.SubElement(case, "error", message=xml_text(problem.message), type="input-error")
        error.text = xml_text(problem.render() + "\n")

    def _case(self, name: str, line: int | None) -> ET.Element:
        source = xml_text(self.source)
        case = ET.Element("testcase", name=xml_text(name), classname=source, file=source)
        if line:
            case.set("line", str(line))
        self.cases.append(case)
        return case

    def element(self) -> ET.Element:
        suite = ET.Element(
            "testsuite",
            name=xml_text(self.source),
            tests=str(len(self.cases)),
            failures=str(self.failures),
            errors=str(self.errors),
            skipped="0",
        )
        suite.extend(self.cases)
        if self.notes:
            ET.SubElement(suite, "system-out").text = xml_text("\n".join(self.notes) + "\n")
        return suite


def write_junit(outcomes: Iterable[Outcome], stream: TextIO, *, on_error: ErrorSink) -> Tally:
    """Write the JUnit report, one suite per source as each source is done."""
    tally = Tally()
    suite: Suite | None = None
    notes: list[str] = []
    stream.write('<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="mamori check">\n')

    def flush() -> None:
        if suite is not None:
            suite.notes = notes[:]
            notes.clear()
            element = suite.element()
            ET.indent(element, space="  ", level=1)
            stream.write(f"  {ET.tostring(element, encoding='unicode')}\n")

    for outcome in outcomes:
        tally.add(outcome)
        if isinstance(outcome, Note):
            notes.append(f"note: {outcome.message}")
            continue
        if not isinstance(outcome, (Result, InputError)):
            continue
        source = outcome.document.source if isinstance(outcome, Result) else outcome.source
        if suite is None or suite.source != source:
            flush()
            suite = Suite(source)
        if isinstance(outcome, InputError):
            on_error(outcome)
            suite.add_error(outcome)
        else:
            suite.add_result(outcome)
    if suite is None and notes:
        suite = Suite("mamori")
    flush()
    stream.write("</testsuites>\n")
    return tally
