"""Start-up recovery of containers from containerd records and status files; the stale-exec sweeper."""

from __future__ import annotations

import asyncio
import logging

from cri_protos.containerd.services.containers.v1 import containers_pb2
from cri_runtime.containerd import objects, shims
from cri_runtime.containers import status_info
from cri_runtime.containers.create import CreateOps
from cri_runtime.containers.exits import ExitOps
from cri_runtime.containers.model import (
    CREATED,
    METADATA_EXTENSION,
    METADATA_TYPE,
    RUNNING,
    Container,
    ContainerMetadata,
    ContainerStatus,
)
from cri_runtime.containers.relay import client as relay

log = logging.getLogger(__name__)

#: A `runc exec` (it exits once the process started) older than this is stuck: twice the
#: exec start deadline. Swept at recovery and every STALE_EXEC_SWEEP seconds.
STALE_EXEC_AGE = 20.0
STALE_EXEC_SWEEP = 10.0


class RecoverOps(ExitOps, CreateOps):
    """Start-up recovery of containers from containerd records and status files; the stale-exec sweeper."""

    async def recover(self, per_object_timeout: float) -> None:
        self.relay_launcher.start()  # warm before the first CreateContainer
        self._sweeper = asyncio.ensure_future(self._sweep_stale_execs())
        await self._prune_image_accounts()
        await objects.recover_each(self.ctd, objects.KIND_CONTAINER, self._recover_one, per_object_timeout)

    async def _recover_one(self, record: containers_pb2.Container) -> None:
        version, data = objects.read_json_extension(record, METADATA_EXTENSION, METADATA_TYPE)
        md = ContainerMetadata.from_json(version, data)
        path = self.status_path(md.id)
        # No status file: never started (StartContainer writes one), or created when we died.
        status = ContainerStatus.load(path) or ContainerStatus(state=CREATED)
        container = Container(md, status, path)
        if record.spec.value:
            container.effective_resources = status_info.effective_resources(objects.spec_from_any(record.spec))
        self.index.add(md.id, container)
        self.names.reserve(md.name, md.id)
        task = await objects.task_state(self.ctd, md.id)
        if task is not None and task.running:
            status.state, status.pid = RUNNING, task.pid
            container.save_status()
            await relay.respawn_if_dead(md.io_dir)
        elif task is not None or status.state == RUNNING:
            # Exited while we were away; or the task vanished (containerd lost it): exit code unknown.
            await self._record_stopped_task(container, task)
        log.info("recovered container", extra={"fields": {"id": md.id, "state": container.state}})

    async def _sweep_stale_execs(self) -> None:
        """Every STALE_EXEC_SWEEP seconds, kill `runc exec` processes stuck longer than any start may take.

        Execs started by this process have their own watchdog; this catches those left
        by an earlier run of ours (a stuck `runc exec` would block its shim for good).
        """
        while True:
            try:
                ours = frozenset(c.id for c in self.index)
                await asyncio.to_thread(shims.kill_stale_execs, self.config.containerd.address, self.ctd.namespace,
                                        STALE_EXEC_AGE, container_ids=ours)
            except OSError as exc:
                log.warning("sweep for stale runc exec processes failed: %s", exc)
            await asyncio.sleep(STALE_EXEC_SWEEP)
