"""Layer unpacking into containerd's snapshotter, and its filesystem usage.

Each layer becomes a committed snapshot named by its chain ID, exactly as
containerd's own unpacker does, so images we pull and images ``ctr`` pulls
share snapshots: Prepare(``extract-<random> <chainID>``, parent) → Diff.Apply
(the compressed blob onto the mounts; containerd decompresses gzip/zstd) →
Commit(chainID). A chain ID that already exists is skipped. The applied
(uncompressed) digest must equal the config's diff ID, otherwise the layer is
corrupt and the half-made snapshot is removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass

from cri_protos.containerd.services.diff.v1 import diff_pb2
from cri_protos.containerd.services.introspection.v1 import introspection_pb2
from cri_protos.containerd.services.leases.v1 import leases_pb2
from cri_protos.containerd.services.snapshots.v1 import snapshots_pb2
from cri_protos.containerd.types import descriptor_pb2
from cri_runtime import errors
from cri_runtime.containerd.connection import Containerd
from cri_runtime.images.keyed_lock import KeyedLock
from cri_runtime.images.manifest import Descriptor

log = logging.getLogger(__name__)

USAGE_CONCURRENCY = 8


@dataclass(frozen=True)
class FsUsage:
    mountpoint: str
    used_bytes: int
    inodes_used: int
    timestamp_ns: int


class Unpacker:
    def __init__(self, ctd: Containerd, snapshotter: str) -> None:
        self.ctd = ctd
        self.snapshotter = snapshotter
        self._locks = KeyedLock()

    async def exists(self, chain_id: str) -> bool:
        try:
            await self.ctd.call(self.ctd.snapshots.Stat,
                                snapshots_pb2.StatSnapshotRequest(snapshotter=self.snapshotter, key=chain_id),
                                f"stat snapshot {chain_id}")
        except errors.NotFound:
            return False
        return True

    async def _add_to_lease(self, lease: str, chain_id: str) -> None:
        req = leases_pb2.AddResourceRequest(
            id=lease, resource=leases_pb2.Resource(id=chain_id, type=f"snapshots/{self.snapshotter}"))
        await self.ctd.call(self.ctd.leases.AddResource, req, f"add snapshot {chain_id} to lease")

    async def ensure_layer(self, layer: Descriptor, diff_id: str, chain_id: str, parent: str,
                           lease: str, what: str) -> bool:
        """Make the snapshot `chain_id` exist; True if we unpacked it, False if it was there."""
        async with self._locks.hold(chain_id):
            if await self.exists(chain_id):
                await self._add_to_lease(lease, chain_id)
                return False
            await self._apply(layer, diff_id, chain_id, parent, lease, what)
            return True

    async def _apply(self, layer: Descriptor, diff_id: str, chain_id: str, parent: str,
                     lease: str, what: str) -> None:
        key = f"extract-{uuid.uuid4().hex[:16]} {chain_id}"
        resp = await self.ctd.call(
            self.ctd.snapshots.Prepare,
            snapshots_pb2.PrepareSnapshotRequest(snapshotter=self.snapshotter, key=key, parent=parent),
            f"{what}: prepare snapshot", lease=lease)
        committed = False
        try:
            applied = await self.ctd.call(
                self.ctd.diff.Apply,
                diff_pb2.ApplyRequest(
                    diff=descriptor_pb2.Descriptor(media_type=layer.media_type, digest=layer.digest,
                                                   size=layer.size),
                    mounts=resp.mounts),
                f"{what}: apply layer {layer.digest}", lease=lease)
            if applied.applied.digest != diff_id:
                raise errors.DataLoss(f"{what}: layer {layer.digest} unpacks to {applied.applied.digest}, "
                                      f"but the image config expects diff ID {diff_id}")
            try:
                await self.ctd.call(
                    self.ctd.snapshots.Commit,
                    snapshots_pb2.CommitSnapshotRequest(snapshotter=self.snapshotter, name=chain_id, key=key),
                    f"{what}: commit snapshot {chain_id}", lease=lease)
                committed = True
            except errors.AlreadyExists:
                await self._add_to_lease(lease, chain_id)  # someone else unpacked it meanwhile
        except errors.CriError as exc:
            if "no space left" in exc.message.lower():
                raise errors.ResourceExhausted(exc.message) from None
            raise
        finally:
            if not committed:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.ctd.call(
                        self.ctd.snapshots.Remove,
                        snapshots_pb2.RemoveSnapshotRequest(snapshotter=self.snapshotter, key=key),
                        "remove unfinished snapshot"))

    async def snapshotter_root(self) -> str:
        """The snapshotter's root directory, as its plugin exports it."""
        resp = await self.ctd.call(
            self.ctd.introspection.Plugins,
            introspection_pb2.PluginsRequest(
                filters=[f'type=="io.containerd.snapshotter.v1",id=="{self.snapshotter}"']),
            "introspect snapshotter")
        for plugin in resp.plugins:
            root = plugin.exports.get("root")
            if root:
                return str(root)
        raise errors.FailedPrecondition(f"snapshotter {self.snapshotter!r} is not loaded in containerd")

    async def usage(self) -> FsUsage:
        """Bytes and inodes used by all snapshots of our snapshotter."""
        mountpoint = await self.snapshotter_root()
        keys: list[str] = []
        async for resp in self.ctd.stream(self.ctd.snapshots.List,
                                          snapshots_pb2.ListSnapshotsRequest(snapshotter=self.snapshotter),
                                          "list snapshots"):
            keys.extend(info.name for info in resp.info)
        sem = asyncio.Semaphore(USAGE_CONCURRENCY)

        async def one(key: str) -> tuple[int, int]:
            async with sem:
                try:
                    u = await self.ctd.call(
                        self.ctd.snapshots.Usage,
                        snapshots_pb2.UsageRequest(snapshotter=self.snapshotter, key=key),
                        f"usage of snapshot {key}")
                except errors.NotFound:
                    return 0, 0
                return int(u.size), int(u.inodes)

        results = await asyncio.gather(*(one(k) for k in keys))
        return FsUsage(mountpoint=mountpoint, used_bytes=sum(r[0] for r in results),
                       inodes_used=sum(r[1] for r in results), timestamp_ns=time.time_ns())
