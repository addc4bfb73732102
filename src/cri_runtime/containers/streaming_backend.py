"""The container side of Exec, Attach and PortForward for the streaming server.

Exec runs a containerd exec process whose FIFOs we pump to the client's
streams; attach joins the container's IO relay (output also keeps going to
the log); port-forward connects to a port inside the pod's network
namespace. Whatever happens to the client, each call releases its process,
FIFOs and sockets before returning.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from cri_protos.containerd.services.tasks.v1 import tasks_pb2
from cri_runtime import errors
from cri_runtime.containers.exec import CommandNotRunnable, ExecProcess, fifo_chunks
from cri_runtime.containers.manager import ContainerManager
from cri_runtime.containers.model import EXITED, RUNNING
from cri_runtime.containers.relay import client as relay
from cri_runtime.containers.relay import protocol as relay_protocol
from cri_runtime.network import netns
from cri_runtime.streaming.remotecommand import TerminalSize
from cri_runtime.streaming.resize import split_initial_size
from cri_runtime.streaming.transport import AsyncReader, AsyncWriter

log = logging.getLogger(__name__)

_CHUNK = 32 * 1024
OUTPUT_DRAIN_TIMEOUT = 5.0
CONNECT_TIMEOUT = 10.0


async def _pump_fd(fd: int, writer: AsyncWriter | None) -> None:
    async for chunk in fifo_chunks(fd):
        if writer is not None:
            await writer.write(chunk)


async def _write_fd(fd: int, data: bytes) -> None:
    """Write all of `data` to a non-blocking FIFO, waiting while it is full."""
    loop = asyncio.get_running_loop()
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
            view = view[n:]
        except BlockingIOError:
            ready = loop.create_future()
            loop.add_writer(fd, ready.set_result, None)
            try:
                await ready
            finally:
                loop.remove_writer(fd)


async def _pump_stdin(reader: AsyncReader, fd: int) -> None:
    try:
        while True:
            data = await reader.read(_CHUNK)
            if not data:
                return
            await _write_fd(fd, data)
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise


class ContainerdStreamingBackend:
    """`cri_runtime.streaming.backend.StreamingBackend` on our containers and pods."""

    def __init__(self, containers: ContainerManager) -> None:
        self.containers = containers
        self.sandboxes = containers.sandboxes
        self.ctd = containers.ctd

    def _running(self, container_id: str) -> str:
        container = self.containers.get(container_id)
        if container.state != RUNNING:
            raise errors.FailedPrecondition(f"container {container.id} is not running ({container.state})")
        return container.id

    # ------------------------------------------------------------------- exec

    async def exec(self, container_id: str, cmd: list[str], *, tty: bool, stdin: AsyncReader | None,
                   stdout: AsyncWriter | None, stderr: AsyncWriter | None,
                   resize: AsyncIterator[TerminalSize]) -> int:
        cid = self._running(container_id)
        initial = None
        if tty:
            initial, resize = await split_initial_size(resize)
        async with ExecProcess(self.ctd, cid, Path(self.containers.state) / cid) as proc:
            try:
                fds = await proc.start(cmd, tty=tty, stdin=stdin is not None, stdout=True, stderr=not tty,
                                       console_size=(initial.width, initial.height) if initial else None)
            except CommandNotRunnable as exc:
                # As a shell would: the reason on stderr (the terminal with a tty), exit 127 or 126.
                out = stdout if tty else stderr
                if out is not None:
                    await out.write((exc.message + ("\r\n" if tty else "\n")).encode())
                return exc.exit_code
            pumps = [asyncio.ensure_future(_pump_fd(fds.stdout, stdout))]
            if fds.stderr >= 0:
                pumps.append(asyncio.ensure_future(_pump_fd(fds.stderr, stderr)))
            side = []
            if stdin is not None:
                side.append(asyncio.ensure_future(self._stdin_then_close(stdin, proc)))
            if tty:
                side.append(asyncio.ensure_future(self._resize(cid, proc.exec_id, resize)))
            try:
                code = await proc.wait()
                # Output written just before the exit is still in the FIFOs.
                await asyncio.wait(pumps, timeout=OUTPUT_DRAIN_TIMEOUT)
                for p in pumps:
                    if p.done() and p.exception() is not None:
                        log.debug("exec output pump ended with %r", p.exception())
                return code
            finally:
                for task in (*pumps, *side):
                    task.cancel()
                for task in (*pumps, *side):
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task

    async def _stdin_then_close(self, reader: AsyncReader, proc: ExecProcess) -> None:
        await _pump_stdin(reader, proc.fds.stdin)
        # The client closed stdin: the process must see EOF. The shim keeps its own
        # end of the FIFO open, so closing ours is not enough; CloseIO tells it.
        if proc.fds.stdin >= 0:
            os.close(proc.fds.stdin)
            proc.fds.stdin = -1
        with contextlib.suppress(errors.CriError):
            await self.ctd.call(
                self.ctd.tasks.CloseIO,
                tasks_pb2.CloseIORequest(container_id=proc.container_id, exec_id=proc.exec_id, stdin=True),
                f"close stdin of exec in {proc.container_id}")

    async def _resize(self, container_id: str, exec_id: str, sizes: AsyncIterator[TerminalSize]) -> None:
        async for size in sizes:
            with contextlib.suppress(errors.CriError):
                await self.ctd.call(
                    self.ctd.tasks.ResizePty,
                    tasks_pb2.ResizePtyRequest(container_id=container_id, exec_id=exec_id,
                                               width=size.width, height=size.height),
                    f"resize tty of {container_id}")

    # ----------------------------------------------------------------- attach

    async def attach(self, container_id: str, *, tty: bool, stdin: AsyncReader | None,
                     stdout: AsyncWriter | None, stderr: AsyncWriter | None,
                     resize: AsyncIterator[TerminalSize]) -> int:
        cid = self._running(container_id)
        container = self.containers.get(cid)
        session = await relay.attach(container.metadata.io_dir, stdin=stdin is not None and container.config.stdin)
        side = []
        if stdin is not None and session.stdin:
            side.append(asyncio.ensure_future(
                self._attach_stdin(stdin, session, cid, container.config.stdin_once)))
        if tty:
            side.append(asyncio.ensure_future(self._resize(cid, "", resize)))
        try:
            while True:
                frame = await session.read_frame()
                if frame is None:
                    break
                kind, payload = frame
                if kind == relay_protocol.FRAME_STDOUT and stdout is not None:
                    await stdout.write(payload)
                elif kind == relay_protocol.FRAME_STDERR:
                    target = stdout if tty else stderr
                    if target is not None:
                        await target.write(payload)
                elif kind == relay_protocol.FRAME_END:
                    break
        finally:
            for task in side:
                task.cancel()
            for task in side:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await session.close()
            if session.stdin and container.config.stdin_once:
                await self._close_container_stdin(cid)
        # The stream ended: the container exited (or stdin closed it); report its code if known.
        await asyncio.sleep(0)
        current = self.containers.index.find(cid)
        if current is not None and current.state == EXITED:
            return current.status.exit_code
        return 0

    async def _attach_stdin(self, reader: AsyncReader, session: relay.AttachSession, container_id: str,
                            stdin_once: bool) -> None:
        while True:
            data = await reader.read(_CHUNK)
            if not data:
                await session.close_stdin()
                if stdin_once:
                    await self._close_container_stdin(container_id)
                return
            await session.write_stdin(data)

    async def _close_container_stdin(self, container_id: str) -> None:
        """stdin_once: the first attach session's end closes the container's stdin for good.

        The shim keeps the process's stdin pipe open itself, so closing our FIFO end is not
        enough; CloseIO makes the shim close it (as containerd's CRI does).
        """
        with contextlib.suppress(errors.CriError):
            await self.ctd.call(self.ctd.tasks.CloseIO, tasks_pb2.CloseIORequest(container_id=container_id, stdin=True),
                                f"close stdin of container {container_id}")

    # ------------------------------------------------------------ port-forward

    async def port_forward(self, pod_sandbox_id: str, port: int, reader: AsyncReader, writer: AsyncWriter) -> None:
        sandbox = self.sandboxes.get(pod_sandbox_id)
        if not sandbox.ready:
            raise errors.FailedPrecondition(f"pod sandbox {sandbox.id} is not ready")
        sock = await self._connect(sandbox.metadata.netns_path, port)
        conn_reader, conn_writer = await asyncio.open_connection(sock=sock)
        try:
            await self._splice(reader, writer, conn_reader, conn_writer)
        finally:
            conn_writer.close()
            with contextlib.suppress(Exception):
                await conn_writer.wait_closed()

    async def _connect(self, netns_path: str, port: int) -> socket.socket:
        """A TCP connection to localhost:port in the pod's network namespace."""

        def dial() -> socket.socket:
            last: OSError | None = None
            for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
                s = socket.socket(family, socket.SOCK_STREAM)
                s.settimeout(CONNECT_TIMEOUT)
                try:
                    s.connect((host, port))
                except OSError as exc:
                    s.close()
                    last = exc
                    continue
                s.setblocking(False)
                return s
            raise errors.Unavailable(f"port-forward: nothing accepts connections on port {port} in the pod: "
                                     f"{last.strerror if last else 'unknown error'}")

        if not netns_path:
            return await asyncio.to_thread(dial)
        return await netns.run_in_netns(netns_path, dial)

    @staticmethod
    async def _splice(reader: AsyncReader, writer: AsyncWriter, conn_reader: asyncio.StreamReader,
                      conn_writer: asyncio.StreamWriter) -> None:
        async def client_to_port() -> None:
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    if conn_writer.can_write_eof():
                        conn_writer.write_eof()
                    return
                conn_writer.write(data)
                await conn_writer.drain()

        async def port_to_client() -> None:
            while True:
                data = await conn_reader.read(_CHUNK)
                if not data:
                    await writer.close()
                    return
                await writer.write(data)

        up = asyncio.ensure_future(client_to_port())
        down = asyncio.ensure_future(port_to_client())
        try:
            await down
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(up), 1)
        finally:
            for task in (up, down):
                task.cancel()
            for task in (up, down):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
