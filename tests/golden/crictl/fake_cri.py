"""An empty CRI endpoint for the golden cases: a fixed version, no pods, containers or images.

Empty listings keep the recorded output independent of time and machine while every command
still gets past connecting (so `rm` without IDs reaches its own argument check, as upstream's does).
RPCs it does not implement answer UNIMPLEMENTED, which both clients print as one error line.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc

from cri_protos.runtime.v1 import api_pb2, api_pb2_grpc


class EmptyRuntime(api_pb2_grpc.RuntimeServiceServicer):
    def Version(self, request: Any, context: Any) -> Any:
        return api_pb2.VersionResponse(version="0.1.0", runtime_name="golden", runtime_version="1.0",
                                       runtime_api_version="v1")  # fmt: skip

    def Status(self, request: Any, context: Any) -> Any:
        conditions = [api_pb2.RuntimeCondition(type=t, status=True) for t in ("RuntimeReady", "NetworkReady")]
        return api_pb2.StatusResponse(status=api_pb2.RuntimeStatus(conditions=conditions))

    def RuntimeConfig(self, request: Any, context: Any) -> Any:
        return api_pb2.RuntimeConfigResponse(linux=api_pb2.LinuxRuntimeConfiguration(cgroup_driver=api_pb2.CGROUPFS))

    def ListContainers(self, request: Any, context: Any) -> Any:
        return api_pb2.ListContainersResponse()

    def ListPodSandbox(self, request: Any, context: Any) -> Any:
        return api_pb2.ListPodSandboxResponse()

    def ListContainerStats(self, request: Any, context: Any) -> Any:
        return api_pb2.ListContainerStatsResponse()

    def ListPodSandboxStats(self, request: Any, context: Any) -> Any:
        return api_pb2.ListPodSandboxStatsResponse()

    def ListMetricDescriptors(self, request: Any, context: Any) -> Any:
        return api_pb2.ListMetricDescriptorsResponse()

    def ListPodSandboxMetrics(self, request: Any, context: Any) -> Any:
        return api_pb2.ListPodSandboxMetricsResponse()


class EmptyImages(api_pb2_grpc.ImageServiceServicer):
    def ListImages(self, request: Any, context: Any) -> Any:
        return api_pb2.ListImagesResponse()

    def ImageFsInfo(self, request: Any, context: Any) -> Any:
        return api_pb2.ImageFsInfoResponse()


@contextmanager
def empty_cri() -> Iterator[str]:
    """Serve the empty CRI on a temporary unix socket; yields its `unix://` endpoint."""
    tmp = tempfile.mkdtemp(prefix="crictl-golden-cri-")
    sock = os.path.join(tmp, "cri.sock")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    api_pb2_grpc.add_RuntimeServiceServicer_to_server(EmptyRuntime(), server)
    api_pb2_grpc.add_ImageServiceServicer_to_server(EmptyImages(), server)
    server.add_insecure_port("unix:" + sock)
    server.start()
    try:
        yield "unix://" + sock
    finally:
        server.stop(None).wait()
        if os.path.exists(sock):
            os.unlink(sock)
        os.rmdir(tmp)
