"""Give the heap that Python freed back to the operating system.

A cold start in a big cluster decodes every pod several times over (the list, the echo of each
patch, each audit) from a dozen threads; glibc keeps what those threads freed in per-thread
arenas, so the resident set keeps the high-water mark of the burst long after the objects are
gone, and grows with every burst as the arenas fragment. ``malloc_trim`` returns the free pages
of every arena; the housekeeper calls it once per pass. Where the C library has no
``malloc_trim`` (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

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
