"""StopPodSandbox: stop the pod's containers, NRI, the pause task, CNI DEL; idempotent."""

from __future__ import annotations

import time

from cri_runtime import errors
from cri_runtime.completion import all_of
from cri_runtime.network import netns
from cri_runtime.sandbox import files
from cri_runtime.sandbox.model import NOTREADY, Sandbox
from cri_runtime.sandbox.store import SandboxStore


class StopOps(SandboxStore):
    """StopPodSandbox: stop the pod's containers, NRI, the pause task, CNI DEL; idempotent."""

    async def stop(self, id_or_prefix: str) -> None:
        """StopPodSandbox: idempotent; an unknown ID is success."""
        try:
            sandbox = self.index.get(id_or_prefix)
        except errors.NotFound:
            return
        if self.stop_containers is not None:
            await self.stop_containers(sandbox.id)
        # Workloads stopped, infrastructure still up and the pod still listed: as NRI's contract says.
        await self.nri.stop_pod(sandbox)
        async with sandbox.lock:
            was_ready = sandbox.ready
            await self._stop_locked(sandbox)
        if was_ready:
            await self._emit("stopped", sandbox)

    async def _stop_locked(self, sandbox: Sandbox) -> None:
        # The pause task and the pod's network go down side by side: CNI DEL needs only the
        # pinned netns, not the pause process (CRI-O tears the network down first, containerd
        # after the task; neither depends on the other). Both finish before a failure is raised.
        await all_of(self._stop_pause_task(sandbox), self._tear_down_network(sandbox))
        files.unmount_shm(sandbox.metadata.shm_path)

    async def _stop_pause_task(self, sandbox: Sandbox) -> None:
        if not sandbox.task_gone:
            await self._kill_and_delete_task(sandbox.id)
            sandbox.task_gone = True
        if sandbox.status.state != NOTREADY or not sandbox.status.exited_at:
            sandbox.status.exited_at = time.time_ns()
            sandbox.status.state = NOTREADY
            sandbox.save_status()

    async def _tear_down_network(self, sandbox: Sandbox) -> None:
        md = sandbox.metadata
        if md.netns_path and not sandbox.status.network_torn_down:
            await self.network.teardown(sandbox.id, md.netns_path)
            await netns.remove(md.netns_path)
            sandbox.status.network_torn_down = True
            sandbox.save_status()
