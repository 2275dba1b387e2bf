"""Image references: parse (distribution reference grammar), normalize, match trusted registries.

Every admission parses every image, so this module is the gate that registry and digest rules
stand on: a reference is read exactly the way the container runtime reads it (the grammar and
Docker Hub normalization of ``github.com/distribution/reference``), because a parser that is
more lenient than the runtime lets an image be judged under one name and pulled under another.
Where the runtime's own library is loose in ways no registry can serve (a host that is not a host
name, brackets that hold no IPv6 address), this parser refuses instead.

Grammar (the common shapes' regular expression is compiled at import; the others, which only
unusual references, policies and the operator need, on first use)::

    reference        := name [ ":" tag ] [ "@" digest ]
    name             := [ domain "/" ] path
    domain           := host [ ":" port ]     host := domain-name | "[" IPv6 "]"
    domain-component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
    path             := path-component [ "/" path-component ]*
    path-component   := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag              := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest           := algorithm ":" hex{32,}   (sha256: exactly 64 lower-case hex)

The first component of a name is a registry host only if it contains ``.`` or ``:``, is
``localhost``, or has an upper-case letter; otherwise the image is on Docker Hub
(``nginx`` → ``docker.io/library/nginx:latest``, ``index.docker.io`` → ``docker.io``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final, NamedTuple

if TYPE_CHECKING:
    from ipaddress import IPv6Address

DOCKER_HUB = "docker.io"
LEGACY_DOCKER_HUB = "index.docker.io"
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"
LOCALHOST = "localhost"

# Clients and registries limit "<host[:port]>/<path>" to 255 characters (OCI distribution spec).
NAME_MAX_LENGTH = 255
# Digests have fixed lengths (sha512: 135 characters); this bounds algorithms not known here.
DIGEST_MAX_LENGTH = 512
# No valid reference comes near this; refusing longer input first keeps every regex cheap.
REFERENCE_MAX_LENGTH = 1024

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_PORT = r"[0-9]+"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"


class _Pattern:
    """A regular expression compiled on first use, by re's own cache: every ``mamori check``
    imports this module, and only unusual references and policies need these."""

    __slots__ = ("flags", "pattern")

    def __init__(self, pattern: str, flags: int = re.ASCII) -> None:
        self.pattern = pattern
        self.flags = flags

    def fullmatch(self, text: str) -> re.Match[str] | None:
        return re.fullmatch(self.pattern, text, self.flags)

    def search(self, text: str) -> re.Match[str] | None:
        return re.search(self.pattern, text, self.flags)


IPV6_TEXT_RE = _Pattern(_IPV6)
DOMAIN_RE = _Pattern(rf"(?P<host>{_DOMAIN_NAME}|{_IPV6})(?::(?P<port>{_PORT}))?")
DOMAIN_COMPONENT_RE = _Pattern(_DOMAIN_COMPONENT)
PATH_RE = _Pattern(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
TAG_RE = _Pattern(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
DIGEST_RE = _Pattern(
    r"(?P<algorithm>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*):(?P<hex>[0-9a-fA-F]{32,})"
)
LOWER_HEX_RE = _Pattern(r"[0-9a-f]+")
IMAGE_ID_RE = _Pattern(r"[0-9a-f]{64}")
# The common shapes in one match (see parse_common_reference): a lower-case host with a '.' or a
# port, a path, a tag, a sha256 digest. Groups: domain, path, tag, digest.
# Written for speed. The host is matched loosely, as lower-case letters, digits, '.' and '-'
# from an alphanumeric to an alphanumeric, with a '.' or a port; parse_common_reference then
# refuses "..", ".-" and "-.", which leaves exactly dot-separated DNS labels. Path components
# are possessive: a separator can never start what follows a component.
_LOOSE_HOST = r"[a-z0-9][a-z0-9.-]*\.[a-z0-9.-]*[a-z0-9]"
_POSSESSIVE_PATH_COMPONENT = r"[a-z0-9]++(?:(?:[._]|__|-+)[a-z0-9]++)*+"
COMMON_REFERENCE_RE = re.compile(
    rf"(?:({_LOOSE_HOST}(?::{_PORT})?|[a-z0-9](?:[a-z0-9-]*[a-z0-9])?:{_PORT})/)?"
    rf"({_POSSESSIVE_PATH_COMPONENT}(?:/{_POSSESSIVE_PATH_COMPONENT})*)"
    r"(?::([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(sha256:[0-9a-f]{64}))?",
    re.ASCII,
)
COMMON_MAX_LENGTH = 200  # + "docker.io/library/" stays under NAME_MAX_LENGTH
IMAGE_ID_LENGTH = 64
# Anything outside printable ASCII without space: whitespace, control and non-ASCII characters.
FORBIDDEN_CHARACTER_RE = _Pattern(r"[^\x21-\x7e]", flags=0)

# Hex lengths of the algorithms container runtimes can verify; any other algorithm is taken on
# the grammar's word, like the runtime's reference library does.
KNOWN_DIGEST_LENGTHS: Final[Mapping[str, int]] = MappingProxyType(
    {"sha256": 64, "sha384": 96, "sha512": 128}
)

EXAMPLE_REFERENCE = "registry.example.com/team/app:1.0"


class InvalidReference(ValueError):
    """An image reference that does not parse; the message says why."""


class InvalidRegistryPattern(ValueError):
    """A trustedRegistries entry that is not a host with an optional path prefix."""


class ImageReference(NamedTuple):
    """A parsed, normalized image reference (a named tuple: every image of every pod is one).

    ``domain`` keeps the spelling that was written (``GHCR.io``) so that ``str()`` round-trips:
    lower-casing it could turn an upper-case host such as ``Registry/app`` into a Docker Hub
    namespace. Compare registries through :attr:`registry`, which is case-insensitive.
    ``tag`` is ``latest`` when neither a tag nor a digest was written; with both, the digest is
    what the runtime pulls.
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None
    # ``hostname`` and ``port`` are derived on use rather than stored: every image of every pod
    # is parsed, while a policy's compiled trustedRegistries reads them once per image at most.

    @property
    def hostname(self) -> str:
        """The registry host without port, lower-cased; IPv6 in brackets, compressed."""
        return registry_hostname(self.domain)

    @property
    def port(self) -> str | None:
        return split_port(self.domain)[1]

    @property
    def name(self) -> str:
        return f"{self.domain}/{self.path}"

    @property
    def registry(self) -> str:
        """``host[:port]`` in the form used to compare registries."""
        port = self.port
        return self.hostname if port is None else f"{self.hostname}:{port}"

    @property
    def digest_algorithm(self) -> str | None:
        return None if self.digest is None else self.digest.partition(":")[0]

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text = f"{text}:{self.tag}"
        if self.digest is not None:
            text = f"{text}@{self.digest}"
        return text


