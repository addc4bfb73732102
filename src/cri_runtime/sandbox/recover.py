"""Start-up recovery of pods from containerd records and status files (IPs from the CNI cache)."""

from __future__ import annotations

import logging
import time

from cri_protos.containerd.services.containers.v1 import containers_pb2
from cri_runtime.containerd import objects
from cri_runtime.sandbox.model import (
    METADATA_EXTENSION,
    METADATA_TYPE,
    NOTREADY,
    READY,
    Sandbox,
    SandboxMetadata,
    SandboxStatus,
)
from cri_runtime.sandbox.store import SandboxStore

log = logging.getLogger(__name__)


class RecoverOps(SandboxStore):
    """Start-up recovery of pods from containerd records and status files (IPs from the CNI cache)."""

    async def recover(self, per_object_timeout: float) -> None:
        """Rebuild the index from containerd records and status files."""
        await objects.recover_each(self.ctd, objects.KIND_SANDBOX, self._recover_one, per_object_timeout)

    async def _recover_one(self, record: containers_pb2.Container) -> None:
        version, data = objects.read_json_extension(record, METADATA_EXTENSION, METADATA_TYPE)
        md = SandboxMetadata.from_json(version, data)
        status_path = self.status_path(md.id)
        status = SandboxStatus.load(status_path) or SandboxStatus(state=NOTREADY)
        sandbox = Sandbox(md, status, status_path)
        task = await objects.task_state(self.ctd, md.id)
        sandbox.task_gone = task is None
        if task is not None and task.running:
            status.state, status.pid = READY, task.pid
            if md.netns_path and not md.ip:
                await self._recover_ips(md)
        else:
            if status.state == READY:
                status.exited_at = task.exited_at_ns if task is not None and task.exited_at_ns else time.time_ns()
            status.state = NOTREADY
            if task is not None and task.stopped:  # the pause exited while we were away: let its shim go
                await objects.delete_task(self.ctd, md.id)
                sandbox.task_gone = True
        sandbox.save_status()
        self.index.add(md.id, sandbox)
        self.names.reserve(md.name, md.id)
        log.info("recovered pod sandbox", extra={"fields": {"id": md.id, "state": status.state}})

    async def _recover_ips(self, md: SandboxMetadata) -> None:
        """A pod started while its IPs were being recorded when we died: take them from the CNI cache."""
        cached = self.network.cached_status(md.id)
        if cached is None:
            log.warning("running pod sandbox %s has no IP on record nor in the CNI cache", md.id)
            return
        md.ip, md.additional_ips = cached.ip, list(cached.additional_ips)
        await self._record_metadata(md)
