"""Annotations under ``mamori.io/`` are mamori's: only the operator's identity may write them.

The operator records each pod's image-scan verdict in ``mamori.io/scan-status`` (and its
summary and time); people and tools read it as mamori's word. If anyone who may edit a pod could
set ``mamori.io/scan-status: clean`` themselves, every reader between that write and the
operator's correction would be fooled. So on CREATE and UPDATE of a pod, and of every kind that
carries a pod template (whose annotations every pod made from it inherits), adding, changing
or removing such an annotation is refused unless the request comes from a trusted writer
(``--trusted-annotation-writers``: the operator's ServiceAccount username).

This is not a policy rule: it guards mamori's own records, not the workload, so it applies in
every namespace the webhook sees, whatever the policies' enforcement, and on metadata-only
updates that the rules never see. It depends on who asks, which only admission knows; the
operator's background audit judges pods that legitimately carry these annotations.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from mamori.podspec import as_mapping
from mamori.workloads import pod_metadata

RESERVED_DOMAIN = "mamori.io"
GUARDED_OPERATIONS = frozenset({"CREATE", "UPDATE"})
MAX_LISTED = 10


@dataclass(frozen=True, slots=True)
class AnnotationChange:
    """One reserved annotation that a request adds, changes or removes."""

    field: str  # the annotations map it is in, e.g. spec.template.metadata.annotations
    key: str
    change: str  # "added", "changed" or "removed"

    def render(self) -> str:
        return f'{self.field}["{self.key}"] {self.change}'


def is_reserved(key: object) -> bool:
    """``mamori.io/…`` and ``<sub>.mamori.io/…`` keys (the prefix is a DNS name: any case)."""
    if not isinstance(key, str):
        return False
    prefix, slash, _ = key.partition("/")
    if not slash:
        return False
    prefix = prefix.lower()
    return prefix == RESERVED_DOMAIN or prefix.endswith("." + RESERVED_DOMAIN)


def reserved_changes(
    *, new: Mapping[str, Any] | None, old: Mapping[str, Any] | None
) -> list[AnnotationChange]:
    """What ``new`` does to the reserved annotations of ``old`` (None: nothing, as on CREATE).

    Both are full objects with ``apiVersion`` and ``kind``; for a workload the pod template's
    annotations are compared, for a pod its own. Objects that carry no pod compare as empty.
    """
    field, after = _pod_annotations(new)
    old_field, before = _pod_annotations(old)
    field = field or old_field
    changes = []
    for key in sorted(set(after) | set(before)):
        if key not in before:
            changes.append(AnnotationChange(field, key, "added"))
        elif key not in after:
            changes.append(AnnotationChange(field, key, "removed"))
        elif after[key] != before[key]:
            changes.append(AnnotationChange(field, key, "changed"))
    return changes


def _pod_annotations(resource: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    found = None if resource is None else pod_metadata(resource)
    if found is None:
        return "", {}
    path, metadata = found
    annotations = as_mapping(metadata.get("annotations"))
    reserved = {key: value for key, value in annotations.items() if is_reserved(key)}
    return f"{path}.annotations", reserved


def refusal(
    changes: Collection[AnnotationChange], *, username: str | None, subject: str
) -> str | None:
    """The denial message for a request making ``changes``, or None when there are none."""
    if not changes:
        return None
    listed = [f"- {change.render()}" for change in list(changes)[:MAX_LISTED]]
    if len(changes) > MAX_LISTED:
        listed.append(f"- … and {len(changes) - MAX_LISTED} more")
    who = f'user "{username}"' if username else "an unidentified user"
    return "\n".join(
        [
            f"mamori denied {subject}: annotations under {RESERVED_DOMAIN}/ are written only by "
            f"the mamori operator, not by {who}:",
            *listed,
            "Leave them out of the manifest: the operator writes them itself (and kubectl apply "
            "keeps its values). If this request does come from mamori's operator, add its "
            "identity to the webhook's --trusted-annotation-writers "
            "(MAMORI_TRUSTED_ANNOTATION_WRITERS).",
        ]
    )


def guard(
    *,
    operation: str,
    new: Mapping[str, Any] | None,
    old: Mapping[str, Any] | None,
    username: str | None,
    trusted_writers: Collection[str],
    subject: str,
) -> str | None:
    """The denial message when this request may not touch reserved annotations, else None."""
    if operation not in GUARDED_OPERATIONS:
        return None
    if username is not None and username in trusted_writers:
        return None
    changes = reserved_changes(new=new, old=old if operation == "UPDATE" else None)
    return refusal(changes, username=username, subject=subject)
