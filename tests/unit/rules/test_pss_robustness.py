"""Every Pod Security Standards rule, on any input: never raises, always full field paths."""

from __future__ import annotations

import copy
import importlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamori.findings import Finding
from mamori.podspec import PodContext
from mamori.rules import RULES, Level, RuleSettings

PSS_RULES = [rule for rule in RULES if rule.level is not Level.IMAGE]

# Keys the rules read, so random documents reach deep into the code paths.
KEYS = [
    "securityContext", "containers", "initContainers", "ephemeralContainers", "name", "os",
    "hostUsers", "hostNetwork", "hostPID", "hostIPC", "volumes", "hostPath", "nfs", "emptyDir",
    "path", "ports", "hostPort", "capabilities", "add", "drop", "privileged", "procMount",
    "allowPrivilegeEscalation", "runAsNonRoot", "runAsUser", "seccompProfile",
    "appArmorProfile", "type", "seLinuxOptions", "user", "role", "sysctls", "windowsOptions",
    "hostProcess", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "postStart",
    "preStop", "httpGet", "tcpSocket", "host",
]  # fmt: skip
LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-3, max_value=2**32)
    | st.floats(allow_nan=True)
    | st.text(max_size=4)
    | st.sampled_from(["ALL", "SYS_ADMIN", "RuntimeDefault", "Unconfined", "Default", "windows"])
)
VALUES = st.recursive(
    LEAVES,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS), children, max_size=5)
    ),
    max_leaves=25,
)
# Pod specs in the shape of the API, with random values where the rules look.
SECURITY_CONTEXT = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6) | VALUES
SUB_OBJECT = st.dictionaries(st.sampled_from(KEYS), SECURITY_CONTEXT, max_size=4) | VALUES
CONTAINER = st.fixed_dictionaries(
    {"name": st.text(max_size=3) | VALUES},
    optional={
        "securityContext": st.dictionaries(st.sampled_from(KEYS), SUB_OBJECT, max_size=6),
        "ports": st.lists(SUB_OBJECT, max_size=2) | VALUES,
        "livenessProbe": SUB_OBJECT,
        "lifecycle": st.dictionaries(st.sampled_from(KEYS), SUB_OBJECT, max_size=2),
    },
)
SHAPED_SPEC = st.fixed_dictionaries(
    {"containers": st.lists(CONTAINER, max_size=2)},
    optional={
        "initContainers": st.lists(CONTAINER, max_size=2) | VALUES,
        "ephemeralContainers": st.lists(CONTAINER, max_size=1),
        "securityContext": st.dictionaries(st.sampled_from(KEYS), SUB_OBJECT, max_size=6),
        "volumes": st.lists(SUB_OBJECT, max_size=3) | VALUES,
        "os": SUB_OBJECT,
        "hostUsers": LEAVES,
        "hostNetwork": LEAVES,
    },
)
ANNOTATIONS = st.dictionaries(
    st.sampled_from(
        [
            "container.apparmor.security.beta.kubernetes.io/app",
            "seccomp.security.alpha.kubernetes.io/pod",
            "container.seccomp.security.alpha.kubernetes.io/app",
        ]
    )
    | st.integers(),
    LEAVES,
    max_size=3,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=SHAPED_SPEC | st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=8),
    annotations=ANNOTATIONS | LEAVES,
    level=st.sampled_from([Level.BASELINE, Level.RESTRICTED]),
)
def test_rules_never_raise_and_point_into_the_workload(
    spec: dict[str, Any], annotations: Any, level: Level
) -> None:
    pod = PodContext(
        spec=spec,
        metadata={"annotations": annotations},
        spec_path="spec.template.spec",
        metadata_path="spec.template.metadata",
    )
    for rule in PSS_RULES:
        findings = rule.check(pod, RuleSettings(pod_security=level))
        assert isinstance(findings, list)
        for finding in findings:
            assert isinstance(finding, Finding)
            assert finding.field.startswith(("spec.template.spec.", "spec.template.metadata."))
            assert finding.message and "\n" not in finding.message
            assert finding.container is None or isinstance(finding.container, str)


