"""What `mamori check` of one manifest loads, and the value types made cheap to define for it.

The start-up work (issue 16) replaced dataclasses on the check path with named tuples and
classes written out, read file paths without pathlib, and left imports to the point of use.
These tests hold each replacement to the behaviour it replaced: equality, hashing, immutability,
copies, pickles and reprs; the policy's values field by field against the dataclasses they were;
paths read exactly as pathlib read them.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mamori.check import Note, Result, Skipped
from mamori.findings import Decision, Enforcement, Finding, Violation
from mamori.images import EcrHost, RegistryPattern, TrustedRegistries
from mamori.manifests import (
    MANIFEST_SUFFIXES,
    Document,
    InputError,
    ReadLimits,
    display_name,
    expand_paths,
    is_dockerfile,
)
from mamori.podspec import Malformed
from mamori.policy.model import Policy
from mamori.policy.selector import LabelSelector, Requirement
from mamori.rules import RULES
from mamori.rules._common import every_pod
from mamori.rules.plan import RulePlan
from mamori.rules.registry import (
    CheckFunction,
    EvidenceCheckFunction,
    Level,
    Needs,
    Rule,
    RuleSettings,
    always,
)
from mamori.workloads import WORKLOAD_KINDS, workload_kind

REPOSITORY = Path(__file__).resolve().parents[2]
MANIFEST = REPOSITORY / "examples" / "bad" / "root-pod.yaml"

# Modules a plain `mamori check FILE` (YAML that the fast reader reads, the default policy, text
# output) must not load: other outputs, other inputs, other commands, help-only stdlib.
NOT_FOR_ONE_MANIFEST = (
    "dataclasses",  # its generated methods cost ~1 ms a class; it loads inspect besides
    "inspect",  # with ast, dis and tokenize (pkgutil loads it too): ~6 ms
    "shutil",  # argparse asks it for the terminal's width; only help and usage need that
    "pathlib",  # with urllib.parse and ipaddress: ~6 ms; a single file is read without it
    "ipaddress",  # only for an IPv6 registry host
    "yaml",  # PyYAML: only for documents the block reader refuses
    "mamori.report",
    "mamori.dockerfile",
    "mamori.why",
    "mamori.events",
    "mamori_webhook",
    "mamori_operator",
)
PROBE = """
import json, sys
already = set(sys.modules)
sys.stdout = open(sys.argv[2], "w")
from mamori.cli import main
status = main(["check", sys.argv[1]])
print(json.dumps({"status": status, "loaded": sorted(set(sys.modules) - already)}), file=sys.stderr)
"""


def test_one_manifest_loads_only_what_its_check_needs(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    done = subprocess.run(
        # -S: without site, whose editable-install hook loads pathlib (and more) before mamori,
        # as an install from the wheel does not; mamori is found in the working directory
        [sys.executable, "-S", "-c", PROBE, str(MANIFEST), str(tmp_path / "report.txt")],
        cwd=REPOSITORY,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    probe = json.loads(done.stderr.splitlines()[-1])
    assert probe["status"] == 1  # judged: the pod is denied
    assert "DENIED" in (tmp_path / "report.txt").read_text()
    unwanted = [
        module
        for module in probe["loaded"]
        if any(module == name or module.startswith(f"{name}.") for name in NOT_FOR_ONE_MANIFEST)
    ]
    assert not unwanted


# --- values: (a factory of equal instances, a different instance, the repr of the first) --------

PATTERN = RegistryPattern.parse("*.registry.example:5000/team")
VIOLATION = Violation("rule", "policy", Enforcement.ENFORCE, "spec.x", "must not", "app")
DOCUMENT = Document("m.yaml", 0, 1, {"kind": "Pod"})


def _judge(pod: Any) -> list[Finding]:
    return []


def _other_judge(pod: Any) -> list[Finding]:
    return [Finding("spec", "other")]


def _check(pod: Any, settings: Any) -> list[Finding]:
    return []


def _other_check(pod: Any, settings: Any) -> list[Finding]:
    return [Finding("spec", "other")]


def _check_evidence(pod: Any, settings: Any, evidence: Any) -> list[Finding]:
    return []


RULE = Rule("rule", Level.BASELINE, "summary", _check)
SETTINGS = RuleSettings(pod_security=Level.BASELINE, trusted_registries=(PATTERN,))
SETTINGS_SHOWN = (
    f"RuleSettings(pod_security=<Level.BASELINE: 1>, trusted_registries=({PATTERN!r},), "
    "require_image_digest=False, pod_security_version=None, switches=frozenset(), "
    "vulnerabilities=None, signatures=())"
)


VALUES: dict[str, tuple[Callable[[], Any], Any, str]] = {
    "Finding": (
        lambda: Finding("spec.x", "must not", "app"),
        Finding("spec.x", "must not", "app", advisory=True),
        "Finding(field='spec.x', message='must not', container='app', advisory=False)",
    ),
    "Violation": (
        lambda: Violation("rule", "policy", Enforcement.ENFORCE, "spec.x", "must not", "app"),
        Violation("rule", "policy", Enforcement.WARN, "spec.x", "must not", "app"),
        "Violation(rule='rule', policy='policy', enforcement=<Enforcement.ENFORCE: 'Enforce'>, "
        "field='spec.x', message='must not', container='app', advisory=False)",
    ),
    "Decision": (
        lambda: Decision((VIOLATION,), (), ("policy",)),
        Decision((), (VIOLATION,), ("policy",)),
        f"Decision(violations=({VIOLATION!r},), advice=(), policies=('policy',))",
    ),
    "ReadLimits": (
        lambda: ReadLimits(max_depth=5),
        ReadLimits(max_depth=6),
        "ReadLimits(max_document_bytes=33554432, max_depth=5)",
    ),
    "InputError": (
        lambda: InputError("m.yaml", "invalid YAML", line=3),
        InputError("m.yaml", "invalid YAML"),
        "InputError(source='m.yaml', message='invalid YAML', line=3)",
    ),
    "Note": (lambda: Note("hadolint"), Note("other"), "Note(message='hadolint')"),
    "Skipped": (
        lambda: Skipped(Document("m.yaml", 0, 1, {"kind": "Service"})),
        Skipped(Document("m.yaml", 1, 1, {"kind": "Service"})),
        "Skipped(document=Document(source='m.yaml', index=0, line=1, body={'kind': 'Service'}, "
        "item=None))",
    ),
    "Malformed": (
        lambda: Malformed("spec.containers", "a list", {"not": "a list"}),
        Malformed("spec.volumes", "a list", {"not": "a list"}),
        "Malformed(path='spec.containers', expected='a list', value={'not': 'a list'})",
    ),
    "RegistryPattern": (
        lambda: RegistryPattern.parse("*.registry.example:5000/team"),
        RegistryPattern.parse("*.registry.example:5000/other"),
        "RegistryPattern(text='*.registry.example:5000/team', host='*.registry.example', "
        "port='5000', path='team')",
    ),
    "TrustedRegistries": (
        lambda: TrustedRegistries((PATTERN,)),
        TrustedRegistries(),
        f"TrustedRegistries(patterns=({PATTERN!r},))",
    ),
    "EcrHost": (
        lambda: EcrHost("123456789012", "eu-west-1", False, False, "aws", "amazonaws.com"),
        EcrHost("123456789012", "eu-west-2", False, False, "aws", "amazonaws.com"),
        "EcrHost(account_id='123456789012', region='eu-west-1', fips=False, dual_stack=False, "
        "partition='aws', dns_suffix='amazonaws.com')",
    ),
    "Requirement": (
        lambda: Requirement("team", "In", frozenset({"a"})),
        Requirement("team", "NotIn", frozenset({"a"})),
        "Requirement(key='team', operator='In', values=frozenset({'a'}))",
    ),
    "LabelSelector": (
        lambda: LabelSelector((Requirement("team", "Exists"),)),
        LabelSelector(),
        "LabelSelector(requirements=(Requirement(key='team', operator='Exists', "
        "values=frozenset()),))",
    ),
    "every_pod": (
        lambda: every_pod(_judge),
        every_pod(_other_judge),
        f"every_pod(judge={_judge!r})",
    ),
    "Rule": (
        lambda: Rule("rule", Level.BASELINE, "summary", _check),
        Rule("rule", Level.RESTRICTED, "summary", _check),
        f"Rule(id='rule', level=<Level.BASELINE: 1>, summary='summary', check={_check!r}, "
        f"applies={always!r}, versions=(), evidence_check=None, needs=frozenset())",
    ),
    "RuleSettings": (
        lambda: RuleSettings(pod_security=Level.BASELINE, trusted_registries=(PATTERN,)),
        RuleSettings(pod_security=Level.BASELINE),
        SETTINGS_SHOWN,
    ),
    "RulePlan": (
        lambda: RulePlan(settings=SETTINGS, rules=(RULE,)),
        RulePlan(settings=SETTINGS, rules=()),
        f"RulePlan(settings={SETTINGS_SHOWN}, rules=({RULE!r},))",
    ),
    "Policy": (
        lambda: Policy(name="p", rules=SETTINGS, exempt_namespaces=frozenset({"kube-system"})),
        Policy(name="p", rules=SETTINGS),
        f"Policy(name='p', enforcement=<Enforcement.ENFORCE: 'Enforce'>, rules={SETTINGS_SHOWN}, "
        "exempt_namespaces=frozenset({'kube-system'}), namespace_selector=LabelSelector("
        "requirements=()), generation=None, sections={})",
    ),
}
# A Document holds the manifest's dict, a Policy its sections' dict: neither hashes, as before.
HASHABLE = set(VALUES) - {"Skipped", "Policy"}


@pytest.mark.parametrize("name", list(VALUES))
def test_values_compare_copy_and_show_as_the_dataclasses_did(name: str) -> None:
    make, other, shown = VALUES[name]
    value = make()
    assert value == make() and (value != make()) is False
    assert value != other and (value == other) is False
    assert repr(value) == shown
    if name in HASHABLE:
        assert hash(value) == hash(make())
    for copied in (copy.copy(value), copy.deepcopy(value), pickle.loads(pickle.dumps(value))):
        assert copied == value and repr(copied) == shown


@pytest.mark.parametrize("name", list(VALUES))
def test_values_are_immutable(name: str) -> None:
    value = VALUES[name][0]()
    named_fields = getattr(value, "_fields", None)  # a named tuple's; else the written-out slots
    attribute = named_fields[0] if named_fields else sorted(type(value).__slots__)[-1]
    with pytest.raises(AttributeError):
        setattr(value, attribute, None)
    with pytest.raises(AttributeError):
        delattr(value, attribute)


def test_malformed_compares_without_its_value() -> None:
    first, second = Malformed("spec", "an object", ["x"]), Malformed("spec", "an object", 7)
    assert first == second and hash(first) == hash(second)


def test_compiled_registries_survive_copies() -> None:
    compiled = copy.deepcopy(TrustedRegistries((PATTERN,)))
    assert compiled.listing == "*.registry.example:5000/team"
    assert copy.deepcopy(PATTERN).labels == ("*", "registry", "example")


def test_result_and_document_replace_as_dataclasses_replace_did() -> None:
    result = Result(DOCUMENT, "Pod", "default", "p", Decision())
    assert result._replace(lines=(3,)).lines == (3,) and result.lines == ()
    assert DOCUMENT._replace(source="<stdin>") == Document("<stdin>", 0, 1, {"kind": "Pod"})


def test_workload_kinds_derive_their_paths() -> None:
    assert WORKLOAD_KINDS["Pod"] == workload_kind(frozenset({""}), ())
    assert WORKLOAD_KINDS["Pod"].spec_path == "spec"
    assert WORKLOAD_KINDS["CronJob"].metadata_path == "spec.jobTemplate.spec.template.metadata"


# --- the policy's values: field by field as the dataclasses they were (the references) --------


@dataclass(frozen=True, slots=True)
class RuleDataclass:
    id: str
    level: Level
    summary: str
    check: CheckFunction
    applies: Callable[[RuleSettings], bool] = always
    versions: tuple[tuple[int, CheckFunction], ...] = ()
    evidence_check: EvidenceCheckFunction | None = None
    needs: frozenset[Needs] = frozenset()


@dataclass(frozen=True, slots=True)
class RuleSettingsDataclass:
    pod_security: Level | None = Level.RESTRICTED
    trusted_registries: tuple[RegistryPattern, ...] = ()
    require_image_digest: bool = False
    pod_security_version: int | None = None
    switches: frozenset[str] = frozenset()
    vulnerabilities: Any = None
    signatures: tuple[Any, ...] = ()
    registries: TrustedRegistries = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "registries", TrustedRegistries(self.trusted_registries))


@dataclass(frozen=True, slots=True)
class RulePlanDataclass:
    settings: RuleSettings
    rules: tuple[Rule, ...]
    checks: tuple[tuple[str, CheckFunction], ...] = field(init=False, repr=False, compare=False)
    evidence_checks: tuple[tuple[str, EvidenceCheckFunction], ...] = field(
        init=False, repr=False, compare=False
    )
    needs: frozenset[Needs] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        minor = self.settings.pod_security_version
        plain = (rule for rule in self.rules if rule.evidence_check is None)
        checks = tuple((rule.id, rule.check_for(minor)) for rule in plain)
        object.__setattr__(self, "checks", tuple((i, c) for i, c in checks if c is not None))
        judged = tuple((r.id, r.evidence_check) for r in self.rules if r.evidence_check is not None)
        object.__setattr__(self, "evidence_checks", judged)
        object.__setattr__(self, "needs", frozenset(n for r in self.rules for n in r.needs))


@dataclass(frozen=True, slots=True)
class PolicyDataclass:
    name: str
    enforcement: Enforcement = Enforcement.ENFORCE
    rules: RuleSettings = field(default_factory=RuleSettings)
    exempt_namespaces: frozenset[str] = frozenset()
    namespace_selector: LabelSelector = field(default_factory=LabelSelector)
    generation: int | None = None
    sections: Mapping[str, Any] = field(default_factory=dict)
    plan: RulePlan = field(init=False, repr=False, compare=False)
    selects_all: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "plan", RulePlan.compile(self.rules))
        everything = not self.exempt_namespaces and not self.namespace_selector.requirements
        object.__setattr__(self, "selects_all", everything)


EVERY_RULE = tuple(RULES)
RULE_CASES: list[dict[str, Any]] = [
    {"id": "r", "level": Level.BASELINE, "summary": "s", "check": _check},
    {"id": "r", "level": Level.RESTRICTED, "summary": "s", "check": _check},
    {"id": "r", "level": Level.BASELINE, "summary": "s", "check": _other_check},
    {
        "id": "r",
        "level": Level.BASELINE,
        "summary": "s",
        "check": _check,
        "versions": ((0, _check),),
    },
    {
        "id": "r",
        "level": Level.IMAGE,
        "summary": "s",
        "check": _check,
        "evidence_check": _check_evidence,
        "needs": frozenset({Needs.SCANS}),
    },
]
SETTINGS_CASES: list[dict[str, Any]] = [
    {},
    {"pod_security": Level.BASELINE},
    {"pod_security": None},
    {"trusted_registries": (PATTERN,)},
    {"require_image_digest": True},
    {"pod_security_version": 22},
    {"switches": frozenset({"resolveImageTags"})},
    {"vulnerabilities": "a gate"},
    {"signatures": ("a requirement",)},
]
PLAN_CASES: list[dict[str, Any]] = [
    {"settings": RuleSettings(), "rules": EVERY_RULE},
    {"settings": RuleSettings(pod_security_version=22), "rules": EVERY_RULE},
    {"settings": RuleSettings(), "rules": EVERY_RULE[:3]},
    {"settings": RuleSettings(), "rules": ()},
]
POLICY_CASES: list[dict[str, Any]] = [
    {"name": "a"},
    {"name": "b"},
    {"name": "a", "enforcement": Enforcement.WARN},
    {"name": "a", "rules": RuleSettings(pod_security=None)},
    {"name": "a", "exempt_namespaces": frozenset({"kube-system"})},
    {"name": "a", "namespace_selector": LabelSelector((Requirement("team", "Exists"),))},
    {"name": "a", "generation": 3},
    {"name": "a", "sections": {"networkPolicy": None}},
]
REFERENCES = [
    pytest.param(Rule, RuleDataclass, RULE_CASES, id="Rule"),
    pytest.param(RuleSettings, RuleSettingsDataclass, SETTINGS_CASES, id="RuleSettings"),
    pytest.param(RulePlan, RulePlanDataclass, PLAN_CASES, id="RulePlan"),
    pytest.param(Policy, PolicyDataclass, POLICY_CASES, id="Policy"),
]


def _same_hash(first: object, second: object) -> bool | type[Exception]:
    """Whether two values hash alike, or the type of what hashing raises."""
    try:
        return hash(first) == hash(second)
    except Exception as error:
        return type(error)


def _parameters(kind: Callable[..., Any]) -> list[tuple[str, Any]]:
    return [(p.name, p.kind) for p in inspect.signature(kind).parameters.values()]


@pytest.mark.parametrize(("kind", "reference", "cases"), REFERENCES)
def test_policy_values_behave_as_their_dataclasses(
    kind: Any, reference: Any, cases: list[dict[str, Any]]
) -> None:
    assert _parameters(kind) == _parameters(reference)
    assert kind.__match_args__ == reference.__match_args__
    fields = [f.name for f in dataclasses.fields(reference)]  # the derived ones too
    for case in cases:
        value, was = kind(**case), reference(**case)
        assert repr(value) == repr(was).replace(reference.__name__, kind.__name__, 1)
        assert [getattr(value, f) for f in fields] == [getattr(was, f) for f in fields]
        # Defaults built afresh for each value (default_factory) and shared ones alike.
        again, was_again = kind(**case), reference(**case)
        assert [getattr(value, f) is getattr(again, f) for f in kind.__match_args__] == [
            getattr(was, f) is getattr(was_again, f) for f in kind.__match_args__
        ]
        assert _same_hash(value, again) == _same_hash(was, was_again)
        assert (value == object()) is (was == object()) is False
        if not hasattr(kind, "_fields"):  # a named tuple equals any tuple of its values
            derived = type("Derived", (kind,), {"__slots__": ()})(**case)
            was_derived = type("Derived", (reference,), {"__slots__": ()})(**case)
            assert (value == derived) is (was == was_derived) is False
        for other in cases:
            assert (value == kind(**other)) == (was == reference(**other))
            assert (value != kind(**other)) == (was != reference(**other))
            replaced = value._replace(**other)
            assert replaced == kind(**{**case, **other})
            assert repr(replaced) == repr(dataclasses.replace(was, **other)).replace(
                reference.__name__, kind.__name__, 1
            )


def test_policy_values_build_from_positions_as_before() -> None:
    settings = RuleSettings(Level.BASELINE, (PATTERN,), True, 22, frozenset({"x"}), None, ())
    assert settings == RuleSettings(
        pod_security=Level.BASELINE,
        trusted_registries=(PATTERN,),
        require_image_digest=True,
        pod_security_version=22,
        switches=frozenset({"x"}),
    )
    assert Policy("p", Enforcement.WARN, settings).plan == RulePlan.compile(settings)
    with pytest.raises(TypeError):  # a derived field is no argument
        Policy(name="p", plan=RulePlan.compile(settings))  # type: ignore[call-arg]


# --- paths: read exactly as pathlib read them ------------------------------------------------


def pathlib_expand_paths(paths: list[str]) -> Iterator[str | InputError]:
    """expand_paths as it was written with pathlib (the reference)."""
    for raw in paths:
        if raw == "-":
            yield "-"
            continue
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                str(p)
                for p in path.rglob("*")
                if (p.suffix in MANIFEST_SUFFIXES or is_dockerfile(p.name)) and p.is_file()
            )
            if not found:
                yield InputError(
                    display_name(raw),
                    "directory has no *.yaml, *.yml or *.json files or Dockerfiles",
                )
            yield from found
        elif path.is_file():
            yield raw
        else:
            yield InputError(display_name(raw), "no such file or directory")


SHAPES = [
    "",
    ".",
    "./",
    "/nonexistent",
    "tree",
    "tree/",
    "tree/.",
    "./tree",
    "tree//sub",
    "tree/sub/..",
    "tree/pod.yaml",
    "tree/pod.yaml/",
    "tree/pod.yaml/.",
    "Dockerfile",
    "./Dockerfile/",
    "link",
    "broken-link",
    "loop",
    "missing",
    "nul\0name",
    "tree/../tree/pod.yaml",
    "empty",
    "x/Dockerfile.dev",
    "tree/sub/Containerfile",
    "..yaml",
    "tree/sub/app.Dockerfile",
]


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "tree" / "sub" / "deeper").mkdir(parents=True)
    (tmp_path / "empty").mkdir()
    for name in (
        "tree/pod.yaml",
        "tree/sub/Containerfile",
        "tree/sub/app.Dockerfile",
        "tree/sub/x.json",
        "tree/sub/deeper/..yaml",
        "tree/sub/notes.txt",
        "tree/.hidden.yml",
        "Dockerfile",
        "..yaml",
        "tree/sub/Dockerfile.dockerignore",
    ):
        (tmp_path / name).write_text("kind: Pod\n")
    (tmp_path / "link").symlink_to("tree/pod.yaml")
    (tmp_path / "tree" / "linked-dir").symlink_to("sub")
    (tmp_path / "broken-link").symlink_to("nowhere")
    (tmp_path / "loop").symlink_to("loop")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("raw", SHAPES)
def test_paths_are_read_as_pathlib_read_them(tree: Path, raw: str) -> None:
    assert list(expand_paths([raw])) == list(pathlib_expand_paths([raw]))


@pytest.mark.parametrize("raw", [*SHAPES, "/", "//Dockerfile", "a/..", "Containerfile/."])
def test_dockerfile_names_are_read_as_pathlib_read_them(raw: str) -> None:
    assert is_dockerfile(raw) == is_dockerfile(Path(raw).name)  # the name as pathlib gave it
