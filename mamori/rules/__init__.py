"""Every rule mamori knows, registered in one place: the imports below.

To add a rule, write ``mamori/rules/<rule_id_with_underscores>.py`` (spec comment, pure check
function returning a list of findings, ``@rule(...)``), import it here, and add pass/fail
fixtures under ``tests/fixtures/<rule-id>/``. A rule that only some policies turn on says so
with ``@rule(..., applies=...)``: each policy's :class:`~mamori.rules.plan.RulePlan`, compiled
when the policy is parsed, then leaves it out instead of calling it on every pod.
"""

# Every rule module, in one sorted list: the Pod Security Standards checks (named after
# pod-security-admission's) and mamori's own image rules. Importing a module registers its rule.
from mamori.rules import (  # noqa: F401
    allow_privilege_escalation,
    apparmor_profile,
    capabilities,
    host_namespaces,
    host_path_volumes,
    host_ports,
    host_probes,
    image_digest,
    image_reference,
    pod_structure,
    privileged,
    proc_mount,
    restricted_volumes,
    run_as_non_root,
    run_as_user,
    seccomp_profile,
    selinux_options,
    sysctls,
    trusted_registry,
    windows_host_process,
)
from mamori.rules.registry import RULES, Level, Rule, RuleSettings, rule

__all__ = ["RULES", "Level", "Rule", "RuleSettings", "rule"]
