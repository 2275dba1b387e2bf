"""Every rule mamori knows, registered in one place: the imports below.

To add a rule, write ``mamori/rules/<rule_id_with_underscores>.py`` (spec comment, pure check
function, ``@rule(...)``), import it here, and add pass/fail fixtures under
``tests/fixtures/<rule-id>/``.
"""

# mamori's own image rules; importing a module registers its rule.
from mamori.rules import image_digest, image_reference, trusted_registry  # noqa: F401
from mamori.rules.registry import RULES, Level, Rule, RuleSettings, rule

__all__ = ["RULES", "Level", "Rule", "RuleSettings", "rule"]
