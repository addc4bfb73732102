"""Unary gRPC calls to a local server (containerd) over our own HTTP/2 connection.

grpc.aio's client spends ~80 us more per call than grpcio's blocking one,
and a pod's life makes dozens of unary calls to containerd. `FastChannel`
sends unary-unary calls through this lean client and hands streaming calls
to the grpc.aio channel it wraps, so generated stubs work unchanged and
failures still surface as `grpc.aio.AioRpcError`. A server-streaming method
named with `FastChannel.server_stream` (containerd's event subscription, one
message per container state change) is read here too: grpc.aio spent ~130 us
of CPU per message on it, handed over from its own thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import struct
import time
import urllib.parse
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import grpc

from cri_runtime.h2 import frames, hpack, wire

_WINDOW = 1 << 30  # our receive windows: replenished at half
_STREAM_WINDOW = frames.MAX_WINDOW
_MAX_STREAM_MESSAGE = 16 << 20  # a streamed message larger than this is refused
Metadata = Sequence[tuple[str, str]]


class _Reply:
    """What came back on one stream."""

    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.data = bytearray()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.send_window = 0
        self.window_waiter: asyncio.Future[None] | None = None


class _StreamReply(_Reply):
    """A server-streaming call's stream: whole messages are taken off `data` as they complete."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: collections.deque[bytes] = collections.deque()
        self.arrived: asyncio.Future[None] | None = None  # the reader waits on it when none is queued
        self.unacked = 0  # DATA bytes not yet given back to the server's window for this stream
        self.malformed = False

    def take_messages(self) -> None:
        data, pos = self.data, 0
        while len(data) - pos >= wire.PREFIX_SIZE:
            compressed, length = wire.parse_prefix(data, pos)
            end = pos + wire.PREFIX_SIZE + length
            if compressed or length > _MAX_STREAM_MESSAGE:
                self.malformed = True
                break
            if end > len(data):
                break
            self.messages.append(bytes(data[pos + wire.PREFIX_SIZE:end]))
            pos = end
        if pos:
            del data[:pos]
        self.wake()

    def wake(self) -> None:
        if self.arrived is not None and not self.arrived.done():
            self.arrived.set_result(None)


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.buf = bytearray()
        self.decoder = hpack.Decoder()
        self.replies: dict[int, _Reply] = {}
        self.next_stream = 1
        self.peer_window = frames.DEFAULT_WINDOW
        self.peer_max_frame = frames.DEFAULT_MAX_FRAME_SIZE
        self.send_window = frames.DEFAULT_WINDOW
        self.recv_unacked = 0
        self.continuation: tuple[int, int, bytearray] | None = None
        self.going_away = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(frames.PREFACE + frames.settings({
            frames.SETTINGS_ENABLE_PUSH: 0, frames.SETTINGS_INITIAL_WINDOW_SIZE: _STREAM_WINDOW,
        }) + frames.window_update(0, _WINDOW - frames.DEFAULT_WINDOW))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for reply in self.replies.values():
            _finish(reply)
        self.replies.clear()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        buf, pos, end = self.buf, 0, len(self.buf)
        try:
            while end - pos >= frames.HEADER_SIZE:
                length, ftype, flags, stream = frames.parse_header(buf, pos)
                if end - pos - frames.HEADER_SIZE < length:
                    break
                start = pos + frames.HEADER_SIZE
                self._on_frame(ftype, flags, stream, bytes(buf[start:start + length]))
                pos = start + length
        except (hpack.HpackError, struct.error, ValueError):
            self.abort()
            return
        del buf[:pos]

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _on_frame(self, ftype: int, flags: int, stream: int, payload: bytes) -> None:
        if ftype == frames.DATA:
            self.recv_unacked += len(payload)
            if self.recv_unacked >= _WINDOW // 2:
                self._write(frames.window_update(0, self.recv_unacked))
                self.recv_unacked = 0
            reply = self.replies.get(stream)
            if reply is not None:
                reply.data += frames.strip_padding(flags, payload)
                if isinstance(reply, _StreamReply):
                    reply.unacked += len(payload)
                    if reply.unacked >= _STREAM_WINDOW // 2:
                        self._write(frames.window_update(stream, reply.unacked))
                        reply.unacked = 0
                    reply.take_messages()
                    if reply.malformed:
                        self._refuse(stream, reply)
                        return
                if flags & frames.FLAG_END_STREAM:
                    self._end(stream)
        elif ftype in (frames.HEADERS, frames.CONTINUATION):
            if ftype == frames.HEADERS:
                self.continuation = (stream, flags, bytearray(frames.header_block(flags, payload)))
            elif self.continuation is not None:
                self.continuation[2].extend(payload)
            if flags & frames.FLAG_END_HEADERS and self.continuation is not None:
                sid, first_flags, block_buf = self.continuation
                self.continuation = None
                fields = self.decoder.decode(bytes(block_buf))
                reply = self.replies.get(sid)
                if reply is not None:
                    reply.headers.update(fields)
                    if first_flags & frames.FLAG_END_STREAM:
                        self._end(sid)
        elif ftype == frames.SETTINGS:
            if not flags & frames.FLAG_ACK:
                for key, value in frames.parse_settings(payload):
                    if key == frames.SETTINGS_INITIAL_WINDOW_SIZE:
                        delta = value - self.peer_window
                        self.peer_window = value
                        for reply in self.replies.values():
                            reply.send_window += delta
                    elif key == frames.SETTINGS_MAX_FRAME_SIZE:
                        self.peer_max_frame = value
                self._write(frames.frame(frames.SETTINGS, frames.FLAG_ACK, 0))
                self._wake(None)
        elif ftype == frames.WINDOW_UPDATE:
            increment = struct.unpack(">L", payload)[0] & 0x7FFFFFFF
            if stream == 0:
                self.send_window += increment
                self._wake(None)
            elif stream in self.replies:
                self.replies[stream].send_window += increment
                self._wake(self.replies[stream])
        elif ftype == frames.PING:
            if not flags & frames.FLAG_ACK:
                self._write(frames.frame(frames.PING, frames.FLAG_ACK, 0, payload))
        elif ftype == frames.RST_STREAM:
            code = struct.unpack(">L", payload)[0]
            reply = self.replies.get(stream)
            if reply is not None and b"grpc-status" not in reply.headers:
                reply.headers[b"grpc-status"] = str(_RST_CODES.get(code, grpc.StatusCode.INTERNAL).value[0]).encode()
                reply.headers[b"grpc-message"] = f"stream reset by the server (HTTP/2 error {code})".encode()
            self._end(stream)
        elif ftype == frames.GOAWAY:
            self.going_away = True
            last = struct.unpack(">L", payload[:4])[0] & 0x7FFFFFFF
            for sid in [s for s in self.replies if s > last]:
                reply = self.replies[sid]
                reply.headers.setdefault(b"grpc-status", str(grpc.StatusCode.UNAVAILABLE.value[0]).encode())
                reply.headers.setdefault(b"grpc-message", b"the server is going away")
                self._end(sid)
            if not self.replies:
                self.abort()

    def _wake(self, reply: _Reply | None) -> None:
        for r in ([reply] if reply is not None else list(self.replies.values())):
            if r.window_waiter is not None and not r.window_waiter.done():
                r.window_waiter.set_result(None)

    def _refuse(self, stream: int, reply: _Reply) -> None:
        """A stream whose messages cannot be read: reset it and fail its call."""
        reply.headers[b"grpc-status"] = str(grpc.StatusCode.INTERNAL.value[0]).encode()
        reply.headers[b"grpc-message"] = b"malformed or oversized streamed message"
        self._write(frames.rst_stream(stream, frames.CANCEL))
        self._end(stream)

    def _end(self, stream: int) -> None:
        reply = self.replies.pop(stream, None)
        if reply is not None:
            _finish(reply)
        if self.going_away and not self.replies:
            self.abort()  # new calls already use a fresh connection

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    async def send(self, path: str, payload: bytes, metadata: Metadata, timeout: float | None,
                   reply: _Reply | None = None) -> _Reply:
        stream = self.next_stream
        self.next_stream += 2
        reply = reply if reply is not None else _Reply()
        reply.send_window = self.peer_window
        self.replies[stream] = reply
        fields = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", path.encode()),
                  (b":authority", b"localhost"), (b"content-type", b"application/grpc"), (b"te", b"trailers")]
        if timeout is not None:
            fields.append((b"grpc-timeout", f"{max(1, int(timeout * 1_000_000))}u".encode()))
        fields += [(k.encode(), v.encode()) for k, v in metadata]
        message = memoryview(wire.length_prefixed(payload))
        out = frames.headers_frames(stream, hpack.encode(fields), False, self.peer_max_frame)
        pos = 0
        while True:
            allowed = min(reply.send_window, self.send_window, len(message) - pos)
            if allowed > 0:
                out += frames.data_frames(stream, message[pos:pos + allowed], self.peer_max_frame)
                reply.send_window -= allowed
                self.send_window -= allowed
                pos += allowed
            if pos >= len(message):
                break
            self._write(out)
            out = b""
            reply.window_waiter = asyncio.get_running_loop().create_future()
            await reply.window_waiter
            if self.closed or reply.done.done():
                return reply
        self._write(out + frames.frame(frames.DATA, frames.FLAG_END_STREAM, stream))
        return reply

    def cancel(self, reply: _Reply) -> None:
        for sid, r in list(self.replies.items()):
            if r is reply:
                del self.replies[sid]
                self._write(frames.rst_stream(sid, frames.CANCEL))


