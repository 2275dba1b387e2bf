"""mamori's image rules: image-reference, trusted-registry, image-digest (tables and fixtures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mamori.findings import Finding
from mamori.images import RegistryPattern
from mamori.podspec import PodContext
from mamori.policy import API_VERSION, KIND, parse_policy
from mamori.rules import RULES, Level, RuleSettings

SHA = "sha256:" + "3f" * 32
ECR = "123456789012.dkr.ecr.ap-northeast-1.amazonaws.com"
IMAGE_RULES = ("image-reference", "trusted-registry", "image-digest")
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

TRUSTED = RuleSettings(
    trusted_registries=tuple(
        RegistryPattern.parse(entry)
        for entry in (
            "ghcr.io/acme",
            "docker.io/library",
            "*.dkr.ecr.ap-northeast-1.amazonaws.com",
        )
    )
)
DIGEST = RuleSettings(require_image_digest=True)
DEFAULT = RuleSettings()


def container(name: str, image: object = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name}
    if image is not None:
        spec["image"] = image
    return spec


def pod(
    *images: object, init: tuple[object, ...] = (), ephemeral: tuple[object, ...] = ()
) -> PodContext:
    spec: dict[str, Any] = {
        "containers": [
            container(f"app{i}" if i else "app", image) for i, image in enumerate(images)
        ]
    }
    if init:
        spec["initContainers"] = [container(f"init{i}", image) for i, image in enumerate(init)]
    if ephemeral:
        spec["ephemeralContainers"] = [
            container(f"debug{i}", image) for i, image in enumerate(ephemeral)
        ]
    return PodContext(spec=spec)


def check(rule_id: str, pod_context: PodContext, settings: RuleSettings) -> list[Finding]:
    return list(RULES.get(rule_id).check(pod_context, settings))


def where(findings: list[Finding]) -> list[tuple[str, str | None]]:
    return [(finding.field, finding.container) for finding in findings]


def test_image_rules_are_registered_at_image_level() -> None:
    for rule_id in IMAGE_RULES:
        assert RULES.get(rule_id).level is Level.IMAGE


# --- image-reference --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pod_context", "expected"),
    [
        pytest.param(pod("nginx"), [], id="official"),
        pytest.param(pod(f"ghcr.io/acme/web:v1@{SHA}"), [], id="tag-and-digest"),
        pytest.param(pod("[::1]:5000/web"), [], id="ipv6"),
        pytest.param(pod("nginx", init=("busybox",), ephemeral=("alpine",)), [], id="all-valid"),
        pytest.param(pod("Nginx"), [("spec.containers[0].image", "app")], id="uppercase"),
        pytest.param(
            pod("nginx", "ghcr.io//x"), [("spec.containers[1].image", "app1")], id="second"
        ),
        pytest.param(
            pod("nginx", init=("bad image",)),
            [("spec.initContainers[0].image", "init0")],
            id="init",
        ),
        pytest.param(
            pod("nginx", ephemeral=("https://ghcr.io/x",)),
            [("spec.ephemeralContainers[0].image", "debug0")],
            id="ephemeral",
        ),
        pytest.param(pod(None), [("spec.containers[0].image", "app")], id="missing"),
        pytest.param(pod(""), [("spec.containers[0].image", "app")], id="empty"),
        pytest.param(pod(5), [("spec.containers[0].image", "app")], id="not-a-string"),
        pytest.param(
            pod("A", "b", "C", init=("D",)),
            [
                ("spec.initContainers[0].image", "init0"),
                ("spec.containers[0].image", "app"),
                ("spec.containers[2].image", "app2"),
            ],
            id="several",
        ),
    ],
)
def test_image_reference(pod_context: PodContext, expected: list[tuple[str, str]]) -> None:
    # The rule is always on: the same answer with every setting.
    for settings in (DEFAULT, TRUSTED, DIGEST):
        assert where(check("image-reference", pod_context, settings)) == expected


def test_image_reference_message_names_container_image_reason_and_fix() -> None:
    [finding] = check("image-reference", pod("ghcr.io/ACME/web:v1"), DEFAULT)
    assert finding.message == (
        "container \"app\" image 'ghcr.io/ACME/web:v1' is not a valid image reference: "
        "repository path 'ACME/web' must be lower-case; write it as "
        "[registry/]repository[:tag][@sha256:digest] in lower case, "
        "such as 'registry.example.com/team/app:1.0'"
    )
    assert not finding.advisory


def test_image_reference_message_for_missing_image() -> None:
    [finding] = check("image-reference", pod(None), DEFAULT)
    assert finding.message == (
        'container "app" image is missing; set spec.containers[0].image to an image '
        "reference such as 'registry.example.com/team/app:1.0'"
    )


# --- trusted-registry -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pod_context", "expected"),
    [
        pytest.param(pod("ghcr.io/acme/web:v1"), [], id="prefix"),
        pytest.param(pod("nginx:1.27"), [], id="hub-official"),
        pytest.param(pod(f"{ECR}/team/web@{SHA}"), [], id="ecr-wildcard"),
        pytest.param(pod(f"{ECR}/ecr-public/nginx/nginx:1"), [], id="ecr-pull-through"),
        pytest.param(pod("GHCR.IO/acme/web"), [], id="host-case"),
        pytest.param(pod("ghcr.io/acme-evil/web"), [("spec.containers[0].image", "app")]),
        pytest.param(
            pod("docker.io.evil.example/library/x"), [("spec.containers[0].image", "app")]
        ),
        pytest.param(pod("evil.example/ghcr.io/acme/x"), [("spec.containers[0].image", "app")]),
        pytest.param(pod("bitnami/redis"), [("spec.containers[0].image", "app")], id="hub-org"),
        pytest.param(
            pod("a.b.dkr.ecr.ap-northeast-1.amazonaws.com/x"),
            [("spec.containers[0].image", "app")],
            id="wildcard-two-labels",
        ),
        pytest.param(
            pod("ghcr.io/acme/web", init=("quay.io/x/y",), ephemeral=("busybox", "evil.io/sh")),
            [
                ("spec.initContainers[0].image", "init0"),
                ("spec.ephemeralContainers[1].image", "debug1"),
            ],
            id="init-and-ephemeral",
        ),
        # unparsable and missing images are image-reference's to report
        pytest.param(pod("ghcr.io@evil.example/x"), [], id="unparsable-skipped"),
        pytest.param(pod(None, ""), [], id="missing-skipped"),
    ],
)
def test_trusted_registry(pod_context: PodContext, expected: list[tuple[str, str]]) -> None:
    assert where(check("trusted-registry", pod_context, TRUSTED)) == expected


def test_trusted_registry_is_off_without_entries() -> None:
    assert check("trusted-registry", pod("evil.example/x", init=("quay.io/y",)), DEFAULT) == []


def test_trusted_registry_message_lists_image_registry_entries_and_fix() -> None:
    [finding] = check("trusted-registry", pod("bitnami/redis:7.4"), TRUSTED)
    assert finding.message == (
        "container \"app\" image 'bitnami/redis:7.4' is pulled from docker.io/bitnami/redis, "
        "which is not a trusted registry (trusted: ghcr.io/acme, docker.io/library, "
        "*.dkr.ecr.ap-northeast-1.amazonaws.com); push the image to a trusted registry, "
        "or add its registry to the policy's spec.trustedRegistries"
    )
    assert finding.field == "spec.containers[0].image"


# --- image-digest -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pod_context", "expected"),
    [
        pytest.param(pod(f"ghcr.io/acme/web@{SHA}"), [], id="digest"),
        pytest.param(pod(f"ghcr.io/acme/web:v1@{SHA}"), [], id="tag-and-digest"),
        pytest.param(pod(f"nginx@{SHA}"), [], id="hub-digest"),
        pytest.param(pod("ghcr.io/acme/web:v1"), [("spec.containers[0].image", "app")]),
        pytest.param(pod("nginx"), [("spec.containers[0].image", "app")], id="implicit-latest"),
        pytest.param(
            pod("web@sha512:" + "ab" * 64), [("spec.containers[0].image", "app")], id="sha512"
        ),
        pytest.param(
            pod(f"web@{SHA}", init=("busybox",), ephemeral=(f"alpine@{SHA}", "alpine:3")),
            [
                ("spec.initContainers[0].image", "init0"),
                ("spec.ephemeralContainers[1].image", "debug1"),
            ],
            id="init-and-ephemeral",
        ),
        pytest.param(pod("web@sha256:abc"), [], id="unparsable-skipped"),
        pytest.param(pod(None), [], id="missing-skipped"),
    ],
)
def test_image_digest(pod_context: PodContext, expected: list[tuple[str, str]]) -> None:
    assert where(check("image-digest", pod_context, DIGEST)) == expected


def test_image_digest_is_off_by_default() -> None:
    assert check("image-digest", pod("nginx", init=("busybox:1",)), DEFAULT) == []


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (
            "ghcr.io/acme/web:v1",
            "container \"app\" image 'ghcr.io/acme/web:v1' is not pinned by digest; pin it as "
            "ghcr.io/acme/web:v1@sha256:<digest> (find the digest with `crane digest IMAGE` "
            "or `docker buildx imagetools inspect IMAGE`)",
        ),
        (
            "web@sha512:" + "ab" * 64,
            f"container \"app\" image 'web@sha512:{'ab' * 64}' is pinned by a sha512 digest, "
            "but the policy requires sha256; pin it as web@sha256:<digest> (find the digest "
            "with `crane digest IMAGE` or `docker buildx imagetools inspect IMAGE`)",
        ),
    ],
)
def test_image_digest_message_says_how_to_pin(image: str, message: str) -> None:
    [finding] = check("image-digest", pod(image), DIGEST)
    assert finding.message == message


# --- fixtures ---------------------------------------------------------------------------------


def fixture_settings(rule_dir: Path) -> RuleSettings:
    """Read ``settings.yaml`` as a policy spec, per tests/fixtures/README.md."""
    settings_file = rule_dir / "settings.yaml"
    spec = yaml.safe_load(settings_file.read_text()) if settings_file.exists() else {}
    document = {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": "f"}, "spec": spec}
    return parse_policy(document).rules


def fixture_cases() -> list[Any]:
    return [
        pytest.param(rule_id, path, id=f"{rule_id}/{path.parent.name}/{path.stem}")
        for rule_id in IMAGE_RULES
        for path in sorted((FIXTURES / rule_id).glob("*/*.yaml"))
    ]


@pytest.mark.parametrize(("rule_id", "path"), fixture_cases())
def test_image_rule_fixtures(rule_id: str, path: Path) -> None:
    """pass/ fixtures find nothing; fail/ fixtures fail this rule and no other image rule."""
    settings = fixture_settings(FIXTURES / rule_id)
    manifest = yaml.safe_load(path.read_text())
    pod_context = PodContext(spec=manifest["spec"], metadata=manifest["metadata"])
    findings = {other: check(other, pod_context, settings) for other in IMAGE_RULES}
    if path.parent.name == "pass":
        assert findings[rule_id] == []
    else:
        assert path.parent.name == "fail"
        assert findings[rule_id], f"{path.name} should fail {rule_id}"
    assert all(not found for other, found in findings.items() if other != rule_id)


def test_every_image_rule_has_pass_and_fail_fixtures() -> None:
    for rule_id in IMAGE_RULES:
        for kind in ("pass", "fail"):
            assert list((FIXTURES / rule_id / kind).glob("*.yaml")), f"{rule_id}/{kind}"
