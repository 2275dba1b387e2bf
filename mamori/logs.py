"""One log format for every mamori process: JSON lines (or plain text) with the same fields.

Log collectors (Fluent Bit, CloudWatch) parse one JSON object per line, and a query for a policy
or a pod should find the webhook's and the operator's lines alike, so both deployables format
records here: ``time`` (UTC, ms), ``level``, ``logger``, ``message``, then the context a line is
about (``policy``, ``namespace``, ``name``, ``rule``), ``pid`` and ``exception``. A log call gives
context with ``extra=log_context(...)``; kopf's per-object loggers carry the object as the
``k8s_ref`` record attribute, which becomes ``namespace`` and ``name``.

Standard library only: the webhook (gunicorn) and the operator (kopf) each wire this in.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
from collections.abc import Iterable, Mapping
from typing import Any

FORMATS = ("json", "text")
CONTEXT_FIELDS = ("policy", "namespace", "name", "rule")
# LogRecord already has ``name`` (the logger's), so the object's name travels as ``object_name``.
RECORD_ATTRIBUTES = {
    "policy": "policy",
    "namespace": "namespace",
    "name": "object_name",
    "rule": "rule",
}
KOPF_OBJECT_ATTRIBUTE = "k8s_ref"  # set by kopf's ObjectLogger: {"namespace", "name", ...}
QUIET_LOGGERS = ("kubernetes", "urllib3", "botocore", "boto3")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


def log_context(
    *,
    policy: str | None = None,
    namespace: str | None = None,
    name: str | None = None,
    rule: str | None = None,
) -> dict[str, str]:
    """The ``extra=`` of a log call about a policy, an object (``name``) or a rule."""
    given = {"policy": policy, "namespace": namespace, "name": name, "rule": rule}
    return {RECORD_ATTRIBUTES[field]: value for field, value in given.items() if value}


def record_context(record: logging.LogRecord) -> dict[str, str]:
    """The context fields ``record`` carries, in field order; explicit extras beat kopf's."""
    reference = getattr(record, KOPF_OBJECT_ATTRIBUTE, None)
    if not isinstance(reference, Mapping):
        reference = {}
    context: dict[str, str] = {}
    for field in CONTEXT_FIELDS:
        value = getattr(record, RECORD_ATTRIBUTES[field], None) or reference.get(field)
        if value:
            context[field] = str(value)
    return context


class JsonFormatter(logging.Formatter):
    """One JSON object per record, its fields always in the same order."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **record_context(record),
            "pid": record.process,
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """:data:`TEXT_FORMAT`, the context appended as ``[policy=… namespace=…]``."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        context = record_context(record)
        if not context:
            return line
        return line + " [" + " ".join(f"{key}={value}" for key, value in context.items()) + "]"


FORMATTERS: dict[str, type[logging.Formatter]] = {"json": JsonFormatter, "text": TextFormatter}


def make_formatter(log_format: str) -> logging.Formatter:
    """The formatter for ``--log-format``: ``json`` or ``text``."""
    try:
        return FORMATTERS[log_format]()
    except KeyError:
        raise ValueError(f"log format {log_format!r}: expected one of {FORMATS}") from None


def levels(*, verbose: bool, quiet: Iterable[str] = QUIET_LOGGERS) -> dict[str, str]:
    """Logger name → level: ``""`` (the root) at DEBUG or INFO; chatty libraries at WARNING
    unless ``verbose``, when they inherit the root's DEBUG."""
    quiet_level = "NOTSET" if verbose else "WARNING"
    return {"": "DEBUG" if verbose else "INFO"} | {name: quiet_level for name in quiet}


def configure_logging(
    *, log_format: str, verbose: bool, quiet: Iterable[str] = QUIET_LOGGERS
) -> None:
    """Set up this process's logging: one stderr handler on the root logger, in our format.

    The root logger's other handlers are removed (a framework's own, say), so no line is
    written twice. Other loggers keep their handlers: only their levels are set.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(log_format))
    root = logging.getLogger()
    for existing in root.handlers[:]:
        root.removeHandler(existing)
    root.addHandler(handler)
    for name, level in levels(verbose=verbose, quiet=quiet).items():
        logging.getLogger(name).setLevel(level)


def logging_config(
    *, log_format: str, verbose: bool, quiet: Iterable[str] = QUIET_LOGGERS
) -> dict[str, Any]:
    """The same set-up as a ``logging.config.dictConfig`` document (gunicorn's logconfig_dict).

    The handler is named ``main`` so that a caller can route more loggers to it.
    """
    make_formatter(log_format)  # refuse an unknown format here, not inside dictConfig
    logger_levels = levels(verbose=verbose, quiet=quiet)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": {"()": f"{__name__}.{FORMATTERS[log_format].__name__}"}},
        "handlers": {
            "main": {
                "class": "logging.StreamHandler",
                "formatter": "main",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": logger_levels.pop(""), "handlers": ["main"]},
        "loggers": {name: {"level": level} for name, level in logger_levels.items()},
    }
