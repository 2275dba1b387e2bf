"""What rules report and what the engine decides: plain values shared by every front door."""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import NamedTuple


class Enforcement(enum.StrEnum):
    """What a policy does with a violation."""

    ENFORCE = "Enforce"
    WARN = "Warn"
    AUDIT = "Audit"


class Finding(NamedTuple):
    """One thing a rule found: where it is and what to change.

    ``field`` is the full path into the object the user wrote
    (``spec.template.spec.containers[0].securityContext.runAsNonRoot``), so the message can be
    acted on without knowing how mamori walks workloads. ``advisory`` findings never deny: they
    are hints (kubectl warnings) such as "the image must declare a numeric USER".

    The values of this module are named tuples, not dataclasses: immutable, with the same
    equality, hash and repr, but defined in a fifth of the time, and ``mamori check`` defines
    them at every start (a dataclass's methods are generated, and compiled, at import).
    """

    field: str
    message: str
    container: str | None = None
    advisory: bool = False


class Violation(NamedTuple):
    """A finding attributed to the rule and policy that produced it."""

    rule: str
    policy: str
    enforcement: Enforcement
    field: str
    message: str
    container: str | None = None
    advisory: bool = False

    def sort_key(self) -> tuple[str, str, str, str, str]:
        return (self.policy, self.rule, self.field, self.container or "", self.message)

    def to_dict(self) -> dict[str, str | None]:
        """Serialize in the shape of ``mamori check --output json``."""
        return {
            "rule": self.rule,
            "policy": self.policy,
            "enforcement": self.enforcement.value,
            "container": self.container,
            "field": self.field,
            "message": self.message,
        }

    def render(self) -> str:
        """One line for kubectl and terminals: ``[rule] field: message``."""
        return f"[{self.rule}] {self.field}: {self.message}"


class Decision(NamedTuple):
    """The verdict on one resource across every policy that selects it.

    ``violations`` holds every non-advisory finding in a stable order; ``advice`` holds the
    advisory ones. A resource is allowed unless some violation comes from an Enforce policy.
    """

    violations: tuple[Violation, ...] = ()
    advice: tuple[Violation, ...] = ()
    policies: tuple[str, ...] = ()

    @property
    def allowed(self) -> bool:
        return not self.denials

    @property
    def denials(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.enforcement is Enforcement.ENFORCE)

    @property
    def warnings(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.enforcement is Enforcement.WARN)

    @property
    def audits(self) -> tuple[Violation, ...]:
        return tuple(v for v in self.violations if v.enforcement is Enforcement.AUDIT)


class _Text(str):
    """Output already rendered, as opposed to a value still to render."""


def render_value(value: object, *, limit: int) -> str:
    """``value`` as compact JSON (keys sorted), cut to ``limit`` characters with ``...``.

    Messages quote what the user wrote, and what they wrote may be a YAML alias bomb or a
    thousand levels deep: rendering walks the value with an explicit stack of iterators and stops
    as soon as ``limit`` is passed, so the work is bounded by the limit, never by the value.
    """
    pieces: list[str] = []
    length = 0
    stack: list[Iterator[object]] = [iter((value,))]
    while stack and length <= limit:
        try:
            item = next(stack[-1])
        except StopIteration:
            stack.pop()
            continue
        if isinstance(item, _Text):
            text: str = item
        elif isinstance(item, Mapping):
            text = "{"
            stack.append(_mapping_parts(item))
        elif isinstance(item, (list, tuple, set, frozenset)):
            text = "["
            stack.append(_sequence_parts(item))
        else:
            text = _scalar(item, limit=limit)
        pieces.append(text)
        length += len(text)
    rendered = "".join(pieces)
    if stack or len(rendered) > limit:
        return rendered[: max(limit - 3, 0)] + "..."
    return rendered


def _mapping_parts(mapping: Mapping[object, object]) -> Iterator[object]:
    for position, key in enumerate(sorted(mapping, key=_key_text)):
        yield _Text(f"{', ' if position else ''}{json.dumps(_key_text(key))}: ")
        yield mapping[key]
    yield _Text("}")


def _sequence_parts(items: Iterable[object]) -> Iterator[object]:
    for position, item in enumerate(items):
        if position:
            yield _Text(", ")
        yield item
    yield _Text("]")


def _key_text(key: object) -> str:
    """Mapping keys as JSON writes them (``true``, ``1``), other objects as ``str()``."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)
    return str(key)


def _scalar(value: object, *, limit: int) -> str:
    if value is None or isinstance(value, (bool, int, float)):
        try:
            return json.dumps(value)
        except ValueError:  # an integer past Python's int-to-text digit limit
            return "<integer too long to show>"
    text = value if isinstance(value, str) else str(value)
    return json.dumps(text[: limit + 1])