_RST_CODES = {frames.REFUSED_STREAM: grpc.StatusCode.UNAVAILABLE, frames.CANCEL: grpc.StatusCode.CANCELLED,
              frames.ENHANCE_YOUR_CALM: grpc.StatusCode.RESOURCE_EXHAUSTED}


class _Expired(Exception):
    """The call's deadline passed before its answer came."""


def _expire(reply: _Reply) -> None:
    if not reply.done.done():
        reply.done.set_exception(_Expired())


def _finish(reply: _Reply) -> None:
    if not reply.done.done():
        reply.done.set_result(None)
    if reply.window_waiter is not None and not reply.window_waiter.done():
        reply.window_waiter.set_result(None)
    if isinstance(reply, _StreamReply):
        reply.wake()


def _error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


class UnaryClient:
    """One HTTP/2 connection to a unix socket, re-dialled when it breaks."""

    def __init__(self, socket_path: str) -> None:
        self._path = socket_path
        self._conn: _Connection | None = None
        self._dialing: asyncio.Lock | None = None

    async def _connection(self) -> _Connection:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.going_away and conn.next_stream < 2**31 - 1:
            return conn
        if self._dialing is None:
            self._dialing = asyncio.Lock()
        async with self._dialing:
            conn = self._conn
            if conn is None or conn.closed or conn.going_away or conn.next_stream >= 2**31 - 1:
                if conn is not None and not conn.replies:
                    conn.abort()
                _, conn = await asyncio.get_running_loop().create_unix_connection(_Connection, self._path)
                self._conn = conn
            return conn

    async def _connected(self, wait_for_ready: bool, deadline: float | None) -> _Connection:
        """The connection, dialled if need be; UNAVAILABLE when the server is not there (at once,
        or once `deadline` passes when waiting for it to be ready)."""
        while True:
            try:
                return await self._connection()
            except OSError as exc:
                if not wait_for_ready or (deadline is not None and time.monotonic() >= deadline):
                    raise _error(grpc.StatusCode.UNAVAILABLE, f"cannot connect to {self._path}: {exc}") from None
                await asyncio.sleep(0.05)

    async def call(self, path: str, payload: bytes, metadata: Metadata, timeout: float | None,
                   wait_for_ready: bool, *, last_of_many: bool = False) -> bytes:
        """One request message; the one response message (or, with `last_of_many`, the last of several)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        conn = await self._connected(wait_for_ready, deadline)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        reply = await conn.send(path, payload, metadata, remaining)
        # A timer that fails the reply, not asyncio.wait_for: that adds a future and a loop
        # turn between the answer and its caller on every call with a deadline.
        expiry = None if remaining is None else asyncio.get_running_loop().call_later(remaining, _expire, reply)
        try:
            await reply.done
        except _Expired:
            conn.cancel(reply)
            raise _error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        except asyncio.CancelledError:
            conn.cancel(reply)
            if reply.done.done() and not reply.done.cancelled():
                reply.done.exception()  # an expiry racing the cancellation: seen
            raise
        finally:
            if expiry is not None:
                expiry.cancel()
        return _result(reply, conn.closed, last_of_many)

    async def open_stream(self, path: str, payload: bytes,
                          metadata: Metadata) -> tuple[_Connection, _StreamReply]:
        """Send a server-streaming call's one request message; its messages arrive on the reply."""
        conn = await self._connected(False, None)
        reply = _StreamReply()
        await conn.send(path, payload, metadata, None, reply)
        return conn, reply

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.abort()
            self._conn = None


