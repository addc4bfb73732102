"""gRPC calls to a local server (containerd) over our own HTTP/2 connection.

The server process's whole client: unary calls (a pod's life makes dozens),
server-streaming ones (containerd's event subscription, content reads,
snapshot listings) and bidirectional ones (Content.Write). Stubs are built
from the services' protobuf descriptors (`Stub`), so grpcio is never loaded:
its C core alone is ~9 MiB of the server's memory, grpc.aio's client spent
~80 us more per unary call than this one and ~130 us of CPU per streamed
message, handed over from its own thread. Failures raise `RpcError`
(`code()`, `details()`), always with the server's own status when it sent
one.
"""

from __future__ import annotations

import asyncio
import collections
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor

from cri_runtime.grpc_client.status import RpcError, StatusCode, from_reset, from_trailers
from cri_runtime.h2 import frames, hpack, wire

_WINDOW = 1 << 30  # our receive windows: replenished at half
_STREAM_WINDOW = frames.MAX_WINDOW
_MAX_STREAM_MESSAGE = 64 << 20  # a streamed message larger than this is refused (what grpc.aio was allowed)
Metadata = Sequence[tuple[str, str]]


class _Reply:
    """What came back on one stream."""

    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.data = bytearray()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.send_window = 0
        self.window_waiter: asyncio.Future[None] | None = None
        self.error: RpcError | None = None  # how the call ended when it was decided here, not by the server


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
            if reply is not None:
                _set_status(reply, from_reset(code))
            self._end(stream)
        elif ftype == frames.GOAWAY:
            self.going_away = True
            last = struct.unpack(">L", payload[:4])[0] & 0x7FFFFFFF
            for sid in [s for s in self.replies if s > last]:
                reply = self.replies[sid]
                _set_status(reply, RpcError(StatusCode.UNAVAILABLE, "the server is going away"))
                self._end(sid)
            if not self.replies:
                self.abort()

    def _wake(self, reply: _Reply | None) -> None:
        for r in ([reply] if reply is not None else list(self.replies.values())):
            if r.window_waiter is not None and not r.window_waiter.done():
                r.window_waiter.set_result(None)

    def _refuse(self, stream: int, reply: _Reply) -> None:
        """A stream whose messages cannot be read: reset it and fail its call."""
        _set_status(reply, RpcError(StatusCode.INTERNAL, "malformed or oversized streamed message"))
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

    def _start(self, path: str, metadata: Metadata, timeout: float | None, reply: _Reply) -> tuple[int, bytes]:
        """A new stream for a call, and the HEADERS frames that open it (not yet sent)."""
        stream = self.next_stream
        self.next_stream += 2
        reply.send_window = self.peer_window
        self.replies[stream] = reply
        fields = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", path.encode()),
                  (b":authority", b"localhost"), (b"content-type", b"application/grpc"), (b"te", b"trailers")]
        if timeout is not None:
            fields.append((b"grpc-timeout", f"{max(1, int(timeout * 1_000_000))}u".encode()))
        fields += [(k.encode(), v.encode()) for k, v in metadata]
        return stream, frames.headers_frames(stream, hpack.encode(fields), False, self.peer_max_frame)

    def open_stream(self, path: str, metadata: Metadata, reply: _Reply) -> int:
        """Start a streaming call: its HEADERS go out now; its messages follow with `send_data`."""
        stream, headers = self._start(path, metadata, None, reply)
        self._write(headers)
        return stream

    async def send_data(self, stream: int, reply: _Reply, data: bytes, end: bool, out: bytes = b"") -> bool:
        """Send `data` on the stream as the windows allow (and END_STREAM after it, with `end`),
        after `out` (frames to go first, in the same write).

        False when the call ended, or the connection broke, before all of it went out.
        """
        message = memoryview(data)
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
                return False
        if end:
            out += frames.frame(frames.DATA, frames.FLAG_END_STREAM, stream)
        self._write(out)
        return True

    async def send(self, path: str, payload: bytes, metadata: Metadata, timeout: float | None) -> _Reply:
        """A unary call: HEADERS, the one request message and END_STREAM, in one write when the windows allow."""
        reply = _Reply()
        stream, headers = self._start(path, metadata, timeout, reply)
        await self.send_data(stream, reply, wire.length_prefixed(payload), True, headers)
        return reply

    def cancel(self, reply: _Reply) -> None:
        for sid, r in list(self.replies.items()):
            if r is reply:
                del self.replies[sid]
                self._write(frames.rst_stream(sid, frames.CANCEL))


def _set_status(reply: _Reply, error: RpcError) -> None:
    """End `reply` with a status decided here, unless the server (or an earlier decision) gave one."""
    if b"grpc-status" not in reply.headers and reply.error is None:
        reply.error = error


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


