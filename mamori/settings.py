"""Typed settings for each component, declared once and loaded from flags and MAMORI_* variables.

A component declares a frozen dataclass whose fields carry ``setting(help=...)`` metadata; the
same declaration produces the argparse flags, reads the environment, converts and validates. A
command-line flag beats the environment, which beats the default. Errors name the flag or
variable, the value, and the form expected, so a misconfigured Deployment fails at start with a
message that says what to set.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

ENV_PREFIX = "MAMORI_"
T = TypeVar("T")


class SettingsError(ValueError):
    """A setting with a value that cannot be used."""


def setting(default: Any = dataclasses.MISSING, *, help: str, metavar: str | None = None) -> Any:
    """Declare a settings field with its help text (shown by ``--help``)."""
    metadata = {"help": help, "metavar": metavar}
    if isinstance(default, list | dict | set):
        raise TypeError("use a tuple (immutable) default for settings")
    return dataclasses.field(default=default, metadata=metadata)


def flag_name(field: dataclasses.Field[Any]) -> str:
    return "--" + field.name.replace("_", "-")


def env_name(field: dataclasses.Field[Any]) -> str:
    return ENV_PREFIX + field.name.upper()


def named(name: str, *, with_env: bool = True) -> str:
    """``--flag-name (MAMORI_FLAG_NAME)`` for the field ``flag_name``: how an error names it."""
    flag = "--" + name.replace("_", "-")
    return f"{flag} ({ENV_PREFIX}{name.upper()})" if with_env else flag


def add_arguments(parser: argparse.ArgumentParser, cls: type[Any]) -> None:
    """Add one flag per settings field; defaults stay None so the environment can fill in."""
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        kind = _base_type(hints[field.name])
        default = field.default if field.default is not dataclasses.MISSING else None
        text = f"{field.metadata.get('help', '')} [env {env_name(field)}"
        text += f"; default {_show_default(default)}]" if default not in (None, ()) else "]"
        if kind is bool:
            parser.add_argument(
                flag_name(field), action=argparse.BooleanOptionalAction, default=None, help=text
            )
        else:
            parser.add_argument(
                flag_name(field),
                default=None,
                metavar=field.metadata.get("metavar") or field.name.upper(),
                help=text.replace("%", "%%"),
            )


def load_settings(
    cls: type[T], args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None
) -> T:
    """Build ``cls`` from parsed flags, then the environment, then defaults; validate."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        raw: object = getattr(args, field.name, None) if args is not None else None
        source = flag_name(field)
        if raw is None and environ is not None and env_name(field) in environ:
            raw = environ[env_name(field)]
            source = env_name(field)
        if raw is None:
            if field.default is dataclasses.MISSING:
                raise SettingsError(f"{flag_name(field)} (or {env_name(field)}) must be set")
            continue
        values[field.name] = convert(raw, hints[field.name], source=source)
    instance = cls(**values)
    validate = getattr(instance, "validate", None)
    if callable(validate):
        validate()
    return instance


def convert(raw: object, annotation: Any, *, source: str) -> Any:
    """Convert a flag or environment value to the field's type."""
    kind = _base_type(annotation)
    if not isinstance(raw, str):
        return raw
    try:
        return _CONVERTERS.get(kind, kind)(raw)
    except (TypeError, ValueError) as error:
        expected = _EXPECTED.get(kind, kind.__name__)
        raise SettingsError(f"{source}={raw!r}: expected {expected} ({error})") from None


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("not a boolean")


def _parse_tuple(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _parse_positive_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise ValueError("must not be negative")
    return value


_CONVERTERS: Mapping[type, Callable[[str], Any]] = {
    bool: _parse_bool,
    tuple: _parse_tuple,
    float: _parse_positive_float,
    Path: Path,
}
_EXPECTED: Mapping[type, str] = {
    bool: "true or false",
    tuple: "a comma-separated list",
    int: "an integer",
    float: "a non-negative number",
    Path: "a file path",
}


def _base_type(annotation: Any) -> type:
    """Strip ``X | None`` and generic arguments: ``tuple[str, ...] | None`` → ``tuple``."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        annotation = options[0]
    origin = typing.get_origin(annotation)
    return origin if isinstance(origin, type) else annotation


def _show_default(value: object) -> str:
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)
