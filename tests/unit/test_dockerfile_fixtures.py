"""Dockerfile rule fixtures: every fail fixture fails its rule and only it, every pass fixture
passes every rule.

Layout (as tests/fixtures/README.md for pod rules)::

    tests/fixtures/dockerfile/<rule-id>/
      settings.yaml          optional: the ClusterSecurityPolicy spec the fixtures are judged with
      pass/*.Dockerfile      no rule finds anything (advice included)
      fail/*.Dockerfile      the rule finds something, and no other rule does
      pass|fail/<file>       files of the build context (scripts the Dockerfiles copy)

Each fixture starts (after any parser directive) with ``# <rule-id> pass|fail: why.``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mamori.dockerfile.judge import ContextFiles
from mamori.dockerfile.rules import DOCKERFILE_RULES, BuildContext
from mamori.dockerfile.stages import parse_dockerfile
from mamori.policy import API_VERSION, KIND, parse_policy
from mamori.rules.registry import RuleSettings
from tests.fixture_files import FixtureFile

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "dockerfile"
RULE_DIRECTORIES = sorted(path for path in FIXTURES.glob("dockerfile-*") if path.is_dir())


class Fixture(FixtureFile):
    def header(self) -> str:
        return next(line for line in self.text.splitlines() if line.startswith("# dockerfile-"))


def fixtures(outcome: str) -> list[Any]:
    return [
        pytest.param(
            Fixture(directory.name, outcome, path), id=f"{directory.name}/{outcome}/{path.stem}"
        )
        for directory in RULE_DIRECTORIES
        for path in sorted((directory / outcome).glob("*.Dockerfile"))
    ]


def settings_for(rule_id: str) -> RuleSettings:
    """The rule directory's settings.yaml read as a policy spec, as the policy loader reads it."""
    spec: dict[str, Any] = {}
    settings_file = FIXTURES / rule_id / "settings.yaml"
    if settings_file.exists():
        spec = yaml.safe_load(settings_file.read_text(encoding="utf-8")) or {}
    policy = parse_policy(
        {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "fixtures"}, "spec": spec}
    )
    return policy.rules


def findings_by_rule(fixture: Fixture) -> dict[str, list[str]]:
    """Every finding (advice included) of every rule the settings turn on, by rule ID."""
    settings = settings_for(fixture.rule)
    dockerfile = parse_dockerfile(fixture.text)
    context = BuildContext(ContextFiles(fixture.path.parent, 256 * 1024).read)
    found: dict[str, list[str]] = {}
    for rule in DOCKERFILE_RULES.active(settings):
        hits = rule.check(dockerfile, settings, context)
        if hits:
            found[rule.id] = [f"{hit.line}: {hit.message}" for hit in hits]
    return found


@pytest.mark.parametrize("fixture", fixtures("fail"))
def test_fail_fixture_fails_its_rule_and_only_it(fixture: Fixture) -> None:
    assert fixture.rule in DOCKERFILE_RULES, f"{fixture.path}: no rule {fixture.rule!r}"
    found = findings_by_rule(fixture)
    assert fixture.rule in found, f"{fixture.path} passes {fixture.rule}"
    assert set(found) == {fixture.rule}, f"{fixture.path} changes more than one thing: {found}"


@pytest.mark.parametrize("fixture", fixtures("pass"))
def test_pass_fixture_passes_every_rule(fixture: Fixture) -> None:
    assert findings_by_rule(fixture) == {}


@pytest.mark.parametrize("fixture", [*fixtures("pass"), *fixtures("fail")])
def test_fixture_says_what_it_shows(fixture: Fixture) -> None:
    assert fixture.header().startswith(f"# {fixture.rule} {fixture.outcome}: ")


def test_every_rule_has_pass_and_fail_fixtures_and_every_fixture_a_rule() -> None:
    missing = [
        f"{rule.id}/{outcome}"
        for rule in DOCKERFILE_RULES
        for outcome in ("pass", "fail")
        if not list((FIXTURES / rule.id / outcome).glob("*.Dockerfile"))
    ]
    assert missing == []
    orphans = sorted({path.name for path in RULE_DIRECTORIES} - set(DOCKERFILE_RULES.ids()))
    assert orphans == []


def test_every_finding_of_a_fail_fixture_points_at_a_line_of_the_file() -> None:
    for param in fixtures("fail"):
        fixture: Fixture = param.values[0]
        lines = len(fixture.text.splitlines())
        for messages in findings_by_rule(fixture).values():
            for message in messages:
                line = int(message.partition(":")[0])
                assert 1 <= line <= lines, f"{fixture.path}: {message}"
