"""RuntimeService.GetContainerEvents: a server stream of container lifecycle events."""

from __future__ import annotations

from collections.abc import AsyncIterator

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.events.hub import EventHub
from cri_runtime.rpc import ServicerContext
from cri_runtime.services.error_mapping import server_stream


class EventRpcs:
    """Mixin: needs `container_events` (the hub the container manager publishes to)."""

    container_events: EventHub

    async def wait_recovered(self) -> None:
        raise NotImplementedError

    @server_stream
    async def GetContainerEvents(
        self, request: api_pb2.GetEventsRequest, context: ServicerContext
    ) -> AsyncIterator[api_pb2.ContainerEventResponse]:
        subscription = self.container_events.subscribe(peer=context.peer())
        try:
            # Initial metadata tells the client it is subscribed: events from now on reach it.
            await context.send_initial_metadata(())
            async for event in subscription.events():
                yield event
        finally:
            self.container_events.unsubscribe(subscription)
