"""``why``'s two outputs: text for people, JSON (``-o json``) for programs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, TextIO

from mamori.findings import Enforcement, Violation
from mamori.why.explain import Explanation, PodView, PolicyStatus, PolicyView, fix_for

MARKS = {Enforcement.ENFORCE: "✗", Enforcement.WARN: "!", Enforcement.AUDIT: "!"}


def write_text(explanation: Explanation, stream: TextIO) -> None:
    stream.writelines(f"{line}\n" for line in text_lines(explanation))


def text_lines(explanation: Explanation) -> Iterator[str]:
    e = explanation
    yield f"{e.kind} {e.name} in namespace {e.namespace}: {_verdict(e)}"
    if e.pod_spec is not None:
        yield f"  judged: the pod spec at {e.pod_spec}"
    if e.owner is not None:
        yield f"  controlled by {e.owner}: the webhook also judged its pod template"
    yield f"  namespace labels: {_labels(e)}"
    for note in e.notes:
        yield f"  note: {note}"
    selecting = [p for p in e.policies if p.selected]
    others = [p for p in e.policies if not p.selected]
    yield ""
    yield f"Policies that judge it ({len(selecting)}):"
    if not selecting:
        yield "  (none: no ClusterSecurityPolicy selects this namespace)"
    for policy in selecting:
        yield from _selected_lines(policy)
    if others:
        yield ""
        yield f"Policies that do not ({len(others)}):"
        for policy in others:
            yield f"  {policy.name} ({_enforcement(policy)}): {policy.reason}"
            if policy.invalid is not None:
                yield f"    invalid: {policy.invalid}"
            yield from _status_lines(policy.status)
    if e.pods:
        yield ""
        yield f"Pods ({len(e.pods)}):"
        yield from (f"  {_pod_line(pod)}" for pod in e.pods)
    yield ""
    yield f"Verdict: {_summary(e)}"


def _selected_lines(policy: PolicyView) -> Iterator[str]:
    yield f"  {policy.name} ({_enforcement(policy)}): {policy.reason}"
    yield f"    rules ({len(policy.rules)}): {', '.join(policy.rules) or 'none'}"
    if policy.unjudged:
        yield f"    not run here (no scan results read): {', '.join(policy.unjudged)}"
    if not policy.violations and not policy.advice:
        yield "    no violations"
    for violation in policy.violations:
        yield f"    {MARKS[violation.enforcement]} [{violation.rule}] {violation.field}"
        yield f"        {violation.message}"
        yield f"        fix: {fix_for(violation)}"
    for hint in policy.advice:
        yield f"    i [{hint.rule}] {hint.field}: {hint.message}"
    yield from _status_lines(policy.status, missing="none reported (is the operator running?)")


def _status_lines(status: PolicyStatus | None, *, missing: str = "") -> Iterator[str]:
    if status is None:
        if missing:
            yield f"    status: {missing}"
        return
    stale = " (for an older generation of the spec)" if status.stale else ""
    yield f"    status: Ready={status.ready} {status.reason}: {status.message}{stale}"


def _pod_line(pod: PodView) -> str:
    scan = " ".join(f"{k.removeprefix('mamori.io/')}={v}" for k, v in pod.scan.items())
    verdict = "allowed" if pod.allowed else "denied"
    return (
        f"{pod.name} {pod.phase} {scan or 'no scan annotations'}; as it runs now: {verdict}, "
        f"{pod.violations} violations"
    )


def _verdict(e: Explanation) -> str:
    if e.decision is None:
        return "not judged (it runs no pods)"
    return "allowed" if e.allowed else "DENIED"


def _summary(e: Explanation) -> str:
    if e.decision is None:
        return "not judged"
    counts = {level: 0 for level in Enforcement}
    for violation in e.decision.violations:
        counts[violation.enforcement] += 1
    tally = ", ".join(f"{counts[level]} {level.value}" for level in Enforcement)
    if e.allowed:
        return f"allowed (violations: {tally})"
    return (
        f"DENIED: the webhook refuses it if it is created or its spec is changed now "
        f"(violations: {tally})"
    )


def _enforcement(policy: PolicyView) -> str:
    return policy.enforcement.value if policy.enforcement is not None else "invalid"


def _labels(e: Explanation) -> str:
    if e.namespace_labels is None:
        return "unknown (selectors judged on the namespace's name only)"
    return ", ".join(f"{k}={v}" for k, v in sorted(e.namespace_labels.items())) or "none"


# JSON -------------------------------------------------------------------------------------


def write_json(explanation: Explanation, stream: TextIO) -> None:
    json.dump(to_dict(explanation), stream, indent=2)
    stream.write("\n")


def to_dict(e: Explanation) -> dict[str, Any]:
    return {
        "object": {"kind": e.kind, "name": e.name, "namespace": e.namespace},
        "judged": e.decision is not None,
        "podSpec": e.pod_spec,
        "allowed": e.allowed,
        "owner": e.owner,
        "namespaceLabels": None if e.namespace_labels is None else dict(e.namespace_labels),
        "policies": [_policy_dict(policy) for policy in e.policies],
        "pods": [
            {
                "name": pod.name,
                "phase": pod.phase,
                "scan": dict(pod.scan),
                "allowed": pod.allowed,
                "violations": pod.violations,
            }
            for pod in e.pods
        ],
        "notes": list(e.notes),
    }


def _policy_dict(policy: PolicyView) -> dict[str, Any]:
    status = policy.status
    return {
        "name": policy.name,
        "enforcement": None if policy.enforcement is None else policy.enforcement.value,
        "selected": policy.selected,
        "reason": policy.reason,
        "invalid": policy.invalid,
        "rules": list(policy.rules),
        "notRun": list(policy.unjudged),
        "violations": [_violation_dict(v) for v in policy.violations],
        "advice": [_violation_dict(v) for v in policy.advice],
        "status": None
        if status is None
        else {
            "ready": status.ready,
            "reason": status.reason,
            "message": status.message,
            "stale": status.stale,
        },
    }


def _violation_dict(violation: Violation) -> dict[str, Any]:
    return {**violation.to_dict(), "fix": fix_for(violation)}