class Client:
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

    async def connected(self, wait_for_ready: bool, deadline: float | None) -> _Connection:
        """The connection, dialled if need be; UNAVAILABLE when the server is not there (at once,
        or once `deadline` passes when waiting for it to be ready)."""
        while True:
            try:
                return await self._connection()
            except OSError as exc:
                if not wait_for_ready or (deadline is not None and time.monotonic() >= deadline):
                    raise RpcError(StatusCode.UNAVAILABLE, f"cannot connect to {self._path}: {exc}") from None
                await asyncio.sleep(0.05)

    async def call(self, path: str, payload: bytes, metadata: Metadata, timeout: float | None,
                   wait_for_ready: bool, *, last_of_many: bool = False) -> bytes:
        """One request message; the one response message (or, with `last_of_many`, the last of several)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        conn = await self.connected(wait_for_ready, deadline)
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        reply = await conn.send(path, payload, metadata, remaining)
        # A timer that fails the reply, not asyncio.wait_for: that adds a future and a loop
        # turn between the answer and its caller on every call with a deadline.
        expiry = None if remaining is None else asyncio.get_running_loop().call_later(remaining, _expire, reply)
        try:
            await reply.done
        except _Expired:
            conn.cancel(reply)
            raise RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        except asyncio.CancelledError:
            conn.cancel(reply)
            if reply.done.done() and not reply.done.cancelled():
                reply.done.exception()  # an expiry racing the cancellation: seen
            raise
        finally:
            if expiry is not None:
                expiry.cancel()
        return _result(reply, conn.closed, last_of_many)

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.abort()
            self._conn = None


def _check_status(reply: _Reply, closed: bool) -> None:
    """Raise the call's error, if it ended with one (or without a status)."""
    if b"grpc-status" not in reply.headers:
        if reply.error is not None:
            raise reply.error
        if closed:
            raise RpcError(StatusCode.UNAVAILABLE, "connection to the server lost")
    error = from_trailers(reply.headers)
    if error is not None:
        raise error


def _result(reply: _Reply, closed: bool, last_of_many: bool = False) -> bytes:
    _check_status(reply, closed)
    data = reply.data
    if len(data) < wire.PREFIX_SIZE:
        raise RpcError(StatusCode.INTERNAL, "the server sent no response message")
    pos = 0
    while True:
        compressed, length = wire.parse_prefix(data, pos)
        end = pos + wire.PREFIX_SIZE + length
        if compressed or end > len(data) or (end < len(data) and not last_of_many):
            raise RpcError(StatusCode.INTERNAL, "malformed response message")
        if end == len(data):
            return bytes(data[pos + wire.PREFIX_SIZE:end])
        pos = end
        if len(data) - pos < wire.PREFIX_SIZE:
            raise RpcError(StatusCode.INTERNAL, "malformed response message")


