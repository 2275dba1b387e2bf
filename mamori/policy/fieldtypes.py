"""The vocabulary the spec declaration (:mod:`mamori.policy.shape`) is written in.

Each field type knows how to check the part of a value that is pure shape (is it an object with
known fields, a boolean, one of the listed words) with the error wording every section shares;
what a value *means* (a registry pattern, a CIDR, a duration) stays with the section parsers.
The generator (:mod:`mamori_dev.generate`) turns the same types into the CRD schema, the
chart's values schema and the docs, so the four can no longer disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mamori.findings import render_value
from mamori.policy.errors import PolicyError

MAX_SHOWN = 80  # characters of a wrong value quoted in an error message


class _Missing:
    """No default: the field is optional without one, or required."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def described(value: object) -> str:
    """A wrong value for an error message: bounded, and typed unless it is a string."""
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return render_value(value, limit=MAX_SHOWN)
    return f"{render_value(value, limit=MAX_SHOWN)} ({type(value).__name__})"


@dataclass(frozen=True, slots=True)
class Boolean:
    """``true`` or ``false``."""

    def read(self, value: object, *, path: str) -> bool:
        if not isinstance(value, bool):
            raise PolicyError(path, f"must be true or false, got {described(value)}")
        return value


@dataclass(frozen=True, slots=True)
class Choice:
    """One of a few words, spelt exactly (case matters, as in Kubernetes)."""

    values: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(str(value) for value in self.values))

    def read(self, value: object, *, path: str) -> str:
        if not isinstance(value, str) or value not in self.values:
            choices = ", ".join(self.values)
            raise PolicyError(path, f"must be one of {choices}, got {described(value)}")
        return value


@dataclass(frozen=True, slots=True)
class Text:
    """A string; ``pattern``/``min_length``/``max_length`` and CEL ``rules`` go into the schemas,
    ``chart_pattern`` stands in for the CEL rules in the chart's JSON schema. ``doc`` is how
    the docs name it."""

    doc: str = "string"
    pattern: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    rules: tuple[tuple[str, str], ...] = ()
    chart_pattern: str | None = None


@dataclass(frozen=True, slots=True)
class Selector:
    """A Kubernetes LabelSelector (its own fields are :data:`mamori.policy.selector.FIELDS`)."""


@dataclass(frozen=True, slots=True)
class ListOf:
    """A list of ``item``; ``unique``: no repeats (a set)."""

    item: FieldType
    unique: bool = False
    min_items: int | None = None
    max_items: int | None = None
    doc: str | None = None


@dataclass(frozen=True, slots=True)
class Section:
    """An object of declared fields; anything else in it is refused by name.

    ``chart_toggle``: the chart's values hold the section with an ``enabled`` switch, because
    the section's absence (not its emptiness) is what turns the feature off.
    """

    fields: tuple[Field, ...]
    required: tuple[str, ...] = ()
    chart_toggle: bool = False
    by_name: Mapping[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def __getitem__(self, name: str) -> Field:
        return self.by_name[name]

    def section(self, name: str) -> Section:
        """The nested section declared under ``name``."""
        kind = self.by_name[name].type
        if not isinstance(kind, Section):
            raise TypeError(f"{name} is not a section")
        return kind

    def read(self, value: object, *, path: str) -> Mapping[str, Any] | None:
        """None when absent or null, else the object, once no field in it is unknown."""
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise PolicyError(path, f"must be an object, got {type(value).__name__}")
        unknown = sorted(set(value) - set(self.by_name))
        if unknown:
            known = ", ".join(sorted(self.by_name))
            raise PolicyError(f"{path}.{unknown[0]}", f"unknown field (known fields: {known})")
        return value

    def value(self, section: Mapping[str, Any], name: str, *, path: str) -> Any:
        """``section[name]``, its declared default when absent or null, shape-checked where the
        type alone can check it (booleans, choices)."""
        declared = self.by_name[name]
        value = section.get(name)
        if value is None:
            value = declared.default
        where = f"{path}.{name}"
        if value is MISSING:
            return None
        if isinstance(declared.type, Boolean | Choice):
            return declared.type.read(value, path=where)
        return value


FieldType = Boolean | Choice | Text | Selector | ListOf | Section


@dataclass(frozen=True, slots=True)
class Field:
    """One field of the spec.

    ``description`` is one or two sentences: the CRD's description, the chart's comment and the
    docs' "meaning" column. ``default`` is what an absent field means (the CRD defaults it, the
    parser assumes it); ``chart_default`` is the value the chart installs when that differs
    (MISSING: the same). ``doc_default`` replaces the rendered default in the docs when a value
    says less than words ("all namespaces"); ``advice`` is extra guidance for chart users.

    ``switch``: a boolean that turns a rule's demand on. The parser puts the name of each switch
    a policy sets to true in :attr:`RuleSettings.switches`, where the rule reads it, so a new
    switch needs no parser edit.
    """

    name: str
    type: FieldType
    description: str
    default: Any = MISSING
    chart_default: Any = MISSING
    doc_default: str | None = None
    advice: str = ""
    switch: bool = False

    def __post_init__(self) -> None:
        if self.switch and not isinstance(self.type, Boolean):
            raise TypeError(f"{self.name}: only a boolean field can be a switch")

    @property
    def installed(self) -> Any:
        """What the chart's values.yaml sets this field to."""
        return self.default if self.chart_default is MISSING else self.chart_default
