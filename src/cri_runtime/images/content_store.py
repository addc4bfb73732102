"""containerd's content store over gRPC: info, read, labels, streamed ingest.

`ingest` is the hot path of a pull. It opens a Content.Write stream under the
pull's lease, asks (STAT) how much of this ingest ref containerd already has
(a previous attempt that died mid-blob), asks the registry for the rest with a
Range request, streams 1 MiB WRITE messages while hashing, and COMMITs with
the expected digest/size and the blob's GC labels. A body cut short is
resumed from the last byte containerd acknowledged. A blob that fails
verification, or a pull that is cancelled, aborts the ingest so no partial
data stays behind.

Small blobs (manifests, configs, small layers, up to
`WHOLE_BLOB_LIMIT`) skip the stream: they are read whole, verified, and
written with a single COMMIT message carrying the data (`commit_whole`), one
round trip instead of a stream's set-up plus STAT, WRITE and COMMIT. A blob
containerd already has answers ALREADY_EXISTS, after containerd has added it
to the call's lease, as its own writer does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from cri_protos.containerd.services.content.v1 import content_pb2
from cri_protos.containerd.services.introspection.v1 import introspection_pb2
from cri_protos.containerd.services.leases.v1 import leases_pb2
from cri_runtime import errors
from cri_runtime.containerd.connection import Containerd
from cri_runtime.containerd.errors import from_rpc_error, from_status
from cri_runtime.images.manifest import Descriptor

log = logging.getLogger(__name__)

WRITE_CHUNK = 1 << 20
INGEST_ATTEMPTS = 3
#: Largest blob written with one message. Bigger ones are streamed, so a download cut short
#: resumes where containerd stopped instead of starting over.
WHOLE_BLOB_LIMIT = 512 << 10

# Opens the blob at an offset: returns the body and the offset it starts at.
BlobOpener = Callable[[int], Awaitable[tuple[AsyncIterator[bytes], int]]]


def ingest_ref(kind: str, digest: str) -> str:
    """The ingest key; same shape as containerd's client (``layer-sha256:…``)."""
    return f"{kind}-{digest}"


def _disk_error(exc: errors.CriError) -> errors.CriError:
    if "no space left" in exc.message.lower() or "quota" in exc.message.lower():
        return errors.ResourceExhausted(exc.message)
    return exc


#: grpc.aio's words when a stream failed on our side of the channel: a message sent after
#: containerd ended the call can fail the call locally before containerd's status is read.
LOCAL_STREAM_FAILURE = "Internal error from Core"


def hides_containerd_status(err: errors.CriError) -> bool:
    """The stream failed on grpc.aio's side: containerd's own status is not in `err`."""
    return isinstance(err, errors.Internal) and LOCAL_STREAM_FAILURE in err.message


def explain_local_failure(err: errors.CriError, content_root: str, free_bytes: int | None) -> errors.CriError:
    """`err` as containerd most likely meant it, when grpc.aio replaced containerd's status with its own.

    A write stream that containerd ended because its disk filled up then reads
    "Internal error from Core"; with less than a write's worth of space left where
    containerd keeps content, that is the cause to report (RESOURCE_EXHAUSTED).
    """
    if not hides_containerd_status(err) or free_bytes is None:
        return err
    if free_bytes >= WRITE_CHUNK:
        return err
    return errors.ResourceExhausted(f"{err.message} (no space left on device: containerd's content store "
                                    f"{content_root} has {free_bytes} bytes free)")


async def content_root(ctd: Containerd) -> str | None:
    """Where containerd keeps content (its content plugin's root), or None if it does not say."""
    try:
        resp = await ctd.call(ctd.introspection.Plugins, introspection_pb2.PluginsRequest(
            filters=['type=="io.containerd.content.v1"']), "introspect content store")
    except errors.CriError:
        return None
    for plugin in resp.plugins:
        root = plugin.exports.get("root")
        if root:
            return str(root)
    return None


