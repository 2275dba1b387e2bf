"""Every rule mamori knows: each module of this package is one rule and registers itself.

To add a rule, write ``mamori/rules/<rule_id_with_underscores>.py`` (spec comment, pure check
function returning a list of findings, ``@rule(...)``) and add pass/fail fixtures under
``tests/fixtures/<rule-id>/``; importing this package imports every rule module, in name order.
A rule that only some policies turn on says so with ``@rule(..., applies=...)``: each policy's
:class:`~mamori.rules.plan.RulePlan`, compiled when the policy is parsed, then leaves it out
instead of calling it on every pod.
"""

import importlib
import pkgutil

from mamori.rules.registry import RULES, Level, Rule, RuleSettings, rule

# Modules of this package that are not rules: the table, the per-policy plan, shared helpers.
_NOT_RULES = frozenset({"registry", "plan"})

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_") and _module.name not in _NOT_RULES:
        importlib.import_module(f"{__name__}.{_module.name}")


__all__ = ["RULES", "Level", "Rule", "RuleSettings", "rule"]