def parse_reference(text: str) -> ImageReference:
    """Parse and normalize an image reference, or raise :class:`InvalidReference` saying why.

    Every admission parses every image, so the common shapes take one regex match
    (:func:`parse_common_reference`); anything else, every error included, takes the full
    parser, which explains what is wrong.
    """
    if type(text) is str:
        common = parse_common_reference(text)
        if common is not None:
            return common
    return parse_full_reference(text)


def parse_common_reference(text: str) -> ImageReference | None:
    """The result of :func:`parse_full_reference` for the common valid shapes, else None.

    Common: at most 200 characters, no image ID (64 hex alone); an optional lower-case registry
    host that has a ``.`` or a port (``index.docker.io`` and ``localhost`` excepted), a path, an
    optional tag, an optional ``sha256`` digest. Each of these the full parser accepts and
    splits the same way, so the two agree wherever this one answers (a property test holds
    them to it); the length bound keeps the normalized name under ``NAME_MAX_LENGTH``.
    """
    if len(text) > COMMON_MAX_LENGTH or len(text) == IMAGE_ID_LENGTH:
        return None
    match = COMMON_REFERENCE_RE.fullmatch(text)
    if match is None:
        return None
    domain, path, tag, digest = match.groups()
    if domain is None:
        first, slash, _ = path.partition("/")
        if slash and ("." in first or first == LOCALHOST):
            return None  # the first component names a registry host: the full parser decides
        domain = DOCKER_HUB
        if "/" not in path:
            path = f"{OFFICIAL_NAMESPACE}/{path}"
    elif domain == LEGACY_DOCKER_HUB or ".." in domain or ".-" in domain or "-." in domain:
        return None  # legacy Docker Hub, or a host the loose pattern let through
    elif domain == DOCKER_HUB and "/" not in path:
        path = f"{OFFICIAL_NAMESPACE}/{path}"
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return ImageReference(domain, path, tag, digest)


