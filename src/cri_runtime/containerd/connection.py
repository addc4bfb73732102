"""One gRPC connection to containerd, with namespace and lease metadata.

Every call goes through `Containerd.call`, which attaches the
`containerd-namespace` header (and `containerd-lease` when asked) and turns
gRPC failures into domain errors. The connection is our own client's
(`grpc_client.aio`): a call after containerd restarted dials it again at
once, with no reconnect backoff to wait out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from google.protobuf import empty_pb2

from cri_protos.containerd.services.containers.v1 import containers_pb2
from cri_protos.containerd.services.content.v1 import content_pb2
from cri_protos.containerd.services.diff.v1 import diff_pb2
from cri_protos.containerd.services.events.v1 import events_pb2
from cri_protos.containerd.services.images.v1 import images_pb2
from cri_protos.containerd.services.introspection.v1 import introspection_pb2
from cri_protos.containerd.services.leases.v1 import leases_pb2
from cri_protos.containerd.services.namespaces.v1 import namespace_pb2
from cri_protos.containerd.services.snapshots.v1 import snapshots_pb2
from cri_protos.containerd.services.tasks.v1 import tasks_pb2
from cri_protos.containerd.services.version.v1 import version_pb2
from cri_runtime import errors, tracing
from cri_runtime.containerd.deadlines import default_timeout
from cri_runtime.containerd.errors import from_rpc_error
from cri_runtime.grpc_client.aio import FastChannel, Stub
from cri_runtime.grpc_client.status import RpcError, StatusCode

log = logging.getLogger(__name__)

T = TypeVar("T")

NAMESPACE_HEADER = "containerd-namespace"
LEASE_HEADER = "containerd-lease"
# Leases we create carry this label so an operator (and our recovery) can
# tell them apart from containerd's own; the expiry bounds a leak if we die.
LEASE_OWNER_LABEL = "io.cri-runtime/owner"
GC_EXPIRE_LABEL = "containerd.io/gc.expire"

Metadata = tuple[tuple[str, str], ...]


SPAN_NAME_ATTR = "cri_span_name"


def _name_method(method: Any, path: str) -> None:
    """Label a stub's method with its path (`containerd.services.tasks.v1.Tasks/Create`, as
    containerd's own client names its spans); tracing reads it, whatever the transport."""
    setattr(method, SPAN_NAME_ATTR, path)


def _stub(channel: FastChannel, module: Any, service: str) -> Stub:
    return Stub(channel, module.DESCRIPTOR.services_by_name[service], _name_method)


def _method_name(rpc: Any, action: str) -> str:
    """The span name of a containerd call: the method's path, else what the caller is doing."""
    return str(getattr(rpc, SPAN_NAME_ATTR, "") or action)


def _lease_request(purpose: str, expire_seconds: int) -> leases_pb2.CreateRequest:
    """A lease of ours for `purpose`, labelled to expire by itself if we die before deleting it."""
    expire = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + expire_seconds))
    return leases_pb2.CreateRequest(id=f"cri-runtime-{purpose}-{uuid.uuid4().hex[:12]}",
                                    labels={GC_EXPIRE_LABEL: expire, LEASE_OWNER_LABEL: purpose})


