"""spec.podSecurityVersion: a policy pinned to v1.N judges pods as pod-security-admission's
``enforce-version: v1.N`` would, so upgrading mamori never silently changes a verdict."""

from __future__ import annotations

from typing import Any

import pytest

from mamori.engine import evaluate
from mamori.policy import Policy, PolicyError, parse_policy
from mamori.rules import RULES, Level
from mamori.rules.registry import RuleRegistry, RuleSettings
from tests.unit.rules.pss import ctr, pod, windows

RESTRICTED_SC = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def policy(version: str | None = None, **spec: Any) -> Policy:
    if version is not None:
        spec["podSecurityVersion"] = version
    return parse_policy(
        {
            "apiVersion": "mamori.io/v1alpha1",
            "kind": "ClusterSecurityPolicy",
            "metadata": {"name": "pinned"},
            "spec": spec,
        }
    )


def broken_rules(spec: dict[str, Any], chosen: Policy) -> set[str]:
    resource = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p", "namespace": "apps"},
        "spec": spec,
    }
    decision = evaluate(resource, [chosen])
    assert decision is not None
    return {violation.rule for violation in decision.violations}


def restricted_ctr(**fields: Any) -> dict[str, Any]:
    return ctr(sc=dict(RESTRICTED_SC), **fields)


HOST_PROBE = pod(
    restricted_ctr(livenessProbe={"httpGet": {"host": "10.0.0.1", "port": 8080, "path": "/"}})
)
TCP_RMEM = pod(restricted_ctr(), sc={"sysctls": [{"name": "net.ipv4.tcp_rmem", "value": "1"}]})
RESERVED_PORTS = pod(
    restricted_ctr(), sc={"sysctls": [{"name": "net.ipv4.ip_local_reserved_ports", "value": "1"}]}
)
WINDOWS_NO_SECCOMP = windows(pod(ctr(sc={"runAsNonRoot": True})))
LINUX_NO_SECCOMP = pod(ctr(sc={k: v for k, v in RESTRICTED_SC.items() if k != "seccompProfile"}))
ROOT_UID = pod(ctr(sc={**RESTRICTED_SC, "runAsUser": 0}))
ROOT_IN_USER_NAMESPACE = pod(ctr(sc={**RESTRICTED_SC, "runAsUser": 0}), hostUsers=False)
ENGINE_TYPE = pod(restricted_ctr(), sc={"seLinuxOptions": {"type": "container_engine_t"}})
NO_DROP_ALL = pod(ctr(sc={k: v for k, v in RESTRICTED_SC.items() if k != "capabilities"}))

# (pod spec, rule under test, version, level, does the rule refuse the pod at that version?)
CASES = [
    pytest.param(HOST_PROBE, "host-probes", "v1.33", "baseline", False, id="host-probe-1.33"),
    pytest.param(HOST_PROBE, "host-probes", "v1.34", "baseline", True, id="host-probe-1.34"),
    pytest.param(HOST_PROBE, "host-probes", "latest", "baseline", True, id="host-probe-latest"),
    pytest.param(TCP_RMEM, "sysctls", "v1.31", "baseline", True, id="tcp-rmem-1.31"),
    pytest.param(TCP_RMEM, "sysctls", "v1.32", "baseline", False, id="tcp-rmem-1.32"),
    pytest.param(RESERVED_PORTS, "sysctls", "v1.26", "baseline", True, id="reserved-ports-1.26"),
    pytest.param(RESERVED_PORTS, "sysctls", "v1.27", "baseline", False, id="reserved-ports-1.27"),
    pytest.param(
        WINDOWS_NO_SECCOMP, "seccomp-profile", "v1.24", "restricted", True, id="windows-1.24"
    ),
    pytest.param(
        WINDOWS_NO_SECCOMP, "seccomp-profile", "v1.25", "restricted", False, id="windows-1.25"
    ),
    pytest.param(
        LINUX_NO_SECCOMP, "seccomp-profile", "v1.18", "restricted", False, id="seccomp-1.18"
    ),
    pytest.param(
        LINUX_NO_SECCOMP, "seccomp-profile", "v1.19", "restricted", True, id="seccomp-1.19"
    ),
    pytest.param(ROOT_UID, "run-as-user", "v1.22", "restricted", False, id="uid-0-1.22"),
    pytest.param(ROOT_UID, "run-as-user", "v1.23", "restricted", True, id="uid-0-1.23"),
    pytest.param(
        ROOT_IN_USER_NAMESPACE, "run-as-user", "v1.34", "restricted", True, id="userns-1.34"
    ),
    pytest.param(
        ROOT_IN_USER_NAMESPACE, "run-as-user", "v1.35", "restricted", False, id="userns-1.35"
    ),
    pytest.param(ENGINE_TYPE, "selinux-options", "v1.30", "baseline", True, id="engine-t-1.30"),
    pytest.param(ENGINE_TYPE, "selinux-options", "v1.31", "baseline", False, id="engine-t-1.31"),
    pytest.param(NO_DROP_ALL, "capabilities", "v1.21", "restricted", False, id="drop-all-1.21"),
    pytest.param(NO_DROP_ALL, "capabilities", "v1.22", "restricted", True, id="drop-all-1.22"),
]


