"""One client connection: HTTP/2 framing, flow control and gRPC calls on its streams.

An asyncio Protocol rather than streams: each frame is handled as soon as its
bytes arrive, and a unary answer (headers, message, trailers) leaves in a
single write. Each call runs as its own task so a slow RPC never holds up
others on the connection; cancelling that task is how a client's reset, a
deadline or a server stop reaches the handler.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from . import eager, frames, hpack, wire
from .context import AbortError, Serialized, ServicerContext

log = logging.getLogger(__name__)

# Our receive windows: large, so one request never waits for a WINDOW_UPDATE.
STREAM_WINDOW = 16 * 1024 * 1024 + 1024
CONNECTION_WINDOW = 1 << 30
MAX_CONCURRENT_STREAMS = 1024
MAX_HEADER_LIST = 1 << 20
_REPLENISH_AT = CONNECTION_WINDOW // 2


@dataclass(frozen=True)
class Method:
    """A registered RPC: how to decode, run and encode it."""

    name: str  # "/package.Service/Method"
    handler: Callable[..., Any]
    deserialize: Callable[[bytes], Any]
    serialize: Callable[[Any], bytes]
    server_streaming: bool
    request_type: str


class ConnectionError_(Exception):
    """A connection error (RFC 9113 5.4.1): GOAWAY with `code`, then close."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class StreamError(Exception):
    """A stream error (RFC 9113 5.4.2): RST_STREAM with `code` for that stream only."""

    def __init__(self, stream_id: int, code: int, message: str) -> None:
        super().__init__(message)
        self.stream_id = stream_id
        self.code = code


@dataclass(eq=False)
class Call:
    """One stream carrying one gRPC call."""

    stream_id: int
    method: Method | None
    headers: dict[bytes, bytes]
    send_window: int
    body: bytearray = field(default_factory=bytearray)
    recv_unacked: int = 0
    half_closed: bool = False
    headers_sent: bool = False
    ended: bool = False  # trailers (or a reset) went out
    reset_by_peer: bool = False
    deadline_hit: bool = False
    task: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None
    window_waiter: asyncio.Future[None] | None = None
    context: ServicerContext | None = None


