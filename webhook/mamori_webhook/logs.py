"""gunicorn's logging: :mod:`mamori.logs`' format for its own lines too.

gunicorn applies ``logconfig_dict`` in the master and in every worker; its error and access
loggers do not propagate, so they get the same handler as the root logger, and nothing reaches
the log collector as an unparseable line.
"""

from __future__ import annotations

from typing import Any

from mamori import logs


def logging_config(*, log_format: str, verbose: bool, access_log: bool) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` document for gunicorn's ``logconfig_dict``."""
    config = logs.logging_config(log_format=log_format, verbose=verbose)
    level = config["root"]["level"]
    config["loggers"] |= {
        "gunicorn.error": {"level": level, "handlers": ["main"], "propagate": False},
        "gunicorn.access": {
            "level": "INFO" if access_log else "WARNING",
            "handlers": ["main"],
            "propagate": False,
        },
    }
    return config
