"""The runtime side of NRI: accepts and launches plugins and relays lifecycle events to them.

Modelled on containerd/nri pkg/adaptation: plugins are called in ascending
index order; one lock serialises events and plugin synchronisation, so a
plugin that joins sees every pod and container exactly once, either in its
Synchronize set or as a later event. Objects whose Run/Create hook completed
but which the runtime has not yet made visible are kept here and added to the
Synchronize set, so none is lost in between (critest's "no container lost
during Synchronize" specs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cri_protos.nri.v1alpha1 import api_pb2 as api

from .merge import AdjustmentResult, UpdateResult
from .plugin import Plugin, PluginError

log = logging.getLogger(__name__)

SyncSource = Callable[[], Awaitable[tuple[list[api.PodSandbox], list[api.Container]]]]
Updater = Callable[[list[api.ContainerUpdate]], Awaitable[list[api.ContainerUpdate]]]
Evictor = Callable[[list[api.ContainerEviction]], Awaitable[None]]
#: A notification's pod or container, built only when a plugin is subscribed to it (under the
#: lock, as containerd converts them): with no plugin listening, nothing is converted.
PodOf = Callable[[], api.PodSandbox]
ContainerOf = Callable[[], api.Container]

_LAUNCHABLE = re.compile(r"^(\d\d)-(.+)$")


@dataclass
class NriSettings:
    socket_path: str = "/var/run/nri/nri.sock"
    plugin_path: str = "/opt/nri/plugins"
    plugin_config_path: str = "/etc/nri/conf.d"
    registration_timeout: float = 5.0
    request_timeout: float = 2.0
    disable_connections: bool = False


@dataclass
class _Pending:
    pods: dict[str, api.PodSandbox] = field(default_factory=dict)
    containers: dict[str, api.Container] = field(default_factory=dict)


class NriHost:
    """Hosts NRI plugins for one runtime; every lifecycle hook is a method here."""

    def __init__(self, settings: NriSettings, *, runtime_name: str, runtime_version: str,
                 sync_source: SyncSource, updater: Updater, evictor: Evictor) -> None:  # fmt: skip
        self.settings = settings
        self._runtime = (runtime_name, runtime_version)
        self._sync_source = sync_source
        self._updater = updater
        self._evictor = evictor
        self._plugins: list[Plugin] = []
        self._lock = asyncio.Lock()
        self._pending = _Pending()
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- plugins

    @property
    def plugins(self) -> list[Plugin]:
        return [p for p in self._plugins if not p.closed]

    async def start(self) -> None:
        if not self.settings.disable_connections and _served_elsewhere(self.settings.socket_path):
            log.error("NRI: %s is served by another process (containerd's own NRI?); external plugins "
                      "cannot reach cri-runtime until it is freed or nri.socket_path changes",
                      self.settings.socket_path)
        elif not self.settings.disable_connections:
            path = Path(self.settings.socket_path)
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            old = os.umask(0o077)
            try:
                self._server = await asyncio.start_unix_server(self._accept, str(path))
            finally:
                os.umask(old)
            log.info("NRI: accepting plugins on %s", path)
        await self._launch_preinstalled()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.settings.socket_path)
        for plugin in self._plugins:
            plugin.close()
        self._plugins = []
        for task in list(self._tasks):
            task.cancel()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        plugin = Plugin(reader, writer, request_timeout=self.settings.request_timeout, on_updates=self._on_updates)
        self._spawn(self._admit(plugin))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _launch_preinstalled(self) -> None:
        directory = Path(self.settings.plugin_path)
        if not directory.is_dir():
            return
        for entry in sorted(directory.iterdir()):
            match = _LAUNCHABLE.match(entry.name)
            if not match or not entry.is_file() or not os.access(entry, os.X_OK):
                continue
            idx, base = match.groups()
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                process = await asyncio.create_subprocess_exec(
                    str(entry), pass_fds=(theirs.fileno(),), stdin=asyncio.subprocess.DEVNULL,
                    env={"NRI_PLUGIN_NAME": base, "NRI_PLUGIN_IDX": idx, "NRI_PLUGIN_SOCKET": str(theirs.fileno())})
            except OSError as exc:
                log.warning("NRI: cannot launch pre-installed plugin %s: %s", entry, exc)
                ours.close()
                continue
            finally:
                theirs.close()
            reader, writer = await asyncio.open_unix_connection(sock=ours)
            plugin = Plugin(reader, writer, request_timeout=self.settings.request_timeout,
                            on_updates=self._on_updates, launched=process)  # fmt: skip
            plugin.config = self._plugin_config(idx, base)
            await self._admit(plugin)

    def _plugin_config(self, idx: str, base: str) -> str:
        for name in (f"{idx}-{base}.conf", f"{base}.conf"):
            path = Path(self.settings.plugin_config_path) / name
            with contextlib.suppress(OSError):
                return path.read_text()
        return ""

    async def _admit(self, plugin: Plugin) -> None:
        """Registration, configuration and synchronisation; then the plugin receives events."""
        try:
            await asyncio.wait_for(asyncio.shield(plugin.registered), self.settings.registration_timeout)
            await plugin.configure(*self._runtime, registration_timeout=self.settings.registration_timeout)
            async with self._lock:
                pods, containers = await self._sync_source()
                pods = _merge(pods, self._pending.pods)
                containers = _merge(containers, self._pending.containers)
                # A plugin sets itself up for the whole node in Synchronize, so it gets the registration
                # time on top of a request's (containerd gives it a request's alone, and a plugin that
                # takes 2 s there is dropped: critest's Synchronize specs then lose containers).
                response = await plugin.call("Synchronize", api.SynchronizeRequest(pods=pods, containers=containers),
                                             api.SynchronizeResponse, fatal=True,
                                             timeout=self.settings.request_timeout + self.settings.registration_timeout)
                if plugin.closed:
                    raise PluginError(plugin.qualified_name, "Synchronize", "connection closed")
                if response.update:
                    await self._updater(list(response.update))
                self._plugins.append(plugin)
                self._plugins.sort(key=lambda p: (p.idx, p.name))
            log.info("NRI plugin %s synchronized (%d pods, %d containers) and subscribed to events 0x%x",
                     plugin.qualified_name, len(pods), len(containers), plugin.events)
        except TimeoutError:
            log.error("NRI: a plugin did not register within %gs; disconnected", self.settings.registration_timeout)
            plugin.close()
        except PluginError as exc:
            log.error("NRI: %s; disconnected", exc)
            plugin.close()

    async def _on_updates(self, plugin: Plugin, updates: list[api.ContainerUpdate],
                          evictions: list[api.ContainerEviction]) -> list[api.ContainerUpdate]:  # fmt: skip
        log.info("NRI plugin %s asks for %d container updates, %d evictions",
                 plugin.qualified_name, len(updates), len(evictions))
        failed = await self._updater(updates) if updates else []
        if evictions:
            await self._evictor(evictions)
        return failed

    # ---- what the runtime tells us about visibility

    def published(self, object_id: str) -> None:
        """The runtime now lists this pod or container itself (or gave up on it)."""
        self._pending.pods.pop(object_id, None)
        self._pending.containers.pop(object_id, None)

    # ---- pod events

    async def run_pod_sandbox(self, pod: api.PodSandbox) -> None:
        async with self._lock:
            await self._relay(api.RUN_POD_SANDBOX, "RunPodSandbox", lambda: api.RunPodSandboxRequest(pod=pod),
                              api.RunPodSandboxResponse)  # fmt: skip
            self._pending.pods[pod.id] = pod

    async def stop_pod_sandbox(self, pod: PodOf) -> None:
        async with self._lock:
            await self._relay(api.STOP_POD_SANDBOX, "StopPodSandbox", lambda: api.StopPodSandboxRequest(pod=pod()),
                              api.StopPodSandboxResponse)  # fmt: skip

    async def remove_pod_sandbox(self, pod_id: str, pod: PodOf) -> None:
        async with self._lock:
            self.published(pod_id)
            await self._relay(api.REMOVE_POD_SANDBOX, "RemovePodSandbox",
                              lambda: api.RemovePodSandboxRequest(pod=pod()), api.RemovePodSandboxResponse)

    async def update_pod_sandbox(self, pod: api.PodSandbox, overhead: api.LinuxResources | None,
                                 resources: api.LinuxResources | None) -> None:  # fmt: skip
        async with self._lock:
            await self._relay(api.UPDATE_POD_SANDBOX, "UpdatePodSandbox", lambda: api.UpdatePodSandboxRequest(
                pod=pod, overhead_linux_resources=overhead, linux_resources=resources), api.UpdatePodSandboxResponse)

    async def post_update_pod_sandbox(self, pod: PodOf) -> None:
        async with self._lock:
            await self._relay(api.POST_UPDATE_POD_SANDBOX, "PostUpdatePodSandbox",
                              lambda: api.PostUpdatePodSandboxRequest(pod=pod()), api.PostUpdatePodSandboxResponse)

    # ---- container events

    async def create_container(self, pod: api.PodSandbox, container: api.Container) -> AdjustmentResult:
        """Collects every plugin's adjustment and updates; conflicting changes fail the call."""
        async with self._lock:
            result = AdjustmentResult(container)
            request = api.CreateContainerRequest(pod=pod, container=container)
            for plugin in self._subscribed(api.CREATE_CONTAINER):
                response = await plugin.call("CreateContainer", request, api.CreateContainerResponse)
                result.apply(plugin.qualified_name, response.adjust, list(response.update), list(response.evict))
            self._pending.containers[container.id] = result.adjusted_container()
            return result

    async def post_create_container(self, pod: PodOf, container: ContainerOf) -> None:
        async with self._lock:
            await self._relay(api.POST_CREATE_CONTAINER, "PostCreateContainer",
                              lambda: api.PostCreateContainerRequest(pod=pod(), container=container()),
                              api.PostCreateContainerResponse)  # fmt: skip

    async def start_container(self, pod: PodOf, container: ContainerOf) -> None:
        async with self._lock:
            await self._relay(api.START_CONTAINER, "StartContainer",
                              lambda: api.StartContainerRequest(pod=pod(), container=container()),
                              api.StartContainerResponse)  # fmt: skip

    async def post_start_container(self, pod: PodOf, container: ContainerOf) -> None:
        async with self._lock:
            await self._relay(api.POST_START_CONTAINER, "PostStartContainer",
                              lambda: api.PostStartContainerRequest(pod=pod(), container=container()),
                              api.PostStartContainerResponse)  # fmt: skip

    async def update_container(self, pod: api.PodSandbox, container: api.Container,
                               resources: api.LinuxResources) -> UpdateResult:  # fmt: skip
        async with self._lock:
            result = UpdateResult(container.id, resources)
            request = api.UpdateContainerRequest(pod=pod, container=container, linux_resources=resources)
            for plugin in self._subscribed(api.UPDATE_CONTAINER):
                response = await plugin.call("UpdateContainer", request, api.UpdateContainerResponse)
                result.apply(plugin.qualified_name, list(response.update), list(response.evict))
            return result

    async def post_update_container(self, pod: PodOf, container: ContainerOf) -> None:
        async with self._lock:
            await self._relay(api.POST_UPDATE_CONTAINER, "PostUpdateContainer",
                              lambda: api.PostUpdateContainerRequest(pod=pod(), container=container()),
                              api.PostUpdateContainerResponse)  # fmt: skip

    async def stop_container(self, pod: PodOf, container: ContainerOf) -> list[api.ContainerUpdate]:
        async with self._lock:
            responses = await self._relay(api.STOP_CONTAINER, "StopContainer",
                                          lambda: api.StopContainerRequest(pod=pod(), container=container()),
                                          api.StopContainerResponse)  # fmt: skip
            return [update for response in responses for update in response.update]

    async def remove_container(self, container_id: str, pod: PodOf, container: ContainerOf) -> None:
        async with self._lock:
            self.published(container_id)
            await self._relay(api.REMOVE_CONTAINER, "RemoveContainer",
                              lambda: api.RemoveContainerRequest(pod=pod(), container=container()),
                              api.RemoveContainerResponse)  # fmt: skip

    # ---- helpers

    def _subscribed(self, event: int) -> list[Plugin]:
        self._plugins = [p for p in self._plugins if not p.closed]
        return [p for p in self._plugins if p.subscribed(event)]

    async def _relay(self, event: int, method: str, build: Callable[[], object], response_type: type) -> list[Any]:
        """Every subscribed plugin's response, in index order; the request is built only if there is one."""
        plugins = self._subscribed(event)
        if not plugins:
            return []
        request = build()
        return [await plugin.call(method, request, response_type) for plugin in plugins]  # type: ignore[arg-type]


def _served_elsewhere(path: str) -> bool:
    """A live listener already owns the socket: never take it over (containerd removes it blindly)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _merge(visible: list[api.PodSandbox] | list[api.Container], pending: dict) -> list:  # type: ignore[type-arg]
    seen = {item.id for item in visible}
    return [*visible, *(item for key, item in pending.items() if key not in seen)]
