"""The cri-runtime process: socket, gRPC server, recovery, signals.

Start-up order matters for kubelet: we fail fast (one line, non-zero exit)
when the socket cannot be ours or containerd does not answer; otherwise the
socket appears at once and RPCs wait for recovery. SIGTERM/SIGINT stop the
gRPC server gracefully; containers are never touched on the way out — they
belong to their shims, which outlive us by design. SIGHUP reloads the
configuration (never stops the server), SIGUSR1 logs every task's and
thread's stack. systemd hears READY=1 once the socket serves and recovery is
done, RELOADING=1/READY=1 around a reload, and STOPPING=1 on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import fcntl
import logging
import os
import signal
import socket
import stat
from collections.abc import Callable
from pathlib import Path

from cri_protos.nri.v1alpha1 import api_pb2 as nri_api
from cri_protos.runtime.v1 import api_pb2_grpc
from cri_runtime import __version__, errors, logging_setup, reload, sdnotify, stackdump, tracing
from cri_runtime.config import Config, ConfigError, ServerConfig
from cri_runtime.containerd.connection import Containerd
from cri_runtime.containerd.events import EventMonitor, TaskEvent, TaskExit
from cri_runtime.containers.manager import ContainerManager
from cri_runtime.containers.streaming_backend import ContainerdStreamingBackend
from cri_runtime.images.manager import ImageManager
from cri_runtime.metrics.http import MetricsHttpServer
from cri_runtime.network.manager import PodNetworkManager
from cri_runtime.node.conditions import Probe
from cri_runtime.node.containerd_probe import ContainerdProbe
from cri_runtime.node.facts import NodeFacts
from cri_runtime.nri import convert as nri_convert
from cri_runtime.nri.adaptation import NriHost, NriSettings
from cri_runtime.nri.hooks import NriHooks
from cri_runtime.recovery.gate import Recovery
from cri_runtime.recovery.orphans import OrphanCollector
from cri_runtime.rpc import RpcServer
from cri_runtime.sandbox.manager import SandboxManager
from cri_runtime.services.images import ImageServicer
from cri_runtime.services.runtime import RuntimeServicer
from cri_runtime.stats import wiring as stats_wiring
from cri_runtime.streaming.server import StreamingServer
from cri_runtime.userns import support as userns_support

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
        # NRI: plugins see every pod and container event; the callbacks reach the managers built below.
        self.nri_host = NriHost(NriSettings(
            socket_path=config.nri.socket_path, plugin_path=config.nri.plugin_path,
            plugin_config_path=config.nri.plugin_config_path,
            registration_timeout=config.nri.plugin_registration_timeout,
            request_timeout=config.nri.plugin_request_timeout, disable_connections=config.nri.disable_connections),
            runtime_name="cri-runtime", runtime_version=__version__, sync_source=self._nri_sync,
            updater=self._nri_update, evictor=self._nri_evict) if config.nri.enable else None
        nri = NriHooks(self.nri_host, apply_updates=self._nri_update)
        self.sandboxes = SandboxManager(config, self.ctd, self.network, self.images.ensure_image, self.node, nri)
        self.events = EventMonitor(self.ctd, self._on_task_event, self._resync,
                                   on_image_change=self.images.store.invalidate)
        # The image list may be cached only while image events are known to reach us.
        self.images.store.events_live = self.events.subscribed.is_set
        self.containers = ContainerManager(config, self.ctd, self.sandboxes, self.images, self.node, nri)
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
        self._reload_lock = asyncio.Lock()
        self._background: set[asyncio.Task[object]] = set()
        self._ready = False  # READY=1 sent (socket serving, recovery done)

    def network_probe(self) -> Probe:
        return NetworkProbe(self.network)

    async def start(self) -> None:
        """Take the socket, check containerd, start serving, begin recovery."""
        self.guard.acquire()
        try:
            await self._check_containerd()
            for d in (self.config.server.root_dir, self.config.server.state_dir):
                os.makedirs(d, mode=0o711, exist_ok=True)
            await asyncio.to_thread(userns_support.self_check, self.config.server.state_dir,
                                    self.config.runtime.userns_rootfs)
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
        sdnotify.status(f"recovering pods and containers from containerd; socket {self.config.server.socket} is up")
        self._recovery_task = asyncio.create_task(self._recover_then_watch(), name="recovery")

    async def _recover_then_watch(self) -> None:
        """Recover state, then follow task events (whose resync catches up on gaps)."""
        await self.recovery.run()
        self.events.start()
        if self.nri_host is not None:
            try:
                await self.nri_host.start()
            except OSError as exc:
                log.error("NRI stays off: cannot listen on %s: %s", self.config.nri.socket_path, exc.strerror)
        self._ready = True
        sdnotify.ready(f"serving on {self.config.server.socket}")

    async def _nri_sync(self) -> tuple[list[nri_api.PodSandbox], list[nri_api.Container]]:
        """Every pod and container, for a plugin's Synchronize."""
        pods = [nri_convert.pod(sandbox) for sandbox in self.sandboxes.index]
        containers = [nri_convert.container(c) for c in self.containers.index]
        return pods, containers

    async def _nri_update(self, updates: list[nri_api.ContainerUpdate]) -> list[nri_api.ContainerUpdate]:
        return await self.containers.apply_nri_updates(updates)

    async def _nri_evict(self, evictions: list[nri_api.ContainerEviction]) -> None:
        await self.containers.evict_for_nri(evictions)

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

    def request_reload(self, load_config: Callable[[], Config]) -> None:
        """SIGHUP: reload in a task (signal handlers must not block the loop)."""
        task = asyncio.create_task(self.reload(load_config), name="reload")
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def reload(self, load_config: Callable[[], Config]) -> tuple[list[str], list[str]]:
        """Re-read the configuration; apply the live keys, report the others as needing a restart.

        Returns (applied, needs_restart). A file that does not validate
        changes nothing: the running configuration stays, and the error is
        logged naming file and key.
        """
        async with self._reload_lock:
            log.info("SIGHUP received, reloading configuration")
            sdnotify.reloading("reloading configuration")
            try:
                new = load_config()
            except ConfigError as exc:
                log.error("configuration reload failed, keeping the running configuration: %s", exc)
                self._notify_reloaded(f"last reload failed: {exc}")
                return [], []
            for warning in new.warnings:
                log.warning(warning)
            applied, needs_restart = reload.split(reload.changed_keys(self.config, new))
            old_server = dataclasses.replace(self.config.server)
            reload.copy_live(self.config, new, applied)
            self._apply(old_server, applied)
            self.config.origins, self.config.source = new.origins, new.source
            if needs_restart:
                log.warning("configuration changed but needs restart to take effect",
                            extra={"fields": {"needs_restart": ",".join(needs_restart)}})
            log.info("configuration reloaded", extra={"fields": {"applied": ",".join(applied) or "none",
                                                                 "needs_restart": ",".join(needs_restart)}})
            self._notify_reloaded(f"needs restart for: {', '.join(needs_restart)}" if needs_restart else "")
            return applied, needs_restart

    def _notify_reloaded(self, note: str) -> None:
        """READY=1 after a reload, unless start-up recovery has not finished (then READY=1 waits for it)."""
        text = f"serving on {self.config.server.socket}" + (f" ({note})" if note else "")
        if self._ready:
            sdnotify.ready(text)
        else:
            sdnotify.status(f"{text}; recovering")

    def _apply(self, old_server: ServerConfig, applied: list[str]) -> None:
        """Push reloaded values to the parts that copied them at start-up."""
        server = self.config.server
        if server.log_format != old_server.log_format:
            logging_setup.configure(server.log_level, server.log_format)
        elif server.log_level != old_server.log_level:
            logging_setup.set_level(server.log_level)
        image = self.config.image
        puller = self.images.puller
        puller.registry_config_path = image.registry_config_path
        puller.max_concurrent_downloads = image.max_concurrent_downloads
        puller.progress_timeout = image.image_pull_progress_timeout_seconds
        if any(k.startswith("network.") for k in applied):
            self.network.status()  # rescans the CNI config directory now
        if server.metrics_address != old_server.metrics_address:
            if self._metrics_http is not None:
                self._metrics_http.stop()
            self._metrics_http = None
            try:
                self._metrics_http = stats_wiring.serve_metrics(server.metrics_address)
            except OSError as exc:
                log.error("cannot serve metrics on %s: %s", server.metrics_address, exc.strerror)
        if any(k.startswith("tracing.") for k in applied):
            try:
                tracing.configure(self.config.tracing)
            except ConfigError as exc:
                log.error("tracing stays off: %s", exc)

    async def wait(self) -> None:
        await self._stopping.wait()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop serving; in-flight RPCs get `grace` seconds to finish."""
        sdnotify.stopping("stopping")
        if self._grpc is not None:
            await self._grpc.stop(grace)
            self._grpc = None
        await self.events.stop()
        if self.nri_host is not None:
            await self.nri_host.stop()
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
        await asyncio.to_thread(tracing.shutdown, tracing.STOP_FLUSH_SECONDS)
        log.info("stopped")


async def serve(config: Config, load_config: Callable[[], Config] | None = None) -> None:
    """Run until SIGTERM/SIGINT; SIGHUP reloads through `load_config`, SIGUSR1 dumps stacks."""
    loop = asyncio.get_running_loop()
    # SIGHUP and SIGUSR1 must never end the server, not even during start-up.
    hup_while_starting: list[bool] = []
    loop.add_signal_handler(signal.SIGHUP, hup_while_starting.append, True)
    loop.add_signal_handler(signal.SIGUSR1, stackdump.log_dump)
    try:
        tracing.configure(config.tracing)
    except ConfigError as exc:
        raise StartupError(str(exc)) from None
    server = CriServer(config)
    await server.start()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.request_stop)
    reload_from = load_config or (lambda: config)
    loop.add_signal_handler(signal.SIGHUP, server.request_reload, reload_from)
    if hup_while_starting:  # a drop-in written while we started must not be missed
        server.request_reload(reload_from)
    try:
        await server.wait()
    finally:
        log.info("shutting down")
        await server.stop()
