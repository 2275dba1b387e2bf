"""Kubernetes LabelSelector: parsed once, validated with field paths, matched against labels."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from mamori.policy.errors import PolicyError, shown

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
FIELDS = ("matchLabels", "matchExpressions")


class Requirement(NamedTuple):
    """One ``key operator values`` term. (The values of this module are named tuples: see
    :class:`mamori.findings.Finding`.)"""

    key: str
    operator: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "Exists":
            return self.key in labels
        if self.operator == "DoesNotExist":
            return self.key not in labels
        present = self.key in labels and labels[self.key] in self.values
        return present if self.operator == "In" else not present


class LabelSelector(NamedTuple):
    """An empty selector selects everything, as in Kubernetes."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(requirement.matches(labels) for requirement in self.requirements)

    @classmethod
    def parse(cls, value: object, *, path: str) -> LabelSelector:
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise PolicyError(path, f"must be a label selector object, got {_kind(value)}")
        unknown = sorted(set(value) - set(FIELDS))
        if unknown:
            raise PolicyError(f"{path}.{unknown[0]}", "unknown field")
        requirements: list[Requirement] = []
        match_labels = value.get("matchLabels") or {}
        if not isinstance(match_labels, Mapping):
            raise PolicyError(f"{path}.matchLabels", "must be a map of label keys to values")
        for key, label_value in match_labels.items():
            if not isinstance(label_value, str):
                raise PolicyError(f"{path}.matchLabels.{key}", "must be a string")
            requirements.append(Requirement(str(key), "In", frozenset({label_value})))
        expressions = value.get("matchExpressions") or []
        if not isinstance(expressions, list):
            raise PolicyError(f"{path}.matchExpressions", "must be a list")
        for index, expression in enumerate(expressions):
            requirements.append(
                _parse_expression(expression, path=f"{path}.matchExpressions[{index}]")
            )
        return cls(tuple(requirements))


def _parse_expression(value: object, *, path: str) -> Requirement:
    if not isinstance(value, Mapping):
        raise PolicyError(path, "must be an object with key, operator and values")
    key = value.get("key")
    if not isinstance(key, str) or not key:
        raise PolicyError(f"{path}.key", "must be a non-empty string")
    operator = value.get("operator")
    if operator not in OPERATORS:
        raise PolicyError(
            f"{path}.operator", f"must be one of {', '.join(OPERATORS)}, got {shown(operator)}"
        )
    values = value.get("values") or []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise PolicyError(f"{path}.values", "must be a list of strings")
    if operator in ("In", "NotIn") and not values:
        raise PolicyError(f"{path}.values", f"must not be empty for operator {operator}")
    if operator in ("Exists", "DoesNotExist") and values:
        raise PolicyError(f"{path}.values", f"must be empty for operator {operator}")
    return Requirement(key, str(operator), frozenset(values))


def _kind(value: object) -> str:
    return type(value).__name__
