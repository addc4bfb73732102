"""KeyedLock serialises per key and forgets idle keys."""

from __future__ import annotations

import asyncio

import pytest

from cri_runtime.images.keyed_lock import KeyedLock


@pytest.mark.asyncio
async def test_serialises_same_key_and_cleans_up() -> None:
    locks = KeyedLock()
    order: list[str] = []
    release = asyncio.Event()
    asked = {name: asyncio.Event() for name in "123"}

    async def worker(key: str, name: str) -> None:
        asked[name].set()  # from here to its lock (or into it) the worker does not yield
        async with locks.hold(key):
            order.append(f"{name}+")
            await release.wait()
            order.append(f"{name}-")

    workers = asyncio.gather(worker("a", "1"), worker("a", "2"), worker("b", "3"))
    await asyncio.gather(*(event.wait() for event in asked.values()))
    # Every worker now holds its lock or waits for it: one of key "a", and key "b"'s own.
    assert sorted(order) in (["1+", "3+"], ["2+", "3+"])
    release.set()
    await workers
    a_events = [e for e in order if e[0] in "12"]
    assert a_events in (["1+", "1-", "2+", "2-"], ["2+", "2-", "1+", "1-"])
    assert len(locks) == 0


@pytest.mark.asyncio
async def test_cancelled_waiter_releases_its_slot() -> None:
    locks = KeyedLock()
    started = asyncio.Event()
    release = asyncio.Event()
    asked = asyncio.Event()

    async def holder() -> None:
        async with locks.hold("k"):
            started.set()
            await release.wait()

    async def waiter() -> None:
        asked.set()  # from here to its lock the waiter does not yield
        async with locks.hold("k"):
            raise AssertionError("the waiter got the lock while it was held")

    h = asyncio.ensure_future(holder())
    await started.wait()
    w = asyncio.ensure_future(waiter())
    await asked.wait()  # the waiter is blocked on the held lock
    w.cancel()
    release.set()
    await asyncio.gather(h, w, return_exceptions=True)
    assert w.cancelled()
    assert len(locks) == 0
