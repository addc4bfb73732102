"""A small NRI plugin for tests, speaking the protocol through the project's own ttrpc and mux.

It connects to a runtime's NRI socket, registers, and answers Plugin calls
with the coroutines a test supplies; every call it receives is recorded in
order, so tests can check what a real plugin would have seen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from google.protobuf.message import Message

from cri_protos.nri.v1alpha1 import api_pb2 as api
from cri_runtime.nri import mux
from cri_runtime.nri.plugin import PLUGIN_SERVICE, RUNTIME_SERVICE
from cri_runtime.ttrpc.channel import Channel

#: Request and response message types of each Plugin method.
METHODS: dict[str, tuple[type[Message], type[Message]]] = {
    "Configure": (api.ConfigureRequest, api.ConfigureResponse),
    "Synchronize": (api.SynchronizeRequest, api.SynchronizeResponse),
    "Shutdown": (api.Empty, api.Empty),
    "RunPodSandbox": (api.RunPodSandboxRequest, api.RunPodSandboxResponse),
    "UpdatePodSandbox": (api.UpdatePodSandboxRequest, api.UpdatePodSandboxResponse),
    "PostUpdatePodSandbox": (api.PostUpdatePodSandboxRequest, api.PostUpdatePodSandboxResponse),
    "StopPodSandbox": (api.StopPodSandboxRequest, api.StopPodSandboxResponse),
    "RemovePodSandbox": (api.RemovePodSandboxRequest, api.RemovePodSandboxResponse),
    "CreateContainer": (api.CreateContainerRequest, api.CreateContainerResponse),
    "PostCreateContainer": (api.PostCreateContainerRequest, api.PostCreateContainerResponse),
    "StartContainer": (api.StartContainerRequest, api.StartContainerResponse),
    "PostStartContainer": (api.PostStartContainerRequest, api.PostStartContainerResponse),
    "UpdateContainer": (api.UpdateContainerRequest, api.UpdateContainerResponse),
    "PostUpdateContainer": (api.PostUpdateContainerRequest, api.PostUpdateContainerResponse),
    "StopContainer": (api.StopContainerRequest, api.StopContainerResponse),
    "RemoveContainer": (api.RemoveContainerRequest, api.RemoveContainerResponse),
}

Handler = Callable[[Message], Awaitable[Message | None]]

EVENTS = {
    "RunPodSandbox": api.RUN_POD_SANDBOX, "StopPodSandbox": api.STOP_POD_SANDBOX,
    "RemovePodSandbox": api.REMOVE_POD_SANDBOX, "CreateContainer": api.CREATE_CONTAINER,
    "PostCreateContainer": api.POST_CREATE_CONTAINER, "StartContainer": api.START_CONTAINER,
    "PostStartContainer": api.POST_START_CONTAINER, "UpdateContainer": api.UPDATE_CONTAINER,
    "PostUpdateContainer": api.POST_UPDATE_CONTAINER, "StopContainer": api.STOP_CONTAINER,
    "RemoveContainer": api.REMOVE_CONTAINER, "UpdatePodSandbox": api.UPDATE_POD_SANDBOX,
    "PostUpdatePodSandbox": api.POST_UPDATE_POD_SANDBOX,
}


def event_mask(*names: str) -> int:
    mask = 0
    for name in names:
        mask |= 1 << (EVENTS[name] - 1)
    return mask


@dataclass
class TestPlugin:
    """Connect with `start()`; `calls` lists (method, request) in the order the runtime sent them."""

    __test__ = False

    socket_path: str
    name: str = "test"
    idx: str = "50"
    events: tuple[str, ...] = tuple(EVENTS)
    handlers: dict[str, Handler] = field(default_factory=dict)
    calls: list[tuple[str, Message]] = field(default_factory=list)
    synchronized: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        reader, writer = await asyncio.open_unix_connection(self.socket_path)
        await self.start_on(reader, writer)

    async def start_on(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Register over an existing connection (a launched plugin's inherited socket)."""
        self._mux = mux.Multiplexer(reader, writer)
        served = {(PLUGIN_SERVICE, method): self._serve(method) for method in METHODS}
        self._plugin = Channel(self._mux.open(mux.PLUGIN_SERVICE_CONN), served, name="test-plugin")
        self._runtime = Channel(self._mux.open(mux.RUNTIME_SERVICE_CONN), name="test-plugin-runtime")
        self._mux.start()
        self._plugin.start()
        self._runtime.start()
        await self._runtime.call(RUNTIME_SERVICE, "RegisterPlugin", api.RegisterPluginRequest(
            plugin_name=self.name, plugin_idx=self.idx, NRI_version="v0.12.1").SerializeToString(), 5)

    def _serve(self, method: str) -> Callable[[bytes], Awaitable[bytes]]:
        request_type, response_type = METHODS[method]

        async def serve(payload: bytes) -> bytes:
            request = request_type.FromString(payload)
            self.calls.append((method, request))
            response: Message | None = None
            if method == "Configure" and method not in self.handlers:
                response = api.ConfigureResponse(events=event_mask(*self.events))
            elif method in self.handlers:
                response = await self.handlers[method](request)
            if method == "Synchronize":
                self.synchronized.set()
            return (response or response_type()).SerializeToString()

        return serve

    async def update_containers(self, updates: list[api.ContainerUpdate],
                                evictions: list[api.ContainerEviction] = ()) -> api.UpdateContainersResponse:  # type: ignore[assignment]
        payload = await self._runtime.call(RUNTIME_SERVICE, "UpdateContainers", api.UpdateContainersRequest(
            update=updates, evict=list(evictions)).SerializeToString(), 5)
        return api.UpdateContainersResponse.FromString(payload)

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]

    def close(self) -> None:
        self._plugin.close()
        self._runtime.close()
        self._mux.close()
