"""RemoveContainer: stop, delete task, record and snapshot, forget the container; idempotent."""

from __future__ import annotations

import asyncio
import logging
import os

from cri_runtime.completion import all_of
from cri_runtime.containerd import objects
from cri_runtime.containers import image_volumes
from cri_runtime.containers.model import RUNNING
from cri_runtime.containers.relay import client as relay
from cri_runtime.containers.stop import StopOps
from cri_runtime.rollback import remove_dir

log = logging.getLogger(__name__)

#: Seconds between RemoveContainer's reply and the deletion of the renamed state dir.
REMOVE_DELAY = 0.2


class RemoveOps(StopOps):
    """RemoveContainer: stop, delete task, record and snapshot, forget the container; idempotent."""

    async def remove(self, id_or_prefix: str) -> None:
        """RemoveContainer: a running container is killed first; unknown is success."""
        container = self.index.find(id_or_prefix)
        if container is None:
            return
        if container.state == RUNNING:
            await self.stop(container.id, 0)
        async with container.lock:
            if not container.task_deleted:
                await objects.delete_task(self.ctd, container.id)
            io_dir = container.metadata.io_dir
            await relay.stop(io_dir)  # one kept busy after the exit (a child holds the output open)
            # The record and the snapshot go together (containerd's CRI removes both too); one
            # after the other was slower in lifecycle_bench (RemoveContainer 1.11 against 0.81-0.85).
            # A crash between them leaves a record or snapshot that removal/orphan collection handles.
            await all_of(objects.delete_container(self.ctd, container.id),
                         objects.remove_snapshot(self.ctd, self.snapshotter, container.id))
            await image_volumes.release(self.ctd, self.snapshotter, [
                image_volumes.ImageVolume(**v) for v in container.metadata.image_volumes])
            container_dir = str(self.state / container.id)
            if not os.path.abspath(io_dir).startswith(container_dir + os.sep):
                remove_dir(io_dir)  # recorded under another state dir
            self._remove_dir_soon(container_dir)
            if os.path.isdir(self.root / container.id):  # the image config's volumes
                self._remove_dir_soon(str(self.root / container.id))
            self.index.remove(container.id)
            self.names.release_id(container.id)
        log.info("container removed", extra={"fields": {"id": container.id}})
        await self.nri.remove_container(self.sandboxes.index.find(container.metadata.sandbox_id), container)
        await self._emit("deleted", container)

    def _remove_dir_soon(self, path: str) -> None:
        """Rename the directory out of the way now, delete its files a moment later.

        The rename is one syscall where the deletion is a dozen on the hot path. The
        deletion waits until the reply is out (a worker thread doing it at once competes
        for the GIL with sending it). A leftover (we were killed meanwhile) is not a
        known container's directory, so start-up orphan collection removes it.
        """
        trash = os.path.join(os.path.dirname(path), f".removed-{os.path.basename(path)}")
        try:
            os.rename(path, trash)
        except OSError:
            remove_dir(path)
            return
        task = asyncio.ensure_future(self._remove_later(trash))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @staticmethod
    async def _remove_later(path: str) -> None:
        try:
            await asyncio.sleep(REMOVE_DELAY)
        finally:  # also when cancelled at shutdown
            await asyncio.get_running_loop().run_in_executor(None, remove_dir, path)

    async def remove_all_in_pod(self, sandbox_id: str) -> None:
        for container in [c for c in self.index if c.metadata.sandbox_id == sandbox_id]:
            await self.remove(container.id)
