"""RFC 6455 WebSocket framing and handshake, both ends, on asyncio streams.

Used for crictl's ``--transport websocket``: remote-command protocols (``v5.channel.k8s.io``
and older channel protocols) and SPDY tunnelled through binary messages for port-forward.
No extensions (permessage-deflate is never negotiated), so RSV bits must be zero.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import struct
import time
from dataclasses import dataclass

from cri_runtime.streaming.http import HttpError, HttpHeaders
from cri_runtime.streaming.transport import ByteWriter, StreamClosedError

log = logging.getLogger(__name__)

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
CONTROL_OPCODES = (OP_CLOSE, OP_PING, OP_PONG)
DATA_OPCODES = (OP_TEXT, OP_BINARY)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_TOO_BIG = 1009

DEFAULT_MAX_MESSAGE = 16 * 1024 * 1024
# What each frame of a fragmented message costs against max_message beyond its payload: the
# per-frame work and bookkeeping, so a message of tiny (or empty) fragments is bounded in frames
# as well as bytes. A 16 MiB message in gorilla/websocket's 4 KiB frames pays 1.5% more.
FRAGMENT_COST = 64


class WebSocketError(Exception):
    """The peer violated RFC 6455; ``code`` is the close code to answer with."""

    def __init__(self, message: str, code: int = CLOSE_PROTOCOL_ERROR) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class WsFrame:
    fin: bool
    opcode: int
    payload: bytes


@dataclass
class WsMessage:
    opcode: int  # OP_TEXT or OP_BINARY
    data: bytes


# ------------------------------------------------------------------ framing
def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode("ascii")).digest()).decode("ascii")


def apply_mask(data: bytes, mask: bytes) -> bytes:
    if not data:
        return b""
    repeated = (mask * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(data), "big")


def encode_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = None) -> bytes:
    """One frame; pass a 4-byte ``mask`` on the client side (RFC 6455 5.3)."""
    if opcode in CONTROL_OPCODES and (len(payload) > 125 or not fin):
        raise ValueError("control frames carry at most 125 bytes and cannot be fragmented")
    head = bytearray([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if mask is not None else 0
    n = len(payload)
    if n < 126:
        head.append(mask_bit | n)
    elif n < 1 << 16:
        head.append(mask_bit | 126)
        head += struct.pack(">H", n)
    else:
        head.append(mask_bit | 127)
        head += struct.pack(">Q", n)
    if mask is not None:
        if len(mask) != 4:
            raise ValueError("mask must be 4 bytes")
        return bytes(head) + mask + apply_mask(payload, mask)
    return bytes(head) + payload


async def read_ws_frame(reader: asyncio.StreamReader, *, expect_masked: bool, max_size: int) -> WsFrame | None:
    """The next frame, or None at EOF between frames."""
    try:
        b0, b1 = await reader.readexactly(2)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise WebSocketError("connection closed inside a frame header") from exc
    try:
        fin = bool(b0 & 0x80)
        if b0 & 0x70:
            raise WebSocketError("reserved bits set without a negotiated extension")
        opcode = b0 & 0x0F
        if opcode not in CONTROL_OPCODES + DATA_OPCODES + (OP_CONTINUATION,):
            raise WebSocketError(f"unknown opcode {opcode}")
        masked = bool(b1 & 0x80)
        if masked != expect_masked:
            raise WebSocketError("client frames must be masked, server frames must not be")
        length = b1 & 0x7F
        if opcode in CONTROL_OPCODES and (length > 125 or not fin):
            raise WebSocketError("invalid control frame")
        if length == 126:
            (length,) = struct.unpack(">H", await reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack(">Q", await reader.readexactly(8))
            if length >> 63:
                raise WebSocketError("invalid payload length")
        if length > max_size:
            raise WebSocketError(f"frame of {length} bytes exceeds {max_size}", CLOSE_TOO_BIG)
        mask = await reader.readexactly(4) if masked else None
        payload = await reader.readexactly(length) if length else b""
    except asyncio.IncompleteReadError as exc:
        raise WebSocketError("connection closed inside a frame") from exc
    if mask is not None:
        payload = apply_mask(payload, mask)
    return WsFrame(fin, opcode, payload)


# ----------------------------------------------------------------- handshake
def select_subprotocol(headers: HttpHeaders, supported: list[str]) -> str:
    """The first protocol the client lists that we speak ("" if the client lists none).

    Raises HttpError(403) naming what we speak when nothing matches.
    """
    requested = headers.tokens("Sec-WebSocket-Protocol")
    if not requested:
        if "" in supported:
            return ""
        raise HttpError(403, f"unable to upgrade: a subprotocol is required; server accepts {_named(supported)}")
    for proto in requested:
        if proto in supported:
            return proto
    raise HttpError(
        403,
        f"unable to upgrade: requested protocol(s) {requested} are not supported; server accepts {_named(supported)}",
    )


def _named(protocols: list[str]) -> list[str]:
    return [p for p in protocols if p]


def is_websocket_request(headers: HttpHeaders) -> bool:
    return headers.has_token("Connection", "upgrade") and headers.get("Upgrade").lower() == "websocket"


def server_handshake(headers: HttpHeaders, supported: list[str]) -> tuple[str, list[tuple[str, str]]]:
    """Validate a client's upgrade request; returns (subprotocol, 101 response headers)."""
    if headers.get("Sec-WebSocket-Version") != "13":
        raise HttpError(400, "unsupported Sec-WebSocket-Version (want 13)", [("Sec-WebSocket-Version", "13")])
    key = headers.get("Sec-WebSocket-Key")
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except ValueError as exc:
        raise HttpError(400, "invalid Sec-WebSocket-Key") from exc
    protocol = select_subprotocol(headers, supported)
    response = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept_key(key))]
    if protocol:
        response.append(("Sec-WebSocket-Protocol", protocol))
    return protocol, response


