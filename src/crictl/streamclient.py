"""Terminal side of exec/attach/port-forward: local stdio, raw TTY, SIGWINCH, local listeners.

The wire protocols (SPDY/3.1, WebSocket, remote-command, port-forward) come from
`cri_runtime.streaming`; this module only connects them to this process's terminal and
sockets. It is imported by the streaming commands alone, so other commands never load asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import ssl
import struct
import sys
import termios
import threading
import tty as ttymod
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from crictl.errors import CliError

KUBELET_URL_HOST = "127.0.0.1:10250"
DETACH_SEQUENCE = b"\x10\x11"  # ctrl-p, ctrl-q
TRANSPORTS = ("spdy", "websocket")


def complete_url(url: str) -> str:
    """crictl fills in kubelet's address and http when the runtime returns a bare path."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme or "http", parts.netloc or KUBELET_URL_HOST, parts.path, parts.query, ""))


class _NamedServerContext(ssl.SSLContext):
    """A client context that presents (and verifies) a fixed server name, crictl's --tls-sni."""

    server_name = ""

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return super().wrap_bio(incoming, outgoing, server_side, self.server_name or server_hostname, session)


def tls_context(ca: str, cert: str, key: str, server_name: str = "") -> ssl.SSLContext | None:
    """crictl's tlsConfigFromFlags: no flags = no verification; cert and key go together.

    `server_name` replaces the URL's host for SNI and for the certificate check.
    """
    if not (ca or cert or key):
        return None
    if not cert or not key:
        raise CliError(
            "all two flags --tls-ca and --tls-cert are required for TLS streaming, only --tls-key is optional"
        )
    context = _NamedServerContext(ssl.PROTOCOL_TLS_CLIENT)
    context.server_name = server_name
    if ca:
        context.load_verify_locations(cafile=ca)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(cert, key)
    return context


class StdinReader:
    """Local stdin as an AsyncReader, read by a daemon thread (works for files, pipes and TTYs).

    With `watch_detach`, ctrl-p ctrl-q ends the input (the remote side sees stdin closed).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, watch_detach: bool = False) -> None:
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=16)
        self._loop = loop
        self._watch_detach = watch_detach
        self._done = False
        threading.Thread(target=self._run, name="crictl-stdin", daemon=True).start()

    def _run(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(0, 32 * 1024)
            except OSError:
                chunk = b""
            if not chunk:
                if pending:
                    self._put(pending)
                self._put(b"")
                return
            if not self._watch_detach:
                self._put(chunk)
                continue
            data, pending = pending + chunk, b""
            index = data.find(DETACH_SEQUENCE)
            if index >= 0:
                if index:
                    self._put(data[:index])
                self._put(b"")
                return
            if data.endswith(DETACH_SEQUENCE[:1]):
                data, pending = data[:-1], data[-1:]
            if data:
                self._put(data)

    def _put(self, chunk: bytes) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._queue.put(chunk), self._loop).result()
        except Exception:  # the session is over and its loop closed: nobody reads any more
            return

    async def read(self, n: int = -1) -> bytes:
        if self._done:
            return b""
        chunk = await self._queue.get()
        if not chunk:
            self._done = True
        return chunk


class FdWriter:
    """An AsyncWriter onto a local file descriptor (stdout/stderr); close leaves the fd open."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.fd, view)
            except BlockingIOError:
                await asyncio.sleep(0.01)
                continue
            view = view[written:]

    async def close(self) -> None:
        return None


def terminal_size(fd: int) -> tuple[int, int]:
    """(width, height) of the terminal on `fd`."""
    rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    return cols, rows


@contextlib.contextmanager
def raw_terminal(fd: int) -> Iterator[None]:
    """Raw mode for the session; the terminal is restored however it ends."""
    saved = termios.tcgetattr(fd)
    try:
        ttymod.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)


async def resize_events(loop: asyncio.AbstractEventLoop, fd: int) -> AsyncIterator[Any]:
    """The current size, then one event per SIGWINCH (kubectl's MonitorSize)."""
    from cri_runtime.streaming.remotecommand import TerminalSize

    changed: asyncio.Queue[None] = asyncio.Queue()
    loop.add_signal_handler(signal.SIGWINCH, changed.put_nowait, None)
    try:
        last = None
        while True:
            size = terminal_size(fd)
            if size != last:
                last = size
                yield TerminalSize(width=size[0], height=size[1])
            await changed.get()
    finally:
        loop.remove_signal_handler(signal.SIGWINCH)


