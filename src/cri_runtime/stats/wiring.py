"""The observers of the managers: stats collectors, the event hub, the server's own metrics.

`build` makes the parts the stats and events RPCs use; the composition root
(`cri_runtime.composition`) hands them to the RuntimeServicer and routes the
managers' lifecycle events to `publish_container_event` /
`publish_sandbox_event`. `serve_metrics` is called by the server at start
and on a reload that changes `server.metrics_address`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cri_runtime.config import Config
from cri_runtime.containerd.connection import Containerd
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


def build(config: Config, ctd: Containerd, snapshotter_root: Callable[[], Awaitable[str]]) -> RuntimeParts:
    """Collectors and the event hub (no I/O: cgroup hierarchies are read on first use)."""
    stats = StatsCollector(ctd, config.containerd.snapshotter, config.runtime.cgroup_driver, snapshotter_root)
    return RuntimeParts(stats=stats, pod_metrics=MetricsCollector(stats), events=EventHub(),
                        pod_resources=PodResources(config.runtime.cgroup_driver, stats.hierarchies))


async def publish_container_event(parts: RuntimeParts, kind: str, container: Container,
                                  containers: ContainerManager, sandboxes: SandboxManager) -> None:
    """A container's lifecycle event: to GetContainerEvents subscribers; a deleted one leaves the stats."""
    if parts.events.subscribers:  # building an event costs several statuses; skip when nobody listens
        parts.events.publish(container_events.build_event(kind, container, containers, sandboxes))
    if kind == "deleted":
        parts.stats.forget(container.id)


async def publish_sandbox_event(parts: RuntimeParts, kind: str, sandbox: Sandbox,
                                containers: ContainerManager, sandboxes: SandboxManager) -> None:
    if parts.events.subscribers:
        parts.events.publish(container_events.build_sandbox_event(kind, sandbox, containers, sandboxes))


def track_objects(containers: ContainerManager, sandboxes: SandboxManager, metrics: ServerMetrics = SERVER) -> None:
    """Count containers and pods by state at scrape time."""
    metrics.track_objects(lambda: [c.state for c in containers.index],
                          lambda: [sb.status.state for sb in sandboxes.index])


def serve_metrics(address: str, metrics: ServerMetrics = SERVER) -> MetricsHttpServer | None:
    """Start the metrics HTTP server on `address` (none when empty); also used by a reload."""
    if not address:
        return None
    http = MetricsHttpServer(address, metrics.registry)
    http.start()
    return http
