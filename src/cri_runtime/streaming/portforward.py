"""The Kubernetes port-forward protocol (``portforward.k8s.io``), both ends.

SPDY: for every forwarded TCP connection the client opens two streams carrying headers
``port`` and ``requestID`` — ``streamType: error`` first, then ``streamType: data``; the server
pairs them by requestID (older clients send none: the pair is then derived from stream ids),
copies the data stream to the target port, and writes a failure message on the error stream.
crictl ``--transport websocket`` tunnels exactly this SPDY session through binary WebSocket
messages (subprotocol ``SPDY/3.1+portforward.k8s.io``).

Legacy WebSocket (``v4.channel.k8s.io``, ``v4.base64.channel.k8s.io`` or none): one
connection per request, ports from the ``port`` query parameter; port i uses channel 2i for
data and 2i+1 for errors, and the first message the server sends on each is the port as a
little-endian uint16.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from cri_runtime.streaming.remotecommand import ChannelBuffer, ChannelWriter
from cri_runtime.streaming.spdy.connection import SpdyConnection, SpdyStream
from cri_runtime.streaming.transport import AsyncReader, AsyncWriter
from cri_runtime.streaming.websocket import OP_BINARY, OP_TEXT, WebSocketConnection

log = logging.getLogger(__name__)

PROTOCOL = "portforward.k8s.io"
SPDY_PROTOCOLS = [PROTOCOL]
TUNNEL_PREFIX = "SPDY/3.1+"
TUNNEL_PROTOCOL = TUNNEL_PREFIX + PROTOCOL
WS_V4_BINARY = "v4.channel.k8s.io"
WS_V4_BASE64 = "v4.base64.channel.k8s.io"
WEBSOCKET_PROTOCOLS = [TUNNEL_PROTOCOL, WS_V4_BINARY, WS_V4_BASE64, ""]

HEADER_STREAM_TYPE = "streamtype"
HEADER_PORT = "port"
HEADER_REQUEST_ID = "requestid"
STREAM_DATA = "data"
STREAM_ERROR = "error"
DEFAULT_PAIR_TIMEOUT = 30.0

Forwarder = Callable[[int, AsyncReader, AsyncWriter], Awaitable[None]]
"""``forward(port, from_client, to_client)``: copy until both directions end; raise on failure."""


def parse_port(value: str | None) -> int:
    if not value or not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"invalid port {value!r}")
    return int(value)


# ----------------------------------------------------------------- SPDY server
@dataclass
class _Pair:
    request_id: str
    data: SpdyStream | None = None
    error: SpdyStream | None = None
    timer: asyncio.TimerHandle | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


def _request_id(stream: SpdyStream) -> str:
    rid = stream.header(HEADER_REQUEST_ID)
    if rid:
        return rid
    # Clients before requestID: error stream n, data stream n+2 (best effort, as kubelet).
    kind = stream.header(HEADER_STREAM_TYPE)
    return str(stream.id if kind == STREAM_ERROR else stream.id - 2)


async def serve_spdy_port_forward(conn: SpdyConnection, forward: Forwarder,
                                  pair_timeout: float = DEFAULT_PAIR_TIMEOUT) -> None:
    """Serve stream pairs on ``conn`` until the session ends; every forward is ended with it."""
    pairs: dict[str, _Pair] = {}
    running: set[asyncio.Task[None]] = set()

    def expire(pair: _Pair) -> None:
        if pairs.get(pair.request_id) is pair:
            del pairs[pair.request_id]
            for s in (pair.data, pair.error):
                if s is not None:
                    s.reset()

    try:
        while (stream := await conn.accept()) is not None:
            kind = stream.header(HEADER_STREAM_TYPE)
            try:
                port = parse_port(stream.header(HEADER_PORT))
            except ValueError:
                stream.reset()
                continue
            if kind not in (STREAM_DATA, STREAM_ERROR):
                stream.reset()
                continue
            await stream.reply()
            rid = _request_id(stream)
            pair = pairs.get(rid)
            if pair is None:
                pair = pairs[rid] = _Pair(rid)
                pair.timer = asyncio.get_running_loop().call_later(pair_timeout, expire, pair)
            if kind == STREAM_DATA and pair.data is None:
                pair.data = stream
            elif kind == STREAM_ERROR and pair.error is None:
                stream.ignore_input()
                pair.error = stream
            else:
                stream.reset()
                continue
            if pair.data is not None and pair.error is not None:
                del pairs[rid]
                if pair.timer is not None:
                    pair.timer.cancel()
                task = asyncio.create_task(_forward_pair(pair.data, pair.error, port, forward))
                running.add(task)
                task.add_done_callback(running.discard)
    finally:
        for pair in pairs.values():
            if pair.timer is not None:
                pair.timer.cancel()
        for task in list(running):
            task.cancel()
        for task in list(running):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _forward_pair(data: SpdyStream, error: SpdyStream, port: int, forward: Forwarder) -> None:
    try:
        await forward(port, data, data)
    except asyncio.CancelledError:
        data.reset()
        error.reset()
        raise
    except Exception as exc:  # the backend's failure goes to the client, not the log only
        log.info("port-forward to port %d failed: %s", port, exc)
        with contextlib.suppress(ConnectionError):
            await error.write(f"error forwarding port {port} to pod: {exc}".encode())
    with contextlib.suppress(ConnectionError):
        await data.close()
        await error.close()


# ------------------------------------------------------------ legacy WebSocket
async def serve_websocket_port_forward(ws: WebSocketConnection, protocol: str, ports: list[int],
                                       forward: Forwarder) -> None:
    """One WebSocket, one forwarded connection per port in ``ports``."""
    b64 = protocol == WS_V4_BASE64
    inputs = {2 * i: ChannelBuffer() for i in range(len(ports))}

    async def demux() -> None:
        try:
            while (message := await ws.recv()) is not None:
                data = message.data
                if not data:
                    continue
                if b64 and message.opcode == OP_TEXT:
                    channel = data[0] - ord("0")
                    try:
                        payload = base64.b64decode(data[1:], validate=True)
                    except ValueError:
                        continue
                elif not b64 and message.opcode == OP_BINARY:
                    channel, payload = data[0], data[1:]
                else:
                    continue
                if channel in inputs:
                    await inputs[channel].feed(payload)
        finally:
            for buf in inputs.values():
                buf.feed_eof()

    async def one(i: int, port: int) -> None:
        data_out = ChannelWriter(ws, 2 * i, b64)
        error_out = ChannelWriter(ws, 2 * i + 1, b64)
        prefix = struct.pack("<H", port)
        await data_out.write(prefix)
        await error_out.write(prefix)
        try:
            await forward(port, inputs[2 * i], data_out)
        except Exception as exc:
            log.info("port-forward to port %d failed: %s", port, exc)
            with contextlib.suppress(ConnectionError):
                await error_out.write(f"error forwarding port {port} to pod: {exc}".encode())

    reader = asyncio.create_task(demux())
    try:
        await asyncio.gather(*(one(i, p) for i, p in enumerate(ports)))
    finally:
        await ws.close()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader


# ------------------------------------------------------------------ client side
class PortForwardError(Exception):
    """The server reported a failure forwarding one connection."""


class PortForwardClient:
    """Client side over an upgraded SPDY session: one stream pair per forwarded connection."""

    def __init__(self, conn: SpdyConnection) -> None:
        self.conn = conn
        self._next_request_id = 0

    async def open(self, port: int) -> tuple[SpdyStream, SpdyStream]:
        """Open (data, error) streams for one connection to ``port``."""
        rid = str(self._next_request_id)
        self._next_request_id += 1
        headers = {HEADER_STREAM_TYPE: STREAM_ERROR, HEADER_PORT: str(port), HEADER_REQUEST_ID: rid}
        error = await self.conn.open_stream(headers)
        await error.close()
        headers[HEADER_STREAM_TYPE] = STREAM_DATA
        data = await self.conn.open_stream(headers)
        return data, error

    async def forward_connection(self, port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Copy one local TCP connection to ``port`` on the remote side; raises PortForwardError."""
        data, error = await self.open(port)

        async def upstream() -> None:
            try:
                while chunk := await reader.read(32 * 1024):
                    await data.write(chunk)
            except ConnectionError:
                pass
            finally:
                with contextlib.suppress(ConnectionError):
                    await data.close()

        up = asyncio.create_task(upstream())
        try:
            while chunk := await data.read():
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            up.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await up
            data.reset()
            with contextlib.suppress(Exception):
                writer.close()
        message = await error.read_all()
        if message:
            raise PortForwardError(message.decode("utf-8", "replace"))

    async def listen(self, local_host: str, local_port: int, remote_port: int) -> asyncio.Server:
        """Accept local connections and forward each one; close the returned server to stop."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await self.forward_connection(remote_port, reader, writer)
            except PortForwardError as exc:
                log.error("%s", exc)
            except ConnectionError as exc:
                log.error("port-forward connection failed: %s", exc)

        return await asyncio.start_server(handle, local_host, local_port)


async def dial_port_forward(url: str, *, transport: str = "spdy", ssl_context: object = None) -> PortForwardClient:
    """Connect to a port-forward URL (crictl port-forward); close ``client.conn`` when done."""
    from cri_runtime.streaming.client import dial_spdy, dial_websocket
    from cri_runtime.streaming.websocket import WebSocketByteStream

    if transport == "websocket":
        ws, protocol = await dial_websocket(url, [TUNNEL_PROTOCOL], ssl_context=ssl_context)  # type: ignore[arg-type]
        if protocol != TUNNEL_PROTOCOL:
            await ws.close()
            raise ConnectionError(f"server did not agree to SPDY tunnelling (chose {protocol!r})")
        tunnel = WebSocketByteStream(ws)
        conn = SpdyConnection(tunnel, tunnel, server=False)
        conn.start()
        return PortForwardClient(conn)
    conn, protocol = await dial_spdy(url, SPDY_PROTOCOLS, ssl_context=ssl_context)  # type: ignore[arg-type]
    if protocol != PROTOCOL:
        await conn.close()
        raise ConnectionError(f"unable to negotiate protocol: client supports {PROTOCOL!r}, server returned "
                              f"{protocol!r}")
    return PortForwardClient(conn)
