"""Helpers shared by every test layer (import as ``from tests.helpers import wait_for``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition did not come true before its deadline."""


def wait_for(
    predicate: Callable[[], T],
    *,
    timeout: float = 10.0,
    interval: float = 0.1,
    message: str = "",
    ignore: tuple[type[Exception], ...] = (),
) -> T:
    """Poll ``predicate`` until it returns something truthy, and return that.

    The only place tests wait for state: a deadline instead of a guessed sleep, and a failure that
    says what was awaited and what was last seen. Exceptions listed in ``ignore`` (say, a 404
    while an object is being created) count as "not yet"; any other exception fails at once.
    """
    deadline = time.monotonic() + timeout
    attempts = 0
    last: object = None
    while True:
        attempts += 1
        try:
            value = predicate()
        except ignore as error:
            last = error
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__qualname__", repr(predicate))
            raise WaitTimeout(
                f"timed out after {timeout:g}s ({attempts} attempts) waiting for {what}; "
                f"last result: {last!r}"
            )
        time.sleep(interval)
