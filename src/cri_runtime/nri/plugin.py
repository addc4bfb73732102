"""One connected NRI plugin: its multiplexed ttrpc channels, registration and calls.

Follows containerd/nri pkg/adaptation/plugin.go: the plugin must register
within the registration timeout, every request has the request timeout, and a
plugin that times out or whose connection breaks is closed (the event goes on
without it) while any other error fails the runtime operation it was asked about.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from google.protobuf.message import Message

from cri_protos.nri.v1alpha1 import api_pb2 as api
from cri_runtime.ttrpc.channel import DEADLINE_EXCEEDED, UNAVAILABLE, Channel, TtrpcError

from . import mux

log = logging.getLogger(__name__)

PLUGIN_SERVICE = "nri.pkg.api.v1alpha1.Plugin"
RUNTIME_SERVICE = "nri.pkg.api.v1alpha1.Runtime"

M = TypeVar("M", bound=Message)

#: Unsolicited updates and evictions from a plugin; returns the updates that failed.
UpdateHandler = Callable[["Plugin", list[api.ContainerUpdate], list[api.ContainerEviction]],
                         Awaitable[list[api.ContainerUpdate]]]  # fmt: skip


class PluginError(Exception):
    """A plugin answered an event with an error: the runtime operation fails."""

    def __init__(self, plugin: str, event: str, message: str) -> None:
        super().__init__(f"NRI plugin {plugin} failed {event}: {message}")
        self.plugin = plugin
        self.event = event


def event_bit(event: int) -> int:
    return 1 << (event - 1)


VALID_EVENTS = (1 << (api.LAST - 1)) - 1


class Plugin:
    """A plugin connection. Created unregistered; `registered` resolves on RegisterPlugin."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 *, request_timeout: float, on_updates: UpdateHandler,
                 launched: asyncio.subprocess.Process | None = None) -> None:  # fmt: skip
        self.name = ""
        self.idx = ""
        self.events = 0
        self.config = ""
        self._request_timeout = request_timeout
        self._on_updates = on_updates
        self._process = launched
        self._mux = mux.Multiplexer(reader, writer)
        self.registered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._plugin = Channel(self._mux.open(mux.PLUGIN_SERVICE_CONN), name="nri-plugin")
        self._runtime = Channel(self._mux.open(mux.RUNTIME_SERVICE_CONN), {
            (RUNTIME_SERVICE, "RegisterPlugin"): self._register,
            (RUNTIME_SERVICE, "UpdateContainers"): self._update_containers,
        }, name="nri-runtime")  # fmt: skip
        self._mux.start()
        self._plugin.start()
        self._runtime.start()

    @property
    def qualified_name(self) -> str:
        return f"{self.idx}-{self.name}" if self.name else "unregistered plugin"

    @property
    def closed(self) -> bool:
        return self._plugin.closed or self._runtime.closed

    def subscribed(self, event: int) -> bool:
        return bool(self.events & event_bit(event))

    async def _register(self, payload: bytes) -> bytes:
        request = api.RegisterPluginRequest.FromString(payload)
        if self.registered.done():
            raise TtrpcError(9, "plugin already registered")  # FAILED_PRECONDITION
        if not request.plugin_name or not request.plugin_idx:
            raise TtrpcError(3, "RegisterPlugin needs a plugin name and index")
        idx = request.plugin_idx
        if len(idx) != 2 or not idx.isdigit():
            raise TtrpcError(3, f"invalid plugin index {idx!r}: two digits expected")
        self.name, self.idx = request.plugin_name, idx
        self.registered.set_result(None)
        log.info("NRI plugin %s registered (NRI %s)", self.qualified_name, request.NRI_version or "unknown")
        return api.Empty().SerializeToString()

    async def _update_containers(self, payload: bytes) -> bytes:
        request = api.UpdateContainersRequest.FromString(payload)
        failed = await self._on_updates(self, list(request.update), list(request.evict))
        return api.UpdateContainersResponse(failed=failed).SerializeToString()

    async def configure(self, runtime_name: str, runtime_version: str, *, registration_timeout: float) -> None:
        response = await self.call("Configure", api.ConfigureRequest(
            config=self.config, runtime_name=runtime_name, runtime_version=runtime_version,
            registration_timeout=int(registration_timeout * 1000),
            request_timeout=int(self._request_timeout * 1000)), api.ConfigureResponse, fatal=True)  # fmt: skip
        events = response.events or VALID_EVENTS
        if events & ~VALID_EVENTS:
            raise PluginError(self.qualified_name, "Configure", f"invalid event mask 0x{events:x}")
        self.events = events

    async def call(self, method: str, request: Message, response_type: type[M], *, fatal: bool = False,
                   timeout: float | None = None) -> M:  # fmt: skip
        """Call the plugin; a timeout or lost connection closes it (raising only when `fatal`)."""
        try:
            payload = await self._plugin.call(PLUGIN_SERVICE, method, request.SerializeToString(),
                                              timeout or self._request_timeout)  # fmt: skip
        except TtrpcError as exc:
            if exc.code in (DEADLINE_EXCEEDED, UNAVAILABLE):
                log.error("NRI plugin %s: closing it, %s failed: %s", self.qualified_name, method, exc.message)
                self.close()
                if fatal:
                    raise PluginError(self.qualified_name, method, exc.message) from None
                return response_type()
            raise PluginError(self.qualified_name, method, exc.message) from None
        return response_type.FromString(payload)

    async def shutdown(self) -> None:
        with contextlib.suppress(PluginError):
            await self.call("Shutdown", api.Empty(), api.Empty)

    def close(self) -> None:
        self._plugin.close()
        self._runtime.close()
        self._mux.close()
        if self._process is not None and self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