def parse_full_reference(text: str) -> ImageReference:
    """The whole grammar, every limit, and a reason for each refusal."""
    if not isinstance(text, str):
        raise InvalidReference(f"an image reference must be a string, got {type(text).__name__}")
    if not text:
        raise InvalidReference("the reference is empty")
    if len(text) > REFERENCE_MAX_LENGTH:
        raise InvalidReference(f"the reference is longer than {REFERENCE_MAX_LENGTH} characters")
    # Printable ASCII but space is exactly what the regex allows; the str checks are cheaper.
    if not (text.isascii() and text.isprintable()) or " " in text:
        bad = FORBIDDEN_CHARACTER_RE.search(text)
        if bad is not None:
            raise InvalidReference(_forbidden_character_reason(bad.group(), bad.start()))
    if "://" in text:
        scheme, _, rest = text.partition("://")
        raise InvalidReference(
            f"an image reference has no URL scheme ({scheme}://); write {rest!r} without it"
        )

    remainder, at, digest = text.partition("@")
    if not remainder:
        raise InvalidReference("there is no repository name before '@'")
    if at:
        _check_digest(digest)
    name, tag = _split_tag(remainder)
    if tag is not None:
        _check_tag(tag)
    if len(text) == 64 and IMAGE_ID_RE.fullmatch(text):
        raise InvalidReference(
            "a 64-character hex string is an image ID, not a reference; "
            "pin an image by digest as name@sha256:<hex> instead"
        )
    domain, path = _split_domain(name)
    _check_path(path, domain=domain)
    full_name = f"{domain}/{path}"
    if len(full_name) > NAME_MAX_LENGTH:
        raise InvalidReference(
            f"name {full_name[:40]}... is {len(full_name)} characters long; "
            f"a registry host and repository path together allow at most {NAME_MAX_LENGTH}"
        )
    if tag is None and not at:
        tag = DEFAULT_TAG
    return ImageReference(domain=domain, path=path, tag=tag, digest=digest if at else None)


def _forbidden_character_reason(character: str, position: int) -> str:
    if character.isspace():
        return f"the reference contains whitespace ({character!r} at position {position})"
    if character.isascii():
        return f"the reference contains a control character ({character!r} at position {position})"
    return f"the reference contains a non-ASCII character ({character!r} at position {position})"


def _split_tag(remainder: str) -> tuple[str, str | None]:
    """Split ``name[:tag]``: a ``:`` followed by no ``/`` starts the tag, else it is a port."""
    name, colon, tag = remainder.rpartition(":")
    if not colon or "/" in tag or "]" in tag:
        return remainder, None
    if not name:
        raise InvalidReference("there is no repository name before ':'")
    return name, tag


