"""RuntimeService RPCs of pod sandboxes (thin: validate, delegate, build the reply)."""

from __future__ import annotations

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.completion import run_to_completion
from cri_runtime.rpc import Serialized, ServicerContext
from cri_runtime.sandbox.manager import SandboxManager
from cri_runtime.services.error_mapping import unary
from cri_runtime.validation import check


class SandboxRpcs:
    """Mixin for the runtime servicer; needs `sandboxes`."""

    sandboxes: SandboxManager

    async def wait_recovered(self) -> None:
        raise NotImplementedError

    @unary
    async def RunPodSandbox(
        self, request: api_pb2.RunPodSandboxRequest, context: ServicerContext
    ) -> api_pb2.RunPodSandboxResponse:
        check(request)
        return api_pb2.RunPodSandboxResponse(pod_sandbox_id=await self.sandboxes.run(request))

    @unary
    async def StopPodSandbox(
        self, request: api_pb2.StopPodSandboxRequest, context: ServicerContext
    ) -> api_pb2.StopPodSandboxResponse:
        await run_to_completion(self.sandboxes.stop(request.pod_sandbox_id))
        return api_pb2.StopPodSandboxResponse()

    @unary
    async def RemovePodSandbox(
        self, request: api_pb2.RemovePodSandboxRequest, context: ServicerContext
    ) -> api_pb2.RemovePodSandboxResponse:
        await run_to_completion(self.sandboxes.remove(request.pod_sandbox_id))
        return api_pb2.RemovePodSandboxResponse()

    @unary
    async def PodSandboxStatus(
        self, request: api_pb2.PodSandboxStatusRequest, context: ServicerContext
    ) -> api_pb2.PodSandboxStatusResponse:
        return await self.sandboxes.status(request.pod_sandbox_id, request.verbose)

    @unary
    async def ListPodSandbox(
        self, request: api_pb2.ListPodSandboxRequest, context: ServicerContext
    ) -> Serialized:
        flt = request.filter if request.HasField("filter") else None
        return Serialized(self.sandboxes.list_encoded(flt))