def run_command_stream(url: str, *, stdin: bool, tty: bool, transport: str, context: ssl.SSLContext | None) -> None:
    """Stream one exec/attach to completion; a non-zero remote exit becomes a CliError."""
    if transport not in TRANSPORTS:
        raise CliError(f"get executor: unknown transport: {transport}")
    if tty and not stdin:
        raise CliError("tty=true must be specified with interactive=true")
    if tty and not os.isatty(0):
        raise CliError("input is not a terminal")
    from cri_runtime.streaming.client import UpgradeError
    from cri_runtime.streaming.remotecommand import RemoteCommandError, StreamOptions, run_remote_command

    options = StreamOptions(stdin=stdin, stdout=True, stderr=not tty, tty=tty)

    async def session() -> int:
        loop = asyncio.get_running_loop()
        reader = StdinReader(loop, watch_detach=tty) if stdin else None
        size_fd = 1 if os.isatty(1) else 0
        resize = resize_events(loop, size_fd) if tty else None
        return await run_remote_command(
            complete_url(url), options, stdin=reader, stdout=FdWriter(1), stderr=None if tty else FdWriter(2),
            resize=resize, transport=transport, ssl_context=context,
        )  # fmt: skip

    sys.stdout.flush()
    try:
        if tty:
            with raw_terminal(0):
                code = asyncio.run(session())
        else:
            code = asyncio.run(session())
    except UpgradeError as exc:
        if transport == "websocket":  # gorilla/websocket's wording, as client-go reports it
            from http import HTTPStatus

            phrase = HTTPStatus(exc.status).phrase if exc.status in HTTPStatus._value2member_map_ else ""
            raise CliError(
                f"unable to upgrade streaming request: websocket: bad handshake ({exc.status} {phrase})"
            ) from exc
        raise CliError(str(exc)) from exc
    except RemoteCommandError as exc:
        raise CliError(str(exc)) from exc
    except (ConnectionError, OSError, TimeoutError) as exc:
        raise CliError(f"error dialing backend: {exc}" if not str(exc).startswith("unable") else str(exc)) from exc
    if code != 0:
        raise CliError(f"command terminated with exit code {code}")


def parse_port_specs(specs: list[str]) -> list[tuple[int, int]]:
    """client-go's parsePorts: `[LOCAL:]REMOTE`, LOCAL 0 or empty = any free port."""
    pairs = []
    for spec in specs:
        local_text, sep, remote_text = spec.partition(":")
        if not sep:
            local_text = remote_text = spec
        try:
            local = int(local_text) if local_text else 0
        except ValueError:
            raise CliError(f"error parsing local port '{local_text}': invalid syntax") from None
        try:
            remote = int(remote_text)
        except ValueError:
            raise CliError(f"error parsing remote port '{remote_text}': invalid syntax") from None
        if not 0 <= local < 65536:
            raise CliError(f"error parsing local port '{local_text}': out of range")
        if not 0 < remote < 65536:
            raise CliError(f"remote port must be > 0 and < 65536: {remote_text}")
        pairs.append((local, remote))
    return pairs


def run_port_forward(url: str, specs: list[str], *, transport: str, context: ssl.SSLContext | None) -> None:
    """Listen on localhost (IPv4 and IPv6) for each port pair until interrupted."""
    if transport not in TRANSPORTS:
        raise CliError(f"get dialer: unknown transport: {transport}")
    pairs = parse_port_specs(specs)
    from cri_runtime.streaming.client import UpgradeError
    from cri_runtime.streaming.portforward import PortForwardError, dial_port_forward

    async def forward() -> None:
        client = await dial_port_forward(complete_url(url), transport=transport, ssl_context=context)
        servers: list[asyncio.Server] = []
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            for local, remote in pairs:
                servers += await _listen_pair(client, local, remote)
            lost = asyncio.ensure_future(client.conn.wait_closed())
            interrupted = asyncio.ensure_future(stop.wait())
            await asyncio.wait([lost, interrupted], return_when=asyncio.FIRST_COMPLETED)
            interrupted.cancel()
            if not stop.is_set():
                raise CliError("lost connection to pod")
            lost.cancel()
        finally:
            for server in servers:
                server.close()
            await client.conn.close()

    async def _listen_pair(client: Any, local: int, remote: int) -> list[asyncio.Server]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            port = writer.get_extra_info("sockname")[1]
            print(f"Handling connection for {port}", flush=True)
            try:
                await client.forward_connection(remote, reader, writer)
            except PortForwardError as exc:
                from crictl import log

                log.error(f"an error occurred forwarding {port} -> {remote}: {exc}")
            except ConnectionError:
                writer.close()

        servers = []
        errors = []
        for host, shown in (("127.0.0.1", "127.0.0.1"), ("::1", "[::1]")):
            try:
                server = await asyncio.start_server(handle, host, local)
            except OSError as exc:
                errors.append(f"unable to listen on port {local}: {exc}")
                continue
            local = server.sockets[0].getsockname()[1]
            print(f"Forwarding from {shown}:{local} -> {remote}", flush=True)
            servers.append(server)
        if not servers:
            raise CliError(f"unable to listen on any of the requested ports: [{' '.join(errors)}]")
        return servers

    try:
        asyncio.run(forward())
    except (UpgradeError, PortForwardError) as exc:
        raise CliError(str(exc)) from exc
    except (ConnectionError, OSError, TimeoutError) as exc:
        raise CliError(f"error upgrading connection: {exc}") from exc