def _check_tag(tag: str) -> None:
    if not tag:
        raise InvalidReference("':' is not followed by a tag; write name:tag or leave ':' out")
    if not TAG_RE.fullmatch(tag):
        if len(tag) > 128:
            raise InvalidReference(f"tag is {len(tag)} characters long; at most 128 are allowed")
        raise InvalidReference(
            f"tag {tag!r} is invalid: a tag starts with a letter, digit or '_' and continues "
            "with letters, digits, '_', '.' or '-'"
        )


def _check_digest(digest: str) -> None:
    if not digest:
        raise InvalidReference("'@' is not followed by a digest; write name@sha256:<64 hex>")
    if "/" in digest or "@" in digest:
        raise InvalidReference(
            f"'@' must be followed by a digest such as sha256:<64 hex>, not {digest!r}; "
            "an image reference cannot carry user information (user@host)"
        )
    if len(digest) > DIGEST_MAX_LENGTH:
        raise InvalidReference(f"digest is longer than {DIGEST_MAX_LENGTH} characters")
    match = DIGEST_RE.fullmatch(digest)
    if match is None:
        raise InvalidReference(
            f"digest {digest!r} is invalid: write algorithm:hex, such as sha256:<64 hex>"
        )
    algorithm, hex_value = match.group("algorithm", "hex")
    length = KNOWN_DIGEST_LENGTHS.get(algorithm)
    if length is not None and (len(hex_value) != length or not LOWER_HEX_RE.fullmatch(hex_value)):
        raise InvalidReference(
            f"{algorithm} digest must be {length} lower-case hex characters, "
            f"got {len(hex_value)} characters"
            + ("" if LOWER_HEX_RE.fullmatch(hex_value) else " with upper-case letters")
        )


def _split_domain(name: str) -> tuple[str, str]:
    """Split a name into registry domain and path, normalizing Docker Hub names."""
    first, slash, rest = name.partition("/")
    if not slash:
        return DOCKER_HUB, f"{OFFICIAL_NAMESPACE}/{name}"
    if first == LEGACY_DOCKER_HUB:
        domain, path = DOCKER_HUB, rest
    elif first == LOCALHOST or "." in first or ":" in first or first.lower() != first:
        domain, path = first, rest
    else:
        return DOCKER_HUB, name
    _check_domain(domain)
    if domain == DOCKER_HUB and "/" not in path:
        path = f"{OFFICIAL_NAMESPACE}/{path}"
    return domain, path


def _check_domain(domain: str) -> None:
    match = DOMAIN_RE.fullmatch(domain)
    if match is None:
        _, colon, port = domain.rpartition(":") if not domain.endswith("]") else ("", "", "")
        if colon and not port.isdigit():
            raise InvalidReference(
                f"registry {domain!r} has an invalid port {port!r}: a port is a number"
            )
        raise InvalidReference(
            f"registry host {domain!r} is not a host name, IPv4 address or [IPv6] address "
            "(letters, digits, '-' and '.' between labels; no leading, trailing or double '.')"
        )
    host = match.group("host")
    if host.startswith("["):
        try:
            _ipv6_address(host[1:-1])
        except ValueError:
            raise InvalidReference(f"registry host {host!r} is not a valid IPv6 address") from None


def _check_path(path: str, *, domain: str) -> None:
    if PATH_RE.fullmatch(path):
        return
    if not path:
        raise InvalidReference(f"there is no repository path after the registry {domain!r}")
    if PATH_RE.fullmatch(path.lower()):
        raise InvalidReference(f"repository path {path!r} must be lower-case")
    if "//" in path or path.endswith("/") or path.startswith("/"):
        raise InvalidReference(
            f"repository path {path!r} has an empty component ('//', or '/' at an end)"
        )
    raise InvalidReference(
        f"repository path {path!r} is invalid: each '/'-separated component is lower-case "
        "letters and digits, separated inside by one '.', one or two '_', or dashes"
    )


