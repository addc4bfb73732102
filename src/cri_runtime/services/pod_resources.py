"""RuntimeService.UpdatePodSandboxResources: resize a pod's cgroup, with NRI plugins around it."""

from __future__ import annotations

import asyncio

from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors
from cri_runtime.rpc import ServicerContext
from cri_runtime.sandbox.manager import SandboxManager
from cri_runtime.services.error_mapping import unary
from cri_runtime.stats.pod_resources import PodResources
from cri_runtime.validation import check


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
