"""RemovePodSandbox: stop, remove the pod's containers, its record, snapshot, netns and files; idempotent."""

from __future__ import annotations

import logging

from cri_runtime import errors
from cri_runtime.containerd import objects
from cri_runtime.rollback import remove_dir
from cri_runtime.sandbox import files
from cri_runtime.sandbox.stop import StopOps

log = logging.getLogger(__name__)


class RemoveOps(StopOps):
    """RemovePodSandbox: stop, remove the pod's containers, its record, snapshot, netns and files; idempotent."""

    async def remove(self, id_or_prefix: str) -> None:
        """RemovePodSandbox: removes containers, sandbox and files; unknown is success."""
        try:
            sandbox = self.index.get(id_or_prefix)
        except errors.NotFound:
            return
        if self.remove_containers is not None:
            await self.remove_containers(sandbox.id)
        async with sandbox.lock:
            await self._stop_locked(sandbox)
            md = sandbox.metadata
            await objects.delete_container(self.ctd, sandbox.id)
            await objects.remove_snapshot(self.ctd, self.config.containerd.snapshotter, sandbox.id)
            files.remove_pod_dir(md.pod_dir)
            remove_dir(str(self.state / sandbox.id))
            self.index.remove(sandbox.id)
            self.names.release_id(sandbox.id)
        log.info("pod sandbox removed", extra={"fields": {"id": sandbox.id}})
        await self.nri.remove_pod(sandbox)
        await self._emit("deleted", sandbox)