def split_port(domain: str) -> tuple[str, str | None]:
    """Split ``host[:port]`` (IPv6 hosts in brackets) into host and port."""
    if domain.startswith("["):
        end = domain.find("]")
        host, rest = domain[: end + 1], domain[end + 1 :]
        return host, (rest[1:] if rest.startswith(":") else None)
    host, colon, port = domain.partition(":")
    return host, (port if colon else None)


def _ipv6_address(text: str) -> IPv6Address:
    """``ipaddress.IPv6Address(text)``; ipaddress is imported by the few references and policies
    that name an IPv6 host, not by every ``mamori check``."""
    from ipaddress import IPv6Address

    return IPv6Address(text)


def _immutable(self: object, name: str, *value: object) -> None:
    """``__setattr__`` and ``__delattr__`` of the immutable classes below."""
    raise AttributeError(f"{type(self).__name__} is immutable (field {name!r})")


def registry_hostname(domain: str) -> str:
    """The host of ``domain`` in comparable form: lower-case; IPv6 compressed, in brackets."""
    host = split_port(domain)[0].lower()
    if host.startswith("["):
        try:
            return f"[{_ipv6_address(host[1:-1]).compressed}]"
        except ValueError:
            return host
    return host


class RegistryPattern:
    """One ``trustedRegistries`` entry: a registry host and an optional repository path prefix.

    ``host`` is lower-case (IPv6 compressed, in brackets); ``labels`` holds its DNS labels, where
    ``*`` stands for exactly one label. ``port`` is significant: ``localhost:5000`` is not
    ``localhost``. ``path`` is matched on ``/`` boundaries only, so ``ghcr.io/acme`` never trusts
    ``ghcr.io/acme-evil``.

    Immutable; equal, hashed and shown by ``text``, ``host``, ``port`` and ``path``. The classes
    of this module are written out rather than dataclasses: every ``mamori check`` imports it,
    and a dataclass's generated methods cost about a millisecond each time.
    """

    __slots__ = ("_host_re", "host", "labels", "path", "port", "text")
    text: str
    host: str
    port: str | None
    path: str
    labels: tuple[str, ...]
    # The wildcard host as one regex, ``*`` standing for one label: built once, matched per image.
    _host_re: re.Pattern[str] | None

    def __init__(self, text: str, host: str, port: str | None, path: str) -> None:
        labels = () if host.startswith("[") else tuple(host.split("."))
        host_re = None
        if "*" in labels:
            parts = ("[^.]*" if label == "*" else re.escape(label) for label in labels)
            host_re = re.compile(r"\.".join(parts))
        set_field = object.__setattr__
        set_field(self, "text", text)
        set_field(self, "host", host)
        set_field(self, "port", port)
        set_field(self, "path", path)
        set_field(self, "labels", labels)
        set_field(self, "_host_re", host_re)

    __setattr__ = _immutable
    __delattr__ = _immutable

    def _key(self) -> tuple[str, str, str | None, str]:
        return (self.text, self.host, self.port, self.path)

    def __eq__(self, other: object) -> bool:
        return self._key() == other._key() if isinstance(other, RegistryPattern) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._key())

    def __reduce__(self) -> tuple[type[RegistryPattern], tuple[str, str, str | None, str]]:
        return RegistryPattern, self._key()  # copies and pickles are built as the original was

    def __repr__(self) -> str:
        return (
            f"RegistryPattern(text={self.text!r}, host={self.host!r}, port={self.port!r}, "
            f"path={self.path!r})"
        )

    @property
    def wildcard(self) -> bool:
        return "*" in self.labels

    @classmethod
    def parse(cls, text: str) -> RegistryPattern:
        """Validate an entry; raise :class:`InvalidRegistryPattern` with the reason."""
        host, port, path = _parse_pattern(text)
        return cls(text=text, host=host, port=port, path=path)

    def matches(self, reference: ImageReference) -> bool:
        """True when ``reference`` is pulled from this registry, under this path prefix."""
        if reference.port != self.port or not self._host_matches(reference.hostname):
            return False
        if not self.path:
            return True
        path = reference.path
        return path == self.path or path.startswith(f"{self.path}/")

    def _host_matches(self, hostname: str) -> bool:
        if self._host_re is None:
            return hostname == self.host
        return self._host_re.fullmatch(hostname) is not None

    def __str__(self) -> str:
        registry = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"{registry}/{self.path}" if self.path else registry


