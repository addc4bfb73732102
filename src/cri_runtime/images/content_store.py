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
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from google.protobuf import field_mask_pb2

from cri_protos.containerd.services.content.v1 import content_pb2
from cri_protos.containerd.services.leases.v1 import leases_pb2
from cri_runtime import errors
from cri_runtime.containerd.connection import Containerd
from cri_runtime.containerd.errors import from_rpc_error
from cri_runtime.grpc_client.status import RpcError, StatusCode
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
        async for resp in self.ctd.stream(self.ctd.content.Read, content_pb2.ReadContentRequest(digest=digest),
                                          f"read content {digest}"):
            total += len(resp.data)
            if total > limit:
                raise errors.Internal(f"content {digest} is larger than {limit} bytes")
            parts.append(resp.data)
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
        finally:
            writer.close()


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
    """One Content.Write stream.

    containerd answers every request; the answers queue on the call unread (it
    never waits for us to read them) until the commit, whose answer is the last.
    A stream containerd ended early (a full disk) fails the next write with
    containerd's own status.
    """

    def __init__(self, ctd: Containerd, ref: str, lease: str, what: str) -> None:
        self.ref = ref
        self.what = what
        self.call = ctd.content.Write(metadata=ctd.metadata(lease))

    def _map(self, exc: RpcError, action: str) -> errors.CriError:
        return _disk_error(from_rpc_error(exc, f"{self.what}: {action}"))

    async def stat(self, desc: Descriptor) -> int | None:
        """Open the ingest; the offset to continue from, or None if already committed."""
        try:
            await self.call.write(content_pb2.WriteContentRequest(
                action=content_pb2.STAT, ref=self.ref, total=desc.size, expected=desc.digest))
            resp = await self.call.read()
        except RpcError as exc:
            if exc.code() == StatusCode.ALREADY_EXISTS:
                return None
            raise self._map(exc, "open ingest") from None
        if resp is None:
            raise errors.Internal(f"{self.what}: containerd closed the write stream")
        offset = int(resp.offset)
        if offset > desc.size or (resp.total and resp.total != desc.size):
            offset = 0  # a stale ingest of different content: WRITE at 0 truncates it
        return offset

    async def write(self, offset: int, data: bytes) -> None:
        try:
            for i in range(0, len(data), WRITE_CHUNK):
                piece = data[i:i + WRITE_CHUNK]
                await self.call.write(content_pb2.WriteContentRequest(
                    action=content_pb2.WRITE, ref=self.ref, offset=offset + i, data=piece))
        except RpcError as exc:
            raise self._map(exc, "write") from None

    async def commit(self, desc: Descriptor, labels: dict[str, str]) -> None:
        last = None
        try:
            await self.call.write(content_pb2.WriteContentRequest(
                action=content_pb2.COMMIT, ref=self.ref, total=desc.size, expected=desc.digest,
                # The offset matters: containerd truncates the ingest on offset 0.
                offset=desc.size, labels=labels))
            await self.call.done_writing()
            while (resp := await self.call.read()) is not None:
                last = resp
        except RpcError as exc:
            if exc.code() == StatusCode.ALREADY_EXISTS:
                return
            err = self._map(exc, "commit")
            if isinstance(err, errors.FailedPrecondition) and "unexpected" in err.message:
                raise errors.DataLoss(f"{self.what}: containerd rejected the content: {exc.details()}") from None
            raise err from None
        if last is None or last.action != content_pb2.COMMIT:
            raise errors.Internal(f"{self.what}: containerd did not confirm the commit")

    def close(self) -> None:
        """End the call if it is still open (a failed or cancelled ingest): containerd drops its side."""
        self.call.cancel()
