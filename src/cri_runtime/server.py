"""The cri-runtime process: socket, gRPC server, recovery, signals.

Start-up order matters for kubelet: we fail fast (one line, non-zero exit)
when the socket cannot be ours or containerd does not answer; otherwise the
socket appears at once and RPCs wait for recovery. SIGTERM/SIGINT stop the
gRPC server gracefully; containers are never touched on the way out — they
belong to their shims, which outlive us by design.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import signal
import socket
import stat
from pathlib import Path

from cri_protos.runtime.v1 import api_pb2_grpc
from cri_runtime import __version__, errors
from cri_runtime.config import Config
from cri_runtime.containerd.connection import Containerd
from cri_runtime.containerd.events import EventMonitor, TaskEvent, TaskExit
from cri_runtime.containers.manager import ContainerManager
from cri_runtime.containers.streaming_backend import ContainerdStreamingBackend
from cri_runtime.images.manager import ImageManager
from cri_runtime.metrics.http import MetricsHttpServer
from cri_runtime.network.manager import PodNetworkManager
from cri_runtime.rpc import RpcServer
from cri_runtime.runtime.conditions import Probe
from cri_runtime.runtime.containerd_probe import ContainerdProbe
from cri_runtime.runtime.node import NodeFacts
from cri_runtime.runtime.orphans import OrphanCollector
from cri_runtime.runtime.recovery import Recovery
from cri_runtime.sandbox.manager import SandboxManager
from cri_runtime.services.images import ImageServicer
from cri_runtime.services.runtime import RuntimeServicer
from cri_runtime.stats import wiring as stats_wiring
from cri_runtime.streaming.server import StreamingServer

log = logging.getLogger(__name__)

# kubelet's CRI client accepts 16 MiB messages; so do we, both ways.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
SOCKET_MODE = 0o660


class StartupError(Exception):
    """The server cannot start; the message is the one line the operator sees."""


class SocketGuard:
    """Owns the listening socket path: one server per path, stale files replaced.

    An flock on `<socket>.lock` proves ownership. Only the lock holder may
    remove a leftover socket file, so two servers never steal each other's
    socket, and a socket left by a killed server is replaced safely.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock_fd: int | None = None

    def acquire(self) -> None:
        directory = Path(self.path).parent
        if not directory.exists():
            if not directory.parent.is_dir():
                raise StartupError(f"socket directory {directory} does not exist "
                                   f"(nor its parent {directory.parent})")
            try:
                directory.mkdir(mode=0o711)
            except OSError as exc:
                raise StartupError(f"cannot create socket directory {directory}: {exc.strerror}") from None
        if not directory.is_dir():
            raise StartupError(f"socket directory {directory} is not a directory")
        if not os.access(directory, os.W_OK | os.X_OK):
            raise StartupError(f"socket directory {directory} is not writable")
        lock_path = f"{self.path}.lock"
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StartupError(f"cannot open lock file {lock_path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise StartupError(f"another cri-runtime is already serving on {self.path}") from None
            raise StartupError(f"cannot lock {lock_path}: {exc.strerror}") from None
        self._lock_fd = fd
        self._remove_stale()

    def _remove_stale(self) -> None:
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            self.release()
            raise StartupError(f"{self.path} exists and is not a socket; refusing to replace it")
        if _socket_answers(self.path):
            self.release()
            raise StartupError(f"another server is already listening on {self.path}")
        os.unlink(self.path)
        log.info("replaced stale socket", extra={"fields": {"path": self.path}})

    def secure(self) -> None:
        """Restrict the socket to root and its group (kubelet runs as root)."""
        os.chmod(self.path, SOCKET_MODE)

    def release(self, remove_socket: bool = False) -> None:
        if remove_socket:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _socket_answers(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(path)
        except OSError:
            return False
    return True


class NetworkProbe:
    """`NetworkReady` is true only while a valid CNI config is loaded."""

    def __init__(self, network: PodNetworkManager) -> None:
        self._network = network

    async def readiness(self) -> tuple[bool, str, str]:
        cond = self._network.status()
        return cond.ready, cond.reason, cond.message


class CriServer:
    """Everything one cri-runtime process runs."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.guard = SocketGuard(config.server.socket)
        self.ctd = Containerd(config.containerd.address, config.containerd.namespace,
                              connect_timeout=config.containerd.connect_timeout_seconds)
        self.recovery = Recovery(config.server.recovery_timeout_seconds)
        # host-local allocations outlive reboots, so the CNI cache (what DEL needs) must too.
        self.network = PodNetworkManager(config.network, os.path.join(config.server.root_dir, "cni-cache"))
        self.images = ImageManager(self.ctd, config.image, config.containerd.snapshotter)
        self.node = NodeFacts(config)
        self.sandboxes = SandboxManager(config, self.ctd, self.network, self.images.ensure_image, self.node)
        self.events = EventMonitor(self.ctd, self._on_task_event, self._resync,
                                   on_image_change=self.images.store.on_event)
        # The image list may be cached only while image events are known to reach us.
        self.images.store.events_live = self.events.subscribed.is_set
        self.containers = ContainerManager(config, self.ctd, self.sandboxes, self.images, self.node)
        self.images.removal_observers.append(self.containers.forget_image)
        self.recovery.register("pod sandboxes", self.sandboxes.recover)
        self.recovery.register("containers", self.containers.recover)
        self.streaming = StreamingServer.from_config(config.streaming, ContainerdStreamingBackend(self.containers))
        self.orphans = OrphanCollector(config, self.ctd, self.network, self.sandboxes, self.containers)
        self.recovery.register("leftovers of interrupted operations", self.orphans.collect)
        self._grpc: RpcServer | None = None
        self._stopping = asyncio.Event()
        self._recovery_task: asyncio.Task[None] | None = None
        self._metrics_http: MetricsHttpServer | None = None

    def network_probe(self) -> Probe:
        return NetworkProbe(self.network)

    async def start(self) -> None:
        """Take the socket, check containerd, start serving, begin recovery."""
        self.guard.acquire()
        try:
            await self._check_containerd()
            for d in (self.config.server.root_dir, self.config.server.state_dir):
                os.makedirs(d, mode=0o711, exist_ok=True)
            server = RpcServer(MAX_MESSAGE_BYTES)
            runtime = RuntimeServicer(self.config, self.recovery, ContainerdProbe(self.ctd),
                                      self.network_probe(), self.network, self.sandboxes,
                                      self.containers, self.streaming)
            api_pb2_grpc.add_RuntimeServiceServicer_to_server(runtime, server)
            api_pb2_grpc.add_ImageServiceServicer_to_server(ImageServicer(self.images, self.recovery), server)
            try:
                await self.streaming.start()
            except OSError as exc:
                raise StartupError(f"cannot listen for streaming on {self.config.streaming.address}:"
                                   f"{self.config.streaming.port}: {exc.strerror}") from None
            try:
                await server.start(self.config.server.socket)
            except OSError as exc:
                await self.streaming.stop()
                raise StartupError(f"cannot listen on {self.config.server.socket}: {exc.strerror}") from None
            self.guard.secure()
            self._grpc = server
            self._metrics_http = stats_wiring.attach(self)
        except BaseException:
            self.guard.release()
            await self.ctd.close()
            raise
        log.info("serving", extra={"fields": {"socket": self.config.server.socket, "version": __version__,
                                              "containerd": self.config.containerd.address}})
        self._recovery_task = asyncio.create_task(self._recover_then_watch(), name="recovery")

    async def _recover_then_watch(self) -> None:
        """Recover state, then follow task events (whose resync catches up on gaps)."""
        await self.recovery.run()
        self.events.start()

    async def _on_task_event(self, event: TaskEvent) -> None:
        """Route a task event to the pod or container it belongs to."""
        if isinstance(event, TaskExit):
            if not event.is_init:
                return
            if event.container_id in self.sandboxes.index:
                await self.sandboxes.on_task_exit(event.container_id, event.exited_at_ns)
            elif event.container_id in self.containers.index:
                await self.containers.on_task_exit(event.container_id, event.exit_status, event.exited_at_ns)
        elif event.container_id in self.containers.index:
            await self.containers.on_oom(event.container_id)

    async def _resync(self) -> None:
        await self.sandboxes.resync()
        await self.containers.resync()

    async def _check_containerd(self) -> None:
        timeout = self.config.containerd.connect_timeout_seconds
        try:
            await self.ctd.wait_ready(timeout)
        except errors.CriError as exc:
            raise StartupError(f"containerd at {self.config.containerd.address} is not usable: {exc}") from None

    def request_stop(self) -> None:
        self._stopping.set()

    async def wait(self) -> None:
        await self._stopping.wait()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop serving; in-flight RPCs get `grace` seconds to finish."""
        if self._grpc is not None:
            await self._grpc.stop(grace)
            self._grpc = None
        await self.events.stop()
        await self.streaming.stop()
        if self._metrics_http is not None:
            self._metrics_http.stop()
        await self.images.close()
        if self._recovery_task is not None and not self._recovery_task.done():
            self._recovery_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._recovery_task
        await self.containers.close()
        await self.ctd.close()
        self.guard.release(remove_socket=True)
        log.info("stopped")


async def serve(config: Config) -> None:
    """Run until SIGTERM/SIGINT."""
    server = CriServer(config)
    await server.start()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.request_stop)
    try:
        await server.wait()
    finally:
        log.info("shutting down")
        await server.stop()
