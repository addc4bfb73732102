"""Pause task exits: the one path by which a pod becomes NOTREADY outside StopPodSandbox."""

from __future__ import annotations

import logging
import time

from cri_runtime import errors
from cri_runtime.containerd import objects
from cri_runtime.sandbox.model import NOTREADY, READY
from cri_runtime.sandbox.store import SandboxStore

log = logging.getLogger(__name__)


class ExitOps(SandboxStore):
    """Pause task exits: the one path by which a pod becomes NOTREADY outside StopPodSandbox."""

    async def on_task_exit(self, sandbox_id: str, exited_at_ns: int) -> None:
        """The pause process died: the pod is no longer ready, and its task is deleted at once.

        Deleting the exited pause task (as containerd's CRI does) lets a shim with no live
        task left exit now instead of lingering until RemovePodSandbox.
        """
        sandbox = self.index.find(sandbox_id)
        if sandbox is None:
            return
        async with sandbox.lock:
            stopped = False
            if sandbox.status.state == READY:
                sandbox.status.state = NOTREADY
                sandbox.status.exited_at = exited_at_ns or time.time_ns()
                sandbox.save_status()
                stopped = True
                log.info("pause task exited; pod sandbox not ready", extra={"fields": {"id": sandbox_id}})
            if not sandbox.task_gone:
                try:
                    await objects.delete_task(self.ctd, sandbox_id)
                    sandbox.task_gone = True
                except errors.CriError as exc:  # StopPodSandbox deletes it later
                    log.warning("could not delete exited pause task of pod %s: %s", sandbox_id, exc.message)
            if stopped:
                await self._emit("stopped", sandbox)

    async def resync(self) -> None:
        """After (re)subscribing to events: catch pause exits we may have missed."""
        for sandbox in self.index:
            if not sandbox.ready:
                continue
            task = await objects.task_state(self.ctd, sandbox.id)
            if task is None or not task.running:
                await self.on_task_exit(sandbox.id, task.exited_at_ns if task else 0)