class Containerd:
    """A connection to containerd scoped to one namespace.

    The stubs are plain attributes so callers write
    ``await ctd.call(ctd.containers.Get, req, "get container")``.
    """

    def __init__(self, address: str, namespace: str, *, connect_timeout: float = 5.0) -> None:
        self.address = address
        self.namespace = namespace
        self.connect_timeout = connect_timeout
        self._tasks: set[asyncio.Future[None]] = set()
        target = address.removeprefix("unix://").removeprefix("unix:")
        self.fast = ch = FastChannel(target)
        self.containers = _stub(ch, containers_pb2, "Containers")
        self.content = _stub(ch, content_pb2, "Content")
        self.diff = _stub(ch, diff_pb2, "Diff")
        self.events = _stub(ch, events_pb2, "Events")
        self.images = _stub(ch, images_pb2, "Images")
        self.introspection = _stub(ch, introspection_pb2, "Introspection")
        self.leases = _stub(ch, leases_pb2, "Leases")
        self.namespaces = _stub(ch, namespace_pb2, "Namespaces")
        self.snapshots = _stub(ch, snapshots_pb2, "Snapshots")
        self.tasks = _stub(ch, tasks_pb2, "Tasks")
        self.version = _stub(ch, version_pb2, "Version")
        # Content.Write is a stream, but a blob held in memory goes in one COMMIT message with
        # its data: on the wire that is a unary call (containerd answers it twice over), so it
        # is made as one: one round trip, no stream set-up.
        self.content_write_once = self.fast.single_request_stream(
            "/containerd.services.content.v1.Content/Write",
            request_serializer=content_pb2.WriteContentRequest.SerializeToString,
            response_deserializer=content_pb2.WriteContentResponse.FromString)
        _name_method(self.content_write_once, "containerd.services.content.v1.Content/Write")

    def metadata(self, lease: str | None = None) -> Metadata:
        """gRPC metadata for a call in our namespace, optionally under a lease."""
        if lease:
            return ((NAMESPACE_HEADER, self.namespace), (LEASE_HEADER, lease))
        return ((NAMESPACE_HEADER, self.namespace),)

    async def call(
        self,
        rpc: Callable[..., Awaitable[T]],
        request: Any,
        action: str,
        *,
        lease: str | None = None,
        timeout: float | None = None,
    ) -> T:
        """Invoke a unary RPC; failures surface as `cri_runtime.errors` classes.

        A call into a shim (the Tasks service) without a `timeout` gets its own
        deadline (see `deadlines`), so one shim that does not answer cannot
        block its caller forever.
        """
        if timeout is None:
            timeout = default_timeout(rpc)
        if not tracing.enabled():
            try:
                return await rpc(request, metadata=self.metadata(lease), timeout=timeout)
            except RpcError as exc:
                raise from_rpc_error(exc, action) from None
        with tracing.span(_method_name(rpc, action), **{"rpc.system": "grpc", "containerd.action": action}):
            try:
                return await rpc(request, metadata=self.metadata(lease) + tracing.outgoing_metadata(),
                                 timeout=timeout)
            except RpcError as exc:
                raise from_rpc_error(exc, action) from None

    async def stream(self, rpc: Callable[..., Any], request: Any, action: str) -> AsyncIterator[Any]:
        """The messages of a server-streaming RPC, in order; failures surface as `cri_runtime.errors`
        classes, and a reader that stops early ends the call."""
        call = rpc(request, metadata=self.metadata())
        try:
            async for message in call:
                yield message
        except RpcError as exc:
            raise from_rpc_error(exc, action) from None
        finally:
            call.cancel()

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Block until containerd answers, or raise Unavailable after `timeout`."""
        deadline = timeout if timeout is not None else self.connect_timeout
        try:
            await self.version.Version(
                empty_pb2.Empty(), metadata=self.metadata(), timeout=deadline, wait_for_ready=True
            )
        except RpcError as exc:
            if exc.code() == StatusCode.DEADLINE_EXCEEDED:
                raise errors.Unavailable(
                    f"containerd at {self.address} did not answer within {deadline:g}s"
                ) from None
            raise from_rpc_error(exc, "containerd version") from None

    async def is_serving(self, timeout: float = 1.0) -> bool:
        """True when containerd answers a Version call right now (no waiting)."""
        try:
            await self.version.Version(empty_pb2.Empty(), metadata=self.metadata(), timeout=timeout)
        except RpcError:
            return False
        return True

    @contextlib.asynccontextmanager
    async def lease(self, purpose: str, *, expire_seconds: int = 3600) -> AsyncIterator[str]:
        """Hold a containerd lease for the block, so GC keeps what it references.

        The lease expires by itself if we are killed before deleting it.
        """
        req = _lease_request(purpose, expire_seconds)
        lease_id = req.id
        creating = asyncio.ensure_future(self.call(self.leases.Create, req, f"create lease for {purpose}"))
        try:
            await asyncio.shield(creating)
        except asyncio.CancelledError:
            # Cancelled while containerd may already have created it: delete it once created.
            self._background(self._delete_when_created(creating, lease_id))
            raise
        try:
            yield lease_id
        finally:
            # Shielded: a caller cancelled by its deadline must still release the lease.
            await asyncio.shield(self._delete_lease(lease_id))

    async def collect_garbage(self, purpose: str) -> None:
        """Run containerd's garbage collection now and wait for it to finish.

        containerd has no call for that alone; deleting a lease synchronously runs it
        (an empty lease made for the purpose, which expires by itself if we die between).
        """
        req = _lease_request("gc", 3600)
        await self.call(self.leases.Create, req, f"create lease for {purpose}")
        await self.call(self.leases.Delete, leases_pb2.DeleteRequest(id=req.id, sync=True),
                        f"collect garbage for {purpose}")

    async def _delete_when_created(self, creating: asyncio.Future[Any], lease_id: str) -> None:
        # Delete whatever became of the creation (failed, or itself cut short, containerd may still
        # have made the lease): a lease that is not there is NotFound, which is fine.
        with contextlib.suppress(BaseException):
            await creating
        with contextlib.suppress(Exception):
            await self._delete_lease(lease_id)

    def _background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _delete_lease(self, lease_id: str) -> None:
        try:
            await self.call(self.leases.Delete, leases_pb2.DeleteRequest(id=lease_id), "delete lease")
        except errors.NotFound:
            pass
        except errors.CriError as exc:
            log.warning("lease %s not deleted (it will expire): %s", lease_id, exc)

    async def settled(self) -> None:
        """Wait for the work left in the background so far: deleting a lease whose creation a
        cancelled caller left in flight (it lands, then goes, a moment after the caller is gone)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        await self.fast.close()
