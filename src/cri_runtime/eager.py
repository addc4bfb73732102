"""Run a coroutine's first step now, and hand it to a task only if it waits.

Most CRI calls (status, list, version) finish without ever waiting: answering
them from within the callback that received the request saves a trip through
the event loop, a task, and a deadline timer. Work started in the background
(`completion.run_to_completion`, `completion.all_of`) likewise gets to its
first containerd call at once instead of a loop turn later. asyncio gained this
as `eager_task_factory` in Python 3.12; this is the same idea for 3.11.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")


def start_eagerly(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None] | None:
    """Step `coro` until it first waits; None if it finished (its failure raised here), else the
    task now driving it."""
    work = eager_task(coro, name)
    if work.done():
        work.result()
        return None
    return work  # type: ignore[return-value]


def eager_task(coro: Coroutine[Any, Any, T], name: str | None = None) -> asyncio.Future[T]:
    """Like `asyncio.ensure_future(coro)`, with the first step run now (in the task's own context
    copy, as 3.12's eager tasks do); a coroutine that never waits yields a future already done."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    try:
        pending = context.run(coro.send, None)
    except StopIteration as stop:
        done: asyncio.Future[T] = loop.create_future()
        done.set_result(stop.value)
        return done
    except BaseException as exc:
        failed: asyncio.Future[T] = loop.create_future()
        failed.set_exception(exc)
        return failed
    return loop.create_task(_Resumed(coro, pending), name=name, context=context)  # type: ignore[arg-type]


_NOTHING = object()


class _Resumed(Coroutine[Any, Any, Any]):
    """`coro`, already started and waiting on `pending`, in the shape a Task drives.

    A plain wrapper coroutine would lose a cancellation that arrives before the
    task's first step (throwing into a coroutine that never started just raises
    there): `coro` would never see it, its cleanup would never run, and the call
    would stay counted. Here the first throw reaches `coro` itself.
    """

    __slots__ = ("_coro", "_pending")

    def __init__(self, coro: Coroutine[Any, Any, None], pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    def send(self, value: Any) -> Any:
        pending = self._pending
        if pending is not _NOTHING:  # the task's first step: wait for what coro already waits on
            self._pending = _NOTHING
            return pending
        return self._coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        self._pending = _NOTHING
        if val is None and tb is None:
            return self._coro.throw(typ)
        return self._coro.throw(typ, val, tb)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, None]:
        return self

    def __iter__(self) -> _Resumed:
        return self

    def __next__(self) -> Any:
        return self.send(None)