def base_pod() -> dict[str, Any]:
    """A pod with one of everything the rules read, to poison one place at a time."""
    probe = {"httpGet": {"host": "", "port": 80}, "tcpSocket": {"host": "", "port": 80}}
    container = {
        "name": "app",
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "privileged": False,
            "procMount": "Default",
            "allowPrivilegeEscalation": False,
            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
            "appArmorProfile": {"type": "RuntimeDefault"},
            "seLinuxOptions": {"type": "container_t", "user": "", "role": ""},
            "windowsOptions": {"hostProcess": False},
        },
        "ports": [{"containerPort": 80, "hostPort": 0}],
        "livenessProbe": probe,
        "lifecycle": {"preStop": probe, "postStart": probe},
    }
    return {
        "metadata": {
            "annotations": {
                "container.apparmor.security.beta.kubernetes.io/app": "runtime/default",
                "seccomp.security.alpha.kubernetes.io/pod": "runtime/default",
            }
        },
        "spec": {
            "hostNetwork": False,
            "hostUsers": True,
            "os": {"name": "linux"},
            "securityContext": {
                **container["securityContext"],
                "sysctls": [{"name": "net.ipv4.tcp_syncookies", "value": "1"}],
            },
            "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "h", "hostPath": {"path": "/"}}],
            "initContainers": [container],
            "containers": [container],
            "ephemeralContainers": [container],
        },
    }


def leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a document, from the root down to each leaf."""
    paths = [path] if path else []
    if isinstance(value, dict):
        for key, child in value.items():
            paths += leaf_paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            paths += leaf_paths(child, (*path, index))
    return paths


POISON: list[Any] = [
    None, True, False, 0, -1, 2**70, 1.5, float("nan"), "", "x", [], [None], ["ALL", 3],
    {}, {"type": ["x"]}, {"name": {}}, {"host": []},
]  # fmt: skip


def poisoned(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    document = copy.deepcopy(base_pod())
    target: Any = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return document


def test_rules_never_raise_on_a_bad_value_anywhere() -> None:
    """Deterministic companion to the random test: every field, every kind of bad value."""
    checked = 0
    for path in leaf_paths(base_pod()):
        for value in POISON:
            document = poisoned(path, value)
            spec, metadata = document["spec"], document["metadata"]
            pod = PodContext(
                spec=spec if isinstance(spec, dict) else {},
                metadata=metadata if isinstance(metadata, dict) else {},
            )
            for level in (Level.BASELINE, Level.RESTRICTED):
                for rule in PSS_RULES:
                    findings = rule.check(pod, RuleSettings(pod_security=level))
                    assert all(isinstance(finding, Finding) for finding in findings)
                    checked += 1
    assert checked > 10_000


def test_every_fixed_pss_rule_id_is_registered_at_its_level() -> None:
    restricted = {"restricted-volumes", "allow-privilege-escalation", "run-as-non-root"}
    restricted |= {"run-as-user"}
    baseline = {
        "host-namespaces", "privileged", "capabilities", "host-path-volumes", "host-ports",
        "apparmor-profile", "selinux-options", "proc-mount", "seccomp-profile", "sysctls",
        "host-probes", "windows-host-process",
    }  # fmt: skip
    assert {rule.id: rule.level for rule in PSS_RULES} == {
        **dict.fromkeys(baseline, Level.BASELINE),
        **dict.fromkeys(restricted, Level.RESTRICTED),
    }


def test_each_rule_lives_in_its_own_module_that_opens_with_its_spec() -> None:
    for rule in PSS_RULES:
        module = importlib.import_module(rule.check.__module__)
        assert module.__name__ == "mamori.rules." + rule.id.replace("-", "_")
        assert module.__doc__ is not None and module.__doc__.startswith(f"{rule.id}: ")
        assert "Spec" in module.__doc__
