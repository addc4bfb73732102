"""Container lifecycle: create, start, stop, remove, status, list, update, exit handling.

A container is a containerd container (spec, snapshot, our metadata
extension) plus, once started, a task whose stdio FIFOs are read by a
detached IO relay that writes the CRI log — so neither a restart of
cri-runtime nor its death can stop the container or lose output.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import json
import logging
import os
import secrets
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from google.protobuf import any_pb2, field_mask_pb2

from cri_protos.containerd.services.containers.v1 import containers_pb2
from cri_protos.containerd.services.tasks.v1 import tasks_pb2
from cri_protos.nri.v1alpha1 import api_pb2 as nri_api
from cri_protos.runtime.v1 import api_pb2
from cri_runtime import cdi, errors, protowire
from cri_runtime.completion import all_of, consume_exception
from cri_runtime.config import Config
from cri_runtime.containerd import mounts as ctd_mounts
from cri_runtime.containerd import objects, shims
from cri_runtime.containerd.connection import Containerd
from cri_runtime.containers import image_config_volumes, image_volumes, status_info
from cri_runtime.containers.model import (
    CREATED,
    EXITED,
    METADATA_EXTENSION,
    METADATA_TYPE,
    METADATA_VERSION,
    REASON_COMPLETED,
    REASON_ERROR,
    REASON_OOM,
    REASON_START_ERROR,
    RUNNING,
    START_ERROR_EXIT_CODE,
    STATES,
    Container,
    ContainerMetadata,
    ContainerStatus,
    container_name,
)
from cri_runtime.containers.relay import client as relay
from cri_runtime.containers.relay.launcher import RelayLauncher
from cri_runtime.containers.relay.layout import IoDir
from cri_runtime.images.manager import ImageManager
from cri_runtime.images.store import ImageRecord
from cri_runtime.node.facts import NodeFacts
from cri_runtime.nri import convert as nri_convert
from cri_runtime.nri.hooks import NriHooks
from cri_runtime.oci import container_spec
from cri_runtime.oci.process import ImageConfig
from cri_runtime.oci.resources import linux_resources
from cri_runtime.oci.rootfs import read_rootfs_file
from cri_runtime.oci.user import ImageAccounts
from cri_runtime.rollback import Rollback, remove_dir, run_or_undo
from cri_runtime.sandbox.manager import SandboxManager
from cri_runtime.sandbox.model import Sandbox
from cri_runtime.store.index import IdIndex, NameRegistry
from cri_runtime.userns import rootfs as userns_rootfs
from cri_runtime.userns.mappings import pod_userns

log = logging.getLogger(__name__)

RESOURCES_TYPE_URL = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources"
KILL_WAIT = 10.0
RELAY_DRAIN_TIMEOUT = 2.0
#: Seconds between RemoveContainer's reply and the deletion of the renamed state dir.
REMOVE_DELAY = 0.2
#: A `runc exec` (it exits once the process started) older than this is stuck: twice the
#: exec start deadline. Swept at recovery and every STALE_EXEC_SWEEP seconds.
STALE_EXEC_AGE = 20.0
STALE_EXEC_SWEEP = 10.0

ContainerListener = Callable[[str, Container], Awaitable[None]]


class StillRunning(errors.DeadlineExceeded):
    """The container's shim answers, but its process did not exit after SIGKILL."""


def signal_number(name: str) -> int:
    """SIGTERM / TERM / 15 → 15; unknown names fall back to SIGTERM."""
    if not name:
        return int(signal.SIGTERM)
    if name.isdigit():
        try:
            number = int(name)
        except ValueError:  # a Unicode digit such as "²"
            return int(signal.SIGTERM)
        return number if 0 < number <= signal.SIGRTMAX else int(signal.SIGTERM)
    key = name.upper()
    if not key.startswith("SIG"):
        key = "SIG" + key
    sig = getattr(signal.Signals, key, None)
    return int(sig) if sig is not None else int(signal.SIGTERM)


