"""mamori's Pod Security Standards rules give the API server's own verdict.

The real kube-apiserver (v1.36, from the pinned Go modules) runs the PodSecurity admission
plugin. Every PSS fixture is sent to it with server-side dry run into a namespace labelled
``pod-security.kubernetes.io/enforce: <level>``, and its answer is compared with mamori's at the
same level: allowed or denied, and when denied, by the same checks (pod-security-admission's
reasons mapped to mamori's rule IDs). Fixtures with ephemeral containers go in the way
`kubectl debug` sends them: the pod first, then the pods/ephemeralcontainers subresource.

A fixture the API server refuses as invalid fails here too: fixtures must be real objects.
"""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
import yaml
from kubernetes.client.rest import ApiException

from mamori.engine import active_rules
from mamori.podspec import PodContext
from mamori.rules import RULES, Level, RuleSettings
from tests.cluster_fixtures import Kubectl, NamespaceFactory

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
VIOLATES = re.compile(r'violates PodSecurity "[^"]+": (.*)$', re.DOTALL)
LEVELS = {"baseline": Level.BASELINE, "restricted": Level.RESTRICTED}

# pod-security-admission's ForbiddenReason strings, by the mamori rule that covers them. At
# restricted, PSA reports hostPath as a restricted volume type; mamori as host-path-volumes.
REASONS = {
    "host-namespaces": {"host namespaces"},
    "privileged": {"privileged"},
    "capabilities": {"non-default capabilities", "unrestricted capabilities"},
    "host-path-volumes": {"hostPath volumes", "restricted volume types"},
    "host-ports": {"hostPort"},
    "apparmor-profile": {"forbidden AppArmor profile", "forbidden AppArmor profiles"},
    "selinux-options": {"seLinuxOptions"},
    "proc-mount": {"procMount"},
    "seccomp-profile": {"seccompProfile"},
    "sysctls": {"forbidden sysctls"},
    "host-probes": {"probe or lifecycle host"},
    "windows-host-process": {"hostProcess"},
    "restricted-volumes": {"restricted volume types"},
    "allow-privilege-escalation": {"allowPrivilegeEscalation != false"},
    "run-as-non-root": {"runAsNonRoot != true"},
    "run-as-user": {"runAsUser=0"},
}
PSS_RULES = sorted(rule.id for rule in RULES if rule.level is not Level.IMAGE)


def cases() -> list[Any]:
    """Every PSS fixture at both levels: restricted-only failures must pass baseline in both."""
    return [
        pytest.param(path, level, id=f"{rule_id}/{outcome}/{path.stem}@{level}")
        for rule_id in PSS_RULES
        for outcome in ("pass", "fail")
        for path in sorted((FIXTURES / rule_id / outcome).glob("*.yaml"))
        for level in LEVELS
    ]


def mamori_verdict(manifest: dict[str, Any], level: Level) -> set[str]:
    """The PSS rules mamori finds violated at this level."""
    pod = PodContext(spec=manifest["spec"], metadata=manifest["metadata"])
    settings = RuleSettings(pod_security=level)
    return {
        rule.id
        for rule in active_rules(settings)
        if rule.level is not Level.IMAGE
        and any(not finding.advisory for finding in rule.check(pod, settings))
    }


def psa_reasons(message: str) -> set[str]:
    """The check names in `violates PodSecurity "restricted:latest": a (x, y), b (z)`."""
    match = VIOLATES.search(message)
    assert match, f"not a PodSecurity denial: {message}"
    reasons, depth, current = [], 0, ""
    for char in match.group(1):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            reasons.append(current)
            current = ""
        else:
            current += char
    reasons.append(current)
    return {reason.split(" (")[0].strip() for reason in reasons}


@pytest.fixture(scope="module")
def enforced(kubectl: Kubectl) -> Iterator[dict[str, str]]:
    """One namespace per level, enforcing that level of the latest Pod Security Standards."""
    factory = NamespaceFactory(kubectl, "pss-parity")
    namespaces = {
        level: factory(
            labels={
                "pod-security.kubernetes.io/enforce": level,
                "pod-security.kubernetes.io/enforce-version": "latest",
            }
        )
        for level in LEVELS
    }
    yield namespaces
    factory.delete_all()


def api_verdict(
    core: kubernetes.client.CoreV1Api, namespace: str, manifest: dict[str, Any]
) -> str | None:
    """None when admitted; the API server's message when refused."""
    pod = copy.deepcopy(manifest)
    pod["metadata"]["namespace"] = namespace
    pod["metadata"]["name"] = f"{pod['metadata']['name']}-{uuid.uuid4().hex[:6]}"
    ephemeral = pod["spec"].pop("ephemeralContainers", None)
    try:
        if ephemeral is None:
            core.create_namespaced_pod(namespace, pod, dry_run="All")
            return None
        core.create_namespaced_pod(namespace, pod)  # the pod itself is restricted-valid
        running = core.read_namespaced_pod(pod["metadata"]["name"], namespace)
        running.spec.ephemeral_containers = ephemeral
        core.replace_namespaced_pod_ephemeralcontainers(
            pod["metadata"]["name"], namespace, running, dry_run="All"
        )
        return None
    except ApiException as error:
        body = json.loads(error.body) if error.body else {}
        message = body.get("message", str(error))
        assert error.status == 403, f"the API server refused the fixture as invalid: {message}"
        return str(message)


@pytest.mark.parametrize(("path", "level"), cases())
def test_same_verdict_as_pod_security_admission(
    path: Path, level: str, kube_api: kubernetes.client.ApiClient, enforced: dict[str, str]
) -> None:
    manifest = yaml.safe_load(path.read_text(encoding="utf-8"))
    ours = mamori_verdict(manifest, LEVELS[level])
    refusal = api_verdict(kubernetes.client.CoreV1Api(kube_api), enforced[level], manifest)
    if refusal is None:
        assert ours == set(), f"PodSecurity admits it at {level}; mamori finds {sorted(ours)}"
        return
    assert ours, f"PodSecurity refuses it at {level}, mamori allows it: {refusal}"
    theirs = psa_reasons(refusal)
    unexplained = {reason for reason in theirs if not any(reason in REASONS[r] for r in ours)}
    unmatched = {rule for rule in ours if not REASONS[rule] & theirs}
    assert not unexplained and not unmatched, (
        f"PodSecurity: {sorted(theirs)}; mamori: {sorted(ours)} ({refusal})"
    )


def test_reason_table_covers_every_pss_rule() -> None:
    assert sorted(REASONS) == PSS_RULES
