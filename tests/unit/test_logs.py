"""mamori.logs: the one log format of the webhook and the operator, field by field."""

from __future__ import annotations

import datetime
import io
import json
import logging
import logging.config
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from mamori import logs

CREATED = datetime.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=datetime.UTC).timestamp()


def make_record(
    message: str = "hello %s",
    args: tuple[Any, ...] = ("world",),
    *,
    level: int = logging.INFO,
    extra: dict[str, Any] | None = None,
    exc_info: Any = None,
) -> logging.LogRecord:
    """A record built the way Logger.log builds one, extras and all."""
    record = logging.getLogger("mamori.test").makeRecord(
        "mamori.test", level, __file__, 1, message, args, exc_info, extra=extra
    )
    record.created = CREATED
    return record


def as_json(record: logging.LogRecord) -> dict[str, Any]:
    line = logs.JsonFormatter().format(record)
    assert "\n" not in line
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def test_plain_record_has_the_base_fields_in_order() -> None:
    entry = as_json(make_record())
    assert list(entry) == ["time", "level", "logger", "message", "pid"]
    assert entry["time"] == "2024-05-06T07:08:09.123+00:00"
    assert entry["logger"] == "mamori.test"
    assert entry["message"] == "hello world"
    assert entry["pid"] == make_record().process


@pytest.mark.parametrize(
    ("level", "name"),
    [
        (logging.DEBUG, "debug"),
        (logging.INFO, "info"),
        (logging.WARNING, "warning"),
        (logging.ERROR, "error"),
        (logging.CRITICAL, "critical"),
    ],
)
def test_level_is_lower_case(level: int, name: str) -> None:
    assert as_json(make_record(level=level))["level"] == name


def test_context_fields_follow_the_message_in_a_fixed_order() -> None:
    # Given in another order than the fields': the output order does not depend on the call.
    extra = logs.log_context(rule="capabilities", name="web-0", namespace="shop", policy="prod")
    entry = as_json(make_record(extra=extra))
    assert list(entry) == [
        "time",
        "level",
        "logger",
        "message",
        "policy",
        "namespace",
        "name",
        "rule",
        "pid",
    ]
    assert (entry["policy"], entry["namespace"], entry["name"], entry["rule"]) == (
        "prod",
        "shop",
        "web-0",
        "capabilities",
    )
    assert entry["logger"] == "mamori.test"  # the object's name does not displace the logger's


@pytest.mark.parametrize(
    ("given", "fields"),
    [
        ({"policy": "prod"}, {"policy": "prod"}),
        ({"namespace": "shop", "name": "web-0"}, {"namespace": "shop", "name": "web-0"}),
        ({"name": "cluster-thing"}, {"name": "cluster-thing"}),
        ({"policy": None, "namespace": "", "rule": "sysctls"}, {"rule": "sysctls"}),
        ({}, {}),
    ],
)
def test_only_the_context_given_is_written(
    given: dict[str, str | None], fields: dict[str, str]
) -> None:
    entry = as_json(make_record(extra=logs.log_context(**given)))
    assert {key: entry[key] for key in logs.CONTEXT_FIELDS if key in entry} == fields


def test_extra_given_by_hand_is_read_too() -> None:
    entry = as_json(make_record(extra={"policy": "prod", "object_name": "web-0"}))
    assert (entry["policy"], entry["name"]) == ("prod", "web-0")


def test_log_context_never_collides_with_the_record_attributes() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("mamori.test.collide")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("x", extra=logs.log_context(name="web-0", namespace="shop"))
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    entry = json.loads(stream.getvalue())
    assert (entry["logger"], entry["name"]) == ("mamori.test.collide", "web-0")


def test_exception_is_the_last_field_with_the_traceback() -> None:
    try:
        raise ValueError("bad value")
    except ValueError:
        record = make_record("failed", (), level=logging.ERROR, exc_info=sys.exc_info())
    entry = as_json(record)
    assert list(entry)[-1] == "exception"
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert entry["exception"].endswith("ValueError: bad value")
    assert entry["message"] == "failed"


def test_no_exception_field_without_an_exception() -> None:
    entry = as_json(make_record(exc_info=(None, None, None)))
    assert "exception" not in entry


def test_non_ascii_is_written_as_is() -> None:
    record = make_record("ポリシー %s", ("守り",), extra=logs.log_context(policy="本番"))
    line = logs.JsonFormatter().format(record)
    assert "ポリシー 守り" in line and '"本番"' in line
    assert json.loads(line)["message"] == "ポリシー 守り"


def test_quotes_and_newlines_stay_on_one_line() -> None:
    entry = as_json(make_record('say "%s"\nnext', ("hi",)))
    assert entry["message"] == 'say "hi"\nnext'


def kopf_object_record(**extra: Any) -> logging.LogRecord:
    """What kopf's ObjectLogger attaches to every record about an object."""
    reference = {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "web-0",
        "uid": "1234",
        "namespace": "shop",
    }
    return make_record(extra={"k8s_ref": reference, "k8s_skip": False, **extra})


