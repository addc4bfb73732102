"""Wire stats, events and the server's own metrics to the managers and the server.

`build` is called by the RuntimeServicer (it owns the parts the RPCs use);
`attach` is called by the server after the servicers exist, to count image
pulls, track objects by state and serve /metrics when
`server.metrics_address` is set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from cri_runtime.config import Config
from cri_runtime.containers.manager import ContainerManager
from cri_runtime.containers.model import Container
from cri_runtime.events import container_events
from cri_runtime.events.hub import EventHub
from cri_runtime.metrics.http import MetricsHttpServer
from cri_runtime.metrics.server_metrics import SERVER, ServerMetrics
from cri_runtime.sandbox.manager import SandboxManager
from cri_runtime.sandbox.model import Sandbox
from cri_runtime.stats.collector import StatsCollector
from cri_runtime.stats.metrics_collector import MetricsCollector
from cri_runtime.stats.pod_resources import PodResources

log = logging.getLogger(__name__)


@dataclass
class RuntimeParts:
    stats: StatsCollector
    pod_metrics: MetricsCollector
    events: EventHub
    pod_resources: PodResources


def build(config: Config, containers: ContainerManager, sandboxes: SandboxManager) -> RuntimeParts:
    """Collectors and the event hub; makes the container manager publish lifecycle events."""
    stats = StatsCollector(containers.ctd, config.containerd.snapshotter, config.runtime.cgroup_driver,
                           containers.images.unpacker.snapshotter_root)
    hub = EventHub()
    parts = RuntimeParts(stats=stats, pod_metrics=MetricsCollector(stats), events=hub,
                         pod_resources=PodResources(config.runtime.cgroup_driver, stats.hierarchies))

    async def on_event(kind: str, container: Container) -> None:
        if hub.subscribers:  # building an event costs several statuses; skip when nobody listens
            hub.publish(container_events.build_event(kind, container, containers, sandboxes))
        if kind == "deleted":
            stats.forget(container.id)

    async def on_sandbox_event(kind: str, sandbox: Sandbox) -> None:
        if hub.subscribers:
            hub.publish(container_events.build_sandbox_event(kind, sandbox, containers, sandboxes))

    containers.on_event = on_event
    sandboxes.on_event = on_sandbox_event
    return parts


def count_pulls(images: Any, metrics: ServerMetrics = SERVER) -> None:
    """Count, time and size every pull of `images` (an ImageManager)."""
    if metrics.observe_pull not in images.pull_observers:
        images.pull_observers.append(metrics.observe_pull)


def attach(server: Any, metrics: ServerMetrics = SERVER) -> MetricsHttpServer | None:
    """Count pulls, track objects, start /metrics if configured; returns the HTTP server to stop."""
    count_pulls(server.images, metrics)
    metrics.track_objects(lambda: [c.state for c in server.containers.index],
                          lambda: [sb.status.state for sb in server.sandboxes.index])
    return serve_metrics(server.config.server.metrics_address, metrics)


def serve_metrics(address: str, metrics: ServerMetrics = SERVER) -> MetricsHttpServer | None:
    """Start the metrics HTTP server on `address` (none when empty); also used by a reload."""
    if not address:
        return None
    http = MetricsHttpServer(address, metrics.registry)
    http.start()
    return http
