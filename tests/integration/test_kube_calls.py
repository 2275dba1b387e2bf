"""The operator's ``Kube`` against the real API server (mamori_operator/api/kube.py).

``Kube`` sends straight to the kubernetes client's urllib3 pool; these prove on the session
control plane what the operator relies on: a ServiceAccount token handed out by an exec plugin
and rotated between two calls (the second call is made as the new account), the server's own
Status in a ``KubeError`` (404, 409, 422), dict and pre-encoded bodies for create, apply and
merge patch, a list page by page and a watch from its resourceVersion. What goes on the wire
byte for byte is tests/operator/test_kube_requests.py.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from mamori.kubeconfig import load_client_configuration
from mamori_operator.api.kube import APPLY, Kube, KubeError
from mamori_operator.metrics import Metrics
from tests.cluster_fixtures import Kubectl

pytestmark = pytest.mark.integration

REVIEWS = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
REVIEW = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
# An exec credential plugin, like `aws eks get-token`: prints the token of the file it is given,
# already expired, so the client asks it again before every request.
PLUGIN = """
import json, sys
token = open(sys.argv[1]).read().strip()
print(json.dumps({
    "apiVersion": "client.authentication.k8s.io/v1beta1",
    "kind": "ExecCredential",
    "status": {"token": token, "expirationTimestamp": "2000-01-01T00:00:00Z"},
}))
"""


@pytest.fixture
def made() -> Iterator[list[Kube]]:
    kubes: list[Kube] = []
    yield kubes
    for kube in kubes:
        kube.close()


@pytest.fixture
def kube(kubeconfig: Path, made: list[Kube]) -> Kube:
    """The admin's client-certificate kubeconfig, loaded as the operator loads its own."""
    client = Kube(load_client_configuration(kubeconfig), metrics=Metrics(), pool=2)
    made.append(client)
    return client


def configmaps(namespace: str, name: str | None = None) -> str:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    return base if name is None else f"{base}/{name}"


def exec_plugin_kubeconfig(admin: Path, token_file: Path, destination: Path) -> Path:
    """The admin kubeconfig's cluster, with a user whose token comes from the exec plugin."""
    config = yaml.safe_load(admin.read_text())
    cluster = config["clusters"][0]
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": sys.executable,
            "args": ["-c", PLUGIN, str(token_file)],
        }
    }
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "plugin", "user": user}],
        "contexts": [{"name": "plugin", "context": {"cluster": cluster["name"], "user": "plugin"}}],
        "current-context": "plugin",
    }
    destination.touch(mode=0o600)
    destination.write_text(yaml.safe_dump(document))
    return destination


def test_a_token_rotated_between_two_calls_is_sent_from_the_next_call(
    kubeconfig: Path, kubectl: Kubectl, namespace: str, tmp_path: Path, made: list[Kube]
) -> None:
    tokens = {}
    for account in ("first", "second"):
        kubectl("create", "serviceaccount", account, "-n", namespace)
        tokens[account] = kubectl(
            "create", "token", account, "-n", namespace, "--duration=1h"
        ).stdout.strip()
    token_file = tmp_path / "token"
    token_file.write_text(tokens["first"])
    configuration = load_client_configuration(
        exec_plugin_kubeconfig(kubeconfig, token_file, tmp_path / "kubeconfig")
    )
    kube = Kube(configuration, metrics=Metrics(), pool=2)
    made.append(kube)

    def who() -> str:
        review = kube.request("POST", REVIEWS, resource="selfsubjectreviews", body=REVIEW)
        return str(review["status"]["userInfo"]["username"])

    before = who()
    token_file.write_text(tokens["second"])  # the plugin now hands out the other account's
    after = who()

    assert (before, after) == (
        f"system:serviceaccount:{namespace}:first",
        f"system:serviceaccount:{namespace}:second",
    )


def refusal(call: Callable[[], object]) -> tuple[int, str, str]:
    with pytest.raises(KubeError) as refused:
        call()
    return refused.value.status, refused.value.reason, refused.value.message


def test_the_servers_refusals_reach_the_caller_with_their_reason(
    kube: Kube, namespace: str
) -> None:
    kube.create(configmaps(namespace), {"metadata": {"name": "app"}}, resource="configmaps")

    refusals = {
        "missing": refusal(
            lambda: kube.request("GET", configmaps(namespace, "missing"), resource="cm")
        ),
        "twice": refusal(
            lambda: kube.create(configmaps(namespace), {"metadata": {"name": "app"}}, resource="cm")
        ),
        "invalid": refusal(
            lambda: kube.create(
                configmaps(namespace), {"metadata": {"name": "Not_A_Name"}}, resource="cm"
            )
        ),
    }

    assert refusals["missing"] == (404, "NotFound", 'configmaps "missing" not found')
    assert refusals["twice"] == (409, "AlreadyExists", 'configmaps "app" already exists')
    assert refusals["invalid"][:2] == (422, "Invalid")
    assert 'ConfigMap "Not_A_Name" is invalid' in refusals["invalid"][2]
    assert kube.get(configmaps(namespace, "missing"), resource="configmaps") is None
    assert kube.delete(configmaps(namespace, "missing"), resource="configmaps") is False


def test_dict_and_encoded_bodies_are_written_as_sent(kube: Kube, namespace: str) -> None:
    encoded = json.dumps({"metadata": {"name": "encoded"}, "data": {"from": "bytes"}}).encode()
    applied = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  from: yaml\n"

    kube.create(
        configmaps(namespace),
        {"metadata": {"name": "plain"}, "data": {"from": "dict"}},
        resource="configmaps",
    )
    kube.request("POST", configmaps(namespace), resource="configmaps", body=encoded)
    kube.request(
        "PATCH",
        configmaps(namespace, "applied"),
        resource="configmaps",
        body=applied,
        content_type=APPLY,
        query=[("fieldManager", "mamori")],
    )
    kube.apply(
        configmaps(namespace, "applied"),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "applied"},
            "data": {"from": "yaml", "and": "dict"},
        },
        resource="configmaps",
        force=True,
    )
    patched = kube.merge_patch(
        configmaps(namespace, "plain"), {"data": {"patched": "é"}}, resource="configmaps"
    )

    data = {
        item["metadata"]["name"]: item.get("data")
        for item in kube.list_all(configmaps(namespace), resource="configmaps")
        if item["metadata"]["name"] != "kube-root-ca.crt"
    }
    assert data == {
        "plain": {"from": "dict", "patched": "é"},
        "encoded": {"from": "bytes"},
        "applied": {"from": "yaml", "and": "dict"},
    }
    assert patched["data"] == data["plain"]  # the server's echo, decoded


def test_a_list_page_by_page_then_a_watch_from_its_version(kube: Kube, namespace: str) -> None:
    for n in range(5):
        kube.create(configmaps(namespace), {"metadata": {"name": f"cm-{n}"}}, resource="configmaps")

    pages = list(kube.list_pages(configmaps(namespace), resource="configmaps", limit=2))
    version = pages[-1][1]
    kube.create(configmaps(namespace), {"metadata": {"name": "later"}}, resource="configmaps")
    events = list(kube.watch(configmaps(namespace), resource_version=version, timeout=1))

    names = sorted(item["metadata"]["name"] for items, _ in pages for item in items)
    assert [n for n in names if n.startswith("cm-")] == [f"cm-{n}" for n in range(5)]
    assert len(pages) >= 3 and all(len(items) <= 2 for items, _ in pages)
    added = [e["object"]["metadata"]["name"] for e in events if e["type"] == "ADDED"]
    assert added == ["later"]
