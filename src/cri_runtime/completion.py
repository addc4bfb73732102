"""Run a state-changing operation to completion even when its caller gives up.

A caller's deadline cancels its handler. Cancelling a stop or removal half-way
(between containerd calls, or inside one) leaves state that only some retries
can finish; letting the work finish in the background makes every retry
either find it done or join the lock it holds. RunPodSandbox, CreateContainer
and StartContainer shield their work the same way in their managers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


async def run_to_completion(coro: Coroutine[Any, Any, T]) -> T:
    """Await `coro`; if the caller is cancelled, `coro` still runs to its end (its error is logged away)."""
    work = asyncio.ensure_future(coro)
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        work.add_done_callback(_consume)
        raise
