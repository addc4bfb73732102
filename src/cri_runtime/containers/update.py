"""UpdateContainerResources, NRI updates and evictions, ReopenContainerLog."""

from __future__ import annotations

import builtins
import json
import logging
from collections.abc import Sequence

from google.protobuf import any_pb2, field_mask_pb2

from cri_protos.containerd.services.containers.v1 import containers_pb2
from cri_protos.containerd.services.tasks.v1 import tasks_pb2
from cri_protos.nri.v1alpha1 import api_pb2 as nri_api
from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors
from cri_runtime.containerd import objects
from cri_runtime.containers import status_info
from cri_runtime.containers.model import CREATED, RUNNING
from cri_runtime.containers.relay import client as relay
from cri_runtime.containers.stop import StopOps
from cri_runtime.nri import convert as nri_convert
from cri_runtime.oci.resources import linux_resources

log = logging.getLogger(__name__)

RESOURCES_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"


class UpdateOps(StopOps):
    """UpdateContainerResources, NRI updates and evictions, ReopenContainerLog."""

    async def update_resources(self, id_or_prefix: str, resources: api_pb2.LinuxContainerResources | None,
                               *, from_nri: bool = False) -> None:  # fmt: skip
        """UpdateContainerResources; `from_nri` for a plugin's own update, which plugins are not asked about."""
        container = self.index.get(id_or_prefix)
        if resources is None:
            return
        async with container.lock:
            if container.state not in (CREATED, RUNNING):
                raise errors.FailedPrecondition(f"container {container.id} is {container.state}")
            merged = api_pb2.LinuxContainerResources()
            if container.resources is not None:
                merged.CopyFrom(container.resources)
            merged.MergeFrom(resources)
            sandbox = None if from_nri else self.sandboxes.index.find(container.metadata.sandbox_id)
            if sandbox is not None:
                merged = await self.nri.update_container(sandbox, container, merged)
            oci = linux_resources(merged, swap_available=self.node.swap, hugetlb_available=self.node.hugetlb)
            record = await self.ctd.call(self.ctd.containers.Get,
                                         containers_pb2.GetContainerRequest(id=container.id),
                                         f"get container {container.id}")
            spec = objects.spec_from_any(record.container.spec)
            spec.setdefault("linux", {})["resources"] = {**spec.get("linux", {}).get("resources", {}), **oci}
            if container.state == RUNNING:
                await self.ctd.call(
                    self.ctd.tasks.Update,
                    tasks_pb2.UpdateTaskRequest(container_id=container.id, resources=any_pb2.Any(
                        type_url=RESOURCES_TYPE_URL, value=json.dumps(spec["linux"]["resources"]).encode())),
                    f"update resources of container {container.id}")
            updated = containers_pb2.Container(id=container.id, spec=objects.spec_any(spec))
            await self.ctd.call(
                self.ctd.containers.Update,
                containers_pb2.UpdateContainerRequest(container=updated,
                                                      update_mask=field_mask_pb2.FieldMask(paths=["spec"])),
                f"store resources of container {container.id}")
            self.records.forget(container.id)
            container.resources = merged
            container.effective_resources = status_info.effective_resources(spec)
        if sandbox is not None:
            await self.nri.post_update_container(sandbox, container)

    async def apply_nri_updates(
            self, updates: Sequence[nri_api.ContainerUpdate]) -> builtins.list[nri_api.ContainerUpdate]:
        """Resource updates an NRI plugin asked for (unsolicited or from a hook); returns those that failed."""
        failed: builtins.list[nri_api.ContainerUpdate] = []
        for update in updates:
            try:
                container = self.index.get(update.container_id)
                await self.update_resources(container.id, nri_convert.to_cri_resources(
                    update.linux.resources, container.resources), from_nri=True)
            except errors.CriError as exc:
                log.warning("NRI update of container %s failed: %s", update.container_id, exc.message)
                failed.append(update)
        return failed

    async def evict_for_nri(self, evictions: Sequence[nri_api.ContainerEviction]) -> None:
        """Containers an NRI plugin evicts are stopped at once, as containerd does."""
        for eviction in evictions:
            log.warning("NRI evicts container %s: %s", eviction.container_id, eviction.reason)
            try:
                await self.stop(eviction.container_id, 0)
            except errors.CriError as exc:
                log.warning("eviction of container %s failed: %s", eviction.container_id, exc.message)

    async def reopen_log(self, id_or_prefix: str) -> None:
        container = self.index.get(id_or_prefix)
        if container.state != RUNNING:
            raise errors.FailedPrecondition(f"container {container.id} is not running")
        await relay.reopen(container.metadata.io_dir)
