"""eager.eager_task and completion's helpers: first steps run at once, results and cancellation as before."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from cri_runtime.completion import all_of, run_to_completion
from cri_runtime.eager import eager_task

pytestmark = pytest.mark.asyncio

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="caller")


async def test_a_coroutine_that_never_waits_is_done_at_once() -> None:
    async def answer() -> int:
        return 42

    async def fail() -> int:
        raise ValueError("bad")

    done = eager_task(answer())
    assert done.done() and done.result() == 42
    failed = eager_task(fail())
    assert failed.done() and isinstance(failed.exception(), ValueError)


async def test_the_first_step_runs_before_eager_task_returns_in_its_own_context() -> None:
    steps: list[str] = []
    release = asyncio.Event()

    async def work() -> str:
        VAR.set("work")
        steps.append("first")
        await release.wait()
        steps.append("second")
        return VAR.get()

    task = eager_task(work())
    assert steps == ["first"] and not task.done()
    assert VAR.get() == "caller"  # the step's context is the task's copy, not ours
    release.set()
    assert await task == "work" and steps == ["first", "second"]


async def test_run_to_completion_finishes_the_work_when_its_caller_is_cancelled() -> None:
    started, release, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def work() -> None:
        started.set()
        await release.wait()
        finished.set()

    caller = asyncio.ensure_future(run_to_completion(work()))
    await asyncio.wait_for(started.wait(), 5)  # the work runs and waits; now its caller gives up
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    release.set()
    await asyncio.wait_for(finished.wait(), 5)


async def test_run_to_completion_answers_without_a_task_when_nothing_waits() -> None:
    async def answer() -> str:
        return "now"

    before = len(asyncio.all_tasks())
    assert await run_to_completion(answer()) == "now"
    assert len(asyncio.all_tasks()) == before


async def test_all_of_waits_for_every_step_then_raises_the_first_failure() -> None:
    order: list[str] = []
    release = asyncio.Event()

    async def fails_at_once() -> None:
        order.append("fails")
        raise KeyError("first")

    async def waits() -> None:
        order.append("waits")
        asyncio.get_running_loop().call_soon(release.set)  # let go once all_of waits
        await release.wait()
        order.append("waited")

    with pytest.raises(KeyError):
        await all_of(fails_at_once(), waits())
    assert order == ["fails", "waits", "waited"]
