"""Fan-out of container lifecycle events to any number of subscribers.

kubelet's Evented PLEG keeps one GetContainerEvents stream open; crictl and
tests may open more. Each subscriber has its own bounded queue: publishing
never waits, so a slow or stuck subscriber cannot hold up the container
manager or the other subscribers. A subscriber whose queue is full is
dropped (its stream ends with RESOURCE_EXHAUSTED, telling it to resubscribe
and relist) and the drop is logged — silently skipping events would leave
it with a wrong view of the node.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator

from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SIZE = 1000

EVENT_TYPES = {
    "created": api_pb2.CONTAINER_CREATED_EVENT,
    "started": api_pb2.CONTAINER_STARTED_EVENT,
    "stopped": api_pb2.CONTAINER_STOPPED_EVENT,
    "deleted": api_pb2.CONTAINER_DELETED_EVENT,
}

_ids = itertools.count(1)


class Subscription:
    """One subscriber's queue; iterate it to receive events."""

    def __init__(self, hub: EventHub, queue_size: int, peer: str) -> None:
        self.id = next(_ids)
        self.peer = peer
        self._hub = hub
        self._queue: asyncio.Queue[api_pb2.ContainerEventResponse | None] = asyncio.Queue(queue_size)
        self.overflowed = False

    def offer(self, event: api_pb2.ContainerEventResponse) -> bool:
        """Queue without waiting; False (and the subscriber is finished) when full."""
        try:
            self._queue.put_nowait(event)
            return True
        except asyncio.QueueFull:
            self.overflowed = True
            return False

    async def events(self) -> AsyncIterator[api_pb2.ContainerEventResponse]:
        try:
            while True:
                if self.overflowed and self._queue.empty():
                    break
                event = await self._queue.get()
                if event is None:
                    return
                yield event
            raise errors.ResourceExhausted(
                f"GetContainerEvents: subscriber fell behind by more than {self._queue.maxsize} events "
                "and was dropped; subscribe again and relist")
        finally:
            self._hub.unsubscribe(self)

    def close(self) -> None:
        """End the stream after the events already queued."""
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            self.overflowed = True


class EventHub:
    """Publishes ContainerEventResponse messages to all current subscribers."""

    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self._subs: dict[int, Subscription] = {}
        self.published = 0
        self.dropped_subscribers = 0

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def subscribe(self, peer: str = "") -> Subscription:
        sub = Subscription(self, self.queue_size, peer)
        self._subs[sub.id] = sub
        log.debug("container events: subscriber %d (%s) joined", sub.id, peer)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if self._subs.pop(sub.id, None) is not None:
            log.debug("container events: subscriber %d left", sub.id)

    def publish(self, event: api_pb2.ContainerEventResponse) -> None:
        self.published += 1
        for sub in list(self._subs.values()):
            if sub.overflowed:
                continue
            if not sub.offer(event):
                self.dropped_subscribers += 1
                # Removed at once so later publishes skip it; its stream drains then errors.
                self._subs.pop(sub.id, None)
                log.warning("container events: dropping subscriber %d (%s): %d events queued, it is not "
                            "reading", sub.id, sub.peer or "unknown peer", self.queue_size)

    def close(self) -> None:
        for sub in list(self._subs.values()):
            sub.close()
