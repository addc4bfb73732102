"""Fan-out of container events: several subscribers, a slow one dropped without blocking others."""

from __future__ import annotations

import asyncio
import logging

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors
from cri_runtime.events.hub import EventHub


def event(n: int) -> api_pb2.ContainerEventResponse:
    return api_pb2.ContainerEventResponse(container_id=f"c{n}", created_at=n)


async def read(sub_events: object, count: int) -> list[str]:
    out = []
    async for e in sub_events:  # type: ignore[attr-defined]
        out.append(e.container_id)
        if len(out) == count:
            break
    return out


async def test_every_subscriber_gets_every_event_in_order() -> None:
    hub = EventHub()
    a, b = hub.subscribe("a"), hub.subscribe("b")
    readers = [asyncio.create_task(read(s.events(), 5)) for s in (a, b)]
    for n in range(5):
        hub.publish(event(n))
    assert await asyncio.gather(*readers) == [[f"c{n}" for n in range(5)]] * 2
    assert hub.subscribers == 0  # leaving the iteration unsubscribes


async def test_slow_subscriber_is_dropped_others_continue(caplog: pytest.LogCaptureFixture) -> None:
    hub = EventHub(queue_size=3)
    slow = hub.subscribe("slow-peer")
    fast = hub.subscribe("fast-peer")
    got: list[str] = []

    async def fast_reader() -> None:
        async for e in fast.events():
            got.append(e.container_id)
            if len(got) == 10:
                return

    task = asyncio.create_task(fast_reader())
    with caplog.at_level(logging.WARNING):
        for n in range(10):
            hub.publish(event(n))
            await asyncio.sleep(0)  # the fast reader keeps up
    await asyncio.wait_for(task, 5)
    assert got == [f"c{n}" for n in range(10)]
    assert hub.dropped_subscribers == 1 and "slow-peer" in caplog.text
    # the slow one still gets what was queued, then an error telling it to resubscribe
    received = []
    with pytest.raises(errors.ResourceExhausted, match="subscribe again"):
        async for e in slow.events():
            received.append(e.container_id)
    assert received == ["c0", "c1", "c2"]
    assert hub.subscribers == 0


async def test_close_ends_streams() -> None:
    hub = EventHub()
    sub = hub.subscribe()
    hub.publish(event(1))
    hub.close()
    assert [e.container_id async for e in sub.events()] == ["c1"]
