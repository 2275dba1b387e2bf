"""The PolicyReport settings: flags and MAMORI_* variables, refused with a message that names
what to set."""

from __future__ import annotations

import pytest

from mamori.settings import SettingsError, load_settings
from mamori_operator.config import OperatorConfig


def test_reports_are_off_unless_asked_for() -> None:
    config = load_settings(OperatorConfig, None, {})
    assert (config.policy_reports, config.policy_report_max_results) == (False, 1000)
    assert config.policy_report_max_bytes == 1024 * 1024


def test_the_environment_turns_them_on() -> None:
    config = load_settings(
        OperatorConfig,
        None,
        {"MAMORI_POLICY_REPORTS": "true", "MAMORI_POLICY_REPORT_MAX_RESULTS": "50"},
    )
    assert (config.policy_reports, config.policy_report_max_results) == (True, 50)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        pytest.param(
            {"MAMORI_POLICY_REPORT_MAX_RESULTS": "0"},
            "--policy-report-max-results (MAMORI_POLICY_REPORT_MAX_RESULTS) must be at least 1",
            id="no-results",
        ),
        pytest.param(
            {"MAMORI_POLICY_REPORT_MAX_BYTES": "1000"},
            "--policy-report-max-bytes (MAMORI_POLICY_REPORT_MAX_BYTES) must be at least 16384",
            id="too-small",
        ),
    ],
)
def test_limits_that_cannot_work_are_refused(environ: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named.replace("(", r"\(").replace(")", r"\)")):
        load_settings(OperatorConfig, None, environ)
