"""Which admission answers deserve a Kubernetes Event, on which object, saying what.

A denial (an Enforce policy, or the reserved-annotations guard) and a Warn-mode warning each
become one Warning Event on the object concerned, so that ``kubectl get events -n NS`` and
``kubectl describe`` show them to whoever was not watching kubectl's output (a GitOps tool, a
controller). Dry runs post nothing: they must not change the cluster.

A refused CREATE leaves no object: the Event names it (kind, name, namespace) without a uid,
which ``--field-selector involvedObject.name=NAME`` still finds; an object that exists after
the answer is named with its uid too, so ``kubectl describe`` lists the Event. A pod a
controller creates has only a ``generateName``; its Event goes on the controller (its
ReplicaSet, Job…), which exists. The message is the one kubectl printed; it comes from the
findings (rule, field, what to change) and never quotes other parts of the object, such as
environment values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mamori.events import EventType, ObjectRef, Occurrence
from mamori.findings import Violation
from mamori_webhook.admission import Verdict
from mamori_webhook.review import AdmissionRequest

DENIED = "AdmissionDenied"
WARNED = "AdmissionWarning"


def occurrences(request: AdmissionRequest, verdict: Verdict) -> list[Occurrence]:
    """The Events one answer calls for (none for most)."""
    if request.dry_run or verdict.internal_error:
        return []
    response = verdict.response.get("response") or {}
    allowed = bool(response.get("allowed", True))
    warnings = verdict.decision.warnings if verdict.decision is not None else ()
    if allowed and not warnings:
        return []  # the common answer: decided before anything is built
    subject = involved_object(request, exists=allowed or request.operation != "CREATE")
    if subject is None:
        return []
    if not allowed:
        message = str((response.get("status") or {}).get("message") or "")
        return [Occurrence(subject=subject, type=EventType.WARNING, reason=DENIED, message=message)]
    message = warning_message(request, warnings)
    return [Occurrence(subject=subject, type=EventType.WARNING, reason=WARNED, message=message)]


def involved_object(request: AdmissionRequest, *, exists: bool) -> ObjectRef | None:
    """The object to hang the Event on; None when there is nothing to name.

    The API server gives an object its uid before validating admission, even on CREATE; the
    uid goes in only when the object ``exists`` after this answer (``kubectl describe`` matches
    on it). A refused CREATE's uid names nothing, and would make each retry a new Event.
    """
    obj: Mapping[str, Any] = request.object or request.old_object or {}
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    name = request.name or _text(metadata.get("name"))
    uid = _text(metadata.get("uid")) if exists else ""
    if name:
        return ObjectRef(
            request.kind.api_version,
            request.kind.kind,
            name,
            uid=uid,
            namespace=request.namespace,
        )
    owner = _controller(metadata.get("ownerReferences"))
    if owner is not None:
        return ObjectRef(
            _text(owner.get("apiVersion")),
            _text(owner.get("kind")),
            _text(owner.get("name")),
            uid=_text(owner.get("uid")),
            namespace=request.namespace,
        )
    prefix = _text(metadata.get("generateName"))
    if not prefix:
        return None
    return ObjectRef(
        request.kind.api_version, request.kind.kind, prefix, namespace=request.namespace
    )


def warning_message(request: AdmissionRequest, warned: Sequence[Violation]) -> str:
    """``mamori warned about Pod "web": 1 violation of policy "p":`` and one line each."""
    policies = list(dict.fromkeys(v.policy for v in warned))
    count = f"{len(warned)} violation{'s' if len(warned) != 1 else ''}"
    whose = ", ".join(f'"{name}"' for name in policies)
    whose = f"policy {whose}" if len(policies) == 1 else f"policies {whose}"
    subject = f'{request.kind.kind} "{request.display_name}"'
    lines = [f"mamori warned about {subject}: {count} of {whose}:"]
    for violation in warned:
        line = "- " + violation.render()
        if len(policies) > 1:
            line += f' (policy "{violation.policy}")'
        lines.append(line)
    return "\n".join(lines)


def _controller(references: object) -> Mapping[str, Any] | None:
    if not isinstance(references, list):
        return None
    for reference in references:
        if (
            isinstance(reference, Mapping)
            and reference.get("controller") is True
            and all(_text(reference.get(key)) for key in ("apiVersion", "kind", "name"))
        ):
            return reference
    return None


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""