@pytest.mark.parametrize(("spec", "rule_id", "version", "level", "refused"), CASES)
def test_a_pinned_version_judges_as_that_version(
    spec: dict[str, Any], rule_id: str, version: str, level: str, refused: bool
) -> None:
    chosen = policy(version, podSecurity=level)
    assert (rule_id in broken_rules(spec, chosen)) is refused


@pytest.mark.parametrize(
    ("value", "minor"),
    [
        pytest.param(None, None, id="absent"),
        pytest.param("latest", None, id="latest"),
        pytest.param("v1.0", 0, id="v1.0"),
        pytest.param("v1.25", 25, id="v1.25"),
        pytest.param("v1.36", 36, id="newer-than-known"),
    ],
)
def test_versions_are_read(value: str | None, minor: int | None) -> None:
    assert policy(value).rules.pod_security_version == minor


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("1.25", id="no-v"),
        pytest.param("v2.0", id="major-2"),
        pytest.param("v1.025", id="leading-zero"),
        pytest.param("v1.", id="no-minor"),
        pytest.param("Latest", id="case"),
        pytest.param(1.25, id="number"),
    ],
)
def test_malformed_versions_name_the_field(value: object) -> None:
    with pytest.raises(PolicyError) as caught:
        policy(value)  # type: ignore[arg-type]
    assert caught.value.path == "spec.podSecurityVersion"
    assert 'must be "latest" or a Kubernetes version such as "v1.35"' in caught.value.message


def test_a_version_newer_than_mamori_knows_is_judged_as_latest() -> None:
    newer = f"v1.{RULES.newest_version() + 1}"
    assert policy(newer).plan.checks == policy("latest").plan.checks
    assert policy(f"v1.{RULES.newest_version()}").plan.checks == policy().plan.checks


def test_the_version_is_resolved_once_when_the_policy_is_compiled() -> None:
    """The plan holds each rule's variant for the version; the engine never looks it up."""
    checks = dict(policy("v1.28", podSecurity="baseline").plan.checks)
    assert "host-probes" not in checks
    assert checks["sysctls"] is RULES.get("sysctls").check_for(27)
    assert checks["sysctls"] is not RULES.get("sysctls").check
    latest = dict(policy(podSecurity="baseline").plan.checks)
    assert latest["sysctls"] is RULES.get("sysctls").check
    assert "host-probes" in latest


def test_rules_record_when_they_apply() -> None:
    rule = RULES.get("host-probes")
    assert rule.since == 34
    assert rule.check_for(33) is None
    assert rule.check_for(34) is rule.check_for(None) is rule.check
    assert RULES.get("privileged").check_for(0) is RULES.get("privileged").check


def test_an_older_variant_must_come_before_the_newest() -> None:
    registry = RuleRegistry()

    def check(pod: object, settings: RuleSettings) -> list[Any]:
        return []

    with pytest.raises(ValueError, match=r"older variants must start before 1\.25"):
        registry.register(
            rule_id="x", level=Level.BASELINE, summary="x", since=25, older={30: check}
        )
