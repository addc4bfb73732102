"""Waiting for a condition with a deadline, instead of sleeping and hoping it happened.

A test that orders events waits for the event itself (an `asyncio.Event`,
a thread's `threading.Event`) when the code under test offers one; when it
only exposes state, it polls that state with one of these until a deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], what: str, timeout: float = 10.0, interval: float = 0.02) -> T:
    """Poll `predicate` (from a thread) until it returns something truthy; returns that."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"not reached within {timeout} s: {what}")
        time.sleep(interval)


async def until(predicate: Callable[[], T], what: str, timeout: float = 10.0, interval: float = 0.01) -> T:
    """Poll `predicate` (on the event loop) until it returns something truthy; returns that."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if loop.time() >= deadline:
            raise AssertionError(f"not reached within {timeout} s: {what}")
        await asyncio.sleep(interval)