class _UnaryMethod:
    """A unary-unary method: awaited with its request, it answers the response message."""

    def __init__(self, client: Client, path: str, serialize: Callable[[Any], bytes],
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
    """An open streaming call: `write` requests, `done_writing`, `read` responses in order; `cancel`.

    The call opens (its HEADERS go out) on first use. A server-streaming call,
    made with its one request, sends it and ends its side on the first read;
    iterate it for the responses. Responses queue here as they arrive (the
    server is never held up by an unread one). Reading ends when the server ends
    the call with OK; any other end (a status, the connection lost, a cancel)
    raises `RpcError` once the responses before it have been read. A `write`
    after the call ended raises its status at once.
    """

    def __init__(self, client: Client, path: str, metadata: Metadata, serialize: Callable[[Any], bytes],
                 deserialize: Callable[[bytes], Any], request: bytes | None = None) -> None:
        self._client, self._path, self._metadata = client, path, metadata
        self._serialize, self._deserialize = serialize, deserialize
        self._request = request
        self._open: tuple[_Connection, int, _StreamReply] | None = None
        self._cancelled = False

    async def _opened(self) -> tuple[_Connection, int, _StreamReply]:
        if self._open is None:
            if self._cancelled:
                raise RpcError(StatusCode.CANCELLED, "cancelled")
            conn = await self._client.connected(False, None)
            if self._cancelled:  # cancelled while it was being connected: nothing was sent
                raise RpcError(StatusCode.CANCELLED, "cancelled")
            reply = _StreamReply()
            self._open = conn, conn.open_stream(self._path, self._metadata, reply), reply
            if self._request is not None:
                request, self._request = self._request, None
                await self._send(wire.length_prefixed(request), True)
        return self._open

    async def _send(self, data: bytes, end: bool) -> None:
        assert self._open is not None
        conn, stream, reply = self._open
        if reply.done.done() or not await conn.send_data(stream, reply, data, end):
            _check_status(reply, conn.closed)
            raise RpcError(StatusCode.INTERNAL, "the server ended the call before taking the request")

    async def write(self, request: Any) -> None:
        await self._opened()
        await self._send(wire.length_prefixed(self._serialize(request)), False)

    async def done_writing(self) -> None:
        await self._opened()
        await self._send(b"", True)

    async def read(self) -> Any | None:
        """The next response; None once the server ended the call with OK."""
        conn, _, reply = await self._opened()
        while not reply.messages:
            if reply.done.done():
                _check_status(reply, conn.closed)
                if reply.data:
                    raise RpcError(StatusCode.INTERNAL, "the stream ended inside a message")
                return None
            reply.arrived = asyncio.get_running_loop().create_future()
            try:
                await reply.arrived
            finally:
                reply.arrived = None
        return self._deserialize(reply.messages.popleft())

    def __aiter__(self) -> StreamCall:
        return self

    async def __anext__(self) -> Any:
        message = await self.read()
        if message is None:
            raise StopAsyncIteration
        return message

    def cancel(self) -> None:
        self._cancelled = True
        if self._open is None:
            return
        conn, _, reply = self._open
        if not reply.done.done():
            conn.cancel(reply)
            _set_status(reply, RpcError(StatusCode.CANCELLED, "cancelled"))
            _finish(reply)


class _StreamMethod:
    """A streaming method: called (with its one request, when server-streaming), it opens a `StreamCall`."""

    def __init__(self, client: Client, path: str, serialize: Callable[[Any], bytes],
                 deserialize: Callable[[bytes], Any], client_streaming: bool) -> None:
        self._client, self._path = client, path
        self._serialize, self._deserialize = serialize, deserialize
        self._client_streaming = client_streaming

    def __call__(self, request: Any = None, *, metadata: Metadata = (), **_: Any) -> StreamCall:
        first = None if self._client_streaming else self._serialize(request)
        return StreamCall(self._client, self._path, metadata, self._serialize, self._deserialize, first)


class FastChannel:
    """Every method of a local server's services, on two connections: one for unary calls,
    one for streams and bulk data (a blob written in one message).

    Calls on one HTTP/2 connection share its flow-control window. A layer being
    written fills that window as fast as the server takes it in, at the pace of
    the server's disk, and a unary call queued behind it would wait as long:
    image pulls would slow every other call to containerd down. On their own
    connection they slow down only each other.
    """

    def __init__(self, socket_path: str) -> None:
        self.unary = Client(socket_path)
        self.streams = Client(socket_path)

    def unary_unary(self, method: str, request_serializer: Callable[[Any], bytes],
                    response_deserializer: Callable[[bytes], Any]) -> _UnaryMethod:
        return _UnaryMethod(self.unary, method, request_serializer, response_deserializer)

    def single_request_stream(self, method: str, request_serializer: Callable[[Any], bytes],
                              response_deserializer: Callable[[bytes], Any]) -> _UnaryMethod:
        """A streaming method used with one request message: the last response message is the answer.

        On the wire such a call is a unary one, except that the server may answer
        with several messages (containerd's Content.Write repeats its last one).
        """
        return _UnaryMethod(self.streams, method, request_serializer, response_deserializer, last_of_many=True)

    def stream(self, method: str, request_serializer: Callable[[Any], bytes],
               response_deserializer: Callable[[bytes], Any], *, client_streaming: bool) -> _StreamMethod:
        """A server-streaming method or, with `client_streaming`, a bidirectional one."""
        return _StreamMethod(self.streams, method, request_serializer, response_deserializer, client_streaming)

    async def close(self) -> None:
        await self.unary.close()
        await self.streams.close()


class Stub:
    """A service's methods as attributes, named as the RPCs are (what grpcio's generated stubs offer).

    Built from the service's descriptor: the message classes and call shapes are
    those the `.proto` declares. `name_method` may label each method (tracing's span names).
    """

    def __init__(self, channel: FastChannel, service: ServiceDescriptor,
                 name_method: Callable[[Any, str], None] | None = None) -> None:
        for rpc in service.methods:
            path = f"/{service.full_name}/{rpc.name}"
            serialize = message_factory.GetMessageClass(rpc.input_type).SerializeToString
            deserialize = message_factory.GetMessageClass(rpc.output_type).FromString
            method: Any
            if rpc.server_streaming or rpc.client_streaming:
                if not rpc.server_streaming:
                    continue  # client-streaming alone: no local server we call has one
                method = channel.stream(path, serialize, deserialize, client_streaming=rpc.client_streaming)
            else:
                method = channel.unary_unary(path, serialize, deserialize)
            if name_method is not None:
                name_method(method, path.lstrip("/"))
            setattr(self, rpc.name, method)

    def __getattr__(self, name: str) -> Any:
        """Reached only for a name the service lacks; declared so type checkers accept the
        methods set above from the descriptor."""
        raise AttributeError(f"{type(self).__name__} has no method {name}")