class TrustedRegistries:
    """A policy's ``trustedRegistries``, compiled once for matching every image of every pod.

    ``trusts`` answers exactly ``any(pattern.matches(reference) for pattern in patterns)``, with
    dictionary look-ups instead of a walk over the entries: exact hosts by ``host[:port]``,
    ``*.suffix`` entries by ``suffix[:port]`` (``*`` is one label: everything up to the first
    ``.``), and any other shape (an inner ``*``, an IPv6 host) by :meth:`RegistryPattern.matches`.

    Immutable; equal, hashed and shown by ``patterns``.
    """

    __slots__ = ("_by_registry", "_by_suffix", "_other", "listing", "patterns")
    patterns: tuple[RegistryPattern, ...]
    listing: str
    """The entries as messages quote them: ``ghcr.io/acme, registry.k8s.io``."""
    _by_registry: Mapping[str, Prefixes | None]
    _by_suffix: Mapping[str, Prefixes | None]
    _other: tuple[RegistryPattern, ...]

    def __init__(self, patterns: tuple[RegistryPattern, ...] = ()) -> None:
        by_registry: dict[str, list[str]] = {}
        by_suffix: dict[str, list[str]] = {}
        other: list[RegistryPattern] = []
        for pattern in patterns:
            labels = pattern.labels
            port = "" if pattern.port is None else f":{pattern.port}"
            if not labels:  # an IPv6 host
                other.append(pattern)
            elif not pattern.wildcard:
                by_registry.setdefault(pattern.host + port, []).append(pattern.path)
            elif labels[0] == "*" and "*" not in labels[1:]:
                by_suffix.setdefault(".".join(labels[1:]) + port, []).append(pattern.path)
            else:
                other.append(pattern)
        set_field = object.__setattr__
        set_field(self, "patterns", patterns)
        set_field(self, "listing", ", ".join(str(pattern) for pattern in patterns))
        set_field(self, "_by_registry", _prefixes_by_key(by_registry))
        set_field(self, "_by_suffix", _prefixes_by_key(by_suffix))
        set_field(self, "_other", tuple(other))

    __setattr__ = _immutable
    __delattr__ = _immutable

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TrustedRegistries):
            return NotImplemented
        return self.patterns == other.patterns

    def __hash__(self) -> int:
        return hash((self.patterns,))

    def __reduce__(self) -> tuple[type[TrustedRegistries], tuple[tuple[RegistryPattern, ...]]]:
        return TrustedRegistries, (self.patterns,)  # compiled again on loading

    def __repr__(self) -> str:
        return f"TrustedRegistries(patterns={self.patterns!r})"

    def trusts(self, reference: ImageReference) -> bool:
        """True when some entry matches ``reference`` (see :meth:`RegistryPattern.matches`)."""
        domain = reference.domain
        if domain.startswith("["):  # IPv6, compressed for comparison: the entries one by one
            return any(pattern.matches(reference) for pattern in self.patterns)
        registry = domain.lower()  # host[:port], as the keys are written
        by_registry = self._by_registry
        if registry in by_registry:
            prefixes = by_registry[registry]
            if prefixes is None or _under_any(reference.path, prefixes):
                return True
        if self._by_suffix:
            _, dot, suffix = registry.partition(".")
            if dot and suffix in self._by_suffix:
                prefixes = self._by_suffix[suffix]
                if prefixes is None or _under_any(reference.path, prefixes):
                    return True
        return bool(self._other) and any(pattern.matches(reference) for pattern in self._other)