def test_kopf_object_reference_becomes_namespace_and_name() -> None:
    entry = as_json(kopf_object_record())
    assert (entry["namespace"], entry["name"]) == ("shop", "web-0")
    assert list(entry) == ["time", "level", "logger", "message", "namespace", "name", "pid"]
    assert "k8s_ref" not in entry and "uid" not in entry


def test_explicit_context_beats_kopf_reference() -> None:
    entry = as_json(kopf_object_record(**logs.log_context(policy="prod", namespace="other")))
    assert (entry["policy"], entry["namespace"], entry["name"]) == ("prod", "other", "web-0")


def test_cluster_scoped_kopf_object_has_only_a_name() -> None:
    reference = {"kind": "ClusterSecurityPolicy", "name": "prod", "namespace": None}
    entry = as_json(make_record(extra={"k8s_ref": reference}))
    assert entry["name"] == "prod" and "namespace" not in entry


def test_text_format_appends_the_context() -> None:
    record = make_record(extra=logs.log_context(policy="prod", namespace="shop", name="web-0"))
    line = logs.TextFormatter().format(record)
    assert line.endswith(
        f" INFO mamori.test [{record.process}] hello world [policy=prod namespace=shop name=web-0]"
    )


def test_text_format_without_context_is_the_bare_line() -> None:
    record = make_record()
    line = logs.TextFormatter().format(record)
    assert line.endswith(f" INFO mamori.test [{record.process}] hello world")


def test_text_format_puts_the_traceback_after_the_context() -> None:
    try:
        raise KeyError("k")
    except KeyError:
        record = make_record(
            "failed", (), exc_info=sys.exc_info(), extra=logs.log_context(rule="r")
        )
    first, *rest = logs.TextFormatter().format(record).splitlines()
    assert first.endswith("failed [rule=r]")
    assert rest[0] == "Traceback (most recent call last):"


@pytest.mark.parametrize(
    ("log_format", "kind"), [("json", logs.JsonFormatter), ("text", logs.TextFormatter)]
)
def test_make_formatter(log_format: str, kind: type[logging.Formatter]) -> None:
    assert type(logs.make_formatter(log_format)) is kind


@pytest.mark.parametrize("log_format", ["xml", "JSON", ""])
def test_unknown_format_is_refused(log_format: str) -> None:
    with pytest.raises(ValueError, match="log format"):
        logs.make_formatter(log_format)
    with pytest.raises(ValueError, match="log format"):
        logs.logging_config(log_format=log_format, verbose=False)


@pytest.fixture
def clean_logging() -> Iterator[None]:
    """Put the root logger and the quiet loggers back as they were."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    names = (*logs.QUIET_LOGGERS, "extra.chatty")
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, saved in levels.items():
        logging.getLogger(name).setLevel(saved)


@pytest.mark.parametrize(
    ("verbose", "root_level", "quiet_level"),
    [(False, logging.INFO, logging.WARNING), (True, logging.DEBUG, logging.NOTSET)],
)
def test_configure_logging_replaces_the_root_handlers(
    clean_logging: None, verbose: bool, root_level: int, quiet_level: int
) -> None:
    root = logging.getLogger()
    framework_handler = logging.StreamHandler(io.StringIO())
    root.addHandler(framework_handler)
    logs.configure_logging(
        log_format="json", verbose=verbose, quiet=(*logs.QUIET_LOGGERS, "extra.chatty")
    )
    assert framework_handler not in root.handlers
    [handler] = root.handlers
    assert isinstance(handler.formatter, logs.JsonFormatter)
    assert root.level == root_level
    for name in (*logs.QUIET_LOGGERS, "extra.chatty"):
        assert logging.getLogger(name).level == quiet_level


def test_configure_logging_keeps_other_loggers_handlers(clean_logging: None) -> None:
    # kopf posts k8s events through a handler on "kopf.objects": quieting must not remove it.
    chatty = logging.getLogger("extra.chatty")
    poster = logging.NullHandler()
    chatty.addHandler(poster)
    try:
        logs.configure_logging(log_format="text", verbose=False, quiet=("extra.chatty",))
        assert poster in chatty.handlers
        assert chatty.level == logging.WARNING
    finally:
        chatty.removeHandler(poster)


@pytest.mark.parametrize("log_format", ["json", "text"])
@pytest.mark.parametrize("verbose", [False, True])
def test_dict_config_is_the_same_setup(log_format: str, verbose: bool) -> None:
    config = logs.logging_config(log_format=log_format, verbose=verbose)
    configurator = logging.config.DictConfigurator(config)
    formatter = configurator.configure_custom(dict(config["formatters"]["main"]))
    assert type(formatter) is type(logs.make_formatter(log_format))
    assert config["root"] == {"level": "DEBUG" if verbose else "INFO", "handlers": ["main"]}
    assert config["loggers"] == {
        name: {"level": "NOTSET" if verbose else "WARNING"} for name in logs.QUIET_LOGGERS
    }
    assert config["handlers"]["main"]["stream"] == "ext://sys.stderr"
