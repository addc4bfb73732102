"""Release what an interrupted operation left behind before we were killed.

A RunPodSandbox or CreateContainer cut off by `kill -9` may have acquired a
netns, a CNI allocation, a shm mount, a snapshot or a lease without ever
creating the containerd record that recovery starts from. After recovery
(when no operation of ours can be in flight) everything of ours that no
recovered object owns is released. Only objects carrying our labels or
living in our own directories are touched, never containerd's built-in CRI's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path

from cri_protos.containerd.services.leases.v1 import leases_pb2
from cri_protos.containerd.services.snapshots.v1 import snapshots_pb2
from cri_runtime import errors
from cri_runtime.config import Config
from cri_runtime.containerd import mounts as ctd_mounts
from cri_runtime.containerd import objects
from cri_runtime.containerd.connection import LEASE_OWNER_LABEL, Containerd
from cri_runtime.containers import image_volumes
from cri_runtime.containers.manager import ContainerManager
from cri_runtime.containers.relay import client as relay
from cri_runtime.network import netns
from cri_runtime.network.manager import PodNetworkManager
from cri_runtime.sandbox import files
from cri_runtime.sandbox.manager import SandboxManager

log = logging.getLogger(__name__)


class OrphanCollector:
    """The last recovery step: frees resources no recovered object owns."""

    def __init__(self, config: Config, ctd: Containerd, network: PodNetworkManager,
                 sandboxes: SandboxManager, containers: ContainerManager) -> None:
        self.config = config
        self.ctd = ctd
        self.network = network
        self.sandboxes = sandboxes
        self.containers = containers

    def _known(self) -> set[str]:
        return {s.id for s in self.sandboxes.index} | {c.id for c in self.containers.index}

    async def collect(self, per_object_timeout: float) -> None:
        await self._leases()
        await self._networks()
        self._netns_pins()
        self._sandbox_dirs()
        await self._container_dirs()
        await self._snapshots()

    async def _leases(self) -> None:
        req = leases_pb2.ListRequest(filters=[f'labels."{LEASE_OWNER_LABEL}"'])
        resp = await self.ctd.call(self.ctd.leases.List, req, "list our leases")
        for lease in resp.leases:
            with contextlib.suppress(errors.NotFound):
                await self.ctd.call(self.ctd.leases.Delete, leases_pb2.DeleteRequest(id=lease.id, sync=True),
                                    f"delete leftover lease {lease.id}")
            log.info("released leftover lease", extra={"fields": {"lease": lease.id}})

    async def _networks(self) -> None:
        known = {s.id for s in self.sandboxes.index}
        for sandbox_id in self.network.cached_sandboxes():
            if sandbox_id in known:
                continue
            pin = os.path.join(self.sandboxes.netns_dir, f"cri-{sandbox_id[:16]}")
            try:
                await self.network.teardown(sandbox_id, pin)
                log.info("released network of an unfinished pod", extra={"fields": {"id": sandbox_id}})
            except errors.CriError as exc:
                log.warning("could not release network of unfinished pod %s: %s", sandbox_id, exc)

    def _netns_pins(self) -> None:
        owned = {os.path.basename(s.metadata.netns_path) for s in self.sandboxes.index if s.metadata.netns_path}
        directory = Path(self.sandboxes.netns_dir)
        if not directory.is_dir():
            return
        for pin in directory.iterdir():
            if pin.name.startswith("cri-") and pin.name not in owned:
                netns.remove_sync(str(pin))
                log.info("removed leftover netns", extra={"fields": {"path": str(pin)}})

    def _sandbox_dirs(self) -> None:
        known = {s.id for s in self.sandboxes.index}
        for base in (self.sandboxes.state, self.sandboxes.root):
            if not base.is_dir():
                continue
            for d in base.iterdir():
                if d.name in known:
                    continue
                files.unmount_shm(str(d / "shm"))
                shutil.rmtree(d, ignore_errors=True)
                log.info("removed leftover pod dir", extra={"fields": {"path": str(d)}})

    async def _container_dirs(self) -> None:
        known = {c.id for c in self.containers.index}
        for base in (self.containers.state, self.containers.root):  # root: image config volumes
            if not base.is_dir():
                continue
            for d in base.iterdir():
                if d.name in known:
                    continue
                await relay.cleanup(str(d / "io"))
                ctd_mounts.unmount_tree(str(d))  # a temporary rootfs mount of an interrupted create
                shutil.rmtree(d, ignore_errors=True)
                log.info("removed leftover container dir", extra={"fields": {"path": str(d)}})

    async def _snapshots(self) -> None:
        snapshotter = self.config.containerd.snapshotter
        req = snapshots_pb2.ListSnapshotsRequest(snapshotter=snapshotter,
                                                 filters=[f'labels."{objects.SNAPSHOT_OWNER_LABEL}"'])
        known = self._known()
        leftovers: list[str] = []
        async for resp in self.ctd.stream(self.ctd.snapshots.List, req, "list our snapshots"):
            leftovers.extend(info.name for info in resp.info
                             if info.name not in known and image_volumes.owner_of(info.name) not in known)
        for key in leftovers:
            await objects.remove_snapshot(self.ctd, snapshotter, key)
            log.info("removed leftover snapshot", extra={"fields": {"key": key}})