class Prefixes(NamedTuple):
    """Path prefixes of one registry key: the paths themselves, and each with its ``/``."""

    paths: frozenset[str]
    parents: tuple[str, ...]


def _prefixes_by_key(lists: dict[str, list[str]]) -> Mapping[str, Prefixes | None]:
    """Path prefixes by key; None when one entry for the key has none (any path matches)."""
    return {
        key: None if "" in values else Prefixes(frozenset(values), tuple(f"{v}/" for v in values))
        for key, values in lists.items()
    }


def _under_any(path: str, prefixes: Prefixes) -> bool:
    """``path`` is one of ``prefixes`` or under one on a ``/`` boundary."""
    return path in prefixes.paths or path.startswith(prefixes.parents)


def _parse_pattern(text: str) -> tuple[str, str | None, str]:
    """Return (host, port, path) of a trusted-registry entry, or raise saying what is wrong."""
    if not isinstance(text, str):
        raise InvalidRegistryPattern(f"must be a string, got {type(text).__name__}")
    if not text.strip():
        raise InvalidRegistryPattern("is empty; write a registry host such as registry.k8s.io")
    if len(text) > NAME_MAX_LENGTH:
        raise InvalidRegistryPattern(f"is longer than {NAME_MAX_LENGTH} characters")
    bad = FORBIDDEN_CHARACTER_RE.search(text)
    if bad is not None:
        raise InvalidRegistryPattern(_forbidden_character_reason(bad.group(), bad.start()))
    if "://" in text:
        raise InvalidRegistryPattern(
            "must not contain a URL scheme; write the registry host alone, such as ghcr.io/acme"
        )
    if "@" in text:
        raise InvalidRegistryPattern(
            "must not contain '@': an entry is a registry host with an optional path prefix, "
            "without user information or digest"
        )
    if text.endswith("/"):
        raise InvalidRegistryPattern("must not end with '/'; write ghcr.io/acme, not ghcr.io/acme/")
    domain, _, path = text.partition("/")
    host, port = _parse_pattern_domain(domain)
    if path:
        _check_pattern_path(path)
    if host == LEGACY_DOCKER_HUB:
        host = DOCKER_HUB
    return host, port, path


def _parse_pattern_domain(domain: str) -> tuple[str, str | None]:
    if not domain:
        raise InvalidRegistryPattern("must start with a registry host, not '/'")
    if domain.startswith("["):
        host, port = split_port(domain)
        if not host.endswith("]") or (port is None and host != domain):
            raise InvalidRegistryPattern("an IPv6 host is written [address] or [address]:port")
        try:
            if not IPV6_TEXT_RE.fullmatch(host):
                raise ValueError(host)  # zone IDs and embedded IPv4 are outside the grammar
            address = _ipv6_address(host[1:-1])
        except ValueError:
            raise InvalidRegistryPattern(f"{host} is not a valid IPv6 address") from None
        return f"[{address.compressed}]", _check_pattern_port(port)
    if domain.count(":") > 1:
        raise InvalidRegistryPattern(
            "host has more than one ':' (one ':port' at most; an IPv6 host is written "
            "[address] or [address]:port)"
        )
    host, colon, port_text = domain.partition(":")
    port = _check_pattern_port(port_text if colon else None)
    host = host.lower()
    if host.endswith("."):
        raise InvalidRegistryPattern(f"host {host!r} must not end with '.'")
    labels = host.split(".")
    for label in labels:
        if not label:
            raise InvalidRegistryPattern(
                f"host {host!r} has an empty label (leading or double '.')"
            )
        if label == "*":
            continue
        if "*" in label:
            raise InvalidRegistryPattern(
                f"'*' must stand for a whole DNS label, as in *.example.com, not {label!r}"
            )
        if not DOMAIN_COMPONENT_RE.fullmatch(label):
            raise InvalidRegistryPattern(
                f"host label {label!r} is invalid: letters, digits and inner '-' only"
            )
    if "*" in labels[-2:]:
        raise InvalidRegistryPattern(
            "'*' may not stand for the last two labels of a host: write them out, "
            "as in *.dkr.ecr.us-east-1.amazonaws.com"
        )
    if len(labels) == 1 and port is None and host != LOCALHOST:
        raise InvalidRegistryPattern(
            f"{host!r} is not a registry host (a host has a '.' or a ':port', or is localhost); "
            f"Docker Hub images are trusted with docker.io/library or docker.io/<namespace>"
        )
    return host, port


