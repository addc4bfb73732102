"""The streaming server against hostile or broken clients (issue 14), one test per behaviour.

Each attack runs from blocking sockets in a worker thread on 127.0.0.1, bounded in time and
bytes, while normal execs keep running on the same server: they must be served within 1 s,
memory must stay bounded, and the attacking connection must end as RFC 6455 / SPDY say.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from cri_runtime.streaming.backend import ExecRequest
from cri_runtime.streaming.remotecommand import run_remote_command
from cri_runtime.streaming.server import StreamingServer
from cri_runtime.streaming.spdy.frames import (
    DataFrame,
    FrameCodec,
    PingFrame,
    RstStatus,
    RstStreamFrame,
    SynReplyFrame,
    SynStreamFrame,
)
from cri_runtime.streaming.websocket import OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, encode_frame
from tests.unit.streaming.local_backend import LocalBackend
from tests.waiting import until


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class Collect:
    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, data: bytes) -> None:
        self.data += data

    async def close(self) -> None:
        return None


@pytest.fixture
async def server() -> AsyncIterator[StreamingServer]:
    srv = StreamingServer(LocalBackend(), idle_timeout=30, max_connections=16)
    await srv.start()
    yield srv
    await srv.stop()
    assert srv.active_connections == 0
    assert srv.backend.live == 0  # type: ignore[attr-defined]


class Prober:
    """Normal execs, one after another, while an attack runs in a thread."""

    def __init__(self, server: StreamingServer) -> None:
        self.server = server
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def __aenter__(self) -> Prober:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        deadline = time.monotonic() + 10
        while len(self.latencies) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        self._stop.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, 15)

    async def _run(self) -> None:
        while not self._stop.is_set():
            req = ExecRequest("c1", ["echo", "probe"], stdout=True, stderr=False)
            out = Collect()
            started = time.monotonic()
            try:
                code = await asyncio.wait_for(
                    run_remote_command(self.server.request_url("exec", req), req.options, stdout=out), 5)
                if code != 0 or out.data != b"probe\n":
                    self.errors.append(f"exit {code}, output {bytes(out.data)!r}")
            except Exception as exc:  # every failure is a finding
                self.errors.append(repr(exc))
            self.latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.05)

    def check(self) -> None:
        assert not self.errors, self.errors
        assert len(self.latencies) >= 3, f"only {len(self.latencies)} probes ran"
        slow = [round(t, 2) for t in self.latencies if t > 1.0]
        assert len(slow) <= max(1, len(self.latencies) // 10), f"slow probes {slow} of {len(self.latencies)}"


def connect(server: StreamingServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    return sock


def read_head(sock: socket.socket) -> tuple[int, bytes]:
    """(status, bytes after the head) of an HTTP response."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), rest


def send_until_blocked(sock: socket.socket, chunk: bytes, max_bytes: int) -> int:
    """Send `chunk` until the server stops reading (a 1 s blocked send); the bytes sent."""
    sock.settimeout(1.0)
    sent = 0
    try:
        while sent < max_bytes:
            sock.sendall(chunk)
            sent += len(chunk)
    except TimeoutError:
        return sent
    raise AssertionError(f"the server kept reading {sent} bytes from a client that never reads")


def exec_path(server: StreamingServer, cmd: list[str], **opts: Any) -> str:
    return urlsplit(server.request_url("exec", ExecRequest("c1", cmd, **opts))).path


def websocket_upgrade(server: StreamingServer, path: str) -> socket.socket:
    sock = connect(server)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                  f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n").encode())
    status, _ = read_head(sock)
    assert status == 101
    return sock


def spdy_upgrade(server: StreamingServer, path: str) -> socket.socket:
    sock = connect(server)
    sock.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                  "X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\r\n").encode())
    status, _ = read_head(sock)
    assert status == 101
    return sock


async def in_thread(fn: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(fn)


# -- request heads ---------------------------------------------------------------


async def test_partial_heads_are_limited_while_read(server: StreamingServer) -> None:
    before = rss_mb()
    socks: list[socket.socket] = []

    def attack() -> int:
        for _ in range(12):  # under the connection cap, so the probes still get in
            sock = connect(server)
            sock.sendall(b"GET /exec/x HTTP/1.1\r\nX-Pad: " + b"p" * 60_000)  # never finished
            socks.append(sock)
        big = connect(server)  # and one head that never ends: refused at the limit, not after it
        socks.append(big)
        big.settimeout(1.0)
        with contextlib.suppress(TimeoutError, ConnectionError):  # the server answers and hangs up part-way
            big.sendall(b"GET /exec/x HTTP/1.1\r\nX-Pad: " + b"p" * (1 << 20))
        big.settimeout(5)
        return read_head(big)[0]

    try:
        async with Prober(server) as probe:
            assert await in_thread(attack) == 431
            assert rss_mb() - before < 30  # the old 1 MiB reader limit let each hold a megabyte
    finally:
        for sock in socks:
            sock.close()
    probe.check()


async def test_connection_cap_answers_503(server: StreamingServer) -> None:
    socks = [connect(server) for _ in range(16)]
    try:
        await until(lambda: server.active_connections >= 16, "16 connections are open", timeout=5)
        extra = connect(server)
        socks.append(extra)
        status, _ = await in_thread(lambda: read_head(extra))
        assert status == 503
    finally:
        for sock in socks:
            sock.close()


async def test_a_malformed_websocket_request_does_not_burn_the_token(server: StreamingServer) -> None:
    path = exec_path(server, ["echo", "ok"], stdout=True, stderr=False)

    def bad_then_good() -> tuple[int, int]:
        sock = connect(server)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                     "Sec-WebSocket-Version: 12\r\n\r\n".encode())
        bad = read_head(sock)[0]
        sock.close()
        good = websocket_upgrade(server, path)
        good.close()
        return bad, 101

    assert await in_thread(bad_then_good) == (400, 101)


