"""dockerfile-user: the image runs as a numeric, non-zero user.

Spec (restricted policies, the level whose pods must set ``runAsNonRoot``): the final stage's
effective ``USER`` (its last one, else that of the stage it is built on with ``FROM <stage>``,
and so on) is set, and its user part is a number other than 0 (``USER 65532`` or
``USER 65532:65532``). A name cannot be proven non-root by the kubelet, which is why
``runAsNonRoot`` needs a numeric UID in the image; a base image's own ``USER`` cannot be read
from the Dockerfile, so a final stage that sets none is reported. Build arguments and ``ENV``
values are substituted as the build would, with their defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from mamori.dockerfile.expand import Expansion, expand
from mamori.dockerfile.rules.registry import BuildContext, DockerfileFinding, rule
from mamori.dockerfile.stages import Dockerfile
from mamori.rules.registry import RuleSettings

EXAMPLE = "USER 65532:65532"


@dataclass(frozen=True, slots=True)
class EffectiveUser:
    written: str
    value: Expansion
    line: int
    stage: str


def restricted(settings: RuleSettings) -> bool:
    return settings.restricted


def effective_user(dockerfile: Dockerfile) -> EffectiveUser | None:
    """The last ``USER`` that applies to the final stage, substituted; None when none does."""
    chain = list(dockerfile.chain(dockerfile.final))
    found: EffectiveUser | None = None
    env: dict[str, str | None] = {}
    for stage in reversed(chain):  # ENV carries into a stage built on another; ARG does not
        variables = dict(env)
        for instruction in stage.instructions:
            if instruction.keyword == "ARG":
                for name, default in instruction.pairs:
                    if default is None:
                        variables[name] = dockerfile.global_args.get(name)
                    else:
                        variables[name] = expand(
                            default, variables, escape=dockerfile.escape, line=instruction.line
                        ).text
            elif instruction.keyword == "ENV":
                for name, env_value in instruction.pairs:
                    expanded = expand(
                        env_value or "", variables, escape=dockerfile.escape, line=instruction.line
                    ).text
                    variables[name] = env[name] = expanded
            elif instruction.keyword == "USER":
                written = instruction.arguments
                value = expand(written, variables, escape=dockerfile.escape, line=instruction.line)
                found = EffectiveUser(written, value, instruction.line, stage.label)
    return found


@rule(
    rule_id="dockerfile-user",
    summary="the final stage runs as a numeric, non-zero USER",
    applies=restricted,
)
def check_user(
    dockerfile: Dockerfile, settings: RuleSettings, context: BuildContext
) -> list[DockerfileFinding]:
    user = effective_user(dockerfile)
    final = dockerfile.final
    if user is None:
        return [
            DockerfileFinding(
                line=final.line,
                field="USER",
                stage=final.label,
                message="the final stage sets no USER, so the container runs as the base "
                "image's user (root unless the base image sets another, which a Dockerfile "
                f"does not show); add {EXAMPLE} (a numeric UID other than 0) after the last "
                "step that needs root",
            )
        ]
    problem = _problem(user)
    if problem is None:
        return []
    return [DockerfileFinding(line=user.line, field="USER", stage=user.stage, message=problem)]


def _problem(user: EffectiveUser) -> str | None:
    shown = f"USER {user.written}"
    if user.value.unset:
        names = ", ".join(user.value.unset)
        return (
            f"{shown} depends on build arguments without a default ({names}); write a numeric "
            f"UID ({EXAMPLE})"
        )
    uid = user.value.text.strip().partition(":")[0]
    if user.value.text != user.written:
        shown = f"{shown} (= {user.value.text!r})"
    if uid.isdecimal() and uid.isascii():
        if int(uid) != 0:
            return None
        return f"{shown} runs the container as root (UID 0); write {EXAMPLE} (any UID but 0)"
    if uid == "root":
        return f"{shown} runs the container as root; write {EXAMPLE} (any UID but 0)"
    return (
        f"{shown} names a user: the kubelet cannot prove a name is not root, which is why "
        f"runAsNonRoot needs a numeric UID; write the UID ({EXAMPLE}), creating the user with "
        "that UID if the software needs one"
    )
