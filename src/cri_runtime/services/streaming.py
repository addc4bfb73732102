"""Exec, Attach and PortForward RPCs: validate, then hand out a streaming URL.

The streams themselves run on the streaming server; the RPC only checks that
the target exists and can be reached, and caches the request under a
single-use token.
"""

from __future__ import annotations

from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors
from cri_runtime.containers.manager import ContainerManager
from cri_runtime.containers.model import RUNNING
from cri_runtime.rpc import ServicerContext
from cri_runtime.sandbox.manager import SandboxManager
from cri_runtime.services.error_mapping import unary
from cri_runtime.streaming import backend as requests
from cri_runtime.streaming.server import StreamingServer
from cri_runtime.validation import check


class StreamingRpcs:
    """Mixin for the runtime servicer; needs `containers`, `sandboxes`, `streaming`."""

    containers: ContainerManager
    sandboxes: SandboxManager
    streaming: StreamingServer

    async def wait_recovered(self) -> None:
        raise NotImplementedError

    def _running_container(self, container_id: str, what: str) -> str:
        if not container_id:
            raise errors.InvalidArgument(f"{what}: container_id must not be empty")
        container = self.containers.get(container_id)
        if container.state != RUNNING:
            raise errors.FailedPrecondition(f"{what}: container {container.id} is not running ({container.state})")
        return container.id

    @unary
    async def Exec(self, request: api_pb2.ExecRequest, context: ServicerContext) -> api_pb2.ExecResponse:
        check(request)
        cid = self._running_container(request.container_id, "Exec")
        req = requests.ExecRequest(container_id=cid, cmd=list(request.cmd), tty=request.tty, stdin=request.stdin,
                                   stdout=request.stdout, stderr=request.stderr)
        return api_pb2.ExecResponse(url=self.streaming.request_url("exec", req))

    @unary
    async def Attach(self, request: api_pb2.AttachRequest,
                     context: ServicerContext) -> api_pb2.AttachResponse:
        cid = self._running_container(request.container_id, "Attach")
        req = requests.AttachRequest(container_id=cid, tty=request.tty, stdin=request.stdin,
                                     stdout=request.stdout, stderr=request.stderr)
        return api_pb2.AttachResponse(url=self.streaming.request_url("attach", req))

    @unary
    async def PortForward(self, request: api_pb2.PortForwardRequest,
                          context: ServicerContext) -> api_pb2.PortForwardResponse:
        if not request.pod_sandbox_id:
            raise errors.InvalidArgument("PortForward: pod_sandbox_id must not be empty")
        sandbox = self.sandboxes.get(request.pod_sandbox_id)
        if not sandbox.ready:
            raise errors.FailedPrecondition(f"PortForward: pod sandbox {sandbox.id} is not ready")
        req = requests.PortForwardRequest(pod_sandbox_id=sandbox.id, ports=list(request.port))
        return api_pb2.PortForwardResponse(url=self.streaming.request_url("portforward", req))
