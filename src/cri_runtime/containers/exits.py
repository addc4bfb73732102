"""Task exits and OOMs: the one path by which a container becomes EXITED (event, stop, catch-up, recovery)."""

from __future__ import annotations

import logging
import time

from cri_runtime.containerd import objects
from cri_runtime.containers.model import EXITED, REASON_COMPLETED, REASON_ERROR, REASON_OOM, RUNNING, Container
from cri_runtime.containers.relay import client as relay
from cri_runtime.containers.store import ContainerStore

log = logging.getLogger(__name__)

RELAY_DRAIN_TIMEOUT = 2.0


class ExitOps(ContainerStore):
    """Task exits and OOMs: the one path by which a container becomes EXITED (event, stop, catch-up, recovery)."""

    async def on_task_exit(self, container_id: str, exit_status: int, exited_at_ns: int) -> None:
        container = self.index.find(container_id)
        if container is None:
            return
        async with container.lock:
            await self._record_exit(container, exit_status, exited_at_ns)

    async def _record_exit(self, container: Container, exit_status: int | None, exited_at_ns: int) -> None:
        """Reap the task and mark the container exited (idempotent)."""
        final = await objects.delete_task(self.ctd, container.id)
        container.task_deleted = True
        if container.state == EXITED:
            return
        # Report the exit only once the relay has written the last output to the log
        # (bounded: a background child may keep the container's stdout open).
        await relay.wait_exited(container.metadata.io_dir, RELAY_DRAIN_TIMEOUT)
        if exit_status is None:
            exit_status = final.exit_status if final is not None else 255
            exited_at_ns = final.exited_at_ns if final is not None else 0
        st = container.status
        st.state = EXITED
        st.exit_code = exit_status
        st.finished_at = max(exited_at_ns or time.time_ns(), st.started_at)
        if st.oom_killed:
            st.reason = REASON_OOM
        else:
            st.reason = REASON_COMPLETED if exit_status == 0 else REASON_ERROR
        container.save_status()
        container.exited.set()
        log.info("container exited", extra={"fields": {"id": container.id, "exit_code": exit_status,
                                                       "reason": st.reason}})
        # Whether stopped by request or by itself: NRI hears of it once.
        await self.nri.stop_container(self.sandboxes.index.find(container.metadata.sandbox_id), container)
        await self._emit("stopped", container)

    async def on_oom(self, container_id: str) -> None:
        container = self.index.find(container_id)
        if container is not None and container.state == RUNNING:
            container.status.oom_killed = True
            container.save_status()

    async def resync(self) -> None:
        """After (re)subscribing to events: catch container exits we may have missed."""
        for container in self.index:
            if container.state != RUNNING:
                continue
            await self._catch_up_exit(container)

    async def _catch_up_exit(self, container: Container) -> bool:
        """Ask containerd: if the task stopped (or is gone) without our hearing of it, record the exit now.

        Returns whether it had stopped. Used after an event gap (`resync`) and while
        StopContainer waits (so a lost exit event cannot hang it).
        """
        task = await objects.task_state(self.ctd, container.id)
        if task is not None and not task.stopped:
            return False
        async with container.lock:
            await self._record_stopped_task(container, task)
        return True

    async def _record_stopped_task(self, container: Container, task: objects.TaskState | None) -> None:
        """A stopped task's exit; with no task left (containerd lost it), the code its deletion gives, else 255."""
        if task is None:
            await self._record_exit(container, None, 0)
        else:
            await self._record_exit(container, task.exit_status, task.exited_at_ns)
