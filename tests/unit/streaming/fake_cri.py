"""A tiny CRI endpoint for interop tests: Exec/Attach/PortForward answer with URLs of a real
StreamingServer; everything else is UNIMPLEMENTED (the stub default).  Lets the upstream
crictl binary drive our streaming server without containerd."""

from __future__ import annotations

import grpc

from cri_protos.runtime.v1 import api_pb2, api_pb2_grpc
from cri_runtime.streaming.backend import AttachRequest, ExecRequest, PortForwardRequest
from cri_runtime.streaming.server import StreamingServer


class FakeRuntime(api_pb2_grpc.RuntimeServiceServicer):  # type: ignore[misc]
    def __init__(self, streaming: StreamingServer) -> None:
        self.streaming = streaming

    async def Version(self, request: api_pb2.VersionRequest, context: object) -> api_pb2.VersionResponse:
        return api_pb2.VersionResponse(version="0.1.0", runtime_name="fake", runtime_version="0.1.0",
                                       runtime_api_version="v1")

    async def Exec(self, request: api_pb2.ExecRequest, context: object) -> api_pb2.ExecResponse:
        url = self.streaming.request_url("exec", ExecRequest(request.container_id, list(request.cmd), request.tty,
                                                             request.stdin, request.stdout, request.stderr))
        return api_pb2.ExecResponse(url=url)

    async def Attach(self, request: api_pb2.AttachRequest, context: object) -> api_pb2.AttachResponse:
        url = self.streaming.request_url("attach", AttachRequest(request.container_id, request.tty, request.stdin,
                                                                 request.stdout, request.stderr))
        return api_pb2.AttachResponse(url=url)

    async def PortForward(self, request: api_pb2.PortForwardRequest, context: object) -> api_pb2.PortForwardResponse:
        url = self.streaming.request_url("portforward", PortForwardRequest(request.pod_sandbox_id, list(request.port)))
        return api_pb2.PortForwardResponse(url=url)


class FakeImages(api_pb2_grpc.ImageServiceServicer):  # type: ignore[misc]
    """crictl checks that the image API answers before running any command."""

    async def ImageFsInfo(self, request: api_pb2.ImageFsInfoRequest, context: object) -> api_pb2.ImageFsInfoResponse:
        return api_pb2.ImageFsInfoResponse()

    async def ListImages(self, request: api_pb2.ListImagesRequest, context: object) -> api_pb2.ListImagesResponse:
        return api_pb2.ListImagesResponse()


async def start_fake_cri(socket_path: str, streaming: StreamingServer) -> grpc.aio.Server:
    server = grpc.aio.server()
    api_pb2_grpc.add_RuntimeServiceServicer_to_server(FakeRuntime(streaming), server)
    api_pb2_grpc.add_ImageServiceServicer_to_server(FakeImages(), server)
    server.add_insecure_port(f"unix://{socket_path}")
    await server.start()
    return server
