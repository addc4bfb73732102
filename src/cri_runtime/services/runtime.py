"""The RuntimeService servicer, composed of one mixin per RPC family.

Each family (runtime info, pod sandboxes, containers, streaming, stats …)
lives in its own module; this class only holds the dependencies the
composition root (`cri_runtime.composition`) hands it.
RPCs no family implements yet answer UNIMPLEMENTED naming the RPC.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.config import Config
from cri_runtime.containers.manager import ContainerManager
from cri_runtime.network.manager import PodNetworkManager
from cri_runtime.node.conditions import Probe
from cri_runtime.recovery.gate import Recovery
from cri_runtime.sandbox.manager import SandboxManager
from cri_runtime.services import unimplemented
from cri_runtime.services.checkpoint import CheckpointRpcs
from cri_runtime.services.containers import ContainerRpcs
from cri_runtime.services.events import EventRpcs
from cri_runtime.services.list_streams import ListStreamRpcs
from cri_runtime.services.pod_resources import PodResourcesRpcs
from cri_runtime.services.runtime_info import RuntimeInfoRpcs
from cri_runtime.services.sandboxes import SandboxRpcs
from cri_runtime.services.stats import StatsRpcs
from cri_runtime.services.streaming import StreamingRpcs
from cri_runtime.stats.wiring import RuntimeParts
from cri_runtime.streaming.server import StreamingServer


class RuntimeServicer(RuntimeInfoRpcs, SandboxRpcs, ContainerRpcs, StreamingRpcs, ListStreamRpcs, StatsRpcs, EventRpcs,
                      PodResourcesRpcs, CheckpointRpcs):
    """runtime.v1.RuntimeService backed by containerd."""

    def __init__(self, config: Config, recovery: Recovery, runtime_probe: Probe, network_probe: Probe,
                 network: PodNetworkManager, sandboxes: SandboxManager, containers: ContainerManager,
                 streaming: StreamingServer, observers: RuntimeParts) -> None:
        self.config = config
        self.recovery = recovery
        self.runtime_probe = runtime_probe
        self.network_probe = network_probe
        self.network = network
        self.sandboxes = sandboxes
        self.containers = containers
        self.node = containers.node
        self.streaming = streaming
        self.stats = observers.stats
        self.pod_metrics = observers.pod_metrics
        self.container_events = observers.events
        self.pod_resources = observers.pod_resources

    async def wait_recovered(self) -> None:
        await self.recovery.wait_recovered()

    def extra_info(self) -> dict[str, Any]:
        return {"recovery": asdict(self.recovery.report)}


unimplemented.fill(RuntimeServicer, api_pb2.DESCRIPTOR.services_by_name["RuntimeService"])