def free_bytes(path: str) -> int | None:
    """Bytes root may still write on `path`'s filesystem (containerd runs as root: reserved blocks count)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bfree * st.f_frsize


class ContentStore:
    def __init__(self, ctd: Containerd) -> None:
        self.ctd = ctd

    async def info(self, digest: str) -> Any | None:
        """The blob's Info, or None when containerd does not have it."""
        try:
            resp = await self.ctd.call(self.ctd.content.Info, content_pb2.InfoRequest(digest=digest),
                                       f"content info {digest}")
        except errors.NotFound:
            return None
        return resp.info

    async def read(self, digest: str, limit: int = 16 << 20) -> bytes:
        """A whole (small) blob: manifests, indexes, configs."""
        parts: list[bytes] = []
        total = 0
        try:
            async for resp in self.ctd.content.Read(content_pb2.ReadContentRequest(digest=digest),
                                                    metadata=self.ctd.metadata()):
                total += len(resp.data)
                if total > limit:
                    raise errors.Internal(f"content {digest} is larger than {limit} bytes")
                parts.append(resp.data)
        except grpc.aio.AioRpcError as exc:
            raise from_rpc_error(exc, f"read content {digest}") from None
        return b"".join(parts)

    async def set_labels(self, digest: str, labels: dict[str, str]) -> None:
        """Add/replace labels on a committed blob (other labels are kept)."""
        if not labels:
            return
        req = content_pb2.UpdateRequest(
            info=content_pb2.Info(digest=digest, labels=labels),
            update_mask=field_mask_pb2.FieldMask(paths=[f"labels.{k}" for k in labels]))
        await self.ctd.call(self.ctd.content.Update, req, f"label content {digest}")

    async def label_missing(self, info: Any, labels: dict[str, str]) -> None:
        """Set those of `labels` a committed blob (its `info`) lacks or has with another value.

        A blob shared by several images already carries most of its labels;
        skipping the no-op update saves a write transaction in containerd.
        """
        changed = {k: v for k, v in labels.items() if info.labels.get(k) != v}
        await self.set_labels(info.digest, changed)

    async def commit_whole(self, ref: str, desc: Descriptor, data: bytes, labels: dict[str, str],
                           lease: str, what: str) -> bool:
        """Write and commit a blob held in memory with one message; False if containerd has it.

        containerd checks the digest and size itself; a blob it already has is
        added to the lease and answered ALREADY_EXISTS (labels are left to the caller).
        """
        req = content_pb2.WriteContentRequest(
            action=content_pb2.COMMIT, ref=ref, total=desc.size, expected=desc.digest, offset=0,
            data=data, labels=labels)
        try:
            await self.ctd.call(self.ctd.content_write_once, req, f"{what}: commit", lease=lease)
        except errors.AlreadyExists:
            return False
        except errors.FailedPrecondition as exc:
            if "unexpected" in exc.message:
                raise errors.DataLoss(f"{what}: containerd rejected the content: {exc.message}") from None
            raise
        except errors.CriError as exc:
            raise _disk_error(exc) from None
        return True

    async def add_to_lease(self, lease: str, digest: str) -> None:
        """Protect an existing blob from GC until the lease ends."""
        req = leases_pb2.AddResourceRequest(id=lease, resource=leases_pb2.Resource(id=digest, type="content"))
        await self.ctd.call(self.ctd.leases.AddResource, req, f"add content {digest} to lease")

    async def abort(self, ref: str) -> None:
        with contextlib.suppress(errors.NotFound):
            await self.ctd.call(self.ctd.content.Abort, content_pb2.AbortRequest(ref=ref),
                                f"abort ingest {ref}")

    async def ingest(self, ref: str, desc: Descriptor, opener: BlobOpener, labels: dict[str, str],
                     lease: str, what: str, on_progress: Callable[[int], None] | None = None) -> None:
        """Stream a blob into the content store and commit it, verified."""
        ok = False
        try:
            await self._ingest(ref, desc, opener, labels, lease, what, on_progress)
            ok = True
        finally:
            if not ok:
                # Nothing half-written stays behind (shielded: we may be cancelled).
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.abort(ref))

    async def _ingest(self, ref: str, desc: Descriptor, opener: BlobOpener, labels: dict[str, str],
                      lease: str, what: str, on_progress: Callable[[int], None] | None) -> None:
        if desc.size <= WHOLE_BLOB_LIMIT:
            data = await _read_whole(desc, opener, what, on_progress)
            await self.commit_whole(ref, desc, data, labels, lease, what)
            return
        writer = _Writer(self.ctd, ref, lease, what)
        try:
            await self._write_stream(writer, desc, opener, labels, what, on_progress)
        except errors.Internal as err:
            raise await self._explained(err) from None
        finally:
            await writer.close()

    async def _explained(self, err: errors.Internal) -> errors.CriError:
        """`err`, or the full disk behind it when grpc.aio kept containerd's status from us."""
        if not hides_containerd_status(err):
            return err
        root = await content_root(self.ctd)
        if root is None:
            return err
        return explain_local_failure(err, root, await asyncio.to_thread(free_bytes, root))

    @staticmethod
    async def _write_stream(writer: _Writer, desc: Descriptor, opener: BlobOpener, labels: dict[str, str],
                            what: str, on_progress: Callable[[int], None] | None) -> None:
        """Stream the blob through `writer` (resuming a cut-off body) and commit it."""
        offset = await writer.stat(desc)
        if offset is None:
            return  # committed meanwhile by someone else
        hasher: Any = hashlib.sha256() if offset == 0 else None
        attempt = 0
        while True:
            attempt += 1
            body, start = await opener(offset)
            if start != offset:
                # The registry ignored our Range: start over, verifying ourselves.
                offset, hasher = 0, hashlib.sha256()
            try:
                async for chunk in body:
                    if offset + len(chunk) > desc.size:
                        raise errors.DataLoss(f"{what}: registry sent more than the {desc.size} "
                                              "bytes the manifest announces")
                    await writer.write(offset, chunk)
                    if hasher is not None:
                        hasher.update(chunk)
                    offset += len(chunk)
                    if on_progress is not None:
                        on_progress(len(chunk))
            except errors.DataLoss as exc:
                if "registry sent more" in exc.message or attempt >= INGEST_ATTEMPTS:
                    raise
                log.info("%s: %s; resuming at byte %d", what, exc, offset)
                continue
            if offset < desc.size:
                if attempt >= INGEST_ATTEMPTS:
                    raise errors.DataLoss(f"{what}: stream ended after {offset} of {desc.size} bytes")
                continue
            break
        if hasher is not None and "sha256:" + hasher.hexdigest() != desc.digest:
            raise errors.DataLoss(f"{what}: content digest sha256:{hasher.hexdigest()} does not match "
                                  f"the expected {desc.digest}")
        await writer.commit(desc, labels)


