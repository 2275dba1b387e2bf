"""dockerfile-secrets: no secret is baked into an image or its history.

Spec: reported, naming the instruction and never the value (shown as ``<redacted>``):

- ``ENV``/``ARG`` with a value whose name looks like a secret (``DB_PASSWORD``, ``NPM_TOKEN``,
  ``AWS_SECRET_ACCESS_KEY``, ``API_KEY``, ``PRIVATE_KEY``…; not ``…_FILE``, ``…_PATH``,
  ``…_ID`` and the like, which name where a secret is, or which one);
- any ``ENV``/``ARG``/``LABEL`` value, ``RUN`` command or heredoc body holding what looks like
  a credential: an AWS access key ID, a private key block, a GitHub/GitLab/Slack/Stripe/npm
  token, or a password in a URL;
- ``COPY``/``ADD`` of key and credential files (``id_rsa``, ``*.key``, private ``*.pem``,
  ``.npmrc``, ``.netrc``, ``.aws/credentials``, ``.docker/config.json``, ``.env``…);
- ``ADD`` from a URL with credentials in it, or without ``--checksum``.

``ENV`` values are stored in the image's configuration and ``ARG`` values in its history, for
anyone who can pull it; a secret mounted with ``RUN --mount=type=secret`` is in neither.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from mamori.dockerfile.parse import Instruction, split_words
from mamori.dockerfile.rules.registry import BuildContext, DockerfileFinding, rule
from mamori.dockerfile.stages import Dockerfile
from mamori.rules.registry import RuleSettings

REDACTED = "<redacted>"
SAFE_WAY = (
    "pass it to the one step that needs it with RUN --mount=type=secret,id=<id> "
    "(docker build --secret id=<id>,src=<file>), and inject it at run time from a Kubernetes "
    "Secret"
)
# A name token ending in one of these is a secret (DB_PASSWORD, NPMTOKEN, CLIENT_SECRET).
SECRET_TOKEN_ENDINGS = ("PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "TOKEN", "APIKEY")
SECRET_TOKENS = frozenset({"CREDENTIAL", "CREDENTIALS"})
# ... and these words before KEY (API_KEY, AWS_SECRET_ACCESS_KEY, SIGNING_KEY).
KEY_QUALIFIERS = frozenset(
    {"API", "ACCESS", "PRIVATE", "SECRET", "AUTH", "CLIENT", "ENCRYPTION", "SIGNING", "MASTER"}
)
# A last token that names where or which secret, not the secret itself.
NOT_SECRET_LAST = frozenset(
    {
        "FILE",
        "PATH",
        "DIR",
        "ID",
        "URL",
        "URI",
        "NAME",
        "LENGTH",
        "ENABLED",
        "TYPE",
        "HEADER",
        "ENDPOINT",
        "LOCATION",
        "VERSION",
        "MODE",
        "TTL",
        "TIMEOUT",
        "EXPIRY",
        "POLICY",
    }
)
NAME_TOKEN_RE = re.compile(r"[A-Z0-9]+")
CREDENTIAL_PATTERNS = (
    ("an AWS access key ID", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("a private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    ("a GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_\w{22,})")),
    ("a GitLab token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
    ("a Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    ("a Stripe live key", re.compile(r"\b[sr]k_live_[A-Za-z0-9]{16,}")),
    ("an npm token", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b")),
    ("a password in a URL", re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/:@$]+:[^\s/@$]+@")),
)
CREDENTIAL_FILES = frozenset(
    {
        "id_rsa",
        "id_dsa",
        "id_ecdsa",
        "id_ed25519",
        ".ssh",
        ".npmrc",
        ".pypirc",
        ".netrc",
        "_netrc",
        ".git-credentials",
        ".pgpass",
        ".htpasswd",
        ".dockercfg",
        ".env",
        "credentials",
        "credentials.json",
        "kubeconfig",
    }
)
CREDENTIAL_PATHS = (".aws/credentials", ".docker/config.json", ".kube/config")
KEY_SUFFIXES = (".key", ".p12", ".pfx", ".jks", ".keystore")
ENV_FILE_EXAMPLES = frozenset({"example", "sample", "template", "dist", "defaults"})
URL_RE = re.compile(r"(?P<scheme>https?)://(?:(?P<userinfo>[^/@\s]*)@)?(?P<rest>\S*)", re.I)


def secret_name(name: str) -> bool:
    """Whether an ``ENV``/``ARG`` name looks like it holds a secret."""
    tokens = NAME_TOKEN_RE.findall(name.upper())
    if not tokens or tokens[-1] in NOT_SECRET_LAST:
        return False
    for position, token in enumerate(tokens):
        if token in SECRET_TOKENS or token.endswith(SECRET_TOKEN_ENDINGS):
            return True
        if token == "KEY" and position and tokens[position - 1] in KEY_QUALIFIERS:
            return True
    return False


def credential_kind(text: str) -> str | None:
    """What credential ``text`` seems to hold, or None."""
    for kind, pattern in CREDENTIAL_PATTERNS:
        if pattern.search(text):
            return kind
    return None


def credential_file(source: str) -> bool:
    """Whether a ``COPY``/``ADD`` source is a key or credential file."""
    path = source.rstrip("/").lower()
    base = path.rpartition("/")[2]
    if base in CREDENTIAL_FILES or path.endswith(CREDENTIAL_PATHS):
        return True
    if base.endswith(KEY_SUFFIXES):
        return True
    if base.endswith(".pem") and ("key" in base or "private" in base):
        return True
    if base.startswith(".env."):
        return base.removeprefix(".env.") not in ENV_FILE_EXAMPLES
    return False


@rule(
    rule_id="dockerfile-secrets",
    summary="no secret in ENV, ARG, commands or copied files",
)
def check_secrets(
    dockerfile: Dockerfile, settings: RuleSettings, context: BuildContext
) -> list[DockerfileFinding]:
    findings: list[DockerfileFinding] = []
    for stage in dockerfile.stages:
        for instruction in _with_triggers(stage.instructions):
            findings.extend(
                DockerfileFinding(instruction.line, field, message, stage=stage.label)
                for field, message in _problems(instruction, dockerfile.escape)
            )
    return findings


def _with_triggers(instructions: tuple[Instruction, ...]) -> Iterator[Instruction]:
    for instruction in instructions:
        yield instruction
        if instruction.trigger is not None:
            yield instruction.trigger


def _problems(instruction: Instruction, escape: str) -> Iterator[tuple[str, str]]:
    keyword = instruction.keyword
    if keyword in ("ENV", "ARG", "LABEL"):
        for name, value in instruction.pairs:
            if not value:
                continue
            field = f"{keyword} {name}"
            shown = f"{keyword} {name}={REDACTED}"
            kind = credential_kind(value)
            if kind is not None:
                yield field, f"{shown}: the value looks like {kind}; {_stored(keyword)}; {SAFE_WAY}"
            elif keyword != "LABEL" and secret_name(name):
                yield field, f"{shown}: {name} looks like a secret; {_stored(keyword)}; {SAFE_WAY}"
        return
    if keyword in ("RUN", "COPY", "ADD"):
        # A COPY/ADD's own words are judged below (files, URLs); its heredocs, like RUN, here.
        text = instruction.command if keyword == "RUN" else _bodies(instruction)
        kind = credential_kind(text)
        if kind is not None:
            yield keyword, f"{keyword} holds what looks like {kind} ({REDACTED}); {SAFE_WAY}"
    if keyword in ("COPY", "ADD"):
        sources = _sources(instruction, escape)
        for source in sources:
            if credential_file(source):
                yield (
                    keyword,
                    (
                        f"{keyword} {source[:120]} copies a key or credential file into the image, "
                        f"where every layer keeps it; {SAFE_WAY}"
                    ),
                )
        if keyword == "ADD":
            for source in sources:
                yield from _remote(instruction, source)


def _bodies(instruction: Instruction) -> str:
    return "\n".join(heredoc.body for heredoc in instruction.heredocs)


def _stored(keyword: str) -> str:
    if keyword == "ENV":
        return "ENV values are stored in the image's configuration for anyone who pulls it"
    if keyword == "ARG":
        return "ARG values are recorded in the image's history"
    return "labels are stored in the image's configuration"


def _sources(instruction: Instruction, escape: str) -> list[str]:
    """The sources of a ``COPY``/``ADD`` (every word but the destination), heredocs aside."""
    if instruction.exec_form is not None:
        words = list(instruction.exec_form)
    else:
        try:
            words = split_words(instruction.arguments, escape=escape, line=instruction.line)
        except ValueError:
            words = instruction.arguments.split()
    return [word for word in words[:-1] if not word.startswith("<<")]


def _remote(instruction: Instruction, source: str) -> Iterator[tuple[str, str]]:
    match = URL_RE.fullmatch(source)
    if match is None:
        return
    shown = f"{match.group('scheme')}://{match.group('rest')}"[:120]
    if match.group("userinfo") is not None:
        yield (
            "ADD",
            (
                f"ADD {match.group('scheme')}://{REDACTED}@{match.group('rest')[:100]} puts "
                f"credentials in the Dockerfile and the image's history; {SAFE_WAY} (for example "
                "RUN --mount=type=secret,id=netrc,target=/root/.netrc curl -fsSLO <url>)"
            ),
        )
    elif instruction.flag("checksum") is None:
        yield (
            "ADD",
            (
                f"ADD {shown} downloads content nothing verifies, and a server that needs "
                "credentials tempts putting them here; write ADD --checksum=sha256:<digest> <url>, "
                "or download in a RUN step with RUN --mount=type=secret,id=<id> for the credentials"
            ),
        )
