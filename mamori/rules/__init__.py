"""Every rule mamori knows: each module of this package is one rule and registers itself.

To add a rule, write ``mamori/rules/<rule_id_with_underscores>.py`` (spec comment, pure check
function returning a list of findings, ``@rule(...)``) and add pass/fail fixtures under
``tests/fixtures/<rule-id>/``; importing this package imports every rule module, in name order.
A rule that only some policies turn on says so with ``@rule(..., applies=...)``: each policy's
:class:`~mamori.rules.plan.RulePlan`, compiled when the policy is parsed, then leaves it out
instead of calling it on every pod.
"""

import importlib
import os

from mamori.rules.registry import RULES, Level, Rule, RuleSettings, rule

# Modules of this package that are not rules: the table, the per-policy plan, shared helpers.
_NOT_RULES = frozenset({"registry", "plan"})

# The folder listed directly (in name order, as pkgutil would): pkgutil loads inspect, and with
# it ast, dis and tokenize, a cost every `mamori check` would pay at start.
for _file in sorted(os.listdir(__path__[0])):
    _name = _file.removesuffix(".py")
    if _file.endswith(".py") and not _name.startswith("_") and _name not in _NOT_RULES:
        importlib.import_module(f"{__name__}.{_name}")


__all__ = ["RULES", "Level", "Rule", "RuleSettings", "rule"]
