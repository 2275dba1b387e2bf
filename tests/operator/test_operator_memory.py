"""What the operator does about its fixed memory and CPU costs (mamori_operator/memory.py).

Both helpers change process-wide state (what ``import kubernetes.client`` loads, the garbage
collector's generations), so each case runs in a fresh interpreter; this test process has
imported kubernetes the ordinary way long ago. The lazy client is held to the eager one: the
same names, the same objects where both load them, a response deserialized into the same
model, kopf importing over it; and to its point: a fraction of the modules loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
lazy = sys.argv[1] == "lazy"
from mamori_operator.memory import import_kubernetes_client_lazily
made_lazy = import_kubernetes_client_lazily() if lazy else False
import kopf  # imports kubernetes.client's V1ObjectMeta and V1OwnerReference
import kubernetes
import kubernetes.client
from kubernetes.client import ApiClient, Configuration, CoreV1Api, V1Pod
from kubernetes.client.rest import ApiException
from kubernetes.client.models import V1ObjectMeta
from kopf._cogs.helpers import thirdparty

class Reply:
    data = json.dumps({"metadata": {"name": "web", "namespace": "shop"},
                       "spec": {"containers": [{"name": "app", "image": "registry.example/app"}]}})

pod = ApiClient(Configuration()).deserialize(Reply(), "V1Pod")
loaded = [name for name in sys.modules if name.startswith("kubernetes.client.")]
print(json.dumps({
    "made_lazy": made_lazy,
    "again": import_kubernetes_client_lazily(),
    "client_is_attribute": kubernetes.client is sys.modules["kubernetes.client"],
    "version": kubernetes.client.__version__,
    "names": sorted(kubernetes.client.__all__) if lazy else None,
    "same_meta": thirdparty.V1ObjectMetaSync is V1ObjectMeta is kubernetes.client.V1ObjectMeta,
    "pod": [type(pod).__name__, pod.metadata.name, pod.spec.containers[0].image],
    "core": CoreV1Api.__name__,
    "models_pod": kubernetes.client.models.V1Pod is V1Pod,
    "error": issubclass(ApiException, Exception),
    "modules": len(loaded),
}))
"""


def run_json(code: str, *args: str) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter (nothing imported yet); return the JSON it prints."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def probe(mode: str) -> dict[str, Any]:
    return run_json(PROBE, mode)


@pytest.fixture(scope="module")
def eager() -> dict[str, Any]:
    return probe("eager")


@pytest.fixture(scope="module")
def lazy() -> dict[str, Any]:
    return probe("lazy")


@pytest.mark.parametrize(
    "field", ["client_is_attribute", "version", "same_meta", "pod", "core", "models_pod", "error"]
)
def test_the_lazy_client_answers_as_the_eager_one(
    field: str, eager: dict[str, Any], lazy: dict[str, Any]
) -> None:
    assert lazy["made_lazy"] is True
    assert lazy[field] == eager[field]


def test_the_lazy_client_exports_every_name_the_eager_one_defines(lazy: dict[str, Any]) -> None:
    eager_names = subprocess.run(
        [
            sys.executable,
            "-c",
            "import kubernetes.client as c; print('\\n'.join(n for n in dir(c) if n[0].isupper()))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    assert set(eager_names) <= set(lazy["names"])


def test_the_lazy_client_loads_a_fraction_of_the_modules(
    eager: dict[str, Any], lazy: dict[str, Any]
) -> None:
    assert eager["modules"] > 500  # every API class and model
    assert lazy["modules"] < eager["modules"] / 10


def test_a_second_call_or_an_imported_client_changes_nothing(
    eager: dict[str, Any], lazy: dict[str, Any]
) -> None:
    assert lazy["again"] is False  # already in place
    assert eager["again"] is False  # kubernetes was imported first: left as it is


FREEZE = """
import gc, json
from mamori_operator.memory import freeze_startup_objects

class Cycle:
    pass

kept = [Cycle() for _ in range(1000)]
frozen = freeze_startup_objects()
after = gc.get_freeze_count()
garbage = Cycle(); garbage.me = garbage; del garbage  # a cycle made after the freeze
collected = gc.collect()
print(json.dumps({"frozen": frozen, "after": after, "collected": collected}))
"""


def test_freezing_moves_what_exists_out_of_the_collectors_reach() -> None:
    result = run_json(FREEZE)
    assert result["frozen"] == result["after"] > 1000  # the start-up objects, the list's too
    assert result["collected"] >= 1  # what is made later is collected as before


COMMAND_IMPORT = """
import json, sys
import mamori_operator.command  # what `mamori operator` imports first: kopf, kubernetes
loaded = sorted(m for m in sys.modules if m.startswith("kubernetes.client."))
import kubernetes.client
api = kubernetes.client.CoreV1Api.__module__  # still there, on first use
print(json.dumps({"loaded": loaded, "api": api, "kopf": "kopf" in sys.modules}))
"""


def test_the_operator_command_loads_the_generated_kubernetes_client_only_as_used() -> None:
    result = run_json(COMMAND_IMPORT)
    assert result["kopf"]
    assert "kubernetes.client.api.core_v1_api" not in result["loaded"]
    assert not any(m.startswith("kubernetes.client.models.v1_pod") for m in result["loaded"])
    assert len(result["loaded"]) < 50, result["loaded"]  # against ~1,100 imported eagerly
    assert result["api"] == "kubernetes.client.api.core_v1_api"


RELAXED = """
import gc, json, weakref
from mamori_operator.memory import COLLECTOR_THRESHOLDS, relax_young_collections

class Cycle:
    pass

thresholds = relax_young_collections()
garbage = Cycle(); garbage.me = garbage
alive = weakref.ref(garbage)
del garbage
early = alive() is not None  # 700 allocations would have collected it by default
kept = [[] for _ in range(1000)]
still_there = alive() is not None
kept += [[] for _ in range(COLLECTOR_THRESHOLDS[0] + 1000)]  # enough for a young collection
print(json.dumps({"thresholds": thresholds, "gc": list(gc.get_threshold()),
                  "early": early, "still_there": still_there, "freed": alive() is None}))
"""


def test_young_collections_are_rarer_and_still_free_cycles_on_their_own() -> None:
    result = run_json(RELAXED)
    assert result["thresholds"] == result["gc"] == [50_000, 20, 20]
    assert result["early"] and result["still_there"]  # a default collector would have run
    assert result["freed"]  # no gc.collect(): the relaxed young collection found the cycle