def client_handshake_headers(protocols: list[str]) -> tuple[str, list[tuple[str, str]]]:
    """(key, request headers) for a client upgrade request."""
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ]
    if protocols:
        headers.append(("Sec-WebSocket-Protocol", ", ".join(protocols)))
    return key, headers


def check_server_handshake(status: int, headers: HttpHeaders, key: str, protocols: list[str]) -> str:
    """Validate the server's 101 answer; returns the negotiated subprotocol ("" if none)."""
    if status != 101:
        raise ConnectionError(f"websocket upgrade refused with status {status}")
    if headers.get("Upgrade").lower() != "websocket" or not headers.has_token("Connection", "upgrade"):
        raise ConnectionError("websocket upgrade response lacks Upgrade/Connection headers")
    if headers.get("Sec-WebSocket-Accept") != accept_key(key):
        raise ConnectionError("websocket upgrade response has a wrong Sec-WebSocket-Accept")
    protocol = headers.get("Sec-WebSocket-Protocol")
    if protocol and protocol not in protocols:
        raise ConnectionError(f"server chose subprotocol {protocol!r} that was not offered")
    return protocol


# ---------------------------------------------------------------- connection
class WebSocketConnection:
    """A message-level WebSocket over an established (upgraded) stream pair.

    Pings are answered automatically, fragments are reassembled, and the closing handshake is
    completed by :meth:`recv` returning None.  ``send_*`` calls are synchronous writes (one
    message never interleaves with another) followed by an awaited drain.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: ByteWriter, *, client: bool,
                 max_message: int = DEFAULT_MAX_MESSAGE, idle_timeout: float | None = None) -> None:
        self._reader = reader
        self._writer = writer
        self.client = client
        self.max_message = max_message
        self._close_sent = False
        self.close_code: int | None = None
        self.close_reason = ""
        self._closed = asyncio.Event()
        self._last_activity = time.monotonic()
        self._idle_task: asyncio.Task[None] | None = None
        if idle_timeout:
            self._idle_task = asyncio.get_running_loop().create_task(self._idle_watch(idle_timeout))

    async def _idle_watch(self, timeout: float) -> None:
        """Close a connection with no traffic either way for `timeout` seconds."""
        while not self.closed:
            remaining = self._last_activity + timeout - time.monotonic()
            if remaining <= 0:
                log.info("websocket idle for %.0fs: closing", timeout)
                await self.close(CLOSE_GOING_AWAY, "idle timeout")
                return
            await asyncio.sleep(remaining)

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    def send_frame(self, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        if self._close_sent or self._writer.is_closing():
            raise StreamClosedError("websocket closed")
        mask = os.urandom(4) if self.client else None
        self._writer.write(encode_frame(opcode, payload, fin=fin, mask=mask))
        self._last_activity = time.monotonic()

    async def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            self.send_frame(OP_TEXT, data.encode("utf-8"))
        else:
            self.send_frame(OP_BINARY, data)
        await self.drain()

    async def drain(self) -> None:
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            self._finish()
            raise StreamClosedError(str(exc)) from exc

    def ping(self, data: bytes = b"") -> None:
        self.send_frame(OP_PING, data)

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Send a close frame (once) and close the transport."""
        if not self._close_sent and not self._writer.is_closing():
            with contextlib.suppress(ConnectionError, OSError):
                payload = struct.pack(">H", code) + reason.encode("utf-8")[:123]
                self.send_frame(OP_CLOSE, payload)
                await asyncio.wait_for(self._writer.drain(), 5)
        self._close_sent = True
        self._finish()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), 5)

    def _finish(self) -> None:
        self._close_sent = True
        self._closed.set()
        if self._idle_task is not None and self._idle_task is not asyncio.current_task():
            self._idle_task.cancel()
        with contextlib.suppress(Exception):
            self._writer.close()

    async def recv(self) -> WsMessage | None:
        """The next data message; None once the connection is closed (cleanly or not).

        Fragments are joined in one buffer, each charged FRAGMENT_COST on top of its size
        against max_message; a PING's PONG is drained before the next frame is read, so a
        client that sends PINGs without reading the answers stops being read.
        """
        data = bytearray()
        cost = 0
        opcode = 0
        while True:
            try:
                frame = await read_ws_frame(self._reader, expect_masked=not self.client,
                                            max_size=self.max_message)
            except WebSocketError as exc:
                await self.close(exc.code, str(exc))
                return None
            except (ConnectionError, OSError):
                self._finish()
                return None
            if frame is None:
                self._finish()
                return None
            self._last_activity = time.monotonic()
            if frame.opcode == OP_PING:
                try:
                    self.send_frame(OP_PONG, frame.payload)
                    await self.drain()
                except ConnectionError:
                    self._finish()
                    return None
                continue
            if frame.opcode == OP_PONG:
                continue
            if frame.opcode == OP_CLOSE:
                if len(frame.payload) >= 2:
                    self.close_code = struct.unpack(">H", frame.payload[:2])[0]
                    self.close_reason = frame.payload[2:].decode("utf-8", "replace")
                await self.close(CLOSE_NORMAL if self.close_code is None else self.close_code)
                return None
            if frame.opcode == OP_CONTINUATION:
                if not opcode:
                    await self.close(CLOSE_PROTOCOL_ERROR, "continuation without a message")
                    return None
            else:
                if opcode:
                    await self.close(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
                    return None
                opcode = frame.opcode
            if frame.fin and not data:  # the common case: a whole message in one frame
                return WsMessage(opcode, frame.payload)
            cost += len(frame.payload) + FRAGMENT_COST
            if cost > self.max_message + FRAGMENT_COST:
                await self.close(CLOSE_TOO_BIG, "message too big")
                return None
            data += frame.payload
            if frame.fin:
                return WsMessage(opcode, bytes(data))


class WebSocketByteStream:
    """A byte stream carried in binary WebSocket messages (SPDY-over-WebSocket tunnelling).

    Implements :class:`~cri_runtime.streaming.transport.ByteReader` and ``ByteWriter`` so a
    SPDY session can run over it unchanged.
    """

    def __init__(self, ws: WebSocketConnection) -> None:
        self._ws = ws
        self._pending = bytearray()
        self._eof = False
        self._closing: asyncio.Task[None] | None = None

    async def readexactly(self, n: int) -> bytes:
        while len(self._pending) < n and not self._eof:
            message = await self._ws.recv()
            if message is None:
                self._eof = True
                break
            if message.opcode != OP_BINARY:
                await self._ws.close(CLOSE_PROTOCOL_ERROR, "tunnel carries binary messages only")
                self._eof = True
                break
            self._pending += message.data
        if len(self._pending) < n:
            partial = bytes(self._pending)
            self._pending.clear()
            raise asyncio.IncompleteReadError(partial, n)
        out = bytes(self._pending[:n])
        del self._pending[:n]
        return out

    def write(self, data: bytes) -> None:
        self._ws.send_frame(OP_BINARY, data)

    async def drain(self) -> None:
        await self._ws.drain()

    def close(self) -> None:
        if not self._ws.closed and self._closing is None:
            self._closing = asyncio.ensure_future(self._ws.close())

    def is_closing(self) -> bool:
        return self._ws.closed

    async def wait_closed(self) -> None:
        await self._ws.wait_closed()