def _check_pattern_port(port: str | None) -> str | None:
    if port is None:
        return None
    if not port.isascii() or not port.isdigit() or port.startswith("0") or int(port) > 65535:
        raise InvalidRegistryPattern(f"port {port!r} must be a number from 1 to 65535")
    return port


def _check_pattern_path(path: str) -> None:
    if "*" in path:
        raise InvalidRegistryPattern("'*' is only allowed in the host, not in the path prefix")
    if ":" in path:
        raise InvalidRegistryPattern(
            "a path prefix names repositories, not a tag; leave ':<tag>' out "
            "(pin images with requireImageDigest instead)"
        )
    if PATH_RE.fullmatch(path):
        return
    if PATH_RE.fullmatch(path.lower()):
        raise InvalidRegistryPattern(f"path prefix {path!r} must be lower-case")
    raise InvalidRegistryPattern(
        f"path prefix {path!r} is not a repository path (lower-case components separated by "
        "single '/', no leading or trailing separators)"
    )


class EcrHost(NamedTuple):
    """A private Amazon ECR registry host, taken apart for the operator's scan lookups."""

    account_id: str
    region: str
    fips: bool
    dual_stack: bool
    partition: str
    dns_suffix: str


# <account>.dkr.ecr[-fips].<region>.<suffix> and the dual-stack <account>.dkr-ecr[-fips]...
ECR_HOST_RE = _Pattern(
    r"(?P<account>[0-9]{12})\.(?P<service>dkr\.ecr|dkr-ecr)(?P<fips>-fips)?"
    r"\.(?P<region>[a-z]{2,}(?:-[a-z]+)+-[0-9]+)\.(?P<suffix>[a-z0-9.-]+)"
)
ECR_SUFFIX_PARTITIONS: Final[Mapping[tuple[str, str], str]] = MappingProxyType(
    {
        ("dkr.ecr", "amazonaws.com"): "aws",
        ("dkr.ecr", "amazonaws.com.cn"): "aws-cn",
        ("dkr.ecr", "c2s.ic.gov"): "aws-iso",
        ("dkr.ecr", "sc2s.sgov.gov"): "aws-iso-b",
        ("dkr.ecr", "cloud.adc-e.uk"): "aws-iso-e",
        ("dkr.ecr", "csp.hci.ic.gov"): "aws-iso-f",
        ("dkr.ecr", "amazonaws.eu"): "aws-eusc",
        ("dkr-ecr", "on.aws"): "aws",
        ("dkr-ecr", "on.amazonwebservices.com.cn"): "aws-cn",
    }
)


def parse_ecr_host(domain: str) -> EcrHost | None:
    """Return the parts of a private ECR host (no port), or None for any other registry."""
    match = ECR_HOST_RE.fullmatch(domain.lower())
    if match is None:
        return None
    service, region, suffix = match.group("service", "region", "suffix")
    partition = ECR_SUFFIX_PARTITIONS.get((service, suffix))
    if partition is None:
        return None
    if partition == "aws" and region.startswith("us-gov-"):
        partition = "aws-us-gov"
    return EcrHost(
        account_id=match.group("account"),
        region=region,
        fips=match.group("fips") is not None,
        dual_stack=service == "dkr-ecr",
        partition=partition,
        dns_suffix=suffix,
    )
