"""Run a state-changing operation to completion even when its caller gives up.

A caller's deadline cancels its handler. Cancelling a stop or removal half-way
(between containerd calls, or inside one) leaves state that only some retries
can finish; letting the work finish in the background makes every retry
either find it done or join the lock it holds. RunPodSandbox and
CreateContainer run their steps through `rollback.run_or_undo`, which uses
this; StartContainer shields its work the same way, remembering an abandoned
attempt for the retry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

from cri_runtime.eager import eager_task

T = TypeVar("T")


def consume_exception(future: asyncio.Future[Any]) -> None:
    """Mark a background step's failure as seen (its awaiter, if any, still gets it)."""
    if not future.cancelled():
        future.exception()


async def run_to_completion(coro: Coroutine[Any, Any, T]) -> T:
    """Await `coro`; if the caller is cancelled, `coro` still runs to its end (its error is logged away)."""
    work = eager_task(coro)
    if work.done():  # finished without waiting: nothing left to protect
        return work.result()
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        work.add_done_callback(consume_exception)
        raise


async def all_of(*steps: Awaitable[Any]) -> None:
    """Run steps side by side; wait for all of them (none is left running), then raise the first failure."""
    tasks = [eager_task(step) if asyncio.iscoroutine(step) else asyncio.ensure_future(step) for step in steps]
    for task in tasks:
        task.add_done_callback(consume_exception)
    pending = [task for task in tasks if not task.done()]
    if pending:
        await asyncio.wait(pending)
    for task in tasks:
        task.result()