def _check_status(reply: _Reply, closed: bool) -> None:
    """Raise the call's error, if it ended with one (or without a status)."""
    status = reply.headers.get(b"grpc-status")
    if status is None:
        if closed:
            raise _error(grpc.StatusCode.UNAVAILABLE, "connection to the server lost")
        raise _error(grpc.StatusCode.INTERNAL, "the server ended the call without a status")
    code = int(status)
    if code != 0:
        message = urllib.parse.unquote(reply.headers.get(b"grpc-message", b"").decode("utf-8", "replace"))
        raise _error(_CODES.get(code, grpc.StatusCode.UNKNOWN), message)


def _result(reply: _Reply, closed: bool, last_of_many: bool = False) -> bytes:
    _check_status(reply, closed)
    data = reply.data
    if len(data) < wire.PREFIX_SIZE:
        raise _error(grpc.StatusCode.INTERNAL, "the server sent no response message")
    pos = 0
    while True:
        compressed, length = wire.parse_prefix(data, pos)
        end = pos + wire.PREFIX_SIZE + length
        if compressed or end > len(data) or (end < len(data) and not last_of_many):
            raise _error(grpc.StatusCode.INTERNAL, "malformed response message")
        if end == len(data):
            return bytes(data[pos + wire.PREFIX_SIZE:end])
        pos = end
        if len(data) - pos < wire.PREFIX_SIZE:
            raise _error(grpc.StatusCode.INTERNAL, "malformed response message")


