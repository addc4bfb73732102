"""Interop with the upstream crictl binary: it gets our streaming URLs from a fake CRI endpoint
and speaks SPDY/3.1 and WebSocket to our server (local-process backend, no containers)."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import pty
import re
import signal
import struct
import tempfile
import termios
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cri_runtime.streaming.server import StreamingServer
from tests.unit.streaming.fake_cri import start_fake_cri
from tests.unit.streaming.local_backend import LocalBackend

CRICTL = Path("/opt/cri-tools/bin/crictl")
pytestmark = pytest.mark.skipif(not CRICTL.exists(), reason="upstream crictl not installed")


@dataclass
class Endpoint:
    streaming: StreamingServer
    address: str

    def argv(self, *args: str) -> list[str]:
        return [str(CRICTL), "-r", self.address, "-i", self.address, "--timeout", "10s", *args]


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    with tempfile.TemporaryDirectory(prefix="crirt-stream-") as tmp:
        streaming = StreamingServer(LocalBackend())
        await streaming.start()
        grpc_server = await start_fake_cri(f"{tmp}/cri.sock", streaming)
        try:
            yield Endpoint(streaming, f"unix://{tmp}/cri.sock")
        finally:
            await grpc_server.stop(0)
            await streaming.stop()
            assert streaming.backend.live == 0  # type: ignore[attr-defined]


async def crictl(ep: Endpoint, *args: str, stdin: bytes | None = None, timeout: float = 30) -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(
        *ep.argv(*args), stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode, out, err


@pytest.mark.parametrize("transport", ["spdy", "websocket"])
async def test_crictl_exec(endpoint: Endpoint, transport: str) -> None:
    rc, out, err = await crictl(endpoint, "exec", "--transport", transport, "c1", "sh", "-c", "echo out; echo err >&2")
    assert (rc, out, err) == (0, b"out\n", b"err\n")
    rc, out, err = await crictl(endpoint, "exec", "--transport", transport, "c1", "sh", "-c", "echo x; exit 3")
    assert rc != 0 and out == b"x\n" and b"command terminated with exit code 3" in err


@pytest.mark.parametrize("transport", ["spdy", "websocket"])
async def test_crictl_exec_stdin_large(endpoint: Endpoint, transport: str) -> None:
    blob = os.urandom(3 * 1024 * 1024)
    rc, out, _ = await crictl(endpoint, "exec", "-i", "--transport", transport, "c1", "md5sum", stdin=blob)
    assert rc == 0 and out.split()[0].decode() == hashlib.md5(blob).hexdigest()
    rc, out, _ = await crictl(endpoint, "exec", "-i", "--transport", transport, "c1", "cat", stdin=blob)
    assert rc == 0 and out == blob


@pytest.mark.parametrize("transport", ["spdy", "websocket"])
async def test_crictl_exec_tty_under_a_pty(endpoint: Endpoint, transport: str) -> None:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 101, 0, 0))
    proc = await asyncio.create_subprocess_exec(
        *endpoint.argv("exec", "-it", "--transport", transport, "c1", "sh", "-c", "sleep 0.5; stty size; tty"),
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    output = bytearray()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while proc.returncode is None and loop.time() < deadline:
            with contextlib.suppress(BlockingIOError, OSError):
                os.set_blocking(master, False)
                output += os.read(master, 65536)
            await asyncio.sleep(0.05)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(proc.wait()), 0.01)
        with contextlib.suppress(OSError):
            output += os.read(master, 65536)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        os.close(master)
    assert proc.returncode == 0, output
    assert b"33 101" in output  # crictl sent its terminal size on the resize stream
    assert b"/dev/pts/" in output


@pytest.fixture
async def http_port() -> AsyncIterator[int]:
    body = os.urandom(1024 * 1024)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    server.body = body  # type: ignore[attr-defined]
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def http_get(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return data.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("transport", ["spdy", "websocket"])
async def test_crictl_port_forward(endpoint: Endpoint, http_port: int, transport: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *endpoint.argv("port-forward", "--transport", transport, "pod1", f"0:{http_port}"),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 15)
        match = re.search(rb"Forwarding from 127\.0\.0\.1:(\d+)", line)
        assert match, line
        local = int(match.group(1))
        expected = hashlib.sha256(await http_get(http_port)).hexdigest()
        for _ in range(3):
            assert hashlib.sha256(await http_get(local)).hexdigest() == expected
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    streaming = endpoint.streaming
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while streaming.active_connections and loop.time() < deadline:
        await asyncio.sleep(0.05)
    assert streaming.active_connections == 0
