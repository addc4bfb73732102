"""RuntimeService RPCs about resource usage: stats, metrics, pod resources, checkpoint.

Thin: select objects by the request's filter, delegate to the collectors in
`cri_runtime.stats`, batch the streaming variants.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator

from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors
from cri_runtime.containers.manager import ContainerManager
from cri_runtime.rpc import ServicerContext
from cri_runtime.sandbox.manager import SandboxManager
from cri_runtime.services.status import server_stream, unary
from cri_runtime.services.streams import STATS_BATCH_SIZE, batches
from cri_runtime.stats import descriptors, selection
from cri_runtime.stats.collector import StatsCollector
from cri_runtime.stats.metrics_collector import MetricsCollector
from cri_runtime.stats.pod_resources import PodResources
from cri_runtime.validation import check


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


class PodResourcesRpcs:
    """Mixin: UpdatePodSandboxResources; needs `sandboxes` and `pod_resources`."""

    sandboxes: SandboxManager
    pod_resources: PodResources

    async def wait_recovered(self) -> None:
        raise NotImplementedError

    @unary
    async def UpdatePodSandboxResources(
        self, request: api_pb2.UpdatePodSandboxResourcesRequest, context: ServicerContext
    ) -> api_pb2.UpdatePodSandboxResourcesResponse:
        check(request)
        sandbox = self.sandboxes.get(request.pod_sandbox_id)
        if not sandbox.ready:
            raise errors.FailedPrecondition(f"pod sandbox {sandbox.id} is not ready")
        overhead = request.overhead if request.HasField("overhead") else None
        resources = request.resources if request.HasField("resources") else None
        await self.sandboxes.nri.update_pod(sandbox, overhead, resources)
        await asyncio.to_thread(self.pod_resources.update, sandbox.id, sandbox.metadata.cgroup_parent,
                                overhead, resources)
        await self.sandboxes.nri.post_update_pod(sandbox)
        return api_pb2.UpdatePodSandboxResourcesResponse()


async def criu_problem() -> str:
    """Why CRIU cannot checkpoint on this host ("" when `criu check` passes)."""
    criu = shutil.which("criu")
    if criu is None:
        return "the criu binary is not installed"
    proc = await asyncio.create_subprocess_exec(criu, "check", stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return "`criu check` did not finish within 30s"
    if proc.returncode == 0 and b"Error" not in out:
        return ""
    lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.strip()]
    first_error = next((ln for ln in lines if "Error" in ln), lines[0] if lines else f"exit {proc.returncode}")
    return f"`criu check` fails on this host: {first_error.strip()}"


class CheckpointRpcs:
    """Mixin: CheckpointContainer — UNIMPLEMENTED, saying exactly why."""

    containers: ContainerManager
    _criu_problem: str | None = None

    async def wait_recovered(self) -> None:
        raise NotImplementedError

    @unary
    async def CheckpointContainer(
        self, request: api_pb2.CheckpointContainerRequest, context: ServicerContext
    ) -> api_pb2.CheckpointContainerResponse:
        self.containers.get(request.container_id)
        if self._criu_problem is None:
            type(self)._criu_problem = await criu_problem()
        reason = self._criu_problem or ("cri-runtime does not implement checkpointing yet (it needs containerd's "
                                        "Tasks.Checkpoint with runc and a checkpoint archive writer)")
        raise errors.Unimplemented(f"CheckpointContainer: {reason}")
