"""The composition root: builds every part of one cri-runtime process and wires them together.

This is the one file that shows what talks to what. Each part gets its
collaborators and hooks as constructor arguments. Where two parts need each
other — a pod's stop must stop its containers, yet the container manager is
built on the pod manager; NRI plugins ask for every pod and container, yet
the managers call NRI — the hook is a closure here that reaches the other
part when it is called, by which time `build` has made it.

Nothing here does I/O or starts a task: `CriServer.start` (server.py) takes
the socket, checks containerd and starts serving; recovery then runs the
steps registered here, in order.

In order: the containerd client, node facts, CNI, images (told of
removals and of live image events through closures) and the observers
(stats, event hub) that need nothing else; the NRI host; the pod
manager, then the container manager built on it; the task-event monitor
that routes exits to them; the streaming server; recovery's steps; and the
two servicers on top. Imports run the same way (tests/unit/test_layers.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from cri_protos.nri.v1alpha1 import api_pb2 as nri_api
from cri_runtime import __version__
from cri_runtime.config import Config
from cri_runtime.containerd.cached_state import RecordCache, TaskStateCache
from cri_runtime.containerd.connection import Containerd
from cri_runtime.containerd.events import EventMonitor, TaskEvent, TaskExit
from cri_runtime.containers.manager import ContainerManager
from cri_runtime.containers.model import Container
from cri_runtime.containers.streaming_backend import ContainerdStreamingBackend
from cri_runtime.images.manager import ImageManager
from cri_runtime.metrics.server_metrics import SERVER
from cri_runtime.network.manager import PodNetworkManager
from cri_runtime.node.containerd_probe import ContainerdProbe
from cri_runtime.node.facts import NodeFacts
from cri_runtime.nri import convert as nri_convert
from cri_runtime.nri.adaptation import NriHost, NriSettings
from cri_runtime.nri.hooks import NriHooks
from cri_runtime.recovery.gate import Recovery
from cri_runtime.recovery.orphans import OrphanCollector
from cri_runtime.sandbox.manager import SandboxManager
from cri_runtime.sandbox.model import Sandbox
from cri_runtime.services.images import ImageServicer
from cri_runtime.services.runtime import RuntimeServicer
from cri_runtime.stats import wiring as stats_wiring
from cri_runtime.streaming.server import StreamingServer


class NetworkProbe:
    """`NetworkReady` is true only while a valid CNI config is loaded."""

    def __init__(self, network: PodNetworkManager) -> None:
        self._network = network

    async def readiness(self) -> tuple[bool, str, str]:
        cond = self._network.status()
        return cond.ready, cond.reason, cond.message


@dataclass
class Runtime:
    """Every long-lived part of one process, built and wired by `build`."""

    config: Config
    ctd: Containerd
    node: NodeFacts
    network: PodNetworkManager
    images: ImageManager
    nri_host: NriHost | None
    sandboxes: SandboxManager
    containers: ContainerManager
    events: EventMonitor
    streaming: StreamingServer
    observers: stats_wiring.RuntimeParts
    recovery: Recovery
    runtime_service: RuntimeServicer
    image_service: ImageServicer


def build(config: Config) -> Runtime:
    """Construct and wire everything; the order is the dependency order."""
    ctd = Containerd(config.containerd.address, config.containerd.namespace,
                     connect_timeout=config.containerd.connect_timeout_seconds)
    node = NodeFacts(config)
    # host-local allocations outlive reboots, so the CNI cache (what DEL needs) must too.
    network = PodNetworkManager(config.network, os.path.join(config.server.root_dir, "cni-cache"))

    # The image manager is told of removals (the container manager drops its per-image caches) and
    # keeps its record copy only while image events reach it (the event monitor, built last).
    def forget_image(image_id: str) -> None:
        containers.forget_image(image_id)

    def events_live() -> bool:
        """containerd's events reach us now (the monitor, built last): what copies of its records rely on."""
        return events.subscribed.is_set()

    images = ImageManager(ctd, config.image, config.containerd.snapshotter, on_pull=SERVER.observe_pull,
                          on_removed=forget_image, image_events_live=events_live)
    observers = stats_wiring.build(config, ctd, images.unpacker.snapshotter_root)
    # containerd's pod and container records and pods' task states (verbose status), kept while its
    # events reach us.
    records = RecordCache(ctd, live=events_live)
    task_states = TaskStateCache(ctd, live=events_live)

    # The two managers and NRI need each other: these closures reach `sandboxes` and `containers`,
    # which exist by the time anything calls them (nothing is called before `build` returns).
    async def stop_containers(pod_id: str) -> None:
        await containers.stop_all_in_pod(pod_id)

    async def remove_containers(pod_id: str) -> None:
        await containers.remove_all_in_pod(pod_id)

    async def on_sandbox_event(kind: str, sandbox: Sandbox) -> None:
        await stats_wiring.publish_sandbox_event(observers, kind, sandbox, containers, sandboxes)

    async def on_container_event(kind: str, container: Container) -> None:
        await stats_wiring.publish_container_event(observers, kind, container, containers, sandboxes)

    async def nri_sync() -> tuple[list[nri_api.PodSandbox], list[nri_api.Container]]:
        """Every pod and container, for a plugin's Synchronize."""
        return ([nri_convert.pod(sandbox) for sandbox in sandboxes.index],
                [nri_convert.container(c) for c in containers.index])

    async def nri_update(updates: list[nri_api.ContainerUpdate]) -> list[nri_api.ContainerUpdate]:
        return await containers.apply_nri_updates(updates)

    async def nri_evict(evictions: list[nri_api.ContainerEviction]) -> None:
        await containers.evict_for_nri(evictions)

    # NRI: plugins see every pod and container event.
    nri_host = NriHost(NriSettings(
        socket_path=config.nri.socket_path, plugin_path=config.nri.plugin_path,
        plugin_config_path=config.nri.plugin_config_path,
        registration_timeout=config.nri.plugin_registration_timeout,
        request_timeout=config.nri.plugin_request_timeout, disable_connections=config.nri.disable_connections),
        runtime_name="cri-runtime", runtime_version=__version__, sync_source=nri_sync,
        updater=nri_update, evictor=nri_evict) if config.nri.enable else None
    nri = NriHooks(nri_host, apply_updates=nri_update)

    sandboxes = SandboxManager(config, ctd, network, images.ensure_image, node, nri,
                               stop_containers=stop_containers, remove_containers=remove_containers,
                               on_event=on_sandbox_event, records=records, task_states=task_states)
    containers = ContainerManager(config, ctd, sandboxes, images, node, nri, on_event=on_container_event,
                                  records=records)
    stats_wiring.track_objects(containers, sandboxes)

    async def on_task_event(event: TaskEvent) -> None:
        """Route a task event to the pod or container it belongs to."""
        if isinstance(event, TaskExit):
            if not event.is_init:
                return
            if event.container_id in sandboxes.index:
                await sandboxes.on_task_exit(event.container_id, event.exited_at_ns)
            elif event.container_id in containers.index:
                await containers.on_task_exit(event.container_id, event.exit_status, event.exited_at_ns)
        elif event.container_id in containers.index:
            await containers.on_oom(event.container_id)

    async def resync() -> None:
        """After a gap in the event stream: catch up on exits we missed."""
        await sandboxes.resync()
        await containers.resync()

    events = EventMonitor(ctd, on_task_event, resync, on_image_change=images.store.on_event,
                          on_container_change=records.on_event, on_task_change=task_states.on_event)
    streaming = StreamingServer.from_config(config.streaming, ContainerdStreamingBackend(containers))

    # Start-up recovery, in this order: pods, their containers, then what interrupted operations left.
    orphans = OrphanCollector(config, ctd, network, sandboxes, containers)
    recovery = Recovery(config.server.recovery_timeout_seconds, [
        ("pod sandboxes", sandboxes.recover),
        ("containers", containers.recover),
        ("leftovers of interrupted operations", orphans.collect),
    ])

    runtime_service = RuntimeServicer(config, recovery, ContainerdProbe(ctd), NetworkProbe(network), network,
                                      sandboxes, containers, streaming, observers)
    image_service = ImageServicer(images, recovery)
    return Runtime(config=config, ctd=ctd, node=node, network=network, images=images, nri_host=nri_host,
                   sandboxes=sandboxes, containers=containers, events=events, streaming=streaming,
                   observers=observers, recovery=recovery, runtime_service=runtime_service,
                   image_service=image_service)
