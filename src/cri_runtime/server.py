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

from cri_protos.runtime.v1 import api_pb2
from cri_runtime import __version__, composition, errors, logging_setup, reload, sdnotify, stackdump, tracing
from cri_runtime.config import Config, ConfigError, ServerConfig
from cri_runtime.metrics.http import MetricsHttpServer
from cri_runtime.node import binaries
from cri_runtime.rpc import RpcServer
from cri_runtime.stats import wiring as stats_wiring
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


class CriServer:
    """Everything one cri-runtime process runs: the parts `composition.build` wires, on a socket."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.guard = SocketGuard(config.server.socket)
        self.parts = composition.build(config)
        self.ctd = self.parts.ctd
        self.network = self.parts.network
        self.images = self.parts.images
        self.nri_host = self.parts.nri_host
        self.containers = self.parts.containers
        self.events = self.parts.events
        self.streaming = self.parts.streaming
        self.recovery = self.parts.recovery
        self._grpc: RpcServer | None = None
        self._stopping = asyncio.Event()
        self._recovery_task: asyncio.Task[None] | None = None
        self._metrics_http: MetricsHttpServer | None = None
        self._reload_lock = asyncio.Lock()
        self._background: set[asyncio.Task[object]] = set()
        self._ready = False  # READY=1 sent (socket serving, recovery done)

    async def start(self) -> None:
        """Take the socket, check containerd, start serving, begin recovery."""
        self.guard.acquire()
        try:
            self._check_binaries()
            await self._check_containerd()
            for d in (self.config.server.root_dir, self.config.server.state_dir):
                os.makedirs(d, mode=0o711, exist_ok=True)
            await asyncio.to_thread(userns_support.self_check, self.config.server.state_dir,
                                    self.config.runtime.userns_rootfs)
            server = RpcServer(MAX_MESSAGE_BYTES)
            server.add_service(api_pb2.DESCRIPTOR.services_by_name["RuntimeService"], self.parts.runtime_service)
            server.add_service(api_pb2.DESCRIPTOR.services_by_name["ImageService"], self.parts.image_service)
            try:
                await self.streaming.start()
            except OSError as exc:
                raise StartupError(f"cannot listen for streaming on {self.config.streaming.address}:"
                                   f"{self.config.streaming.port}: {exc.strerror}") from None
            try:
                # Created with SOCKET_MODE from the start (root and its group: kubelet runs as
                # root), never chmod'ed after connections could already be accepted.
                await server.start(self.config.server.socket, mode=SOCKET_MODE)
            except OSError as exc:
                await self.streaming.stop()
                raise StartupError(f"cannot listen on {self.config.server.socket}: {exc.strerror}") from None
            self._grpc = server
            self._metrics_http = stats_wiring.serve_metrics(self.config.server.metrics_address)
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

    def _check_binaries(self) -> None:
        """The default handler's shim and runc must exist; other gaps are warnings (see node/binaries.py)."""
        problems = binaries.fatal_problems(self.config)
        if problems:
            raise StartupError(problems[0])
        for warning in binaries.warnings(self.config):
            log.warning(warning)

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