_CODES = {c.value[0]: c for c in grpc.StatusCode}


class _UnaryMethod:
    """What a generated stub calls for a unary-unary method."""

    def __init__(self, client: UnaryClient, path: str, serialize: Callable[[Any], bytes],
                 deserialize: Callable[[bytes], Any], last_of_many: bool = False) -> None:
        self._client, self._path = client, path
        self._serialize, self._deserialize = serialize, deserialize
        self._last_of_many = last_of_many

    async def __call__(self, request: Any, *, timeout: float | None = None, metadata: Metadata = (),
                       wait_for_ready: bool | None = None, **_: Any) -> Any:
        raw = await self._client.call(self._path, self._serialize(request), metadata, timeout,
                                      bool(wait_for_ready), last_of_many=self._last_of_many)
        return self._deserialize(raw)


class StreamCall:
    """An open server-streaming call: iterate its decoded messages, in order; `cancel` ends it.

    The request goes out on the first read. Iterating ends when the server ends the
    call with OK; any other end (a status, the connection lost, a cancel) raises
    `grpc.aio.AioRpcError` once the messages before it have been read.
    """

    def __init__(self, opening: Coroutine[Any, Any, tuple[_Connection, _StreamReply]],
                 deserialize: Callable[[bytes], Any]) -> None:
        self._opening: Coroutine[Any, Any, tuple[_Connection, _StreamReply]] | None = opening
        self._open: tuple[_Connection, _StreamReply] | None = None
        self._cancelled = False
        self._deserialize = deserialize

    def __aiter__(self) -> StreamCall:
        return self

    async def __anext__(self) -> Any:
        if self._open is None:
            if self._opening is None:  # cancelled before it was read, or its opening already failed
                raise _error(grpc.StatusCode.CANCELLED if self._cancelled else grpc.StatusCode.UNAVAILABLE,
                             "cancelled" if self._cancelled else "the call could not be opened")
            opening, self._opening = self._opening, None
            self._open = await opening
            if self._cancelled:  # cancelled while it was being opened
                self.cancel()
        conn, reply = self._open
        while not reply.messages:
            if reply.done.done():
                _check_status(reply, conn.closed)
                if reply.data:
                    raise _error(grpc.StatusCode.INTERNAL, "the stream ended inside a message")
                raise StopAsyncIteration
            reply.arrived = asyncio.get_running_loop().create_future()
            try:
                await reply.arrived
            finally:
                reply.arrived = None
        return self._deserialize(reply.messages.popleft())

    def cancel(self) -> None:
        self._cancelled = True
        if self._open is None:
            if self._opening is not None:
                self._opening.close()  # never opened: nothing was sent
                self._opening = None
            return
        conn, reply = self._open
        if not reply.done.done():
            conn.cancel(reply)
            reply.headers.setdefault(b"grpc-status", str(grpc.StatusCode.CANCELLED.value[0]).encode())
            reply.headers.setdefault(b"grpc-message", b"cancelled")
            _finish(reply)


