"""StartContainer: the IO relay, the task (idmapped rootfs in a user namespace), shielded from the caller."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from cri_protos.containerd.services.tasks.v1 import tasks_pb2
from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors
from cri_runtime.completion import consume_exception
from cri_runtime.containerd import objects
from cri_runtime.containers.model import CREATED, EXITED, REASON_START_ERROR, RUNNING, START_ERROR_EXIT_CODE, Container
from cri_runtime.containers.relay import client as relay
from cri_runtime.containers.relay.layout import IoDir
from cri_runtime.containers.store import ContainerStore
from cri_runtime.userns import rootfs as userns_rootfs
from cri_runtime.userns.mappings import pod_userns

log = logging.getLogger(__name__)


def _left_by_earlier_start(exc: errors.CriError) -> bool:
    """containerd's answers to a task creation when a task (or its bundle) is already there."""
    return isinstance(exc, errors.AlreadyExists) or "file exists" in exc.message


class StartOps(ContainerStore):
    """StartContainer: the IO relay, the task (idmapped rootfs in a user namespace), shielded from the caller."""

    async def start(self, id_or_prefix: str) -> None:
        """StartContainer. The work is shielded from the caller: a caller that gives up (deadline)
        leaves it to finish, so containerd never sees a task creation cut off half-way, and a
        retry joins the running attempt or, once it succeeded, answers OK."""
        container = self.index.get(id_or_prefix)
        if container.starting is not None:
            await asyncio.shield(container.starting)
            container.start_abandoned = False  # this retry has answered for the abandoned attempt
            return
        work = asyncio.ensure_future(self._start(container))
        container.starting = work
        work.add_done_callback(lambda _: setattr(container, "starting", None))
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            container.start_abandoned = True
            work.add_done_callback(consume_exception)
            raise

    async def _start(self, container: Container) -> None:
        async with container.lock:
            if container.state == RUNNING and container.start_abandoned:
                container.start_abandoned = False  # the retry of a start whose caller gave up
                return
            await self._start_locked(container)
        await self.nri.post_start_container(self.sandboxes.index.find(container.metadata.sandbox_id), container)
        await self._emit("started", container)

    async def _start_locked(self, container: Container) -> None:
        if container.state != CREATED:
            raise errors.FailedPrecondition(
                f"container {container.id} is {container.state}, only a created container can be started")
        sandbox = self.sandboxes.index.find(container.metadata.sandbox_id)
        if sandbox is None or not sandbox.ready:
            raise errors.FailedPrecondition(
                f"pod sandbox {container.metadata.sandbox_id} of container {container.id} is not ready")
        await self.nri.start_container(sandbox, container)  # an objection fails the start; nothing ran yet
        try:
            await self._start_task(container)
        except errors.CriError as exc:
            container.status.state = EXITED
            container.status.finished_at = time.time_ns()
            container.status.exit_code = START_ERROR_EXIT_CODE
            container.status.reason = REASON_START_ERROR
            container.status.message = exc.message
            container.save_status()
            container.exited.set()
            raise

    def _relay_config(self, cfg: api_pb2.ContainerConfig, log_path: str) -> relay.RelayConfig:
        return relay.RelayConfig(
            log_path=log_path or os.devnull, max_line_size=self.config.logs.max_container_log_line_size,
            tty=cfg.tty, stdin=cfg.stdin, stdin_once=cfg.stdin_once)

    def _spawn_relay(self, io_dir: str, cfg: api_pb2.ContainerConfig,
                     log_path: str) -> asyncio.Task[relay.RelayHandle]:
        return asyncio.ensure_future(self.relay_launcher.spawn(io_dir, self._relay_config(cfg, log_path)))

    def _start_relay(self, container: Container) -> tuple[relay.RelayHandle, asyncio.Task[relay.RelayHandle] | None]:
        """The FIFO paths for CreateTask now, and the relay being started (None: one runs).

        The FIFOs are made here, so containerd can open them while the relay is being
        forked: the shim holds read ends of its own, so output written before the relay
        reads waits in the FIFO. The relay's ~2 ms of CPU thus overlap CreateTask instead
        of CreateContainer's containerd calls (where they slowed containerd down).
        """
        md, cfg = container.metadata, container.config
        handle = relay.make_fifos(md.io_dir, self._relay_config(cfg, md.log_path))
        if relay.is_alive(md.io_dir):
            # Started by a StartContainer interrupted by a restart of ours: it waits on the FIFOs.
            return self._live_relay(container), None
        return handle, self._spawn_relay(md.io_dir, cfg, md.log_path)

    @staticmethod
    def _live_relay(container: Container) -> relay.RelayHandle:
        d = IoDir(container.metadata.io_dir)
        cfg = container.config
        try:
            pid = int(Path(d.pid_file).read_text().strip())
        except (OSError, ValueError):
            pid = 0
        return relay.RelayHandle(dir=Path(d.path), pid=pid, stdin=d.stdin if cfg.stdin else "",
                                 stdout=d.stdout, stderr="" if cfg.tty else d.stderr, terminal=cfg.tty)

    def _userns_rootfs(self, container: Container, rootfs: list[Any]) -> contextlib.AbstractAsyncContextManager[Any]:
        """In a pod with a user namespace: the rootfs with idmapped layers and volumes while the task is made."""
        sandbox = self.sandboxes.index.find(container.metadata.sandbox_id)
        userns = pod_userns(sandbox.config.linux.security_context.namespace_options) if sandbox else None
        if sandbox is None or userns is None:
            return contextlib.nullcontext(rootfs)
        return userns_rootfs.prepared(rootfs, userns, self.state / container.id, holder_pid=sandbox.status.pid)

    async def _create_task(self, container: Container,
                           req: tasks_pb2.CreateTaskRequest) -> tasks_pb2.CreateTaskResponse:
        """Tasks.Create; a task left by an earlier, interrupted start is deleted and the call retried once.

        containerd answers a second Create for the same container with AlreadyExists, or,
        when the first was cut off after making the task's bundle directory, with
        "mkdir …: file exists" (UNKNOWN). Neither is the caller's failure to report.
        """
        action = f"create task of container {container.id}"
        try:
            return await self.ctd.call(self.ctd.tasks.Create, req, action)
        except errors.CriError as exc:
            if not _left_by_earlier_start(exc):
                raise
            log.warning("container has a task from an interrupted start; deleting it and creating it again",
                        extra={"fields": {"id": container.id, "error": exc.message}})
        await objects.kill_task(self.ctd, container.id, signal.SIGKILL)
        await objects.delete_task(self.ctd, container.id)
        try:
            return await self.ctd.call(self.ctd.tasks.Create, req, action)
        except errors.CriError as exc:
            if not _left_by_earlier_start(exc):
                raise
            raise errors.FailedPrecondition(
                f"container {container.id}: containerd still holds task state from an interrupted start "
                f"({exc.message}); remove the container and create it again") from None

    async def _start_task(self, container: Container) -> None:
        md, cfg = container.metadata, container.config
        io, starting = self._start_relay(container)
        try:
            rootfs = container.rootfs_mounts
            if rootfs is None:  # created before a restart of ours
                rootfs = await objects.snapshot_mounts(self.ctd, self.snapshotter, container.id)
            async with self._userns_rootfs(container, rootfs) as rootfs:
                created = await self._create_task(
                    container, tasks_pb2.CreateTaskRequest(container_id=container.id, rootfs=rootfs,
                                                           stdin=io.stdin, stdout=io.stdout,
                                                           stderr=io.stderr, terminal=cfg.tty))
            try:
                if starting is not None:
                    await starting  # the relay reads the FIFOs before the process runs
                    starting = None
                started_at = time.time_ns()
                await self.ctd.call(self.ctd.tasks.Start, tasks_pb2.StartRequest(container_id=container.id),
                                    f"start container {container.id}")
            except BaseException:
                await objects.kill_task(self.ctd, container.id, signal.SIGKILL)
                await objects.delete_task(self.ctd, container.id)
                raise
        except BaseException:
            if starting is not None:
                with contextlib.suppress(BaseException):
                    await starting
            await relay.stop(md.io_dir)
            raise
        container.status.state = RUNNING
        container.status.pid = created.pid
        container.status.started_at = started_at
        container.save_status()
        log.info("container started", extra={"fields": {"id": container.id, "pid": created.pid}})