class ContainerManager:
    """All containers of this runtime."""

    def __init__(self, config: Config, ctd: Containerd, sandboxes: SandboxManager,
                 images: ImageManager, node: NodeFacts, nri: NriHooks | None = None,
                 on_event: ContainerListener | None = None) -> None:
        """`on_event` hears ("created"|"started"|"stopped"|"deleted", container) for GetContainerEvents."""
        self.config = config
        self.nri = nri or NriHooks(None)
        self.ctd = ctd
        self.sandboxes = sandboxes
        self.images = images
        self.node = node
        self.index: IdIndex[Container] = IdIndex("container")
        self.names = NameRegistry("container")
        self.state = Path(config.server.state_dir) / "containers"
        # Persistent per-container data (the volumes an image config declares).
        self.root = Path(config.server.root_dir) / "containers"
        # IO relays are forked from one warm zygote process at StartContainer.
        self.relay_launcher = RelayLauncher(owner=str(self.state), cgroup=config.runtime.relay_cgroup)
        self._background: set[asyncio.Future[None]] = set()
        self.snapshotter = config.containerd.snapshotter
        # ExecSync's wait for output after the exit (containerd's option; 0 = the caller's deadline).
        self.drain_exec_sync_io_timeout = config.runtime.drain_exec_sync_io_timeout or None
        self._sweeper: asyncio.Future[None] | None = None  # kills stale `runc exec`s (see recover)
        self._accounts: dict[str, ImageAccounts] = {}  # image ID -> its /etc/passwd and /etc/group
        self.on_event = on_event
        self.cdi = cdi.CdiRegistry(config.runtime.cdi_spec_dirs) if config.runtime.enable_cdi else None

    def get(self, id_or_prefix: str) -> Container:
        return self.index.get(id_or_prefix)

    def status_path(self, container_id: str) -> Path:
        return self.state / container_id / "status.json"

    async def _emit(self, kind: str, container: Container) -> None:
        if self.on_event is not None:
            try:
                await self.on_event(kind, container)
            except Exception:
                log.exception("container event listener failed")

    # ------------------------------------------------------------------ create

    async def create(self, request: api_pb2.CreateContainerRequest) -> str:
        """CreateContainer; the request has passed `validation.containers.create_container`."""
        sandbox = self.sandboxes.get(request.pod_sandbox_id)
        if not sandbox.ready:
            raise errors.FailedPrecondition(f"pod sandbox {sandbox.id} is not ready")
        cfg = request.config
        cdi_devices = self._cdi_devices(cfg)
        name = container_name(cfg.metadata, sandbox.config.metadata)
        container_id = secrets.token_hex(32)
        self.names.reserve(name, container_id)
        undo = Rollback(f"container {container_id}")
        undo.add_sync("name", self.names.release, name)
        return await run_or_undo(self._create_steps(container_id, name, sandbox, cfg, undo, cdi_devices), undo)

    def _cdi_devices(self, cfg: api_pb2.ContainerConfig) -> list[cdi.ResolvedDevice]:
        """The CDI devices the config asks for, resolved now so a bad name fails before anything is made."""
        names = cdi.requested_devices([d.name for d in cfg.CDI_devices], cfg.annotations)
        if not names or self.cdi is None:
            return []
        return self.cdi.resolve(names)

    async def _create_steps(self, container_id: str, name: str, sandbox: Sandbox, cfg: api_pb2.ContainerConfig,
                            undo: Rollback, cdi_devices: list[cdi.ResolvedDevice]) -> str:
        md_sb = sandbox.metadata
        target_pid = None
        ns = cfg.linux.security_context.namespace_options
        if ns.pid == api_pb2.TARGET:
            target = self.index.get(ns.target_id)
            if target.state != RUNNING:
                raise errors.FailedPrecondition(f"target container {target.id} of the PID namespace is not running")
            target_pid = target.status.pid
        log_path = ""
        if cfg.log_path and sandbox.config.log_directory:
            log_path = os.path.normpath(os.path.join(sandbox.config.log_directory, cfg.log_path))
            if not log_path.startswith(os.path.normpath(sandbox.config.log_directory) + os.sep):
                raise errors.InvalidArgument(f"log_path {cfg.log_path!r} escapes the pod's log directory")
        container_dir = self.state / container_id
        undo.add_sync("state dir", remove_dir, str(container_dir))
        container_dir.mkdir(parents=True, exist_ok=True)
        io_dir = str(container_dir / "io")
        image = await self.images.resolve(cfg.image.image)
        sandbox_ctx = container_spec.SandboxContext(
            id=sandbox.id, config=sandbox.config, pid=sandbox.status.pid,
            hostname_path=md_sb.hostname_path, hosts_path=md_sb.hosts_path,
            resolv_conf_path=md_sb.resolv_conf_path, shm_path=md_sb.shm_path)
        build = _RecordBuilder(self, container_id, name, sandbox, cfg, image, sandbox_ctx, log_path, io_dir,
                               target_pid)
        build.cdi_devices = tuple(cdi_devices)
        accounts = self._cached_accounts(image)
        volumes_mode = self.config.image.image_volumes
        config_volumes = image_config_volumes.wanted(ImageConfig.from_json(image.config).volumes, cfg, volumes_mode)
        if accounts is None or config_volumes or any(m.HasField("image") for m in cfg.mounts):
            # The image's first container (its passwd/group are read from the snapshot before
            # the spec is built), image volumes or VOLUMEs of the image config: under a lease.
            async with self.ctd.lease(f"container-{container_id[:12]}", expire_seconds=600) as lease:
                mounts = await self._prepare_snapshot(container_id, image, lease, undo)
                if accounts is None:
                    accounts = ImageAccounts.from_rootfs(await self._image_accounts(image, mounts, container_dir))
                volumes: list[image_volumes.ImageVolume] = []
                undo.add("image volumes", lambda: image_volumes.release(self.ctd, self.snapshotter, volumes))
                extra_mounts = await image_volumes.prepare(self.ctd, self.images, self.snapshotter, container_id,
                                                           container_dir, cfg, lease, volumes)
                if config_volumes:
                    extra_mounts += await self._image_config_volumes(container_id, image, mounts, container_dir,
                                                                     config_volumes, undo)
                metadata, record = build(accounts, extra_mounts, volumes)
                await self._let_nri_adjust(build, sandbox, record, undo)
                await self._create_record(record, lease, undo)
        else:
            # The record names the snapshot before it exists, so containerd's GC keeps the
            # snapshot from its creation on without a lease: two round trips fewer.
            metadata, record = build(accounts, [], [])
            await self._let_nri_adjust(build, sandbox, record, undo)
            await self._create_record(record, None, undo)
            mounts = await self._prepare_snapshot(container_id, image, None, undo)
        container = Container(metadata, ContainerStatus(state=CREATED), self.status_path(container_id))
        container.rootfs_mounts = mounts
        container.effective_resources = status_info.effective_resources(build.spec)
        # No status file yet: a record without one is a created container (see _recover_one).
        self.index.add(container_id, container)
        self.nri.published(container_id)
        log.info("container created", extra={"fields": {"id": container_id, "name": name, "pod": sandbox.id}})
        await self.nri.post_create_container(sandbox, container)
        await self._emit("created", container)
        return container_id

    async def _let_nri_adjust(self, build: _RecordBuilder, sandbox: Sandbox, record: containers_pb2.Container,
                              undo: Rollback) -> None:  # fmt: skip
        """NRI plugins see the container before anyone may, and may adjust its spec (the record then carries it).

        An objection fails CreateContainer and undoes it; nothing of it stays listed or pending.
        """
        undo.add_sync("NRI pending entry", self.nri.published, build.container_id)
        proposed = nri_convert.new_container(build.container_id, sandbox.id, build.cfg, build.spec)
        adjusted = await self.nri.create_container(sandbox, proposed, build.spec)
        if adjusted.cdi_devices:
            if self.cdi is None:
                raise errors.FailedPrecondition(f"an NRI plugin added CDI devices {adjusted.cdi_devices} "
                                                "but CDI is disabled (runtime.enable_cdi)")
            cdi.apply_edits(build.spec, self.cdi.resolve(adjusted.cdi_devices))
        if adjusted.changed:
            record.spec.CopyFrom(objects.spec_any(build.spec))

    async def _image_config_volumes(self, container_id: str, image: ImageRecord, mounts: list[Any], container_dir: Path,
                                    paths: list[str], undo: Rollback) -> list[api_pb2.Mount]:
        """The image config's VOLUMEs, set up against the container's rootfs mounted briefly."""
        mode = self.config.image.image_volumes
        undo.add_sync("image config volumes", remove_dir, str(self.root / container_id))
        with ctd_mounts.mounted(mounts, parent=str(container_dir),
                                readonly=mode != image_config_volumes.MKDIR) as rootfs:
            return await image_config_volumes.prepare(paths, mode, rootfs, self.root / container_id / "volumes",
                                                      str(image.id))

    async def _prepare_snapshot(self, container_id: str, image: ImageRecord, lease: str | None,
                                undo: Rollback) -> list[Any]:
        mounts = await objects.prepare_snapshot(self.ctd, self.snapshotter, container_id, image.chain_id, lease)
        undo.add("snapshot", lambda: objects.remove_snapshot(self.ctd, self.snapshotter, container_id))
        return mounts

    async def _create_record(self, record: containers_pb2.Container, lease: str | None, undo: Rollback) -> None:
        await objects.create_container(self.ctd, record, lease)
        undo.add("containerd container", lambda: objects.delete_container(self.ctd, record.id))

    def _accounts_dir(self, image: ImageRecord) -> Path:
        return Path(self.config.server.state_dir) / "image-accounts" / str(image.id).removeprefix("sha256:")

    def forget_image(self, image_id: str) -> None:
        """The image is gone: drop its cached users and groups."""
        self._accounts.pop(image_id, None)
        remove_dir(str(Path(self.config.server.state_dir) / "image-accounts" / image_id.removeprefix("sha256:")))

    async def _prune_image_accounts(self) -> None:
        """Drop cached users and groups of images removed while we were not watching."""
        root = Path(self.config.server.state_dir) / "image-accounts"
        try:
            cached = os.listdir(root)
        except FileNotFoundError:
            return
        try:
            present = {image.id.removeprefix("sha256:") for image in await self.images.list()}
        except errors.CriError as exc:
            log.warning("cannot list images to prune cached image accounts: %s", exc.message)
            return
        for name in cached:
            if name not in present:  # also a temporary dir of a create cut short
                remove_dir(str(root / name))

    def _cached_accounts(self, image: ImageRecord) -> ImageAccounts | None:
        """The image's users and groups, parsed once per image (None: not read from it yet)."""
        accounts = self._accounts.get(image.id)
        if accounts is None:
            cache = self._accounts_dir(image)
            if not cache.is_dir():
                return None
            accounts = self._accounts[image.id] = ImageAccounts.from_rootfs(str(cache))
        return accounts

    async def _image_accounts(self, image: ImageRecord, mounts: list[Any], container_dir: Path) -> str:
        """A directory holding the image's /etc/passwd and /etc/group (what user resolution reads).

        A fresh container rootfs is the image's, so these files are the same for
        every container of an image: they are read once per image (mounting the
        snapshot briefly) and kept, which keeps CreateContainer from mounting.
        """
        cache = self._accounts_dir(image)
        if cache.is_dir():
            return str(cache)
        tmp = cache.with_name(f".{cache.name}.{secrets.token_hex(4)}")
        (tmp / "etc").mkdir(parents=True)
        try:
            with ctd_mounts.mounted(mounts, parent=str(container_dir)) as rootfs:
                for name in ("passwd", "group"):
                    text = read_rootfs_file(rootfs, f"/etc/{name}")
                    if text is not None:
                        (tmp / "etc" / name).write_text(text)
            with contextlib.suppress(OSError):  # a concurrent create may have cached it first
                os.rename(tmp, cache)
        finally:
            remove_dir(str(tmp))
        return str(cache)

    # ------------------------------------------------------------------- start

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

    # -------------------------------------------------------------------- exit

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

    # -------------------------------------------------------------------- stop

    async def stop(self, id_or_prefix: str, timeout: int) -> None:
        """StopContainer: stop signal, wait `timeout` seconds, then SIGKILL; unknown is success.

        A shim that does not answer (every call to it passes its deadline) cannot
        stop the container: then the shim is killed with its process tree, as
        containerd does with a dead shim, and the container is reported exited.
        """
        container = self.index.find(id_or_prefix)
        if container is None:
            return
        if container.state != RUNNING:
            return
        try:
            await self._stop_task(container, timeout)
        except StillRunning:
            raise  # the shim answers; the process ignores SIGKILL (uninterruptible sleep): killing
            # the shim would end the pod's other containers and not this process
        except errors.DeadlineExceeded as exc:
            await self._reap_unresponsive(container, exc)

    async def _reap_unresponsive(self, container: Container, why: errors.CriError) -> None:
        sandbox_id = container.metadata.sandbox_id
        others = [c.id for c in self.index if c.metadata.sandbox_id == sandbox_id and c.id != container.id
                  and c.state == RUNNING]
        log.warning("shim of container does not answer; killing it with its process tree",
                    extra={"fields": {"id": container.id, "reason": why.message, "also_ends": others}})
        final = await objects.reap_unresponsive_task(self.ctd, container.id, [container.id, sandbox_id])
        async with container.lock:
            if final is None:  # containerd's cleanup already deleted it: killed by SIGKILL
                await self._record_exit(container, 128 + signal.SIGKILL, time.time_ns())
            else:
                await self._record_exit(container, final.exit_status, final.exited_at_ns)

    async def _stop_task(self, container: Container, timeout: int) -> None:
        stop_signal = self._stop_signal(container)
        if timeout > 0:
            await objects.kill_task(self.ctd, container.id, stop_signal)
            await self._wait_exit(container, timeout)
        if container.state == RUNNING:
            await objects.kill_task(self.ctd, container.id, signal.SIGKILL, all_processes=False)
            if not await self._wait_exit(container, KILL_WAIT):
                raise StillRunning(f"container {container.id} did not exit after SIGKILL")

    @staticmethod
    def _stop_signal(container: Container) -> int:
        """The config's stop_signal, else the image's StopSignal, else SIGTERM."""
        if container.config.stop_signal != api_pb2.RUNTIME_DEFAULT:
            name = api_pb2.Signal.Name(container.config.stop_signal)
            return signal_number(name)
        return signal_number(container.metadata.stop_signal)

    async def _wait_exit(self, container: Container, timeout: float) -> bool:
        """Wait for the exit event; poll containerd too so a lost event cannot hang us."""
        deadline = time.monotonic() + timeout
        while container.state == RUNNING:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(container.exited.wait(), min(remaining, 0.5))
            if container.state == RUNNING:
                task = await objects.task_state(self.ctd, container.id)
                if task is None or task.stopped:
                    async with container.lock:
                        if task is None:
                            await self._record_exit(container, None, 0)
                        else:
                            await self._record_exit(container, task.exit_status, task.exited_at_ns)
        return True

    async def stop_all_in_pod(self, sandbox_id: str) -> None:
        for container in [c for c in self.index if c.metadata.sandbox_id == sandbox_id]:
            await self.stop(container.id, 0)

    # ------------------------------------------------------------------ remove

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
            # The record and the snapshot go together (containerd's CRI removes both too);
            # a crash between them leaves a record or snapshot that removal/orphan collection handles.
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

    # ------------------------------------------------------------ status, list

    def to_status(self, container: Container) -> api_pb2.ContainerStatus:
        md, cfg, st = container.metadata, container.config, container.status
        status = api_pb2.ContainerStatus(
            id=container.id, metadata=cfg.metadata, state=STATES[st.state], created_at=md.created_at,
            started_at=st.started_at, finished_at=st.finished_at, exit_code=st.exit_code,
            image=api_pb2.ImageSpec(image=md.image_name, annotations=dict(cfg.image.annotations)),
            image_ref=md.image_ref, image_id=md.image_id, reason=st.reason, message=st.message,
            labels=dict(cfg.labels), annotations=dict(cfg.annotations), mounts=list(cfg.mounts),
            log_path=md.log_path)
        status.resources.linux.CopyFrom(container.effective_resources)
        if md.user:
            status.user.linux.uid = int(md.user.get("uid", 0))
            status.user.linux.gid = int(md.user.get("gid", 0))
            status.user.linux.supplemental_groups.extend(int(g) for g in md.user.get("additionalGids") or ())
        if cfg.stop_signal != api_pb2.RUNTIME_DEFAULT:
            status.stop_signal = cfg.stop_signal
        else:  # the image's StopSignal, else SIGTERM (what StopContainer sends), as containerd reports
            status.stop_signal = _reported_stop_signal(md.stop_signal)
        return status

    async def status(self, id_or_prefix: str, verbose: bool) -> api_pb2.ContainerStatusResponse:
        container = self.index.get(id_or_prefix)
        resp = api_pb2.ContainerStatusResponse(status=self.to_status(container))
        if verbose:
            resp.info["info"] = json.dumps(await self._verbose_info(container))
        return resp

    async def _verbose_info(self, container: Container) -> dict[str, Any]:
        """containerd's verbose keys, from the containerd record (its spec is what runc got)."""
        record = await self.ctd.call(self.ctd.containers.Get,
                                     containers_pb2.GetContainerRequest(id=container.id),
                                     f"get container {container.id}")
        return status_info.verbose_info(
            sandbox_id=container.metadata.sandbox_id, pid=container.status.pid, removing=False,
            record=record.container, config=container.config,
            extra={"ioDir": container.metadata.io_dir, "imageVolumes": container.metadata.image_volumes})

    def _listed(self, flt: api_pb2.ContainerFilter | None) -> list[Container]:
        """The containers `flt` selects, oldest first."""
        if flt is not None and flt.id:
            found = self._find_quietly(flt.id)
            candidates = [found] if found is not None else []
        else:
            candidates = list(self.index)
        if flt is not None:
            want_state = flt.state.state if flt.HasField("state") else None
            pod, selector = flt.pod_sandbox_id, dict(flt.label_selector)
            candidates = [
                c for c in candidates
                if (want_state is None or STATES[c.state] == want_state)
                and (not pod or c.metadata.sandbox_id.startswith(pod))
                and all(c.config.labels.get(k) == v for k, v in selector.items())]
        candidates.sort(key=lambda c: c.metadata.created_at)
        return candidates

    def list(self, flt: api_pb2.ContainerFilter | None) -> list[api_pb2.Container]:
        return [self._list_entry(c)[0] for c in self._listed(flt)]

    def list_encoded(self, flt: api_pb2.ContainerFilter | None) -> bytes:
        """The ListContainersResponse bytes, joined from each container's cached entry."""
        return b"".join(self._list_entry(c)[1] for c in self._listed(flt))

    @staticmethod
    def _list_entry(c: Container) -> tuple[api_pb2.Container, bytes]:
        """The ListContainers entry and its encoding as ListContainersResponse.containers.

        Everything but the state is immutable, so both are built once per state;
        kubelet lists every second.
        """
        state = STATES[c.state]
        cached = c.list_entry
        if cached is not None and cached[0].state == state:
            return cached
        item = api_pb2.Container(
            id=c.id, pod_sandbox_id=c.metadata.sandbox_id, metadata=c.config.metadata,
            image=api_pb2.ImageSpec(image=c.metadata.image_name), image_ref=c.metadata.image_ref,
            image_id=c.metadata.image_id, state=state, created_at=c.metadata.created_at,
            labels=dict(c.config.labels), annotations=dict(c.config.annotations))
        c.list_entry = (item, protowire.message_field(1, item))
        return c.list_entry

    def _find_quietly(self, id_or_prefix: str) -> Container | None:
        try:
            return self.index.get(id_or_prefix)
        except errors.CriError:
            return None

    # ------------------------------------------------------------------ update

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

    async def _sweep_stale_execs(self) -> None:
        """Every STALE_EXEC_SWEEP seconds, kill `runc exec` processes stuck longer than any start may take.

        Execs started by this process have their own watchdog; this catches those left
        by an earlier run of ours (a stuck `runc exec` would block its shim for good).
        """
        while True:
            try:
                await asyncio.to_thread(shims.kill_stale_execs, self.config.containerd.address, self.ctd.namespace,
                                        STALE_EXEC_AGE)
            except OSError as exc:
                log.warning("sweep for stale runc exec processes failed: %s", exc)
            await asyncio.sleep(STALE_EXEC_SWEEP)

    async def close(self) -> None:
        """Server shutdown: finish background removals, stop the relay zygote (relays run on)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._background:
            await asyncio.wait(list(self._background), timeout=5)
        await self.relay_launcher.close()

    # ---------------------------------------------------------------- recovery

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
        elif task is not None:
            await self._record_exit(container, task.exit_status, task.exited_at_ns)
        elif status.state == RUNNING:
            # The task vanished while we were away (containerd lost it): exit code unknown.
            await self._record_exit(container, None, 0)
        log.info("recovered container", extra={"fields": {"id": md.id, "state": container.state}})

    async def resync(self) -> None:
        """After (re)subscribing to events: catch container exits we may have missed."""
        for container in self.index:
            if container.state != RUNNING:
                continue
            task = await objects.task_state(self.ctd, container.id)
            if task is None or task.stopped:
                async with container.lock:
                    if task is None:
                        await self._record_exit(container, None, 0)
                    else:
                        await self._record_exit(container, task.exit_status, task.exited_at_ns)


class _RecordBuilder:
    """Builds the OCI spec, our metadata and the containerd record of a new container."""

    cdi_devices: tuple[cdi.ResolvedDevice, ...] = ()

    def __init__(self, manager: ContainerManager, container_id: str, name: str, sandbox: Sandbox,
                 cfg: api_pb2.ContainerConfig, image: ImageRecord, sandbox_ctx: container_spec.SandboxContext,
                 log_path: str, io_dir: str, target_pid: int | None) -> None:
        self.manager = manager
        self.container_id = container_id
        self.name = name
        self.sandbox = sandbox
        self.cfg = cfg
        self.image = image
        self.sandbox_ctx = sandbox_ctx
        self.log_path = log_path
        self.io_dir = io_dir
        self.target_pid = target_pid
        self.spec: dict[str, Any] = {}  # the OCI spec last built

    def __call__(self, accounts: ImageAccounts, extra_mounts: list[api_pb2.Mount],
                 volumes: list[image_volumes.ImageVolume]) -> tuple[ContainerMetadata, containers_pb2.Container]:
        m, cfg, image, sandbox = self.manager, self.cfg, self.image, self.sandbox
        handler = m.config.runtime.handlers[sandbox.metadata.runtime_handler]
        image_config = ImageConfig.from_json(image.config)
        image_name = _image_name(cfg.image.image, image)
        spec = container_spec.build_container_spec(
            self.container_id, cfg, image_config, image_name=image_name, sandbox=self.sandbox_ctx,
            options=m.node.spec_options(handler, mountinfo=_needs_mountinfo(cfg)), rootfs=accounts,
            target_pid=self.target_pid, extra_mounts=extra_mounts)
        cdi.apply_edits(spec, self.cdi_devices)
        if pod_userns(sandbox.config.linux.security_context.namespace_options) is not None:
            userns_rootfs.idmap_volumes(spec, cfg, Path(self.io_dir).parent)
        self.spec = spec
        metadata = ContainerMetadata(
            id=self.container_id, name=self.name, sandbox_id=sandbox.id, config=cfg.SerializeToString(),
            image_id=image.id, image_name=image_name,
            image_ref=image.repo_digests[0] if image.repo_digests else image.id,
            log_path=self.log_path, created_at=time.time_ns(), io_dir=self.io_dir,
            stop_signal=image_config.stop_signal, user=dict(spec["process"].get("user") or {}),
            image_volumes=[v.to_json() for v in volumes])
        record = containers_pb2.Container(
            id=self.container_id,
            labels={objects.KIND_LABEL: objects.KIND_CONTAINER, objects.SANDBOX_ID_LABEL: sandbox.id,
                    f"{objects.LABEL_PREFIX}.container.name": cfg.metadata.name},
            image=image.names[0] if image.names else image.id,
            runtime=objects.runtime_of(handler, m.config.runtime.cgroup_driver),
            spec=objects.spec_any(spec), snapshotter=m.snapshotter, snapshot_key=self.container_id,
            extensions={METADATA_EXTENSION: objects.json_extension(METADATA_TYPE, METADATA_VERSION,
                                                                   metadata.to_json())})
        return metadata, record


def _image_name(requested: str, image: ImageRecord) -> str:
    """The name to report: what was asked for when it names the image, else its first tag."""
    if requested and not requested.startswith("sha256:") and len(requested) != 64:
        for tag in image.repo_tags:
            if tag == requested or tag.endswith("/" + requested) or tag.endswith("/library/" + requested):
                return str(tag)
    if image.repo_tags:
        return str(image.repo_tags[0])
    return requested or str(image.id)


@functools.lru_cache(maxsize=64)
def _reported_stop_signal(image_stop_signal: str) -> api_pb2.Signal:
    """The CRI Signal for an image's StopSignal ("" → SIGTERM), cached: ContainerStatus is hot."""
    return _cri_signal(signal_number(image_stop_signal))


def _left_by_earlier_start(exc: errors.CriError) -> bool:
    """containerd's answers to a task creation when a task (or its bundle) is already there."""
    return isinstance(exc, errors.AlreadyExists) or "file exists" in exc.message


def _cri_signal(sig: int) -> api_pb2.Signal:
    try:
        name = signal.Signals(sig).name
    except ValueError:  # an image's StopSignal such as "99" names no signal
        return api_pb2.RUNTIME_DEFAULT
    if name not in api_pb2.Signal.keys():  # noqa: SIM118
        return api_pb2.RUNTIME_DEFAULT
    return api_pb2.Signal.Value(name)  # type: ignore[return-value]


def _needs_mountinfo(cfg: api_pb2.ContainerConfig) -> bool:
    """Shared/slave propagation is checked against the host's mount table."""
    return any(m.propagation != api_pb2.PROPAGATION_PRIVATE for m in cfg.mounts)
