"""Streaming variants of the List* RPCs: the same result, sent in batches.

The CRI asks for non-empty batches, each object exactly once, then end of
stream (an empty result is a stream with no message). Batches keep each
message far below kubelet's 16 MiB limit on nodes with many objects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TypeVar

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.containers.manager import ContainerManager
from cri_runtime.rpc import ServicerContext
from cri_runtime.sandbox.manager import SandboxManager
from cri_runtime.services.error_mapping import server_stream

T = TypeVar("T")

# Objects per message. A PodSandbox or Container is well under 1 KiB with
# typical labels; 500 keeps a batch around 0.5 MiB even with large annotations.
LIST_BATCH_SIZE = 500
# Stats messages are larger (a pod carries all its containers' stats).
STATS_BATCH_SIZE = 100


def batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Non-empty consecutive slices of at most `size` items (none for an empty input)."""
    if size <= 0:
        raise ValueError("batch size must be positive")
    for start in range(0, len(items), size):
        yield items[start:start + size]


class ListStreamRpcs:
    """Mixin: StreamPodSandboxes and StreamContainers (stats streams live with the stats RPCs)."""

    sandboxes: SandboxManager
    containers: ContainerManager

    async def wait_recovered(self) -> None:
        raise NotImplementedError

    @server_stream
    async def StreamPodSandboxes(
        self, request: api_pb2.StreamPodSandboxesRequest, context: ServicerContext
    ) -> AsyncIterator[api_pb2.StreamPodSandboxesResponse]:
        flt = request.filter if request.HasField("filter") else None
        for batch in batches(self.sandboxes.list(flt), LIST_BATCH_SIZE):
            yield api_pb2.StreamPodSandboxesResponse(pod_sandboxes=batch)

    @server_stream
    async def StreamContainers(
        self, request: api_pb2.StreamContainersRequest, context: ServicerContext
    ) -> AsyncIterator[api_pb2.StreamContainersResponse]:
        flt = request.filter if request.HasField("filter") else None
        for batch in batches(self.containers.list(flt), LIST_BATCH_SIZE):
            yield api_pb2.StreamContainersResponse(containers=batch)
