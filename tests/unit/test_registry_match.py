"""Trusted-registry matching: host, port, one-label wildcards, path prefixes on '/' boundaries.

Every row that says False is a way someone could try to pass an image off as trusted.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mamori.images import (
    EcrHost,
    InvalidReference,
    InvalidRegistryPattern,
    RegistryPattern,
    TrustedRegistries,
    parse_ecr_host,
    parse_reference,
)

SHA = "sha256:" + "ab" * 32
ECR = "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com"
ECR_WILDCARD = "*.dkr.ecr.us-east-1.amazonaws.com"


MATCH_CASES = [
    # plain hosts
    pytest.param("registry.k8s.io", "registry.k8s.io/pause:3.10", True, id="host"),
    pytest.param("registry.k8s.io", "registry.k8s.io/a/b/c", True, id="host-nested"),
    pytest.param("registry.k8s.io", "k8s.gcr.io/pause", False, id="other-host"),
    pytest.param("registry.k8s.io", "registry.k8s.io.evil.example/pause", False),
    pytest.param("registry.k8s.io", "evil-registry.k8s.io/pause", False, id="label-prefix"),
    pytest.param("registry.k8s.io", "k8s.io/pause", False, id="parent-domain"),
    pytest.param("registry.k8s.io", "x.registry.k8s.io/pause", False, id="subdomain"),
    # Docker Hub normalization
    pytest.param("docker.io", "nginx", True, id="hub-official"),
    pytest.param("docker.io", "bitnami/redis", True, id="hub-org"),
    pytest.param("docker.io/library", "nginx", True, id="library-bare"),
    pytest.param("docker.io/library", "nginx:1.27@" + SHA, True, id="library-pinned"),
    pytest.param("docker.io/library", "library/nginx", True, id="library-explicit"),
    pytest.param("docker.io/library", "docker.io/nginx", True, id="library-hub"),
    pytest.param("docker.io/library", "index.docker.io/nginx", True, id="library-legacy"),
    pytest.param("docker.io/library", "bitnami/redis", False, id="library-not-org"),
    pytest.param("docker.io/library", "libraryx/nginx", False, id="library-boundary"),
    pytest.param("index.docker.io/library", "nginx", True, id="legacy-entry"),
    pytest.param("docker.io/bitnami", "bitnami/redis", True, id="hub-org-entry"),
    pytest.param("docker.io/bitnami", "redis", False, id="hub-org-entry-official"),
    pytest.param("docker.io", "docker.io.evil.example/x", False, id="hub-suffix-smuggle"),
    pytest.param("docker.io", "docker.io.evil.example/library/nginx", False),
    pytest.param("docker.io", "evil.example/docker.io/library/nginx", False),
    pytest.param("docker.io", "localhost/nginx", False, id="hub-vs-localhost"),
    pytest.param("docker.io/library", "docker.io.evil.example/library/nginx", False),
    pytest.param("ghcr.io", "nginx", False, id="hub-image-not-ghcr"),
    # path prefixes end on a '/' boundary
    pytest.param("ghcr.io/acme", "ghcr.io/acme/app:v1", True, id="prefix"),
    pytest.param("ghcr.io/acme", "ghcr.io/acme/team/app", True, id="prefix-nested"),
    pytest.param("ghcr.io/acme", "ghcr.io/acme", True, id="prefix-is-repo"),
    pytest.param("ghcr.io/acme", "ghcr.io/acme-evil/x", False, id="prefix-dash"),
    pytest.param("ghcr.io/acme", "ghcr.io/acmeevil/x", False, id="prefix-letters"),
    pytest.param("ghcr.io/acme", "ghcr.io/acme.evil/x", False, id="prefix-dot"),
    pytest.param("ghcr.io/acme", "ghcr.io/acme_evil/x", False, id="prefix-underscore"),
    pytest.param("ghcr.io/acme", "ghcr.io/evil/acme/x", False, id="prefix-inside"),
    pytest.param("ghcr.io/acme", "ghcr.io/ac/me", False, id="prefix-split"),
    pytest.param("ghcr.io/acme", "ghcr.io/x", False, id="prefix-other"),
    pytest.param("ghcr.io/acme", "evil.example/ghcr.io/acme/x", False, id="host-in-path"),
    pytest.param("ghcr.io/acme", "acme/x", False, id="hub-namesake"),
    pytest.param("ghcr.io/acme/app", "ghcr.io/acme/app:v1", True, id="repo-entry"),
    pytest.param("ghcr.io/acme/app", "ghcr.io/acme/app2", False, id="repo-entry-boundary"),
    pytest.param("ghcr.io/acme/app", "ghcr.io/acme/other", False, id="repo-entry-sibling"),
    # hosts are case-insensitive; paths are lower-case by grammar
    pytest.param("ghcr.io/acme", "GHCR.io/acme/x", True, id="upper-host-image"),
    pytest.param("GHCR.IO/acme", "ghcr.io/acme/x", True, id="upper-host-entry"),
    # userinfo, trailing dots, schemes: the references do not parse, so they never match
    # (the rows in test_never_parsed below prove they are refused before matching)
    # ports are significant
    pytest.param("localhost:5000", "localhost:5000/app", True, id="port"),
    pytest.param("localhost:5000", "localhost/app", False, id="port-missing"),
    pytest.param("localhost", "localhost:5000/app", False, id="port-extra"),
    pytest.param("localhost:5000", "localhost:5001/app", False, id="port-other"),
    pytest.param("localhost:5000", "localhost:50000/app", False, id="port-prefix"),
    pytest.param("localhost:5000", "localhost:05000/app", False, id="port-leading-zero"),
    pytest.param("ghcr.io", "ghcr.io:443/acme/x", False, id="explicit-443"),
    pytest.param("ghcr.io:443", "ghcr.io/acme/x", False, id="entry-443"),
    pytest.param("registry:5000", "registry:5000/app", True, id="single-label-port"),
    pytest.param("localhost", "localhost/app", True, id="localhost"),
    pytest.param("localhost:5000", "LOCALHOST:5000/app", True, id="localhost-upper"),
    pytest.param("10.0.0.1:5000", "10.0.0.1:5000/app", True, id="ipv4"),
    pytest.param("10.0.0.1:5000", "10.0.0.10:5000/app", False, id="ipv4-prefix"),
    # IPv6
    pytest.param("[::1]:5000", "[::1]:5000/app", True, id="ipv6"),
    pytest.param("[::1]:5000", "[0:0:0:0:0:0:0:1]:5000/app", True, id="ipv6-long-form"),
    pytest.param("[2001:DB8::1]", "[2001:db8::1]/app", True, id="ipv6-case"),
    pytest.param("[::1]:5000", "[::1]/app", False, id="ipv6-port-missing"),
    pytest.param("[::1]:5000", "[::2]:5000/app", False, id="ipv6-other"),
    pytest.param("[::1]:5000", "localhost:5000/app", False, id="ipv6-not-localhost"),
    pytest.param("localhost:5000", "[::1]:5000/app", False, id="localhost-not-ipv6"),
    # wildcards: exactly one DNS label
    pytest.param(ECR_WILDCARD, "1234.dkr.ecr.us-east-1.amazonaws.com/app", True, id="wc"),
    pytest.param(ECR_WILDCARD, "a.b.dkr.ecr.us-east-1.amazonaws.com/app", False, id="wc-2"),
    pytest.param(ECR_WILDCARD, "dkr.ecr.us-east-1.amazonaws.com/app", False, id="wc-0"),
    pytest.param(ECR_WILDCARD, "1234.dkr.ecr.us-west-2.amazonaws.com/app", False),
    pytest.param(ECR_WILDCARD, "1234.dkr.ecr.us-east-1.amazonaws.com.evil.example/app", False),
    pytest.param(ECR_WILDCARD, "1234.dkr.ecr.us-east-1.amazonaws.com:443/app", False),
    pytest.param(ECR_WILDCARD, "1234-dkr.ecr.us-east-1.amazonaws.com/app", False),
    pytest.param(ECR_WILDCARD, "1234.DKR.ECR.us-east-1.amazonaws.com/app", True, id="wc-up"),
    pytest.param(
        "123456789012.dkr.ecr.*.amazonaws.com",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app",
        True,
        id="wc-region",
    ),
    pytest.param(
        "123456789012.dkr.ecr.*.amazonaws.com",
        "210987654321.dkr.ecr.eu-west-1.amazonaws.com/app",
        False,
        id="wc-region-account",
    ),
    pytest.param("*.example.com/team", "a.example.com/team/app", True, id="wc-and-path"),
    pytest.param("*.example.com/team", "a.example.com/teamx/app", False, id="wc-path-edge"),
    pytest.param("*.example.com", "example.com/app", False, id="wc-apex"),
    pytest.param("*.example.com:5000", "a.example.com:5000/app", True, id="wc-port"),
    pytest.param("*.example.com:5000", "a.example.com/app", False, id="wc-port-missing"),
    # ECR, ECR pull-through caches and ECR Public are ordinary hosts
    pytest.param(ECR, f"{ECR}/team/app:1.0", True, id="ecr"),
    pytest.param(ECR, f"{ECR}/ecr-public/nginx/nginx:1.27", True, id="ecr-pull-through"),
    pytest.param(f"{ECR}/ecr-public", f"{ECR}/ecr-public/nginx/nginx", True),
    pytest.param(f"{ECR}/ecr-public", f"{ECR}/docker-hub/library/nginx", False),
    pytest.param(f"{ECR}/team", f"{ECR}/team-b/app", False, id="ecr-boundary"),
    pytest.param(ECR, "123456789013.dkr.ecr.ap-northeast-1.amazonaws.com/app", False),
    pytest.param(ECR, f"{ECR}.evil.example/app", False, id="ecr-suffix"),
    pytest.param(
        "*.dkr.ecr.cn-north-1.amazonaws.com.cn",
        "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/app",
        True,
        id="ecr-china",
    ),
    pytest.param(
        "*.dkr.ecr.cn-north-1.amazonaws.com.cn",
        "123456789012.dkr.ecr.cn-north-1.amazonaws.com/app",
        False,
        id="ecr-china-not-aws",
    ),
    pytest.param(
        "*.dkr.ecr-fips.us-east-1.amazonaws.com",
        "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com/app",
        True,
        id="ecr-fips",
    ),
    pytest.param(
        "*.dkr.ecr-fips.us-east-1.amazonaws.com",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/app",
        False,
        id="ecr-fips-only",
    ),
    pytest.param("public.ecr.aws", "public.ecr.aws/nginx/nginx:1.27", True, id="ecr-public"),
    pytest.param("public.ecr.aws/eks", "public.ecr.aws/eks-distro/x", False),
    pytest.param("public.ecr.aws", "public.ecr.aws.evil.example/nginx", False),
]


@pytest.mark.parametrize(("entry", "image", "expected"), MATCH_CASES)
def test_matches(entry: str, image: str, expected: bool) -> None:
    assert RegistryPattern.parse(entry).matches(parse_reference(image)) is expected


@pytest.mark.parametrize(
    "image",
    [
        pytest.param("ghcr.io@evil.example/acme/x", id="userinfo-host"),
        pytest.param("ghcr.io/acme@evil.example/x", id="userinfo-after-path"),
        pytest.param("acme:pw@ghcr.io/acme/x", id="userinfo-password"),
        pytest.param("ghcr.io./acme/x", id="trailing-dot"),
        pytest.param("ghcr.io../acme/x", id="trailing-dots"),
        pytest.param("https://ghcr.io/acme/x", id="scheme"),
        pytest.param("//ghcr.io/acme/x", id="scheme-relative"),
        pytest.param("ghcr.io/ACME/x", id="uppercase-path"),
        pytest.param("ghcr.io//acme/x", id="double-slash"),
        pytest.param("ghcr.io/acme/../evil/x", id="dot-dot"),
        pytest.param("ghcr.io/acme/./x", id="dot-segment"),
        pytest.param("ghcr.io/acme/%2e%2e/x", id="percent-encoding"),
        pytest.param("ghcr.io\\acme/x", id="backslash"),
        pytest.param("ghcr.io:443:80/acme/x", id="two-ports"),
        pytest.param("ghcr.io:/acme/x", id="empty-port"),
        pytest.param("ghcr.io /acme/x", id="space"),
        pytest.param("ghcr.io\t/acme/x", id="tab"),
        pytest.param("ghcr\u3002io/acme/x", id="ideographic-dot"),
        pytest.param("ghcr.\u0131o/acme/x", id="dotless-i"),
        pytest.param("[::1]:5000@evil.example/app", id="ipv6-userinfo"),
        pytest.param("[::1%25lo]:5000/app", id="ipv6-zone"),
    ],
)
def test_never_parsed(image: str) -> None:
    """Smuggling forms are refused as references, so no entry can ever be asked about them."""
    with pytest.raises(InvalidReference):
        parse_reference(image)


@pytest.mark.parametrize(
    ("entry", "text", "host", "port", "path"),
    [
        ("ghcr.io/acme", "ghcr.io/acme", "ghcr.io", None, "acme"),
        ("GHCR.io/acme", "ghcr.io/acme", "ghcr.io", None, "acme"),
        ("index.docker.io/library", "docker.io/library", "docker.io", None, "library"),
        ("localhost:5000", "localhost:5000", "localhost", "5000", ""),
        ("[0:0::1]:5000/a", "[::1]:5000/a", "[::1]", "5000", "a"),
        (ECR_WILDCARD, ECR_WILDCARD, ECR_WILDCARD.split(":")[0], None, ""),
    ],
)
def test_pattern_normal_form(entry: str, text: str, host: str, port: str | None, path: str) -> None:
    pattern = RegistryPattern.parse(entry)
    assert (pattern.host, pattern.port, pattern.path, str(pattern)) == (host, port, path, text)
    assert pattern.text == entry


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        pytest.param("", "is empty", id="empty"),
        pytest.param("   ", "is empty", id="blank"),
        pytest.param(" ghcr.io", "whitespace", id="leading-space"),
        pytest.param("ghcr.io/acme\n", "whitespace", id="newline"),
        pytest.param("https://ghcr.io", "URL scheme", id="scheme"),
        pytest.param("oci://ghcr.io/acme", "URL scheme", id="oci-scheme"),
        pytest.param("ghcr.io/", "must not end with '/'", id="trailing-slash"),
        pytest.param("ghcr.io/acme/", "must not end with '/'", id="trailing-slash-path"),
        pytest.param("/acme", "must start with a registry host", id="no-host"),
        pytest.param("ghcr.io//acme", "not a repository path", id="double-slash"),
        pytest.param("ghcr.io/*", "only allowed in the host", id="wildcard-path"),
        pytest.param("ghcr.io/acme/*", "only allowed in the host", id="wildcard-path-tail"),
        pytest.param("ghcr.io/ac*", "only allowed in the host", id="wildcard-path-partial"),
        pytest.param("*registry.example.com", "whole DNS label", id="wildcard-partial-left"),
        pytest.param("reg*.example.com", "whole DNS label", id="wildcard-partial-right"),
        pytest.param("a.*x.example.com", "whole DNS label", id="wildcard-mid-label"),
        pytest.param("**.example.com", "whole DNS label", id="double-star"),
        pytest.param("*", "last two labels", id="star-only"),
        pytest.param("*.io", "last two labels", id="star-tld"),
        pytest.param("ghcr.*", "last two labels", id="star-tld-right"),
        pytest.param("ghcr.*.io", "last two labels", id="star-second-level"),
        pytest.param("*.*", "last two labels", id="star-star"),
        pytest.param("[*]:5000", "not a valid IPv6", id="star-ipv6"),
        pytest.param("ghcr.io/ACME", "must be lower-case", id="uppercase-path"),
        pytest.param("ghcr.io/acme:v1", "not a tag", id="tag"),
        pytest.param("ghcr.io/acme@" + SHA, "must not contain '@'", id="digest"),
        pytest.param("user@ghcr.io", "must not contain '@'", id="userinfo"),
        pytest.param("ghcr.io@evil.example", "must not contain '@'", id="userinfo-smuggle"),
        pytest.param("ghcr.io.", "must not end with '.'", id="trailing-dot"),
        pytest.param(".ghcr.io", "empty label", id="leading-dot"),
        pytest.param("ghcr..io", "empty label", id="double-dot"),
        pytest.param("-ghcr.io", "host label '-ghcr' is invalid", id="leading-dash"),
        pytest.param("gh_cr.io", "host label 'gh_cr' is invalid", id="underscore"),
        pytest.param("ghcr.io:", "port ''", id="empty-port"),
        pytest.param("ghcr.io:abc", "port 'abc'", id="port-letters"),
        pytest.param("ghcr.io:0", "from 1 to 65535", id="port-zero"),
        pytest.param("ghcr.io:05000", "from 1 to 65535", id="port-leading-zero"),
        pytest.param("ghcr.io:65536", "from 1 to 65535", id="port-too-big"),
        pytest.param("ghcr.io:443:80", "more than one ':'", id="two-ports"),
        pytest.param("[::1", "written [address]", id="ipv6-unclosed"),
        pytest.param("[::1]5000", "written [address]", id="ipv6-no-colon"),
        pytest.param("[:::]:5000", "not a valid IPv6", id="ipv6-invalid"),
        pytest.param("[::1%lo]", "not a valid IPv6", id="ipv6-zone"),
        pytest.param("::1", "more than one ':'", id="ipv6-no-brackets"),
        pytest.param("[::ffff:1.2.3.4]", "not a valid IPv6", id="ipv4-mapped"),
        pytest.param("nginx", "not a registry host", id="bare-name"),
        pytest.param("library", "not a registry host", id="bare-library"),
        pytest.param("ghcr.\u0131o", "non-ASCII", id="dotless-i"),
        pytest.param("ghcr.io/" + "a" * 250, "longer than 255", id="too-long"),
    ],
)
def test_invalid_patterns(entry: str, reason: str) -> None:
    with pytest.raises(InvalidRegistryPattern, match=re.escape(reason)):
        RegistryPattern.parse(entry)


def test_pattern_must_be_parsed_not_constructed() -> None:
    with pytest.raises(TypeError):
        RegistryPattern("ghcr.io")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        (ECR, EcrHost("123456789012", "ap-northeast-1", False, False, "aws", "amazonaws.com")),
        (
            "123456789012.DKR.ECR.us-east-1.AMAZONAWS.COM",
            EcrHost("123456789012", "us-east-1", False, False, "aws", "amazonaws.com"),
        ),
        (
            "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
            EcrHost("123456789012", "us-gov-west-1", True, False, "aws-us-gov", "amazonaws.com"),
        ),
        (
            "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
            EcrHost("123456789012", "cn-north-1", False, False, "aws-cn", "amazonaws.com.cn"),
        ),
        (
            "123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov",
            EcrHost("123456789012", "us-iso-east-1", False, False, "aws-iso", "c2s.ic.gov"),
        ),
        (
            "123456789012.dkr-ecr.us-west-2.on.aws",
            EcrHost("123456789012", "us-west-2", False, True, "aws", "on.aws"),
        ),
        (
            "123456789012.dkr-ecr-fips.us-east-1.on.aws",
            EcrHost("123456789012", "us-east-1", True, True, "aws", "on.aws"),
        ),
        ("public.ecr.aws", None),
        ("ghcr.io", None),
        ("docker.io", None),
        ("12345678901.dkr.ecr.us-east-1.amazonaws.com", None),
        ("1234567890123.dkr.ecr.us-east-1.amazonaws.com", None),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example", None),
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com:443", None),
        ("evil.123456789012.dkr.ecr.us-east-1.amazonaws.com", None),
        ("123456789012.dkr.ecr.us-east-1.on.aws", None),
        ("123456789012.dkr-ecr.us-east-1.amazonaws.com", None),
        ("123456789012.dkr.ecr.useast1.amazonaws.com", None),
    ],
)
def test_parse_ecr_host(domain: str, expected: EcrHost | None) -> None:
    assert parse_ecr_host(domain) == expected


def test_ecr_host_of_a_pull_through_cache_image() -> None:
    reference = parse_reference(f"{ECR}/ecr-public/nginx/nginx:1.27")
    host = parse_ecr_host(reference.domain)
    assert host is not None
    assert (host.account_id, host.region, reference.path) == (
        "123456789012",
        "ap-northeast-1",
        "ecr-public/nginx/nginx",
    )


# --- compiled entries -----------------------------------------------------------------------
#
# A policy matches through TrustedRegistries (look-ups by host and by wildcard suffix); it must
# answer exactly what the entries one by one answer, for every row above and for mixes of them.

MORE_ENTRIES = {"*.a.example.com", "*.b.c:5000", "[::1]:5000", "localhost:5000", "GHCR.io/acme"}
MORE_IMAGES = {"x.y.a.example.com/app", "a.b.c:5000/x", "GHCR.IO/acme/app", "[0:0::1]:5000/app"}
ENTRIES = sorted({str(param.values[0]) for param in MATCH_CASES} | MORE_ENTRIES)
IMAGES = sorted(
    {str(param.values[1]) for param in MATCH_CASES} | MORE_IMAGES | {"localhost:5000/a"}
)


def _parsed(image: str) -> object:
    try:
        return parse_reference(image)
    except InvalidReference:
        return None


@given(st.lists(st.sampled_from(ENTRIES), max_size=5), st.sampled_from(IMAGES))
def test_compiled_entries_answer_like_the_entries(entries: list[str], image: str) -> None:
    reference = _parsed(image)
    if reference is None:
        return
    patterns = tuple(RegistryPattern.parse(entry) for entry in entries)
    expected = any(pattern.matches(reference) for pattern in patterns)  # type: ignore[arg-type]
    assert TrustedRegistries(patterns).trusts(reference) is expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("entry", "image", "expected"), MATCH_CASES)
def test_compiled_single_entry(entry: str, image: str, expected: bool) -> None:
    compiled = TrustedRegistries((RegistryPattern.parse(entry),))
    assert compiled.trusts(parse_reference(image)) is expected
