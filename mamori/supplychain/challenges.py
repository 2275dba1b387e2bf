"""``WWW-Authenticate`` challenges (RFC 9110) and the bearer token request they lead to.

A registry says how it wants to be asked in its 401: Basic with a realm, or Bearer with the
token service's URL (realm), the service name and the scope. Pure functions, unit-tested.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: a scheme and its parameters."""

    scheme: str  # lower-case: "basic", "bearer"
    params: Mapping[str, str]  # names lower-case, values unquoted


class MalformedChallenge(ValueError):
    """A ``WWW-Authenticate`` header that does not follow RFC 9110's grammar."""


_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_CHALLENGE_PARAM_RE = re.compile(
    rf"[ \t]*({_TOKEN})[ \t]*=[ \t]*(\"(?:[^\"\\]|\\.)*\"|{_TOKEN})[ \t]*(?:,[ \t,]*|$)", re.ASCII
)
_CHALLENGE_SCHEME_RE = re.compile(rf"[ \t,]*({_TOKEN})(?:[ \t]+|(?=,)|$)", re.ASCII)
_QUOTED_PAIR_RE = re.compile(r"\\(.)")


def parse_challenges(header: str) -> tuple[Challenge, ...]:
    """Every challenge in a ``WWW-Authenticate`` value (a header may offer several)."""
    challenges: list[Challenge] = []
    scheme: str | None = None
    params: dict[str, str] = {}
    position = 0
    while position < len(header):
        param = _CHALLENGE_PARAM_RE.match(header, position) if scheme is not None else None
        if param is not None:
            name, value = param.groups()
            if value.startswith('"'):
                value = _QUOTED_PAIR_RE.sub(r"\1", value[1:-1])
            params[name.lower()] = value
            position = param.end()
            continue
        start = _CHALLENGE_SCHEME_RE.match(header, position)
        if start is None or start.end() == position:
            raise MalformedChallenge(f"unexpected text at offset {position}")
        if scheme is not None:
            challenges.append(Challenge(scheme, MappingProxyType(params)))
        scheme, params = start.group(1).lower(), {}
        position = start.end()
    if scheme is not None:
        challenges.append(Challenge(scheme, MappingProxyType(params)))
    if not challenges:
        raise MalformedChallenge("no challenge")
    return tuple(challenges)


def pick_challenge(challenges: tuple[Challenge, ...]) -> Challenge | None:
    """The challenge to answer: Bearer when offered (it scopes access), else Basic."""
    for wanted in ("bearer", "basic"):
        for challenge in challenges:
            if challenge.scheme == wanted:
                return challenge
    return None


def token_request_target(challenge: Challenge, repository: str) -> tuple[str, int, str]:
    """(host, port, path?query) for a bearer challenge's token request, pull scope.

    Only an https realm is accepted: the request carries the caller's credentials.
    """
    realm = challenge.params.get("realm", "")
    url = urllib.parse.urlsplit(realm)
    if url.scheme != "https" or not url.hostname:
        raise ValueError("the bearer realm is not an https URL")
    query = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
    if "service" in challenge.params:
        query.append(("service", challenge.params["service"]))
    query.append(("scope", f"repository:{repository}:pull"))
    target = f"{url.path or '/'}?{urllib.parse.urlencode(query)}"
    return url.hostname, url.port or 443, target