class _StreamMethod:
    """What the caller of a `FastChannel.server_stream` method calls: opens the call on first read."""

    def __init__(self, client: UnaryClient, path: str, serialize: Callable[[Any], bytes],
                 deserialize: Callable[[bytes], Any]) -> None:
        self._client, self._path = client, path
        self._serialize, self._deserialize = serialize, deserialize

    def __call__(self, request: Any, *, metadata: Metadata = (), **_: Any) -> StreamCall:
        opening = self._client.open_stream(self._path, self._serialize(request), metadata)
        return StreamCall(opening, self._deserialize)


class FastChannel:
    """A channel for generated stubs: unary-unary calls via `UnaryClient`, streams via grpc.aio."""

    def __init__(self, socket_path: str, streaming: grpc.aio.Channel) -> None:
        self.unary = UnaryClient(socket_path)
        self._streaming = streaming

    def unary_unary(self, method: str, request_serializer: Callable[[Any], bytes] | None = None,
                    response_deserializer: Callable[[bytes], Any] | None = None, **_: Any) -> _UnaryMethod:
        assert request_serializer is not None and response_deserializer is not None
        return _UnaryMethod(self.unary, method, request_serializer, response_deserializer)

    def single_request_stream(self, method: str, request_serializer: Callable[[Any], bytes],
                              response_deserializer: Callable[[bytes], Any]) -> _UnaryMethod:
        """A streaming method used with one request message: the last response message is the answer.

        On the wire such a call is a unary one, except that the server may answer
        with several messages (containerd's Content.Write repeats its last one).
        """
        return _UnaryMethod(self.unary, method, request_serializer, response_deserializer, last_of_many=True)

    def server_stream(self, method: str, request_serializer: Callable[[Any], bytes],
                      response_deserializer: Callable[[bytes], Any]) -> _StreamMethod:
        """A server-streaming method read by our client (the stubs' `unary_stream` stays on grpc.aio)."""
        return _StreamMethod(self.unary, method, request_serializer, response_deserializer)

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self._streaming.unary_stream(*args, **kwargs)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return self._streaming.stream_unary(*args, **kwargs)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self._streaming.stream_stream(*args, **kwargs)

    async def close(self) -> None:
        await self.unary.close()
        with contextlib.suppress(Exception):
            await self._streaming.close()
