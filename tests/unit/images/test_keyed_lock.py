"""KeyedLock serialises per key and forgets idle keys."""

from __future__ import annotations

import asyncio

import pytest

from cri_runtime.images.keyed_lock import KeyedLock


@pytest.mark.asyncio
async def test_serialises_same_key_and_cleans_up() -> None:
    locks = KeyedLock()
    order: list[str] = []

    async def worker(key: str, name: str) -> None:
        async with locks.hold(key):
            order.append(f"{name}+")
            await asyncio.sleep(0.01)
            order.append(f"{name}-")

    await asyncio.gather(worker("a", "1"), worker("a", "2"), worker("b", "3"))
    a_events = [e for e in order if e[0] in "12"]
    assert a_events in (["1+", "1-", "2+", "2-"], ["2+", "2-", "1+", "1-"])
    assert len(locks) == 0


@pytest.mark.asyncio
async def test_cancelled_waiter_releases_its_slot() -> None:
    locks = KeyedLock()
    started = asyncio.Event()

    async def holder() -> None:
        async with locks.hold("k"):
            started.set()
            await asyncio.sleep(0.05)

    h = asyncio.ensure_future(holder())
    await started.wait()
    waiter = asyncio.ensure_future(locks.hold("k").__aenter__())
    await asyncio.sleep(0.01)
    waiter.cancel()
    await asyncio.gather(h, waiter, return_exceptions=True)
    assert len(locks) == 0
