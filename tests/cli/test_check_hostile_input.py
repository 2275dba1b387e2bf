"""`mamori check` on hostile or broken input: a clear exit 2 (or a verdict), never a traceback.

Issue 9, items 4 and 9: alias bombs in manifests and policies, values nested 990 deep, binary on
stdin, a policy file that is not UTF-8, a file name that is not UTF-8 on a strict UTF-8 stdout,
and many documents, whose memory must stay flat because results stream.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD = ROOT / "examples" / "good"
MEMORY_CAP = 1024 * 1024 * 1024  # address space a check of a few-KB file may use


def billion_laughs(levels: int = 9) -> str:
    """A YAML value of 9**levels strings written in a few hundred bytes."""
    lines = ['  l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        refs = ",".join([f"*l{level - 1}"] * 9)
        lines.append(f"  l{level}: &l{level} [{refs}]")
    return "\n".join(lines)


def mamori(
    *args: str,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI with its address space capped, so a blow-up fails fast instead of swapping."""

    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    return subprocess.run(
        [sys.executable, "-m", "mamori.cli", *args],
        input=stdin if stdin is not None else b"",
        capture_output=True,
        timeout=timeout,
        check=False,
        preexec_fn=cap_memory,
        env={**os.environ, **(env or {})},
    )


def assert_clean_error(done: subprocess.CompletedProcess[bytes], *parts: str) -> str:
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 2, stderr
    assert "Traceback" not in stderr
    for part in parts:
        assert part in stderr
    return stderr


def test_alias_bomb_in_a_manifest_is_refused_quickly(tmp_path: Path) -> None:
    manifest = tmp_path / "bomb.yaml"
    manifest.write_text(
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: bomb}}\nx:\n{billion_laughs()}\n"
        "spec:\n  containers:\n  - name: c\n    image: nginx\n"
        "    securityContext: {privileged: *l8}\n"
    )
    done = mamori("check", str(manifest), timeout=20)
    assert_clean_error(done, "bomb.yaml:8:", "alias bomb")


def test_alias_bomb_in_a_policy_gives_a_short_error(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "apiVersion: mamori.io/v1alpha1\nkind: ClusterSecurityPolicy\nmetadata: {name: p}\n"
        f"x:\n{billion_laughs(7)}\nspec:\n  exemptNamespaces: [*l6]\n"
    )
    done = mamori("check", "--policy", str(policy), str(GOOD), timeout=20)
    stderr = assert_clean_error(done, "policy.yaml")
    assert len(stderr) < 1000


def test_a_wrong_policy_value_is_quoted_short(tmp_path: Path) -> None:
    """Below the alias limit, the message still quotes a bounded rendering of the value."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "apiVersion: mamori.io/v1alpha1\nkind: ClusterSecurityPolicy\nmetadata: {name: p}\n"
        f"spec:\n  exemptNamespaces: [{'x' * 100_000}]\n"
    )
    done = mamori("check", "--policy", str(policy), str(GOOD))
    stderr = assert_clean_error(done, "spec.exemptNamespaces[0]: must be a namespace name")
    assert len(stderr) < 1000


def test_deeply_nested_value_gets_a_verdict(tmp_path: Path) -> None:
    manifest = tmp_path / "deep.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: deep}\nspec:\n  containers:\n"
        f"  - name: c\n    image: nginx\n    securityContext:\n      privileged: "
        f"{'[' * 990}{']' * 990}\n"
    )
    done = mamori("check", "--output", "json", str(manifest))
    assert done.returncode == 1, done.stderr.decode()
    [result] = json.loads(done.stdout)["results"]
    privileged = next(v for v in result["violations"] if v["rule"] == "privileged")
    assert "[[[[" in privileged["message"] and len(privileged["message"]) < 400


def test_binary_on_stdin_is_an_input_error() -> None:
    done = mamori("check", "-", stdin=bytes(range(256)) * 16)
    assert_clean_error(done, "<stdin>", "UTF-8")


def test_control_characters_on_stdin_are_an_input_error() -> None:
    done = mamori("check", "-", stdin=b"kind: Pod\x00\x01\n")
    assert_clean_error(done, "<stdin>")


def test_policy_file_that_is_not_utf8(tmp_path: Path) -> None:
    policy = tmp_path / "latin1.yaml"
    policy.write_bytes(
        b"apiVersion: mamori.io/v1alpha1\nkind: ClusterSecurityPolicy\nmetadata: {name: caf\xe9}\n"
    )
    done = mamori("check", "--policy", str(policy), str(GOOD))
    assert_clean_error(done, "latin1.yaml:3", "not UTF-8")


def test_non_utf8_file_name_on_a_strict_utf8_stdout(tmp_path: Path) -> None:
    directory = tmp_path / "manifests"
    directory.mkdir()
    name = os.fsdecode(b"bad-\xfc.yaml")
    (directory / name).write_text(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
        "spec: {hostNetwork: true, containers: [{name: c, image: nginx}]}\n"
    )
    strict = {"PYTHONIOENCODING": "utf-8:strict", "LC_ALL": "C.UTF-8"}
    for output in ("text", "json"):
        done = mamori("check", "--output", output, str(directory), env=strict)
        stderr = done.stderr.decode("utf-8", "replace")
        assert done.returncode == 1, stderr
        assert "Traceback" not in stderr
        shown = done.stdout.decode("utf-8")
        if output == "json":
            shown = json.loads(shown)["results"][0]["source"]
        assert "bad-\\xfc.yaml" in shown


def test_oversized_document_is_refused_with_the_limit_named(tmp_path: Path) -> None:
    manifest = tmp_path / "huge.yaml"
    with manifest.open("w") as stream:
        stream.write("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n")
        line = "  k%d: " + "x" * 1000 + "\n"
        for number in range(34 * 1024):
            stream.write(line % number)
    done = mamori("check", str(manifest))
    assert_clean_error(done, "huge.yaml:1", "larger than 32 MiB")


@pytest.mark.parametrize("output", ["text", "json"])
def test_memory_stays_flat_over_many_documents(tmp_path: Path, output: str) -> None:
    """Results stream: 15,000 documents cost no more memory than a handful."""
    pod = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p%d, namespace: shop}\nspec:\n"
        "  containers: [{name: c, image: nginx, securityContext: {runAsNonRoot: true}}]\n---\n"
    )
    few, many = tmp_path / "few.yaml", tmp_path / "many.yaml"
    few.write_text("".join(pod % n for n in range(10)))
    many.write_text("".join(pod % n for n in range(15_000)))
    small = peak_rss_kib("check", "--output", output, str(few))
    large = peak_rss_kib("check", "--output", output, str(many))
    assert large - small < 30 * 1024, f"{small} KiB for 10 documents, {large} KiB for 15,000"


def peak_rss_kib(*args: str) -> int:
    """Peak RSS of one `mamori` run, measured in a wrapper whose only child it is."""
    measure = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
        "assert done.returncode in (0, 1), done.returncode\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", measure, sys.executable, "-m", "mamori.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return int(done.stdout)
