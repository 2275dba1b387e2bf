"""Image references: the distribution grammar, Docker Hub normalization, and the error reasons."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from mamori.images import (
    ImageReference,
    InvalidReference,
    parse_common_reference,
    parse_full_reference,
    parse_reference,
)

SHA = "sha256:" + "0123456789abcdef" * 4
SHA512 = "sha512:" + "ab" * 64
ECR = "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com"


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest"),
    [
        # Docker Hub normalization
        pytest.param("nginx", "docker.io", "library/nginx", "latest", None, id="official"),
        pytest.param("nginx:1.27", "docker.io", "library/nginx", "1.27", None, id="official-tag"),
        pytest.param("library/nginx", "docker.io", "library/nginx", "latest", None, id="library"),
        pytest.param("bitnami/redis", "docker.io", "bitnami/redis", "latest", None, id="hub-org"),
        pytest.param("docker.io/nginx", "docker.io", "library/nginx", "latest", None, id="hub"),
        pytest.param(
            "docker.io/library/nginx", "docker.io", "library/nginx", "latest", None, id="hub-full"
        ),
        pytest.param(
            "index.docker.io/nginx", "docker.io", "library/nginx", "latest", None, id="legacy-hub"
        ),
        pytest.param(
            "index.docker.io/acme/app:v1", "docker.io", "acme/app", "v1", None, id="legacy-org"
        ),
        pytest.param("a/b/c/d", "docker.io", "a/b/c/d", "latest", None, id="hub-nested"),
        pytest.param(
            "foo_bar/baz", "docker.io", "foo_bar/baz", "latest", None, id="underscore-not-domain"
        ),
        # a bare name that looks like a host is still a Docker Hub image (as the runtime does)
        pytest.param("localhost", "docker.io", "library/localhost", "latest", None, id="bare-lh"),
        pytest.param(
            "example.com", "docker.io", "library/example.com", "latest", None, id="bare-dotted"
        ),
        pytest.param(
            "localhost:5000", "docker.io", "library/localhost", "5000", None, id="bare-lh-tag"
        ),
        # registries: dots, ports, localhost, upper case, IPv4, IPv6
        pytest.param("ghcr.io/acme/app:v1", "ghcr.io", "acme/app", "v1", None, id="ghcr"),
        pytest.param("registry.k8s.io/pause:3.10", "registry.k8s.io", "pause", "3.10", None),
        pytest.param(f"{ECR}/team/app:1.2.3", ECR, "team/app", "1.2.3", None, id="ecr"),
        pytest.param(
            f"{ECR}/ecr-public/nginx/nginx:1.27",
            ECR,
            "ecr-public/nginx/nginx",
            "1.27",
            None,
            id="ecr-pull-through",
        ),
        pytest.param(
            "public.ecr.aws/nginx/nginx:latest", "public.ecr.aws", "nginx/nginx", "latest", None
        ),
        pytest.param("localhost/app", "localhost", "app", "latest", None, id="localhost"),
        pytest.param("localhost:5000/app", "localhost:5000", "app", "latest", None, id="lh-port"),
        pytest.param("registry:5000/app", "registry:5000", "app", "latest", None, id="port-only"),
        pytest.param("Registry/app", "Registry", "app", "latest", None, id="uppercase-host"),
        pytest.param("GHCR.io/acme/x", "GHCR.io", "acme/x", "latest", None, id="mixed-case-host"),
        pytest.param("Docker.io/nginx", "Docker.io", "nginx", "latest", None, id="hub-mixed-case"),
        pytest.param("10.0.0.1:5000/app", "10.0.0.1:5000", "app", "latest", None, id="ipv4"),
        pytest.param("[::1]:5000/app", "[::1]:5000", "app", "latest", None, id="ipv6-port"),
        pytest.param("[::1]/app:v1", "[::1]", "app", "v1", None, id="ipv6"),
        pytest.param(
            "[2001:db8::1]:5000/a/b", "[2001:db8::1]:5000", "a/b", "latest", None, id="ipv6-doc"
        ),
        pytest.param("xn--bcher-kva.example/app", "xn--bcher-kva.example", "app", "latest", None),
        # path separators
        pytest.param(
            "docker.io/a.b_c__d--e---f/x", "docker.io", "a.b_c__d--e---f/x", "latest", None
        ),
        pytest.param("ab_c__d--e---f/x.y", "docker.io", "ab_c__d--e---f/x.y", "latest", None),
        pytest.param("ghcr.io/a-b/c.d/e_f", "ghcr.io", "a-b/c.d/e_f", "latest", None),
        # tags
        pytest.param("app:V1.0_rc-1", "docker.io", "library/app", "V1.0_rc-1", None, id="tag"),
        pytest.param("app:_x", "docker.io", "library/app", "_x", None, id="tag-underscore"),
        pytest.param("app:" + "t" * 128, "docker.io", "library/app", "t" * 128, None, id="t128"),
        # digests
        pytest.param(f"nginx@{SHA}", "docker.io", "library/nginx", None, SHA, id="digest"),
        pytest.param(f"nginx:1.27@{SHA}", "docker.io", "library/nginx", "1.27", SHA, id="t+d"),
        pytest.param(f"{ECR}/app@{SHA}", ECR, "app", None, SHA, id="ecr-digest"),
        pytest.param(f"[::1]:5000/app:v1@{SHA}", "[::1]:5000", "app", "v1", SHA, id="ipv6-all"),
        pytest.param(f"app@{SHA512}", "docker.io", "library/app", None, SHA512, id="sha512"),
        pytest.param(
            "app@sha384:" + "c" * 96, "docker.io", "library/app", None, "sha384:" + "c" * 96
        ),
        pytest.param(
            "app@multihash+base58:" + "F" * 32,
            "docker.io",
            "library/app",
            None,
            "multihash+base58:" + "F" * 32,
            id="other-algorithm-per-grammar",
        ),
    ],
)
def test_valid_references(
    text: str, domain: str, path: str, tag: str | None, digest: str | None
) -> None:
    assert parse_reference(text) == ImageReference(domain=domain, path=path, tag=tag, digest=digest)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("", "is empty", id="empty"),
        pytest.param(" nginx", "whitespace", id="leading-space"),
        pytest.param("nginx ", "whitespace", id="trailing-space"),
        pytest.param("nginx\n", "whitespace", id="trailing-newline"),
        pytest.param("ng inx", "whitespace", id="inner-space"),
        pytest.param("nginx\t:1", "whitespace", id="tab"),
        pytest.param("nginx\x00", "control character", id="nul"),
        pytest.param("ngïnx", "non-ASCII", id="non-ascii"),
        pytest.param("\uff4eginx", "non-ASCII", id="fullwidth"),
        pytest.param("Nginx", "must be lower-case", id="uppercase-official"),
        pytest.param("ghcr.io/ACME/x", "must be lower-case", id="uppercase-path"),
        pytest.param("acme/App", "must be lower-case", id="uppercase-hub-path"),
        pytest.param("ghcr.io//x", "empty component", id="double-slash"),
        pytest.param("ghcr.io/acme//x", "empty component", id="inner-double-slash"),
        pytest.param("ghcr.io/x/", "empty component", id="trailing-slash"),
        pytest.param("/nginx", "empty component", id="leading-slash"),
        pytest.param("ghcr.io/", "no repository path", id="host-only-slash"),
        pytest.param("nginx:", "not followed by a tag", id="colon-without-tag"),
        pytest.param("ghcr.io/x:", "not followed by a tag", id="colon-without-tag-2"),
        pytest.param(":latest", "no repository name", id="tag-only"),
        pytest.param("nginx@", "not followed by a digest", id="at-without-digest"),
        pytest.param(f"@{SHA}", "no repository name", id="digest-only"),
        pytest.param("-nginx", "is invalid", id="leading-dash"),
        pytest.param("nginx-", "is invalid", id="trailing-dash"),
        pytest.param("nginx.", "is invalid", id="trailing-dot"),
        pytest.param("_nginx", "is invalid", id="leading-underscore"),
        pytest.param("a___b", "is invalid", id="triple-underscore"),
        pytest.param("a..b", "is invalid", id="double-dot"),
        pytest.param("a._b", "is invalid", id="mixed-separators"),
        pytest.param("app:-x", "tag '-x' is invalid", id="tag-leading-dash"),
        pytest.param("app:.x", "tag '.x' is invalid", id="tag-leading-dot"),
        pytest.param("app:a+b", "tag 'a+b' is invalid", id="tag-plus"),
        pytest.param("app:" + "t" * 129, "at most 128", id="tag-129"),
        pytest.param("app:1:2", "is invalid", id="two-colons"),
        pytest.param("app@sha256:abc", "digest 'sha256:abc' is invalid", id="short-hex"),
        pytest.param("app@sha256:" + "a" * 63, "64 lower-case hex", id="sha256-63"),
        pytest.param("app@sha256:" + "a" * 65, "64 lower-case hex", id="sha256-65"),
        pytest.param("app@sha256:" + "A" * 64, "upper-case", id="sha256-upper"),
        pytest.param("app@sha512:" + "a" * 64, "128 lower-case hex", id="sha512-short"),
        pytest.param("app@" + "a" * 64, "is invalid", id="digest-without-algorithm"),
        pytest.param("app@sha256:" + "g" * 64, "is invalid", id="digest-not-hex"),
        pytest.param("app@1sha:" + "a" * 64, "is invalid", id="algorithm-leading-digit"),
        pytest.param(f"app@{SHA}@{SHA}", "user information", id="two-digests"),
        pytest.param(f"app@{SHA}:v1", "is invalid", id="tag-after-digest"),
        pytest.param("user@host.example/x", "user information", id="userinfo"),
        pytest.param("user:pw@host.example/x", "user information", id="userinfo-password"),
        pytest.param("ghcr.io@evil.example/x", "user information", id="userinfo-ghcr"),
        pytest.param("https://ghcr.io/acme/x", "URL scheme", id="https"),
        pytest.param("docker://nginx", "URL scheme", id="docker-scheme"),
        pytest.param("oci://ghcr.io/x", "URL scheme", id="oci-scheme"),
        pytest.param("ghcr.io./x", "not a host name", id="host-trailing-dot"),
        pytest.param(".ghcr.io/x", "not a host name", id="host-leading-dot"),
        pytest.param("ghcr..io/x", "not a host name", id="host-double-dot"),
        pytest.param("-ghcr.io/x", "not a host name", id="host-leading-dash"),
        pytest.param("ghcr-.io/x", "not a host name", id="label-trailing-dash"),
        pytest.param("gh_cr.io/x", "not a host name", id="host-underscore"),
        pytest.param("ghcr.io:/x", "invalid port ''", id="empty-port"),
        pytest.param("ghcr.io:abc/x", "invalid port 'abc'", id="port-letters"),
        pytest.param("ghcr.io:5000:6000/x", "not a host name", id="two-ports"),
        pytest.param("localhost:-1/x", "invalid port", id="negative-port"),
        pytest.param("[::1/x", "not a host name", id="ipv6-unclosed"),
        pytest.param("::1/x", "not a host name", id="ipv6-without-brackets"),
        pytest.param("[:::]/x", "not a valid IPv6", id="ipv6-invalid"),
        pytest.param("[::1%eth0]/x", "not a host name", id="ipv6-zone"),
        pytest.param("[::ffff:1.2.3.4]/x", "not a host name", id="ipv4-mapped"),
        pytest.param("[::1]", "is invalid", id="ipv6-host-only"),
        pytest.param("a" * 64, "image ID", id="image-id"),
        pytest.param("ghcr.io/acme:5000/x", "is invalid", id="port-in-path"),
        pytest.param("ghcr.io/a*b", "is invalid", id="wildcard"),
        pytest.param("ghcr.io/a\\b", "is invalid", id="backslash"),
        pytest.param("ghcr.io/a?b=c", "is invalid", id="query"),
        pytest.param("ghcr.io/a#b", "is invalid", id="fragment"),
        pytest.param("a" * 1025, "longer than 1024", id="huge"),
        pytest.param("app@sha256:" + "a" * 600, "longer than 512", id="huge-digest"),
    ],
)
def test_invalid_references(text: str, reason: str) -> None:
    with pytest.raises(InvalidReference, match=re.escape(reason)):
        parse_reference(text)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("nginx", "docker.io/library/nginx:latest"),
        ("nginx:1.27", "docker.io/library/nginx:1.27"),
        (f"nginx@{SHA}", f"docker.io/library/nginx@{SHA}"),
        (f"nginx:1.27@{SHA}", f"docker.io/library/nginx:1.27@{SHA}"),
        ("index.docker.io/acme/app", "docker.io/acme/app:latest"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
        ("[::1]:5000/app", "[::1]:5000/app:latest"),
        ("GHCR.io/acme/x:v1", "GHCR.io/acme/x:v1"),
    ],
)
def test_canonical_string(text: str, canonical: str) -> None:
    reference = parse_reference(text)
    assert str(reference) == canonical
    assert parse_reference(canonical) == reference


@pytest.mark.parametrize(
    ("text", "registry", "hostname", "port", "name"),
    [
        ("nginx", "docker.io", "docker.io", None, "docker.io/library/nginx"),
        ("GHCR.io/acme/x", "ghcr.io", "ghcr.io", None, "GHCR.io/acme/x"),
        ("LocalHost:5000/x", "localhost:5000", "localhost", "5000", "LocalHost:5000/x"),
        ("[2001:DB8:0::1]:5000/x", "[2001:db8::1]:5000", "[2001:db8::1]", "5000", None),
        ("[::1]/x", "[::1]", "[::1]", None, "[::1]/x"),
    ],
)
def test_registry_forms(
    text: str, registry: str, hostname: str, port: str | None, name: str | None
) -> None:
    reference = parse_reference(text)
    assert (reference.registry, reference.hostname, reference.port) == (registry, hostname, port)
    if name is not None:
        assert reference.name == name


def test_digest_algorithm() -> None:
    assert parse_reference(f"app:v1@{SHA}").digest_algorithm == "sha256"
    assert parse_reference(f"app@{SHA512}").digest_algorithm == "sha512"
    assert parse_reference("app:v1").digest_algorithm is None


@pytest.mark.parametrize(
    ("prefix", "limit_ok"),
    [
        # "<host>/<path>" after normalization may hold at most 255 characters
        ("ghcr.io/", 255 - len("ghcr.io/")),
        ("", 255 - len("docker.io/library/")),
        ("acme/", 255 - len("docker.io/acme/")),
        ("localhost:5000/", 255 - len("localhost:5000/")),
    ],
)
def test_name_length_limit(prefix: str, limit_ok: int) -> None:
    longest = prefix + "a" * limit_ok
    assert len(parse_reference(longest).name) == 255
    assert len(parse_reference(longest + ":" + "t" * 128 + "@" + SHA).name) == 255
    with pytest.raises(InvalidReference, match="at most 255"):
        parse_reference(longest + "a")


def test_not_a_string_is_invalid() -> None:
    with pytest.raises(InvalidReference, match="must be a string"):
        parse_reference(5)  # type: ignore[arg-type]


# --- properties -----------------------------------------------------------------------------
#
# An independent oracle: the distribution grammar written out as one anchored regex, the way
# the runtime's reference library composes it. mamori may refuse more (image IDs, bad IPv6,
# hosts that are not host names, lengths) but must never accept what the grammar refuses.

_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_COMPONENT}(?:\.{_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_PATH = rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
GRAMMAR = re.compile(
    rf"(?:{_DOMAIN}/)?{_PATH}(?::[\w][\w.-]{{0,127}})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?",
    re.ASCII,
)

REFERENCE_ALPHABET = st.sampled_from([*"abz09AZ.-_:/@[]", "sha256:", "a" * 32, "::1"])
reference_like = st.lists(REFERENCE_ALPHABET, max_size=24).map("".join)


@given(st.one_of(st.text(max_size=80), reference_like))
@example("GHCR.io/acme/x")
@example("Registry/app")
@example("localhost:5000")
@example(f"[::1]:5000/app:v1@{SHA}")
def test_parse_only_raises_invalid_reference_and_round_trips(text: str) -> None:
    try:
        reference = parse_reference(text)
    except InvalidReference as error:
        assert str(error)
        return
    assert GRAMMAR.fullmatch(text), f"accepted {text!r}, which the grammar refuses"
    assert parse_reference(str(reference)) == reference
    assert len(reference.name) <= 255


hosts = st.from_regex(r"[a-z0-9]{1,10}(\.[a-z0-9]{1,10}){1,3}(:[1-9][0-9]{0,4})?", fullmatch=True)
paths = st.from_regex(_PATH, fullmatch=True)
tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", fullmatch=True)
digests = st.from_regex(r"[0-9a-f]{64}", fullmatch=True).map(lambda hex_: f"sha256:{hex_}")


@given(hosts, paths, st.none() | tags, st.none() | digests)
def test_grammar_references_parse_to_their_parts(
    host: str, path: str, tag: str | None, digest: str | None
) -> None:
    assume(len(f"{host}/{path}") <= 255)
    text = f"{host}/{path}" + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    reference = parse_reference(text)
    expected_tag = tag if tag or digest else "latest"
    assert (reference.domain, reference.path, reference.tag, reference.digest) == (
        host,
        path,
        expected_tag,
        digest,
    )


# --- the fast path --------------------------------------------------------------------------
#
# parse_reference answers the common shapes with one regex; wherever that path answers, the
# full parser must give the same reference (and never refuse it).

common_like = st.builds(
    lambda parts: "".join(parts),
    st.lists(
        st.sampled_from(
            [
                *"abz09AZ.-_:/@",
                *("__", "--", "localhost", "docker.io", "index.docker.io", "/x", ":5000"),
                *("sha256:", "0123456789abcdef" * 4, "a" * 64, "gh_cr.io", "Ghcr.io"),
            ]
        ),
        max_size=12,
    ),
)


@given(st.one_of(common_like, reference_like, hosts, paths))
@example("gh_cr.io/x")
@example("a..b/x")
@example("a.-b/x")
@example("a-.b:5000/x")
@example("a.b-/x")
@example("localhost/app")
@example("localhost:5000/app:1")
@example("index.docker.io/nginx")
@example("docker.io/nginx")
@example("docker.io/acme/app")
@example("0123456789abcdef" * 4)
@example("a.b:5000")
@example("acme/a.b/c")
@example("a" * 201)
@example(f"{ECR}/shop/web@{SHA}")
def test_common_path_agrees_with_the_full_parser(text: str) -> None:
    common = parse_common_reference(text)
    if common is None:
        return
    assert parse_full_reference(text) == common
    assert (common.hostname, common.port) == (
        parse_full_reference(text).hostname,
        parse_full_reference(text).port,
    )


@pytest.mark.parametrize(
    "text",
    ["nginx", "nginx:1.27", f"{ECR}/shop/web@{SHA}", "ghcr.io/acme/app:v1", "localhost:5000/a"],
)
def test_common_shapes_take_the_fast_path(text: str) -> None:
    assert parse_common_reference(text) == parse_full_reference(text)