async def _read_whole(desc: Descriptor, opener: BlobOpener, what: str,
                      on_progress: Callable[[int], None] | None) -> bytes:
    """A small blob, read whole and verified; a body cut short is read again from the start."""
    for attempt in range(1, INGEST_ATTEMPTS + 1):
        body, _ = await opener(0)
        data = bytearray()
        try:
            async for chunk in body:
                data += chunk
                if len(data) > desc.size:
                    raise errors.DataLoss(f"{what}: registry sent more than the {desc.size} "
                                          "bytes the manifest announces")
                if on_progress is not None:
                    on_progress(len(chunk))
        except errors.DataLoss as exc:
            if "registry sent more" in exc.message or attempt >= INGEST_ATTEMPTS:
                raise
            log.info("%s: %s; reading it again", what, exc)
            continue
        if len(data) < desc.size:
            if attempt >= INGEST_ATTEMPTS:
                raise errors.DataLoss(f"{what}: stream ended after {len(data)} of {desc.size} bytes")
            continue
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if digest != desc.digest:
            raise errors.DataLoss(f"{what}: content digest {digest} does not match the expected {desc.digest}")
        return bytes(data)
    raise AssertionError("unreachable")


class _Writer:
    """One Content.Write stream: requests out, responses drained concurrently."""

    def __init__(self, ctd: Containerd, ref: str, lease: str, what: str) -> None:
        self.ctd = ctd
        self.ref = ref
        self.what = what
        self.call = ctd.content.Write(metadata=ctd.metadata(lease))
        self._pending = 0
        self._reader: asyncio.Task[Any] | None = None
        self._last: Any = None

    def _map(self, exc: grpc.aio.AioRpcError, action: str) -> errors.CriError:
        err = from_rpc_error(exc, f"{self.what}: {action}")
        return _disk_error(err)

    async def stat(self, desc: Descriptor) -> int | None:
        """Open the ingest; the offset to continue from, or None if already committed."""
        try:
            await self.call.write(content_pb2.WriteContentRequest(
                action=content_pb2.STAT, ref=self.ref, total=desc.size, expected=desc.digest))
            resp = await self.call.read()
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.ALREADY_EXISTS:
                return None
            raise self._map(exc, "open ingest") from None
        if resp is grpc.aio.EOF:
            raise errors.Internal(f"{self.what}: containerd closed the write stream")
        offset = int(resp.offset)
        if offset > desc.size or (resp.total and resp.total != desc.size):
            offset = 0  # a stale ingest of different content: WRITE at 0 truncates it
        self._reader = asyncio.ensure_future(self._drain())
        return offset

    async def _drain(self) -> None:
        while True:
            resp = await self.call.read()
            if resp is grpc.aio.EOF:
                return
            self._last = resp

    async def _check_reader(self) -> None:
        if self._reader is not None and self._reader.done():
            exc = self._reader.exception()
            if isinstance(exc, grpc.aio.AioRpcError):
                raise self._map(exc, "write")
            if exc is not None:
                raise exc

    async def write(self, offset: int, data: bytes) -> None:
        await self._check_reader()
        try:
            for i in range(0, len(data), WRITE_CHUNK):
                piece = data[i:i + WRITE_CHUNK]
                await self.call.write(content_pb2.WriteContentRequest(
                    action=content_pb2.WRITE, ref=self.ref, offset=offset + i, data=piece))
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
            # The local error ("Internal error from Core") hides containerd's
            # status; the response side of the stream carries the real one.
            await self._server_error()
            if isinstance(exc, grpc.aio.AioRpcError):
                raise self._map(exc, "write") from None
            raise

    async def _server_error(self) -> None:
        """Raise containerd's own status for a failed stream, if it has one."""
        if self._reader is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, grpc.aio.AioRpcError):
                await asyncio.wait_for(asyncio.shield(self._reader), 2.0)
            await self._check_reader()
        code = await self.call.code()
        if code != grpc.StatusCode.OK:
            details = await self.call.details()
            raise _disk_error(from_status(code, details, f"{self.what}: write"))

    async def commit(self, desc: Descriptor, labels: dict[str, str]) -> None:
        try:
            await self.call.write(content_pb2.WriteContentRequest(
                action=content_pb2.COMMIT, ref=self.ref, total=desc.size, expected=desc.digest,
                # The offset matters: containerd truncates the ingest on offset 0.
                offset=desc.size, labels=labels))
            await self.call.done_writing()
            assert self._reader is not None
            await self._reader
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
            if isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.ALREADY_EXISTS:
                return
            # As for a write: a local "Internal error from Core" hides containerd's own status
            # (a disk that filled up during the last writes), which the response side carries.
            await self._server_error()
            if not isinstance(exc, grpc.aio.AioRpcError):
                raise
            err = self._map(exc, "commit")
            if isinstance(err, errors.FailedPrecondition) and "unexpected" in err.message:
                raise errors.DataLoss(f"{self.what}: containerd rejected the content: {exc.details()}") from None
            raise err from None
        if self._last is None or self._last.action != content_pb2.COMMIT:
            raise errors.Internal(f"{self.what}: containerd did not confirm the commit")

    async def close(self) -> None:
        if self._reader is not None and not self._reader.done():
            self.call.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        elif self._reader is not None:
            with contextlib.suppress(BaseException):
                self._reader.result()
        if not self.call.done():
            self.call.cancel()
