"""Polling for a condition in tests, with a deadline and a message naming what was awaited."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEADLINE_S = 30.0


def wait_for(
    condition: Callable[[], T], what: str, deadline_s: float = DEADLINE_S, poll_s: float = 0.1
) -> T:
    """The first true value of `condition()`; AssertionError naming `what` after the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(poll_s)
