"""The one launcher of undoable operations (rollback.run_or_undo) and completion.all_of: pure asyncio logic."""

from __future__ import annotations

import asyncio

import pytest

from cri_runtime.completion import all_of
from cri_runtime.rollback import Rollback, run_or_undo


def _recording_undo(done: list[str]) -> Rollback:
    undo = Rollback("test")
    undo.add_sync("first", done.append, "first")
    undo.add_sync("second", done.append, "second")
    return undo


async def test_success_keeps_everything() -> None:
    done: list[str] = []

    async def steps() -> str:
        return "id"

    assert await run_or_undo(steps(), _recording_undo(done)) == "id"
    assert done == []


async def test_a_failing_step_undoes_in_reverse_and_raises() -> None:
    done: list[str] = []

    async def steps() -> str:
        raise ValueError("step 3 failed")

    with pytest.raises(ValueError, match="step 3 failed"):
        await run_or_undo(steps(), _recording_undo(done))
    assert done == ["second", "first"]


async def test_an_undo_that_fails_does_not_stop_the_others() -> None:
    done: list[str] = []
    undo = Rollback("test")
    undo.add_sync("kept", done.append, "kept")

    async def broken() -> None:
        raise OSError("cannot undo")

    undo.add("broken", broken)

    async def steps() -> None:
        raise RuntimeError("fail")

    with pytest.raises(RuntimeError):
        await run_or_undo(steps(), undo)
    assert done == ["kept"]


async def test_a_caller_that_gives_up_does_not_cut_the_steps_off() -> None:
    """The caller is cancelled mid-way; the steps finish in the background and nothing is undone."""
    done: list[str] = []
    entered, release, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def steps() -> str:
        entered.set()
        await release.wait()
        finished.set()
        return "id"

    caller = asyncio.ensure_future(run_or_undo(steps(), _recording_undo(done)))
    await entered.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert not finished.is_set()
    release.set()
    await asyncio.wait_for(finished.wait(), 5)
    assert done == []


async def test_steps_failing_after_the_caller_gave_up_still_undo() -> None:
    done: list[str] = []
    entered, release = asyncio.Event(), asyncio.Event()
    undone = asyncio.Event()
    undo = _recording_undo(done)
    undo.add_sync("signal", undone.set)

    async def steps() -> str:
        entered.set()
        await release.wait()
        raise ValueError("late failure")

    caller = asyncio.ensure_future(run_or_undo(steps(), undo))
    await entered.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    release.set()
    await asyncio.wait_for(undone.wait(), 5)
    assert done == ["second", "first"]


async def test_all_of_waits_for_every_step_then_raises_the_first_failure() -> None:
    slow_done = asyncio.Event()
    release = asyncio.Event()

    async def fails() -> None:
        release.set()
        raise KeyError("first")

    async def slow() -> None:
        await release.wait()
        slow_done.set()

    with pytest.raises(KeyError):
        await all_of(fails(), slow())
    assert slow_done.is_set()  # not left running when the error is raised
