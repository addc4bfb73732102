"""The streaming server end to end with our own clients and the local-process backend:
SPDY and WebSocket exec, port-forward (SPDY, SPDY tunnelled in WebSocket, legacy WebSocket),
token rules, protocol refusal, malformed frames, vanished clients, concurrency."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import struct
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from cri_runtime.errors import InvalidArgument
from cri_runtime.streaming import portforward
from cri_runtime.streaming.backend import AttachRequest, ExecRequest, PortForwardRequest
from cri_runtime.streaming.client import UpgradeError, dial_spdy, dial_websocket
from cri_runtime.streaming.remotecommand import (
    ChannelBuffer,
    RemoteCommandError,
    TerminalSize,
    run_remote_command,
)
from cri_runtime.streaming.server import StreamingServer
from cri_runtime.streaming.spdy.frames import FrameCodec, PingFrame
from cri_runtime.streaming.websocket import OP_BINARY, OP_TEXT
from tests.unit.streaming.local_backend import LocalBackend


class Collect:
    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, data: bytes) -> None:
        self.data += data

    async def close(self) -> None:
        return None


@pytest.fixture
async def server() -> AsyncIterator[StreamingServer]:
    srv = StreamingServer(LocalBackend(), idle_timeout=30)
    await srv.start()
    yield srv
    await srv.stop()
    assert srv.active_connections == 0
    assert srv.backend.live == 0  # type: ignore[attr-defined]


async def until(predicate: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def feed(data: bytes) -> ChannelBuffer:
    buf = ChannelBuffer()
    buf._buf += data
    buf.feed_eof()
    return buf


async def run(server: StreamingServer, cmd: list[str], transport: str, *, stdin: bytes | None = None,
              tty: bool = False) -> tuple[int, bytes, bytes]:
    req = ExecRequest("c1", cmd, tty=tty, stdin=stdin is not None, stdout=True, stderr=not tty)
    out, err = Collect(), Collect()
    code = await asyncio.wait_for(run_remote_command(
        server.request_url("exec", req), req.options, stdin=feed(stdin) if stdin is not None else None,
        stdout=out, stderr=err, transport=transport), 20)
    return code, bytes(out.data), bytes(err.data)


@pytest.mark.parametrize("transport", ["spdy", "websocket"])
async def test_exec_streams_and_exit_codes(server: StreamingServer, transport: str) -> None:
    code, out, err = await run(server, ["sh", "-c", "echo out; echo err >&2; exit 7"], transport)
    assert (code, out, err) == (7, b"out\n", b"err\n")
    code, out, _ = await run(server, ["sh", "-c", "cat; echo end"], transport, stdin=b"in\n")
    assert (code, out) == (0, b"in\nend\n")


@pytest.mark.parametrize("transport", ["spdy", "websocket"])
async def test_large_transfer_both_ways(server: StreamingServer, transport: str) -> None:
    blob = bytes(range(256)) * 8192  # 2 MiB, far beyond the 64 KiB window
    code, out, _ = await run(server, ["cat"], transport, stdin=blob)
    assert code == 0 and out == blob


async def test_exec_failure_is_reported_as_error(server: StreamingServer) -> None:
    with pytest.raises(RemoteCommandError):
        await run(server, ["/nonexistent/binary"], "spdy")


async def test_tty_exec_applies_resize(server: StreamingServer) -> None:
    async def sizes() -> AsyncIterator[TerminalSize]:
        yield TerminalSize(123, 45)

    req = ExecRequest("c1", ["sh", "-c", "sleep 0.5; stty size"], tty=True, stdin=True, stdout=True, stderr=False)
    out = Collect()
    stdin = ChannelBuffer()
    task = asyncio.create_task(run_remote_command(server.request_url("exec", req), req.options, stdin=stdin,
                                                  stdout=out, resize=sizes()))
    code = await asyncio.wait_for(task, 10)
    stdin.feed_eof()
    assert code == 0 and b"45 123" in out.data
    assert TerminalSize(123, 45) in server.backend.resizes  # type: ignore[attr-defined]


async def test_attach_runs_backend_attach(server: StreamingServer) -> None:
    req = AttachRequest("c1", stdin=True, stdout=True, stderr=True)
    out = Collect()
    code = await asyncio.wait_for(run_remote_command(server.request_url("attach", req), req.options,
                                                     stdin=feed(b"attached\n"), stdout=out, stderr=Collect()), 10)
    assert code == 0 and out.data == b"attached\n"


async def raw_request(server: StreamingServer, path: str, headers: list[tuple[str, str]]) -> tuple[int, str, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}"] + [f"{k}: {v}" for k, v in headers]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        response = (await asyncio.wait_for(reader.read(65536), 5)).decode("latin-1")
        head, _, body = response.partition("\r\n\r\n")
        return int(head.split(" ")[1]), head, body
    finally:
        writer.close()


SPDY_V4 = [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"), ("X-Stream-Protocol-Version", "v4.channel.k8s.io")]


async def test_tokens_unknown_reused_and_expired_get_404(server: StreamingServer) -> None:
    assert (await raw_request(server, "/exec/bogus", SPDY_V4))[0] == 404
    assert (await raw_request(server, "/nothing/here", SPDY_V4))[0] == 404
    url = server.request_url("exec", ExecRequest("c1", ["true"]))
    path = urlsplit(url).path
    # Requests the token is not valid for get an error and leave the token usable.
    assert (await raw_request(server, path.replace("/exec/", "/attach/"), SPDY_V4))[0] == 404
    assert (await raw_request(server, path, []))[0] == 400  # no upgrade headers
    assert (await raw_request(server, path, [*SPDY_V4[:2], ("X-Stream-Protocol-Version", "v9")]))[0] == 403
    assert (await raw_request(server, path, SPDY_V4))[0] == 101  # the first valid request uses it up
    assert (await raw_request(server, path, SPDY_V4))[0] == 404
    url = server.request_url("exec", ExecRequest("c1", ["true"]))
    server.tokens._clock = lambda: 1e12  # far in the future: expired
    try:
        assert (await raw_request(server, urlsplit(url).path, SPDY_V4))[0] == 404
    finally:
        import time

        server.tokens._clock = time.monotonic


async def test_url_is_concrete_and_requests_are_validated(server: StreamingServer) -> None:
    url = server.request_url("portforward", PortForwardRequest("pod", [80]))
    assert url.startswith(f"http://127.0.0.1:{server.port}/portforward/")
    with pytest.raises(InvalidArgument):
        server.request_url("exec", ExecRequest("c1", ["sh"], tty=True, stderr=True))
    with pytest.raises(InvalidArgument):
        server.request_url("exec", ExecRequest("", ["sh"]))
    with pytest.raises(ValueError):
        server.request_url("exec", PortForwardRequest("pod"))


async def test_upgrade_without_a_protocol_we_speak_is_403(server: StreamingServer) -> None:
    url = server.request_url("exec", ExecRequest("c1", ["true"]))
    status, head, body = await raw_request(server, urlsplit(url).path, [
        ("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"), ("X-Stream-Protocol-Version", "v99.channel.k8s.io")])
    assert status == 403 and "v4.channel.k8s.io" in body
    assert "X-Accepted-Stream-Protocol-Versions: v4.channel.k8s.io" in head
    url = server.request_url("exec", ExecRequest("c1", ["true"]))
    with pytest.raises(UpgradeError) as info:
        await dial_websocket(url, ["v99.channel.k8s.io"])
    assert info.value.status == 403 and "v5.channel.k8s.io" in info.value.body
    url = server.request_url("exec", ExecRequest("c1", ["true"]))
    assert (await raw_request(server, urlsplit(url).path, []))[0] == 400


async def test_malformed_frames_do_not_crash_the_server(server: StreamingServer) -> None:
    for garbage in (b"\x80\x03\x00\x01\x00\x00\x00\x0e" + b"\x00\x00\x00\x01" + b"\xff" * 10,
                    b"\x80\x02\x00\x06\x00\x00\x00\x04abcd", b"\x00" * 3):
        url = server.request_url("exec", ExecRequest("c1", ["sleep", "30"]))
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        lines = [f"POST {urlsplit(url).path} HTTP/1.1", "Host: x"] + [f"{k}: {v}" for k, v in SPDY_V4]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + garbage)
        writer.write_eof()  # a truncated frame is only malformed once the stream ends
        await writer.drain()
        with contextlib.suppress(ConnectionError):
            await asyncio.wait_for(reader.read(), 5)  # the server answers and hangs up
        writer.close()
    await until(lambda: server.active_connections == 0)
    code, out, _ = await run(server, ["echo", "still alive"], "spdy")
    assert (code, out) == (0, b"still alive\n")


@pytest.mark.parametrize("transport", ["spdy", "websocket"])
async def test_client_vanishing_mid_stream_leaks_nothing(server: StreamingServer, transport: str) -> None:
    backend: LocalBackend = server.backend  # type: ignore[assignment]
    req = ExecRequest("c1", ["sh", "-c", "while true; do echo tick; sleep 0.05; done"], stdin=True)
    url = server.request_url("exec", req)
    out = Collect()
    task = asyncio.create_task(run_remote_command(url, req.options, stdin=ChannelBuffer(), stdout=out,
                                                  stderr=Collect(), transport=transport))
    await until(lambda: len(out.data) > 20)
    assert backend.live == 1
    task.cancel()  # closes the client's socket without any goodbye
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await until(lambda: backend.live == 0 and server.active_connections == 0)


async def test_idle_session_is_closed() -> None:
    srv = StreamingServer(LocalBackend(), idle_timeout=0.5)
    async with srv:
        req = ExecRequest("c1", ["sleep", "30"], stdin=True)
        conn, _ = await dial_spdy(srv.request_url("exec", req), ["v4.channel.k8s.io"])
        await asyncio.wait_for(conn.wait_closed(), 10)  # no streams created, no traffic
        await until(lambda: srv.active_connections == 0)


async def test_idle_websocket_session_is_closed() -> None:
    srv = StreamingServer(LocalBackend(), idle_timeout=0.5)
    async with srv:
        req = ExecRequest("c1", ["sleep", "30"], stdin=True, stdout=True, stderr=False)
        ws, _ = await dial_websocket(srv.request_url("exec", req), ["v5.channel.k8s.io"])
        while await asyncio.wait_for(ws.recv(), 10) is not None:
            pass  # no traffic from us: the server closes the idle session
        assert ws.close_code == 1001
        await until(lambda: srv.active_connections == 0)


async def test_spdy_ping_is_answered(server: StreamingServer) -> None:
    conn, protocol = await dial_spdy(server.request_url("exec", ExecRequest("c1", ["true"])), ["v4.channel.k8s.io"])
    assert protocol == "v4.channel.k8s.io"
    assert await conn.ping(5) < 5
    await conn.close()
    assert FrameCodec().encode(PingFrame(1))  # codec still usable independently


async def test_fifty_concurrent_execs(server: StreamingServer) -> None:
    async def one(i: int) -> None:
        transport = "spdy" if i % 2 else "websocket"
        code, out, _ = await run(server, ["sh", "-c", f"echo {i}; exit {i % 5}"], transport)
        assert (code, out) == (i % 5, f"{i}\n".encode())

    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(50))), 60)


# ------------------------------------------------------------------ port-forward
@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read()  # until the client half-closes
        writer.write(b"echo:" + data)
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield srv.sockets[0].getsockname()[1]
    srv.close()
    await srv.wait_closed()


@pytest.mark.parametrize("transport", ["spdy", "websocket"])
async def test_port_forward_over_spdy_and_tunnel(server: StreamingServer, echo_port: int, transport: str) -> None:
    url = server.request_url("portforward", PortForwardRequest("pod"))
    client = await portforward.dial_port_forward(url, transport=transport)
    try:
        for i in range(3):  # several connections share one session
            data, error = await client.open(echo_port)
            await data.write(f"hello {i}".encode() * 10000)
            await data.close()
            reply = await data.read_all(limit=1 << 22)
            assert reply == b"echo:" + f"hello {i}".encode() * 10000
            assert await error.read_all() == b""
        data, error = await client.open(1)  # nothing listens on port 1
        assert await data.read_all() == b""
        assert b"error forwarding port 1" in await error.read_all()
    finally:
        await client.conn.close()
    await until(lambda: server.backend.live == 0)  # type: ignore[attr-defined]


async def test_port_forward_local_listener(server: StreamingServer, echo_port: int) -> None:
    client = await portforward.dial_port_forward(server.request_url("portforward", PortForwardRequest("pod")))
    listener = await client.listen("127.0.0.1", 0, echo_port)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.sockets[0].getsockname()[1])
        writer.write(b"via listener")
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) == b"echo:via listener"
        writer.close()
    finally:
        listener.close()
        await listener.wait_closed()
        await client.conn.close()


@pytest.mark.parametrize("protocol", ["v4.channel.k8s.io", "v4.base64.channel.k8s.io"])
async def test_port_forward_legacy_websocket(server: StreamingServer, echo_port: int, protocol: str) -> None:
    url = server.request_url("portforward", PortForwardRequest("pod")) + f"?port={echo_port}"
    ws, chosen = await dial_websocket(url, [protocol])
    assert chosen == protocol
    b64 = "base64" in protocol

    def decode(message: object) -> tuple[int, bytes]:
        data = message.data  # type: ignore[attr-defined]
        if b64:
            assert message.opcode == OP_TEXT  # type: ignore[attr-defined]
            return data[0] - ord("0"), base64.b64decode(data[1:])
        assert message.opcode == OP_BINARY  # type: ignore[attr-defined]
        return data[0], data[1:]

    first = [decode(await ws.recv()), decode(await ws.recv())]
    assert sorted(first) == [(0, struct.pack("<H", echo_port)), (1, struct.pack("<H", echo_port))]
    await ws.send(("0" + base64.b64encode(b"legacy").decode()) if b64 else b"\x00legacy")
    # the legacy protocol has no half-close: the echo server waits for EOF, so close the socket
    # write side by closing the websocket once the data went through and expect the server to clean up.
    await until(lambda: server.backend.forwarded_bytes == len(b"legacy"))  # type: ignore[attr-defined]
    await ws.close()
    await until(lambda: server.backend.live == 0 and server.active_connections == 0)  # type: ignore[attr-defined]
