"""ClusterSecurityPolicy parsing: defaults, every field validated, errors that name the field."""

from __future__ import annotations

from typing import Any

import pytest

from mamori.findings import Enforcement
from mamori.policy import PolicyError, default_policy, load_policies, load_policy_file, parse_policy
from mamori.rules import Level


def policy_doc(name: str = "p", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "mamori.io/v1alpha1",
        "kind": "ClusterSecurityPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }


def test_defaults_are_enforce_restricted_and_no_registry_rule() -> None:
    policy = parse_policy(policy_doc())
    assert policy.enforcement is Enforcement.ENFORCE
    assert policy.rules.pod_security is Level.RESTRICTED
    assert policy.rules.trusted_registries == ()
    assert policy.rules.require_image_digest is False
    assert policy.exempt_namespaces == frozenset()
    assert policy.selects("anything", {})


def test_all_admission_fields_are_read() -> None:
    policy = parse_policy(
        policy_doc(
            enforcement="Warn",
            podSecurity="baseline",
            trustedRegistries=["ghcr.io/acme", "registry.k8s.io"],
            requireImageDigest=True,
            exemptNamespaces=["kube-system"],
            namespaceSelector={"matchLabels": {"team": "a"}},
        )
    )
    assert policy.enforcement is Enforcement.WARN
    assert policy.rules.pod_security is Level.BASELINE
    assert [p.text for p in policy.rules.trusted_registries] == ["ghcr.io/acme", "registry.k8s.io"]
    assert policy.rules.require_image_digest is True
    assert policy.exempt_namespaces == {"kube-system"}
    assert policy.selects("x", {"team": "a"})
    assert not policy.selects("x", {"team": "b"})
    assert not policy.selects("kube-system", {"team": "a"})


def test_privileged_turns_pod_security_off() -> None:
    assert parse_policy(policy_doc(podSecurity="privileged")).rules.pod_security is None


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param(
            policy_doc(enforcement="enforce"),
            'spec.enforcement: must be one of Enforce, Warn, Audit, got "enforce"',
            id="enforcement-wrong-case",
        ),
        pytest.param(
            policy_doc(podSecurity="strict"),
            'spec.podSecurity: must be one of restricted, baseline, privileged, got "strict"',
            id="pod-security-unknown",
        ),
        pytest.param(
            policy_doc(trustedRegistries="ghcr.io"),
            'spec.trustedRegistries: must be a list of strings, got "ghcr.io"',
            id="registries-not-a-list",
        ),
        pytest.param(
            policy_doc(trustedRegistries=["ghcr.io", 5]),
            "spec.trustedRegistries[1]: must be a string, got 5 (int)",
            id="registry-not-a-string",
        ),
        pytest.param(
            policy_doc(requireImageDigest="yes"),
            'spec.requireImageDigest: must be true or false, got "yes"',
            id="digest-not-bool",
        ),
        pytest.param(
            policy_doc(exemptNamespaces=["Kube-System"]),
            'spec.exemptNamespaces[0]: must be a namespace name, got "Kube-System"',
            id="exempt-not-a-name",
        ),
        pytest.param(
            policy_doc(namespaceSelector={"matchExpressions": [{"key": "a", "operator": "Is"}]}),
            "spec.namespaceSelector.matchExpressions[0].operator: must be one of In, NotIn, "
            'Exists, DoesNotExist, got "Is"',
            id="selector-bad-operator",
        ),
        pytest.param(
            policy_doc(namespaceSelector={"matchExpressions": [{"key": "a", "operator": "In"}]}),
            "spec.namespaceSelector.matchExpressions[0].values: must not be empty for operator In",
            id="selector-in-without-values",
        ),
        pytest.param(
            policy_doc(enforcment="Warn"),
            "spec.enforcment: unknown field",
            id="misspelled-field",
        ),
        pytest.param(
            {**policy_doc(), "apiVersion": "mamori.io/v1"},
            'apiVersion: must be "mamori.io/v1alpha1", got "mamori.io/v1"',
            id="wrong-version",
        ),
        pytest.param(
            {**policy_doc(), "metadata": {"name": "Bad_Name"}},
            "metadata.name: must be a lower-case DNS subdomain",
            id="bad-name",
        ),
        pytest.param(
            {**policy_doc(), "spec": ["x"]},
            "spec: must be an object, got list",
            id="spec-not-object",
        ),
    ],
)
def test_invalid_policies_name_the_field(document: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(document)
    assert str(caught.value).startswith(message)


def test_load_policies_names_the_policy_and_refuses_duplicates() -> None:
    with pytest.raises(PolicyError, match=r'^policy "b": spec.enforcement: '):
        load_policies([policy_doc("a"), policy_doc("b", enforcement="Deny")])
    with pytest.raises(PolicyError, match='policy "a": is defined twice'):
        load_policies([policy_doc("a"), policy_doc("a")])


def test_list_documents_are_flattened() -> None:
    policies = load_policies([{"kind": "List", "items": [policy_doc("a"), policy_doc("b")]}, None])
    assert [p.name for p in policies] == ["a", "b"]


def test_policy_file_errors(tmp_path: Any) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("spec: [unclosed\n")
    with pytest.raises(PolicyError, match="is not valid YAML"):
        load_policy_file(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("---\n")
    with pytest.raises(PolicyError, match="contains no ClusterSecurityPolicy"):
        load_policy_file(empty)


def test_name_selector_works_offline_through_the_implied_name_label() -> None:
    policy = parse_policy(
        policy_doc(
            namespaceSelector={
                "matchExpressions": [
                    {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["dev"]}
                ]
            }
        )
    )
    assert policy.selects("prod")
    assert not policy.selects("dev")


def test_default_policy_is_restricted_enforce() -> None:
    policy = default_policy()
    assert policy.name == "default"
    assert policy.enforcement is Enforcement.ENFORCE
    assert policy.rules.pod_security is Level.RESTRICTED


def test_policy_file_that_is_not_utf8_is_a_policy_error(tmp_path: Any) -> None:
    """``mamori check --policy`` and ``mamori webhook --policy`` both rely on this (issue 9)."""
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(
        b"apiVersion: mamori.io/v1alpha1\nkind: ClusterSecurityPolicy\nmetadata: {name: caf\xe9}\n"
    )
    with pytest.raises(PolicyError, match=r"latin1\.yaml:3: is not UTF-8 text"):
        load_policy_file(latin1)


def test_alias_bomb_in_a_policy_file_is_refused_with_a_short_error(tmp_path: Any) -> None:
    levels = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 8)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(
        "apiVersion: mamori.io/v1alpha1\nkind: ClusterSecurityPolicy\nmetadata: {name: p}\n"
        + "\n".join(levels)
        + "\nspec:\n  exemptNamespaces: [*a7]\n"
    )
    with pytest.raises(PolicyError) as raised:
        load_policy_file(bomb)
    assert "alias" in str(raised.value) and len(str(raised.value)) < 300


def test_wrong_values_are_quoted_within_bounds() -> None:
    nested: Any = ["lol"] * 9
    for _ in range(5):  # 9**6 strings: 30 MB when rendered whole, as the parser once did
        nested = [nested] * 9
    with pytest.raises(PolicyError) as raised:
        parse_policy(policy_doc(exemptNamespaces=[nested]))
    assert str(raised.value).startswith("spec.exemptNamespaces[0]: must be a namespace name, got")
    assert len(str(raised.value)) < 200
    with pytest.raises(PolicyError) as raised:
        parse_policy(policy_doc(trustedRegistries=nested))
    assert len(str(raised.value)) < 200
