"""Logging for the webhook: one JSON object per line (or plain text), gunicorn's lines included.

Log collectors on EKS (Fluent Bit, CloudWatch) parse one JSON object per line; gunicorn's own
messages go through the same formatter so that nothing arrives as an unparseable line.
"""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "pid", "message"[, "exception"]}`` per record."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def logging_config(*, log_format: str, verbose: bool, access_log: bool) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` document for gunicorn's ``logconfig_dict``."""
    level = "DEBUG" if verbose else "INFO"
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    handler = {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stderr"}
    quiet = "DEBUG" if verbose else "WARNING"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {"main": handler},
        "root": {"level": level, "handlers": ["main"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["main"], "propagate": False},
            "gunicorn.access": {
                "level": "INFO" if access_log else "WARNING",
                "handlers": ["main"],
                "propagate": False,
            },
            "kubernetes": {"level": quiet},
            "urllib3": {"level": quiet},
        },
    }
