"""Metric names as each side spells them: the text format, PromQL, and docs/metrics.md.

The chart's alerts and dashboard, the docs and the processes must agree on names; these helpers
reduce each to the same spelling (what a PromQL query names: ``…_total`` for a counter,
``…_bucket``/``…_sum``/``…_count`` for a histogram, the bare name for a gauge).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
METRICS_DOC = ROOT / "docs" / "metrics.md"
# Series Prometheus itself adds for every target; not ours to export.
PROMETHEUS_OWN = frozenset({"up"})

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_LABEL_VALUES = re.compile(r"\blabel_values\s*\(\s*([A-Za-z_:][\w:]*)[^()]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.$])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})
_PAIRS = {")": "(", "]": "[", "}": "{"}


def exported(text: str) -> dict[str, str]:
    """Family name (as a query spells its base) → type, from a scrape in the text format.

    Counters are keyed ``name_total``; the ``name_created`` gauges prometheus-client adds beside
    counters and histograms are left out (docs/metrics.md describes them once, in general).
    """
    families = {family.name: family.type for family in text_string_to_metric_families(text)}
    names: dict[str, str] = {}
    for name, kind in families.items():
        if name.endswith("_created") and families.get(name.removesuffix("_created")) in (
            "counter",
            "histogram",
        ):
            continue
        names[f"{name}_total" if kind == "counter" else name] = kind
    return names


def queryable(families: Mapping[str, str]) -> set[str]:
    """Every series name a query may use for these families (histograms have three)."""
    names: set[str] = set()
    for name, kind in families.items():
        if kind == "histogram":
            names.update(f"{name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(name)
    return names


def referenced(expression: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana query such as label_values) reads."""
    text = _STRING.sub('""', expression)
    names = set(_LABEL_VALUES.findall(text))
    text = _LABEL_VALUES.sub("", text)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    for name, call in _IDENTIFIER.findall(text):
        if not call and name.lower() not in _KEYWORDS:
            names.add(name)
    return names


def balanced(expression: str) -> bool:
    """Brackets of every kind close in order, outside string literals."""
    stack: list[str] = []
    for char in _STRING.sub('""', expression):
        if char in "([{":
            stack.append(char)
        elif char in _PAIRS and (not stack or stack.pop() != _PAIRS[char]):
            return False
    return not stack


def documented(section: str, markdown: str | None = None) -> set[str]:
    """The ``### name`` headings under ``## <section>`` of docs/metrics.md."""
    text = markdown if markdown is not None else METRICS_DOC.read_text(encoding="utf-8")
    names: set[str] = set()
    inside = False
    for line in text.splitlines():
        if line.startswith("## "):
            inside = line[3:].strip() == section
        elif inside and line.startswith("### "):
            names.add(line[4:].strip())
    return names


def headings(markdown: str | None = None) -> set[str]:
    """GitHub's anchor of every heading (lower case, spaces to dashes, punctuation dropped)."""
    text = markdown if markdown is not None else METRICS_DOC.read_text(encoding="utf-8")
    anchors = set()
    for line in text.splitlines():
        found = re.match(r"^#+\s+(.*)$", line)
        if found:
            title = re.sub(r"[^\w\- ]", "", found.group(1).strip().lower())
            anchors.add(title.replace(" ", "-"))
    return anchors


def unknown(references: Iterable[str], families: Mapping[str, str]) -> set[str]:
    """References that neither we nor Prometheus export."""
    return set(references) - queryable(families) - PROMETHEUS_OWN
