"""Fuzzing `mamori check` over manifests (issue 9, "Also"): bounded in examples and time.

Two properties: whatever bytes a file holds, check ends with exit 0, 1 or 2 and never raises;
and a privileged pod hidden among random documents, in any wrapping kubectl applies (plain,
``kind: List``, a ConfigMap's ``items``, a ``PodList`` whose items name no kind, a ``---#``
separator), is always denied.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mamori.cli import main

FUZZ = settings(
    max_examples=80,
    deadline=timedelta(seconds=10),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

WEIRD_SCALARS = st.sampled_from(
    [
        "yes",
        "No",
        "on",
        "~",
        "null",
        "0x1F",
        "0o17",
        "1_000",
        "1e400",
        ".inf",
        "-.NaN",
        "2001-12-14",
        "2001-12-14t21:59:43.10-05:00",
        "1:30",
        "=",
        "<<",
        "!!binary aGk=",
        "!!set {a, b}",
        "!!omap [{a: 1}]",
        '"\\udce9"',
        '"\\x00"',
        "9" * 5000,
        "&x 1",
        "*x",
        "'",
        '"',
        "|",
        ">",
        "- - -",
        "{",
        "[",
        "]",
        "}",
        "? a",
        ": b",
        "#",
        "%YAML 1.1",
    ]
)
FRAGMENTS = st.sampled_from(
    [
        "---\n",
        "---# c\n",
        "--- x\n",
        "...\n",
        "items:\n",
        "items: null\n",
        "items: [1]\n",
        "- ",
        "  ",
        "kind: List\n",
        "kind: Pod\n",
        "kind: PodList\n",
        "apiVersion: v1\n",
        "metadata: {name: p}\n",
        "spec:\n",
        "  containers: [{name: c, image: nginx}]\n",
        "  hostNetwork: true\n",
        "a: &a [1, 2]\n",
        "b: [*a, *a, *a]\n",
        "c: *a\n",
        "d: *zz\n",
        "x: " + "[" * 200 + "]" * 200 + "\n",
        "x: " + "[" * 1200 + "\n",
        "<<: *a\n",
        "\t",
        "\r\n",
        "\x85",
        "\u2028",
        "\ufeff",
        "\x00",
        "é",
        '{"kind": "Pod"}\n',
    ]
)

DEEP = "[" * 990 + "]" * 990
LAUGHS = "&l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"
FIELDS = (
    "hostNetwork",
    "securityContext",
    "containers",
    "volumes",
    "hostPID",
    "os",
    "hostUsers",
)
CONTAINER_FIELDS = ("securityContext", "image", "name", "ports", "livenessProbe", "env")


@st.composite
def weird_pods(draw: st.DrawFn) -> str:
    """A Pod whose pod-level or container-level field holds a weird, deep or aliased value."""
    value = draw(st.one_of(WEIRD_SCALARS, st.sampled_from([DEEP, "*l0", "[*l0, *l0, *l0]"])))
    field = draw(st.sampled_from(FIELDS))
    container_field = draw(st.sampled_from(CONTAINER_FIELDS))
    nested = draw(st.sampled_from(["", "privileged", "runAsUser", "capabilities", "sysctls"]))
    inner = f"{{{nested}: {value}}}" if nested else value
    return (
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: p, labels: {{x: {LAUGHS}}}}}\nspec:\n"
        f"  {field}: {inner}\n"
        f"  containers:\n  - name: c\n    image: nginx\n    {container_field}: {inner}\n"
    )


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)
NOISE_KEYS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8).map(
    lambda key: f"x-{key}"
)


def run_check(content: bytes) -> tuple[int, str, str]:
    """`mamori check --output json FILE` in process; returns exit status, stdout, stderr."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "fuzz.yaml"
        path.write_bytes(content)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["check", "--output", "json", str(path)])
    return code, out.getvalue(), err.getvalue()


NOISE = st.lists(
    st.one_of(FRAGMENTS, WEIRD_SCALARS.map(lambda s: f"v: {s}\n"), st.text(max_size=30)),
    max_size=20,
).map("".join)


@FUZZ
@given(
    st.lists(st.one_of(weird_pods(), weird_pods(), NOISE), min_size=1, max_size=5).map(
        "\n---\n".join
    ),
    st.one_of(st.just(b""), st.binary(max_size=64)),
)
def test_check_never_crashes(text: str, tail: bytes) -> None:
    code, stdout, _ = run_check(text.encode("utf-8", "surrogatepass") + tail)
    assert code in (0, 1, 2)
    report = json.loads(stdout)
    assert set(report) <= {"results", "summary", "errors"}
    assert (code == 2) == bool(report.get("errors"))


def evil_pod(*, noise: dict[str, Any], kind: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {"name": "evil", **noise},
        "spec": {
            **noise,
            "hostNetwork": True,
            "containers": [{"name": "c", "image": "nginx", **noise}],
        },
    }
    return {"apiVersion": "v1", "kind": "Pod", **body} if kind else body


WRAPPINGS = ("plain", "list", "configmap-items", "podlist-no-kind", "comment-separator")


def wrap(pod_noise: dict[str, Any], wrapping: str) -> str:
    if wrapping == "plain":
        return yaml.safe_dump(evil_pod(noise=pod_noise))
    if wrapping == "list":
        return yaml.safe_dump(
            {"apiVersion": "v1", "kind": "List", "items": [evil_pod(noise=pod_noise)]}
        )
    if wrapping == "configmap-items":
        document = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}
        return yaml.safe_dump({**document, "items": [evil_pod(noise=pod_noise)]})
    if wrapping == "podlist-no-kind":
        items = [evil_pod(noise=pod_noise, kind=False)]
        return yaml.safe_dump({"apiVersion": "v1", "kind": "PodList", "items": items})
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}
    return yaml.safe_dump(evil_pod(noise=pod_noise)) + "---# x: y\n" + yaml.safe_dump(configmap)


@FUZZ
@given(
    noise_documents=st.lists(st.dictionaries(NOISE_KEYS, JSON_VALUES, max_size=4), max_size=4),
    pod_noise=st.dictionaries(NOISE_KEYS, JSON_VALUES, max_size=3),
    wrapping=st.sampled_from(WRAPPINGS),
    as_json=st.booleans(),
    position=st.integers(min_value=0, max_value=4),
)
def test_injected_violation_is_always_denied(
    noise_documents: list[dict[str, Any]],
    pod_noise: dict[str, Any],
    wrapping: str,
    as_json: bool,
    position: int,
) -> None:
    dump = json.dumps if as_json else yaml.safe_dump
    documents = [dump(document) for document in noise_documents]
    documents.insert(min(position, len(documents)), wrap(pod_noise, wrapping))
    code, stdout, stderr = run_check("\n---\n".join(documents).encode())
    assert code == 1, stderr
    evil = [r for r in json.loads(stdout)["results"] if r["name"] == "evil"]
    assert len(evil) == 1 and evil[0]["allowed"] is False
    assert "host-namespaces" in {v["rule"] for v in evil[0]["violations"]}
