"""RuntimeService RPCs about resource usage: container and pod stats, CRI metrics.

Thin: select objects by the request's filter, delegate to the collectors in
`cri_runtime.stats`, batch the streaming variants.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors
from cri_runtime.containers.manager import ContainerManager
from cri_runtime.rpc import ServicerContext
from cri_runtime.sandbox.manager import SandboxManager
from cri_runtime.services.error_mapping import server_stream, unary
from cri_runtime.services.list_streams import STATS_BATCH_SIZE, batches
from cri_runtime.stats import descriptors, selection
from cri_runtime.stats.collector import StatsCollector
from cri_runtime.stats.metrics_collector import MetricsCollector


class StatsRpcs:
    """Mixin: container/pod stats and CRI metrics; needs `containers`, `sandboxes`, `stats`, `pod_metrics`."""

    containers: ContainerManager
    sandboxes: SandboxManager
    stats: StatsCollector
    pod_metrics: MetricsCollector

    async def wait_recovered(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------ containers

    async def _container_stats(self, flt: api_pb2.ContainerStatsFilter | None,
                               context: ServicerContext) -> list[api_pb2.ContainerStats]:
        chosen = selection.select_containers(self.containers.index, flt, self.sandboxes.index)
        return await self.stats.container_stats(chosen, context.time_remaining())

    @unary
    async def ContainerStats(
        self, request: api_pb2.ContainerStatsRequest, context: ServicerContext
    ) -> api_pb2.ContainerStatsResponse:
        container = self.containers.get(request.container_id)
        answered = await self.stats.container_stats([container], context.time_remaining())
        if not answered:
            raise errors.Unavailable(f"ContainerStats: the shim of container {container.id} does not answer")
        return api_pb2.ContainerStatsResponse(stats=answered[0])

    @unary
    async def ListContainerStats(
        self, request: api_pb2.ListContainerStatsRequest, context: ServicerContext
    ) -> api_pb2.ListContainerStatsResponse:
        flt = request.filter if request.HasField("filter") else None
        return api_pb2.ListContainerStatsResponse(stats=await self._container_stats(flt, context))

    @server_stream
    async def StreamContainerStats(
        self, request: api_pb2.StreamContainerStatsRequest, context: ServicerContext
    ) -> AsyncIterator[api_pb2.StreamContainerStatsResponse]:
        flt = request.filter if request.HasField("filter") else None
        for batch in batches(await self._container_stats(flt, context), STATS_BATCH_SIZE):
            yield api_pb2.StreamContainerStatsResponse(container_stats=batch)

    # ------------------------------------------------------------------ pods

    async def _pod_stats(self, flt: api_pb2.PodSandboxStatsFilter | None,
                         context: ServicerContext) -> list[api_pb2.PodSandboxStats]:
        pods = selection.select_pods(self.sandboxes.index, flt)
        return await self.stats.pod_stats(
            [(sb, selection.containers_of(self.containers.index, sb.id)) for sb in pods], context.time_remaining())

    @unary
    async def PodSandboxStats(
        self, request: api_pb2.PodSandboxStatsRequest, context: ServicerContext
    ) -> api_pb2.PodSandboxStatsResponse:
        sandbox = self.sandboxes.get(request.pod_sandbox_id)
        if not sandbox.ready:
            raise errors.FailedPrecondition(f"pod sandbox {sandbox.id} is not ready: it has no running cgroup "
                                            "or network namespace to measure")
        answered = await self.stats.pod_stats(
            [(sandbox, selection.containers_of(self.containers.index, sandbox.id))], context.time_remaining())
        if not answered:
            raise errors.Unavailable(f"PodSandboxStats: the shim of pod sandbox {sandbox.id} does not answer")
        return api_pb2.PodSandboxStatsResponse(stats=answered[0])

    @unary
    async def ListPodSandboxStats(
        self, request: api_pb2.ListPodSandboxStatsRequest, context: ServicerContext
    ) -> api_pb2.ListPodSandboxStatsResponse:
        flt = request.filter if request.HasField("filter") else None
        return api_pb2.ListPodSandboxStatsResponse(stats=await self._pod_stats(flt, context))

    @server_stream
    async def StreamPodSandboxStats(
        self, request: api_pb2.StreamPodSandboxStatsRequest, context: ServicerContext
    ) -> AsyncIterator[api_pb2.StreamPodSandboxStatsResponse]:
        flt = request.filter if request.HasField("filter") else None
        for batch in batches(await self._pod_stats(flt, context), STATS_BATCH_SIZE):
            yield api_pb2.StreamPodSandboxStatsResponse(pod_sandbox_stats=batch)

    # --------------------------------------------------------------- metrics

    @unary
    async def ListMetricDescriptors(
        self, request: api_pb2.ListMetricDescriptorsRequest, context: ServicerContext
    ) -> api_pb2.ListMetricDescriptorsResponse:
        return api_pb2.ListMetricDescriptorsResponse(descriptors=descriptors.messages())

    async def _pod_sandbox_metrics(self) -> list[api_pb2.PodSandboxMetrics]:
        pods = selection.select_pods(self.sandboxes.index, None)
        return await self.pod_metrics.collect(
            [(sb, selection.containers_of(self.containers.index, sb.id)) for sb in pods])

    @unary
    async def ListPodSandboxMetrics(
        self, request: api_pb2.ListPodSandboxMetricsRequest, context: ServicerContext
    ) -> api_pb2.ListPodSandboxMetricsResponse:
        return api_pb2.ListPodSandboxMetricsResponse(pod_metrics=await self._pod_sandbox_metrics())

    @server_stream
    async def StreamPodSandboxMetrics(
        self, request: api_pb2.StreamPodSandboxMetricsRequest, context: ServicerContext
    ) -> AsyncIterator[api_pb2.StreamPodSandboxMetricsResponse]:
        for batch in batches(await self._pod_sandbox_metrics(), STATS_BATCH_SIZE):
            yield api_pb2.StreamPodSandboxMetricsResponse(pod_sandbox_metrics=batch)