class Connection(asyncio.Protocol):
    """Serves gRPC calls on one accepted socket."""

    def __init__(self, methods: dict[str, Method], max_message: int,
                 on_close: Callable[[Connection], None]) -> None:
        self._methods = methods
        self._max_message = max_message
        self._on_close = on_close
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._preface_ok = False
        self._decoder = hpack.Decoder(max_header_list_size=MAX_HEADER_LIST)
        self._calls: dict[int, Call] = {}
        self._last_stream = 0
        self._continuation: tuple[int, int, bytearray] | None = None  # stream, flags, block
        self._peer_initial_window = frames.DEFAULT_WINDOW
        self._peer_max_frame = frames.DEFAULT_MAX_FRAME_SIZE
        self._send_window = frames.DEFAULT_WINDOW
        self._recv_unacked = 0
        self._going_away = False
        self._closed = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._window_waiters: set[Call] = set()
        self._peer = "unix:"
        self.idle = asyncio.Event()
        self.idle.set()

    # -- asyncio.Protocol ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        name = transport.get_extra_info("sockname")
        self._peer = f"unix:{name}" if isinstance(name, str) else "unix:"
        transport.write(frames.settings({
            frames.SETTINGS_MAX_CONCURRENT_STREAMS: MAX_CONCURRENT_STREAMS,
            frames.SETTINGS_INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            frames.SETTINGS_MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST,
            frames.SETTINGS_ENABLE_PUSH: 0,
        }) + frames.window_update(0, CONNECTION_WINDOW - frames.DEFAULT_WINDOW))

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        self._buf += data
        try:
            self._process()
        except ConnectionError_ as exc:
            self._fail(exc.code, str(exc))

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._transport = None
        self._wake_drain()
        for call in list(self._calls.values()):
            call.reset_by_peer = True
            self._cancel(call)
        self._on_close(self)

    # -- shutdown ----------------------------------------------------------

    def go_away(self) -> None:
        """Refuse new calls (GOAWAY), let running ones finish."""
        if not self._going_away and not self._closed:
            self._going_away = True
            self._write(frames.goaway(self._last_stream, frames.NO_ERROR))
        if not self._calls:
            self.close()

    def cancel_all(self) -> None:
        for call in list(self._calls.values()):
            self._cancel(call)

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    # -- frame parsing -------------------------------------------------------

    def _process(self) -> None:
        buf = self._buf
        pos = 0
        if not self._preface_ok:
            if len(buf) < len(frames.PREFACE):
                if not frames.PREFACE.startswith(bytes(buf)):
                    raise ConnectionError_(frames.PROTOCOL_ERROR, "not an HTTP/2 client preface")
                return
            if bytes(buf[:len(frames.PREFACE)]) != frames.PREFACE:
                raise ConnectionError_(frames.PROTOCOL_ERROR, "not an HTTP/2 client preface")
            self._preface_ok = True
            pos = len(frames.PREFACE)
        end = len(buf)
        while end - pos >= frames.HEADER_SIZE and not self._closed:
            length, ftype, flags, stream_id = frames.parse_header(buf, pos)
            if length > frames.DEFAULT_MAX_FRAME_SIZE:
                raise ConnectionError_(frames.FRAME_SIZE_ERROR, f"frame of {length} bytes")
            if end - pos - frames.HEADER_SIZE < length:
                break
            start = pos + frames.HEADER_SIZE
            payload = bytes(buf[start:start + length])
            pos = start + length
            try:
                self._on_frame(ftype, flags, stream_id, payload)
            except StreamError as exc:
                log.debug("stream %d reset: %s", exc.stream_id, exc)
                self._reset(exc.stream_id, exc.code)
        del buf[:pos]

    def _on_frame(self, ftype: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self._continuation is not None and ftype != frames.CONTINUATION:
            raise ConnectionError_(frames.PROTOCOL_ERROR, "expected CONTINUATION")
        if ftype == frames.DATA:
            self._on_data(flags, stream_id, payload)
        elif ftype == frames.HEADERS:
            self._on_headers(flags, stream_id, payload)
        elif ftype == frames.CONTINUATION:
            self._on_continuation(flags, stream_id, payload)
        elif ftype == frames.SETTINGS:
            self._on_settings(flags, stream_id, payload)
        elif ftype == frames.WINDOW_UPDATE:
            self._on_window_update(stream_id, payload)
        elif ftype == frames.PING:
            if stream_id or len(payload) != 8:
                raise ConnectionError_(frames.PROTOCOL_ERROR, "malformed PING")
            if not flags & frames.FLAG_ACK:
                self._write(frames.frame(frames.PING, frames.FLAG_ACK, 0, payload))
        elif ftype == frames.RST_STREAM:
            if not stream_id or len(payload) != 4:
                raise ConnectionError_(frames.PROTOCOL_ERROR, "malformed RST_STREAM")
            call = self._calls.get(stream_id)
            if call is not None:
                call.reset_by_peer = True
                call.ended = True
                self._cancel(call)
        elif ftype == frames.GOAWAY:
            self._going_away = True
            if not self._calls:
                self.close()
        elif ftype == frames.PUSH_PROMISE:
            raise ConnectionError_(frames.PROTOCOL_ERROR, "PUSH_PROMISE from a client")
        # PRIORITY and unknown frame types are ignored (RFC 9113 5.5).

    @staticmethod
    def _strip_padding(flags: int, payload: bytes) -> bytes:
        try:
            return frames.strip_padding(flags, payload)
        except ValueError as exc:
            raise ConnectionError_(frames.PROTOCOL_ERROR, str(exc)) from None

    # -- HEADERS -----------------------------------------------------------

    def _on_headers(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise ConnectionError_(frames.PROTOCOL_ERROR, "HEADERS on stream 0")
        try:
            block = frames.header_block(flags, payload)
        except ValueError as exc:
            raise ConnectionError_(frames.PROTOCOL_ERROR, str(exc)) from None
        if flags & frames.FLAG_END_HEADERS:
            self._on_header_block(stream_id, flags, block)
        else:
            self._continuation = (stream_id, flags, bytearray(block))

    def _on_continuation(self, flags: int, stream_id: int, payload: bytes) -> None:
        pending = self._continuation
        if pending is None or pending[0] != stream_id:
            raise ConnectionError_(frames.PROTOCOL_ERROR, "unexpected CONTINUATION")
        pending[2].extend(payload)
        if len(pending[2]) > MAX_HEADER_LIST:
            raise ConnectionError_(frames.ENHANCE_YOUR_CALM, "header block too large")
        if flags & frames.FLAG_END_HEADERS:
            self._continuation = None
            self._on_header_block(stream_id, pending[1], bytes(pending[2]))

    def _on_header_block(self, stream_id: int, flags: int, block: bytes) -> None:
        try:  # always decode: the dynamic table must stay in step with the client's
            fields = self._decoder.decode(block)
        except hpack.HpackError as exc:
            raise ConnectionError_(frames.COMPRESSION_ERROR, str(exc)) from None
        end_stream = bool(flags & frames.FLAG_END_STREAM)
        existing = self._calls.get(stream_id)
        if existing is not None:  # trailers from the client: only legal as the end of its stream
            if not end_stream or existing.half_closed:
                raise StreamError(stream_id, frames.PROTOCOL_ERROR, "HEADERS in the middle of a stream")
            self._half_close(existing)
            return
        if stream_id % 2 == 0 or stream_id <= self._last_stream:
            raise ConnectionError_(frames.PROTOCOL_ERROR, f"HEADERS opening invalid stream {stream_id}")
        self._last_stream = stream_id
        if self._going_away or len(self._calls) >= MAX_CONCURRENT_STREAMS:
            self._write(frames.rst_stream(stream_id, frames.REFUSED_STREAM))
            return
        headers: dict[bytes, bytes] = {}
        for name, value in fields:
            if name in headers and not name.startswith(b":"):
                headers[name] += b"," + value
            else:
                headers[name] = value
        call = Call(stream_id, self._methods.get(headers.get(b":path", b"").decode("latin-1")),
                    headers, self._peer_initial_window)
        self._calls[stream_id] = call
        self.idle.clear()
        if headers.get(b":method") != b"POST" or not headers.get(b"content-type", b"").startswith(
                b"application/grpc"):
            self._write(frames.headers_frames(stream_id, hpack.encode([(b":status", b"415")]), True,
                                              self._peer_max_frame))
            call.ended = True
            self._forget(call)
            return
        if end_stream:
            self._half_close(call)

    # -- DATA --------------------------------------------------------------

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise ConnectionError_(frames.PROTOCOL_ERROR, "DATA on stream 0")
        self._recv_unacked += len(payload)
        if self._recv_unacked >= _REPLENISH_AT:
            self._write(frames.window_update(0, self._recv_unacked))
            self._recv_unacked = 0
        call = self._calls.get(stream_id)
        if call is None:
            if stream_id > self._last_stream:
                raise ConnectionError_(frames.PROTOCOL_ERROR, f"DATA on idle stream {stream_id}")
            return  # a stream we already answered or reset: the data is moot
        if call.half_closed:
            raise StreamError(stream_id, frames.STREAM_CLOSED, "DATA after END_STREAM")
        if call.ended:
            return
        data = self._strip_padding(flags, payload)
        call.body += data
        call.recv_unacked += len(payload)
        if call.recv_unacked >= STREAM_WINDOW // 2 and not flags & frames.FLAG_END_STREAM:
            self._write(frames.window_update(stream_id, call.recv_unacked))
            call.recv_unacked = 0
        if len(call.body) > self._max_message + wire.PREFIX_SIZE and call.task is None:
            self._end(call, grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"request larger than the maximum of {self._max_message} bytes")
            return
        if flags & frames.FLAG_END_STREAM:
            self._half_close(call)

    # -- SETTINGS / WINDOW_UPDATE -------------------------------------------

    def _on_settings(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id:
            raise ConnectionError_(frames.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & frames.FLAG_ACK:
            if payload:
                raise ConnectionError_(frames.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        try:
            settings = frames.parse_settings(payload)
        except ValueError as exc:
            raise ConnectionError_(frames.FRAME_SIZE_ERROR, str(exc)) from None
        for key, value in settings:
            if key == frames.SETTINGS_INITIAL_WINDOW_SIZE:
                if value > frames.MAX_WINDOW:
                    raise ConnectionError_(frames.FLOW_CONTROL_ERROR, "initial window too large")
                delta = value - self._peer_initial_window
                self._peer_initial_window = value
                for call in self._calls.values():
                    call.send_window += delta
            elif key == frames.SETTINGS_MAX_FRAME_SIZE:
                if not frames.DEFAULT_MAX_FRAME_SIZE <= value <= frames.MAX_FRAME_SIZE_LIMIT:
                    raise ConnectionError_(frames.PROTOCOL_ERROR, f"max frame size {value}")
                self._peer_max_frame = value
            elif key == frames.SETTINGS_ENABLE_PUSH and value > 1:
                raise ConnectionError_(frames.PROTOCOL_ERROR, "ENABLE_PUSH above 1")
        self._write(frames.frame(frames.SETTINGS, frames.FLAG_ACK, 0))
        self._wake_windows(None)

    def _on_window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise ConnectionError_(frames.FRAME_SIZE_ERROR, "WINDOW_UPDATE length")
        increment = struct.unpack(">L", payload)[0] & 0x7FFFFFFF
        if stream_id == 0:
            if increment == 0:
                raise ConnectionError_(frames.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self._send_window += increment
            if self._send_window > frames.MAX_WINDOW:
                raise ConnectionError_(frames.FLOW_CONTROL_ERROR, "connection window overflow")
            self._wake_windows(None)
            return
        call = self._calls.get(stream_id)
        if call is None:
            return
        if increment == 0:
            raise StreamError(stream_id, frames.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
        call.send_window += increment
        if call.send_window > frames.MAX_WINDOW:
            raise StreamError(stream_id, frames.FLOW_CONTROL_ERROR, "stream window overflow")
        self._wake_windows(call)

    def _wake_windows(self, call: Call | None) -> None:
        targets = [call] if call is not None else list(self._window_waiters)
        for target in targets:
            waiter = target.window_waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    # -- running a call -----------------------------------------------------

    def _half_close(self, call: Call) -> None:
        call.half_closed = True
        if call.ended:
            return
        method = call.method
        if method is None:
            path = call.headers.get(b":path", b"").decode("latin-1")
            self._end(call, grpc.StatusCode.UNIMPLEMENTED, f"unknown method {path}")
            return
        timeout = None
        raw_timeout = call.headers.get(b"grpc-timeout")
        if raw_timeout is not None:
            timeout = wire.parse_timeout(raw_timeout)
            if timeout is None:
                self._end(call, grpc.StatusCode.INVALID_ARGUMENT,
                                   f"malformed grpc-timeout {raw_timeout.decode('latin-1')!r}")
                return
        deadline = None if timeout is None else time.monotonic() + timeout
        call.context = ServicerContext(self._peer, call.headers, deadline,
                                       lambda md: self._send_headers(call, md))
        call.task = eager.start_eagerly(self._run(call, method), method.name)
        if call.task is not None and timeout is not None:
            call.timer = asyncio.get_running_loop().call_later(timeout, self._deadline_expired, call)

    def _decode_request(self, call: Call, method: Method) -> Any:
        body = call.body
        if len(body) < wire.PREFIX_SIZE:
            raise AbortError(grpc.StatusCode.INTERNAL, f"{method.name}: the request carries no message")
        compressed, length = wire.parse_prefix(body, 0)
        if len(body) != wire.PREFIX_SIZE + length:
            raise AbortError(grpc.StatusCode.INTERNAL,
                             f"{method.name}: the request must carry exactly one whole message")
        payload = bytes(body[wire.PREFIX_SIZE:])
        if compressed:
            payload = _decompress(call.headers.get(b"grpc-encoding", b""), payload, self._max_message)
        try:
            return method.deserialize(payload)
        except Exception as exc:  # protobuf's DecodeError and friends
            raise AbortError(grpc.StatusCode.INVALID_ARGUMENT,
                             f"{method.name}: cannot parse the request as {method.request_type}: {exc}") from None

    async def _run(self, call: Call, method: Method) -> None:
        assert call.context is not None
        code, details = grpc.StatusCode.OK, ""
        try:
            request = self._decode_request(call, method)
            call.body = bytearray()
            if method.server_streaming:
                async for response in method.handler(request, call.context):
                    await self._send_message(call, method.serialize(response), method)
            else:
                response = await method.handler(request, call.context)
                payload = response.data if isinstance(response, Serialized) else method.serialize(response)
                if len(payload) > self._max_message:
                    raise AbortError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                     f"{method.name}: response of {len(payload)} bytes exceeds the "
                                     f"maximum of {self._max_message}")
                if not call.headers_sent and self._fits(call, len(payload) + wire.PREFIX_SIZE):
                    self._send_unary(call, payload)
                else:
                    await self._send_message(call, payload, method)
        except AbortError as exc:
            code, details = exc.code, exc.details
        except asyncio.CancelledError:
            if call.deadline_hit:
                code, details = grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded"
            else:
                call.ended = True  # the client reset the stream or left, or the server is stopping
        except Exception as exc:
            log.exception("%s failed", method.name)
            code, details = grpc.StatusCode.INTERNAL, f"{method.name}: internal error: {exc!r}"
        if call.timer is not None:
            call.timer.cancel()
        self._end(call, code, details)

    def _deadline_expired(self, call: Call) -> None:
        call.deadline_hit = True
        if call.task is not None and not call.task.done():
            call.task.cancel()

    def _fits(self, call: Call, size: int) -> bool:
        return size <= call.send_window and size <= self._send_window

    def _send_unary(self, call: Call, payload: bytes) -> None:
        """Headers, message and trailers in one write: the common, fast case."""
        message = wire.length_prefixed(payload)
        size = len(message)
        call.send_window -= size
        self._send_window -= size
        max_frame = self._peer_max_frame
        self._write(frames.headers_frames(call.stream_id, wire.RESPONSE_HEADERS, False, max_frame)
                    + frames.data_frames(call.stream_id, message, max_frame)
                    + frames.headers_frames(call.stream_id, wire.OK_TRAILERS, True, max_frame))
        call.headers_sent = call.ended = True
        self._forget(call)

    async def _send_headers(self, call: Call, metadata: Sequence[tuple[str, str]]) -> None:
        if call.headers_sent or call.ended:
            return
        fields = [(b":status", b"200"), (b"content-type", b"application/grpc")]
        fields += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in metadata]
        self._write(frames.headers_frames(call.stream_id, hpack.encode(fields), False, self._peer_max_frame))
        call.headers_sent = True
        await self._drain()

    async def _send_message(self, call: Call, payload: bytes, method: Method) -> None:
        """One length-prefixed message, as the stream and connection windows allow."""
        if call.ended:
            raise asyncio.CancelledError()
        if len(payload) > self._max_message:
            raise AbortError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                             f"{method.name}: message of {len(payload)} bytes exceeds the maximum")
        if not call.headers_sent:
            self._write(frames.headers_frames(call.stream_id, wire.RESPONSE_HEADERS, False, self._peer_max_frame))
            call.headers_sent = True
        message = memoryview(wire.length_prefixed(payload))
        pos = 0
        while pos < len(message):
            allowed = min(call.send_window, self._send_window, len(message) - pos)
            if allowed <= 0:
                await self._wait_window(call)
                continue
            self._write(frames.data_frames(call.stream_id, message[pos:pos + allowed], self._peer_max_frame))
            call.send_window -= allowed
            self._send_window -= allowed
            pos += allowed
        await self._drain()

    async def _wait_window(self, call: Call) -> None:
        if self._closed or call.ended:
            raise asyncio.CancelledError()
        call.window_waiter = asyncio.get_running_loop().create_future()
        self._window_waiters.add(call)
        try:
            await call.window_waiter
        finally:
            self._window_waiters.discard(call)
            call.window_waiter = None

    def _end(self, call: Call, code: grpc.StatusCode, details: str) -> None:
        if not call.ended and not self._closed:
            block = wire.status_trailers(code, details, trailers_only=not call.headers_sent)
            self._write(frames.headers_frames(call.stream_id, block, True, self._peer_max_frame))
            if not call.half_closed:
                # The client is still sending (an oversized request): tell it to stop.
                self._write(frames.rst_stream(call.stream_id, frames.NO_ERROR))
            call.ended = True
        self._forget(call)

    def _cancel(self, call: Call) -> None:
        if call.context is not None:
            call.context.cancelled_by_peer = call.reset_by_peer
        if call.task is not None and not call.task.done():
            call.task.cancel()
        else:
            self._forget(call)

    def _reset(self, stream_id: int, code: int) -> None:
        self._write(frames.rst_stream(stream_id, code))
        call = self._calls.get(stream_id)
        if call is not None:
            call.ended = True
            self._cancel(call)

    def _forget(self, call: Call) -> None:
        if self._calls.get(call.stream_id) is call:
            del self._calls[call.stream_id]
        if not self._calls:
            self.idle.set()
            if self._going_away:
                self.close()

    # -- writing -------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._closed:
            self._transport.write(data)

    async def _drain(self) -> None:
        if self._write_paused and not self._closed:
            waiter = asyncio.get_running_loop().create_future()
            self._drain_waiters.append(waiter)
            await waiter

    def _wake_drain(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _fail(self, code: int, message: str) -> None:
        log.debug("closing connection: %s", message)
        self._write(frames.goaway(self._last_stream, code, message.encode()[:256]))
        self._closed = True
        if self._transport is not None:
            self._transport.close()


def _decompress(encoding: bytes, payload: bytes, limit: int) -> bytes:
    wbits = {b"gzip": 31, b"deflate": 15}.get(encoding)
    if wbits is None:
        raise AbortError(grpc.StatusCode.UNIMPLEMENTED,
                         f"compressed request with unsupported grpc-encoding {encoding.decode('latin-1')!r}")
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(payload, limit + 1)
    except zlib.error as exc:
        raise AbortError(grpc.StatusCode.INTERNAL, f"cannot decompress the request: {exc}") from None
    if len(out) > limit:
        raise AbortError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                         f"decompressed request larger than the maximum of {limit} bytes")
    return out
