"""RuntimeService RPCs of containers (thin: validate, delegate, build the reply)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors
from cri_runtime.completion import run_to_completion
from cri_runtime.containers import exec as container_exec
from cri_runtime.containers.manager import ContainerManager
from cri_runtime.containers.model import RUNNING
from cri_runtime.rpc import Serialized, ServicerContext
from cri_runtime.services.error_mapping import unary
from cri_runtime.validation import check

#: Seconds before the caller's deadline at which ExecSync stops draining output to answer in time.
DRAIN_REPLY_MARGIN = 1.0


class ContainerRpcs:
    """Mixin for the runtime servicer; needs `containers`."""

    containers: ContainerManager

    async def wait_recovered(self) -> None:
        raise NotImplementedError

    @unary
    async def CreateContainer(
        self, request: api_pb2.CreateContainerRequest, context: ServicerContext
    ) -> api_pb2.CreateContainerResponse:
        check(request)
        return api_pb2.CreateContainerResponse(container_id=await self.containers.create(request))

    @unary
    async def StartContainer(
        self, request: api_pb2.StartContainerRequest, context: ServicerContext
    ) -> api_pb2.StartContainerResponse:
        check(request)
        await self.containers.start(request.container_id)
        return api_pb2.StartContainerResponse()

    @unary
    async def StopContainer(
        self, request: api_pb2.StopContainerRequest, context: ServicerContext
    ) -> api_pb2.StopContainerResponse:
        check(request)
        await run_to_completion(self.containers.stop(request.container_id, request.timeout))
        return api_pb2.StopContainerResponse()

    @unary
    async def RemoveContainer(
        self, request: api_pb2.RemoveContainerRequest, context: ServicerContext
    ) -> api_pb2.RemoveContainerResponse:
        check(request)
        await run_to_completion(self.containers.remove(request.container_id))
        return api_pb2.RemoveContainerResponse()

    @unary
    async def ListContainers(
        self, request: api_pb2.ListContainersRequest, context: ServicerContext
    ) -> Serialized:
        flt = request.filter if request.HasField("filter") else None
        return Serialized(self.containers.list_encoded(flt))

    @unary
    async def ContainerStatus(
        self, request: api_pb2.ContainerStatusRequest, context: ServicerContext
    ) -> api_pb2.ContainerStatusResponse:
        return await self.containers.status(request.container_id, request.verbose)

    @unary
    async def UpdateContainerResources(
        self, request: api_pb2.UpdateContainerResourcesRequest, context: ServicerContext
    ) -> api_pb2.UpdateContainerResourcesResponse:
        check(request)
        linux = request.linux if request.HasField("linux") else None
        await self.containers.update_resources(request.container_id, linux)
        return api_pb2.UpdateContainerResourcesResponse()

    @unary
    async def ReopenContainerLog(
        self, request: api_pb2.ReopenContainerLogRequest, context: ServicerContext
    ) -> api_pb2.ReopenContainerLogResponse:
        await self.containers.reopen_log(request.container_id)
        return api_pb2.ReopenContainerLogResponse()

    @unary
    async def ExecSync(
        self, request: api_pb2.ExecSyncRequest, context: ServicerContext
    ) -> api_pb2.ExecSyncResponse:
        check(request)
        container = self.containers.get(request.container_id)
        if container.state != RUNNING:
            raise errors.FailedPrecondition(f"container {container.id} is not running ({container.state})")
        left = context.time_remaining()
        reply_by = None if left is None else asyncio.get_running_loop().time() + left - DRAIN_REPLY_MARGIN
        result = await container_exec.exec_sync(
            self.containers.ctd, container.id, Path(self.containers.state) / container.id, list(request.cmd),
            float(request.timeout), self.containers.drain_exec_sync_io_timeout, reply_by)
        return api_pb2.ExecSyncResponse(stdout=result.stdout, stderr=result.stderr, exit_code=result.exit_code)