# -- control replies nobody reads ---------------------------------------------------------


async def test_websocket_pings_from_a_client_that_never_reads_stop_being_read(server: StreamingServer) -> None:
    path = exec_path(server, ["sleep", "30"], stdout=True, stderr=False)
    before = rss_mb()
    ping = encode_frame(OP_PING, b"x" * 125, mask=b"abcd")
    sock = await in_thread(lambda: websocket_upgrade(server, path))
    try:
        async with Prober(server) as probe:
            sent = await in_thread(lambda: send_until_blocked(sock, ping * 1000, 200 * 1024 * 1024))
            assert sent < 50 * 1024 * 1024
            assert rss_mb() - before < 30  # the PONGs were not buffered without limit
    finally:
        sock.close()
    probe.check()


async def test_spdy_pings_from_a_client_that_never_reads_stop_being_read(server: StreamingServer) -> None:
    path = exec_path(server, ["sleep", "30"], stdout=True, stderr=False)
    before = rss_mb()
    codec = FrameCodec()
    pings = b"".join(codec.encode(PingFrame(2 * i + 1)) for i in range(5000))
    sock = await in_thread(lambda: spdy_upgrade(server, path))
    try:
        async with Prober(server) as probe:
            sent = await in_thread(lambda: send_until_blocked(sock, pings, 200 * 1024 * 1024))
            assert sent < 50 * 1024 * 1024
            assert rss_mb() - before < 30  # the echoes were not buffered without limit
    finally:
        sock.close()
    probe.check()


# -- fragments and streams -------------------------------------------------------------


async def test_tiny_websocket_fragments_are_bounded_and_closed_with_1009(server: StreamingServer) -> None:
    path = exec_path(server, ["cat"], stdin=True, stdout=True, stderr=False)
    before = rss_mb()
    mask = b"abcd"
    first = encode_frame(OP_BINARY, b"\x00x", fin=False, mask=mask)  # channel 0 (stdin)
    fragment = encode_frame(OP_CONTINUATION, b"xx", fin=False, mask=mask)
    sock = await in_thread(lambda: websocket_upgrade(server, path))

    def attack() -> int:
        sock.sendall(first)
        sock.settimeout(5)
        batch = fragment * 20_000
        sent = 0
        try:
            while sent < 400_000:  # 16 MiB / 64 per fragment = 262 144 fragments at most
                sock.sendall(batch)
                sent += 20_000
        except (ConnectionError, TimeoutError):
            pass
        data = b""
        while True:  # the server's frames (no data: cat got no whole message), then its close frame
            try:
                chunk = sock.recv(65536)
            except (ConnectionError, TimeoutError):
                break
            if not chunk:
                break
            data += chunk
        pos = 0
        while pos + 2 <= len(data):
            opcode, length = data[pos] & 0x0F, data[pos + 1] & 0x7F
            header = 2
            if length == 126:
                length, header = struct.unpack(">H", data[pos + 2:pos + 4])[0], 4
            if opcode == OP_CLOSE:
                return int(struct.unpack(">H", data[pos + header:pos + header + 2])[0])
            pos += header + length
        raise AssertionError(f"no close frame in {data[:200]!r}")

    try:
        async with Prober(server) as probe:
            assert await in_thread(attack) == 1009
            assert rss_mb() - before < 30  # 2-byte fragments once cost 25 times their size
    finally:
        sock.close()
    probe.check()


async def test_unaccepted_spdy_streams_are_refused_past_the_cap(server: StreamingServer) -> None:
    path = exec_path(server, ["sleep", "30"], stdout=True, stderr=False)
    codec = FrameCodec()
    sock = await in_thread(lambda: spdy_upgrade(server, path))
    before = rss_mb()
    refused: list[int] = []
    stop = threading.Event()
    decoder = FrameCodec()

    def reader() -> None:
        buf = b""
        sock.settimeout(0.5)
        while not stop.is_set():
            try:
                chunk = sock.recv(1 << 20)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while len(buf) >= 8:
                length = decoder.payload_length(buf[:8])
                if len(buf) < 8 + length:
                    break
                frame = decoder.decode(buf[:8], buf[8:8 + length])
                buf = buf[8 + length:]
                if isinstance(frame, RstStreamFrame) and frame.status == RstStatus.REFUSED_STREAM:
                    refused.append(frame.stream_id)
                if isinstance(frame, SynReplyFrame):
                    refused.append(0)  # marks the replies to our two real streams

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        sock.sendall(codec.encode(SynStreamFrame(1, [("streamtype", "error")]))
                     + codec.encode(SynStreamFrame(3, [("streamtype", "stdout")])))
        data = b"d" * 200_000

        def attack() -> None:
            for sid in range(5, 5 + 2 * 400, 2):
                sock.sendall(codec.encode(SynStreamFrame(sid, [("streamtype", "stdin")]))
                             + codec.encode(DataFrame(sid, data)))

        async with Prober(server) as probe:
            await in_thread(attack)
            await until(lambda: len([s for s in refused if s]) >= 400 - 16, "all streams beyond the cap refused")
            assert rss_mb() - before < 30  # 400 streams of 200 KB once cost 115 MB
    finally:
        stop.set()
        sock.close()
        thread.join(5)
    probe.check()
