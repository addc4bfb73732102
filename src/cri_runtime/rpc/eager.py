"""Run a coroutine's first step now, and hand it to a task only if it waits.

Most CRI calls (status, list, version) finish without ever waiting: answering
them from within the callback that received the request saves a trip through
the event loop, a task, and a deadline timer. asyncio gained this as
`eager_task_factory` in Python 3.12; this is the same idea for 3.11.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Coroutine, Generator
from typing import Any


def start_eagerly(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None] | None:
    """Step `coro` until it first waits; None if it finished, else the task now driving it."""
    try:
        pending = coro.send(None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_continue(coro, pending), name=name)


async def _continue(coro: Coroutine[Any, Any, None], pending: Any) -> None:
    await _delegate(coro, pending)


@types.coroutine
def _delegate(coro: Coroutine[Any, Any, None], pending: Any) -> Generator[Any, Any, None]:
    """Pass what `coro` yields to the driving task and what the task sends (or throws) back."""
    while True:
        try:
            sent = yield pending
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:  # cancellation must reach the coroutine too
            try:
                pending = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                pending = coro.send(sent)
            except StopIteration:
                return
