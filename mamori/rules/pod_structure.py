"""pod-structure: the pod template, its spec and its container lists have the API's types.

Spec: the path from the object to its pod template (``spec.template`` for a Deployment,
``spec.jobTemplate.spec.template`` for a CronJob), the pod ``spec``, and ``initContainers``,
``containers`` and ``ephemeralContainers`` must be objects and lists of objects where present.
Always on (registered with the image rules, which run at every level).

The other rules read a part of the wrong type as absent, so that they never crash; without this
rule ``containers: "x"`` or ``containers: {name: app}`` would be judged as a pod with no
containers and pass. The API server refuses such objects for its own kinds, but ``mamori check``
reads raw manifests, and a value of the wrong type must fail closed everywhere.
"""

from __future__ import annotations

from mamori.findings import Finding
from mamori.podspec import PodContext
from mamori.rules._common import show
from mamori.rules.registry import Level, RuleSettings, rule

FIX = "write it in the shape the Kubernetes API defines (see `kubectl explain pod.spec`)"


@rule(
    rule_id="pod-structure",
    level=Level.IMAGE,
    summary="pod template, spec and container lists have the API's types",
)
def check(pod: PodContext, settings: RuleSettings) -> list[Finding]:
    return [
        Finding(
            field=problem.path,
            message=f"{problem.path.rsplit('.', 1)[-1]} must be {problem.expected}, got "
            f"{show(problem.value)}; {FIX}",
        )
        for problem in pod.malformed()
    ]
