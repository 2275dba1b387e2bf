"""Give the heap that Python freed back to the operating system; keep the collector off the
objects that live as long as the process.

A cold start in a big cluster decodes every pod several times over (the list, the echo of each
patch, each audit) from a dozen threads; glibc keeps what those threads freed in per-thread
arenas, so the resident set keeps the high-water mark of the burst long after the objects are
gone, and grows with every burst as the arenas fragment. ``malloc_trim`` returns the free pages
of every arena; the housekeeper calls it once per pass. Where the C library has no
``malloc_trim`` (musl, macOS) this does nothing.

The operator's imports (kopf, the kubernetes client and its generated models) are a hundred
thousand objects that the cyclic garbage collector walks on every full collection, and a cold
start allocates fast enough to run ten of those: at 5,000 pods the collector took 1.6 of the
operator's 15.7 CPU seconds, two thirds of it in full collections. :func:`freeze_startup_objects`
moves what exists once the operator is loaded into the collector's permanent generation
(reference counting still frees it; only cycles among these objects would never be collected,
and module-level objects live until exit anyway): the collector then took 0.9 s.
:func:`relax_young_collections` then makes collections rarer: nearly everything a pod event
allocates (decoded JSON, records, request objects) is freed by reference counting within
milliseconds, yet Python's default runs a young collection every 700 allocations and a full one
every hundred of those. With a young collection every 50,000 the collector took 0.21 s instead
of 0.96 s at 5,000 pods (bench/operator/bench.py ``--trace FILE --gc``) for 1-2 MiB more at the
peak: the few cycles (an exception's traceback, a finished task) wait a little longer.

The generated half of the kubernetes client is the other large fixed cost: ``import
kubernetes.client`` executes every API class and every model (about 1,100 modules, 30 MiB of a
100 MiB start), of which the operator uses none (it sends and reads plain JSON straight through
the client's urllib3 pool, ``api/kube.py``) and kopf two model classes.
:func:`import_kubernetes_client_lazily` puts ``kubernetes.client`` and its ``api`` and
``models`` packages in place without running their ``__init__``: each name they export is
imported the first time it is asked for (``from kubernetes.client import CoreV1Api`` still
works, and loads that one module). It has to run before anything imports kubernetes (kopf does,
when it is imported).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import importlib
import importlib.util
import logging
import re
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def heap_trimmer() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)``, or None when the C library has none."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: trim(0)


def freeze_startup_objects() -> int:
    """Collect what start-up left behind, then freeze the rest (imports, configuration) out of
    the cyclic collector's reach; returns how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


# Young collections every 50,000 net allocations of tracked objects (Python's default: 700);
# an older generation after 20 of the younger one's (default: 10).
COLLECTOR_THRESHOLDS = (50_000, 20, 20)


def relax_young_collections() -> tuple[int, int, int]:
    """Collect cycles less often (see the module's docstring); returns the new thresholds."""
    gc.set_threshold(*COLLECTOR_THRESHOLDS)
    return gc.get_threshold()


KUBERNETES_CLIENT = "kubernetes.client"
LAZY_PACKAGES = (KUBERNETES_CLIENT, f"{KUBERNETES_CLIENT}.api", f"{KUBERNETES_CLIENT}.models")
_EXPORT = re.compile(r"^from (kubernetes\.client[\w.]*) import (\w+)\s*$", re.MULTILINE)
_VERSION = re.compile(r"^__version__ = [\"']([^\"']+)[\"']", re.MULTILINE)


def import_kubernetes_client_lazily() -> bool:
    """Make ``kubernetes.client``, ``.api`` and ``.models`` import each exported name on first
    use; False (nothing changed) when kubernetes is already imported or not installed."""
    if any(name in sys.modules for name in ("kubernetes", *LAZY_PACKAGES)):
        return False
    spec = importlib.util.find_spec("kubernetes")  # a top-level spec imports nothing
    if spec is None or not spec.submodule_search_locations:
        return False
    root = Path(next(iter(spec.submodule_search_locations))) / "client"
    if not all((root / sub / "__init__.py").is_file() for sub in ("", "api", "models")):
        return False  # not the layout this knows: import it the ordinary way
    client = _lazy_package(KUBERNETES_CLIENT, root)
    for sub in ("api", "models"):
        setattr(client, sub, _lazy_package(f"{KUBERNETES_CLIENT}.{sub}", root / sub))
    return True


def _lazy_package(name: str, directory: Path) -> types.ModuleType:
    """The package ``name`` from ``directory`` without running its ``__init__``: the names its
    ``from kubernetes.client.… import X`` lines export are imported when first asked for."""
    origin = directory / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        name, origin, submodule_search_locations=[str(directory)]
    )
    assert spec is not None  # a path that exists always has one
    package = importlib.util.module_from_spec(spec)
    source = origin.read_text(encoding="utf-8")
    exports = {attribute: module for module, attribute in _EXPORT.findall(source)}
    version = _VERSION.search(source)
    if version is not None:
        package.__version__ = version.group(1)  # type: ignore[attr-defined]

    def load(attribute: str) -> Any:
        module = exports.get(attribute)
        if module is None:
            raise AttributeError(f"module {name!r} has no attribute {attribute!r}")
        value = getattr(importlib.import_module(module), attribute)
        setattr(package, attribute, value)  # the next lookup is an ordinary one
        return value

    setattr(package, "__getattr__", load)  # noqa: B010  # PEP 562: a module's fallback lookup
    package.__all__ = sorted(exports)  # type: ignore[attr-defined]
    sys.modules[name] = package
    return package
