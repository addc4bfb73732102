"""One client connection: HTTP/2 framing, flow control and gRPC calls on its streams.

An asyncio Protocol rather than streams: each frame is handled as soon as its
bytes arrive, and a unary answer (headers, message, trailers) leaves in a
single write. Each call runs as its own task so a slow RPC never holds up
others on the connection; cancelling that task is how a client's reset, a
deadline or a server stop reaches the handler.

Robustness against hostile or broken clients (see limits.py for each limit's
origin): handlers start only after the whole read buffer is parsed, so a call
reset in the same buffer never starts; a reset call is forgotten at once and
resets are counted; while the socket's write buffer is above its high-water
mark we stop reading and parsing, so a client that does not read cannot make
us buffer answers; request bytes are credited back to the connection window
only once the handler has taken them (or they are dropped).
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

from cri_runtime import eager
from cri_runtime.h2 import frames, hpack, wire
from cri_runtime.h2.status import StatusCode

from .context import AbortError, Serialized, ServicerContext
from .limits import STREAM_WINDOW, Limits

log = logging.getLogger(__name__)
_monotonic = time.monotonic

DEFAULT_LIMITS = Limits()
# The connection window is the buffered-request limit plus this margin, so a client is never
# blocked on the connection window before the call that crosses the limit is ended.
_WINDOW_MARGIN = 1 << 20
# Consumed bytes are credited back in WINDOW_UPDATEs of at least this much (well inside the margin).
_REFILL_AT = 256 * 1024
# Go's processSettings refuses SETTINGS frames with more entries than this.
_MAX_SETTINGS = 100


@dataclass(frozen=True)
class Method:
    """A registered RPC: how to decode, run and encode it."""

    name: str  # "/package.Service/Method"
    handler: Callable[..., Any]
    deserialize: Callable[[bytes], Any]
    serialize: Callable[[Any], bytes]
    server_streaming: bool
    request_type: str


class _SendStalled(Exception):
    """A call waited longer than the send-stall timeout for the client to open its window."""


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
    # The send window relative to the client's SETTINGS_INITIAL_WINDOW_SIZE, so a SETTINGS
    # change costs O(1) however many streams are open (RFC 9113 6.9.2).
    window_adj: int = 0
    recv_window: int = STREAM_WINDOW  # what the client may still send on this stream
    body: bytearray = field(default_factory=bytearray)
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
                 on_close: Callable[[Connection], None], limits: Limits = DEFAULT_LIMITS,
                 refuse: bool = False) -> None:
        self._methods = methods
        self._max_message = max_message
        self._on_close = on_close
        self._limits = limits
        self._refuse = refuse
        self._transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._buf = bytearray()
        self._preface_ok = False
        self._decoder = hpack.Decoder(max_header_list_size=limits.max_header_list)
        self._calls: dict[int, Call] = {}
        self._to_start: list[Call] = []  # calls complete in this read buffer, started after parsing it
        self._last_stream = 0
        self._continuation: tuple[int, int, bytearray] | None = None  # stream, flags, block
        self._peer_initial_window = frames.DEFAULT_WINDOW
        self._max_adj = 0  # an upper bound of every call's window_adj
        self._peer_max_frame = frames.DEFAULT_MAX_FRAME_SIZE
        self._send_window = frames.DEFAULT_WINDOW
        self._connection_window = limits.max_buffered_request + _WINDOW_MARGIN
        self._recv_credit = self._connection_window  # what the client may still send, all streams
        self._unsent_credit = 0  # consumed bytes not yet given back in a WINDOW_UPDATE
        self._buffered = 0  # request bytes held for calls whose handler has not taken them
        self._reset_budget = limits.reset_budget
        self._max_reset_budget = limits.reset_budget  # limits' values read per call, kept as plain ints
        self._max_buffered = limits.max_buffered_request
        self._empty_frames = 0
        self._queued_control = 0
        self._ping_strikes = 0
        self._last_ping = float("-inf")
        self._sent_since_ping = False
        self._going_away = False
        self._closed = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._window_waiters: set[Call] = set()
        self._timer: asyncio.TimerHandle | None = None  # preface, then idle timeout
        self._stall_timer: asyncio.TimerHandle | None = None
        self.idle_since = 0.0
        self._peer = "unix:"
        self.idle = asyncio.Event()
        self.idle.set()

    # -- asyncio.Protocol ------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if self._refuse:  # over the connection cap with no idle connection to send away
            self._closed = True
            transport.abort()
            return
        self._transport = transport
        self._loop = loop = asyncio.get_running_loop()
        self.idle_since = _monotonic()
        name = transport.get_extra_info("sockname")
        self._peer = f"unix:{name}" if isinstance(name, str) else "unix:"
        self._timer = loop.call_later(self._limits.preface_timeout, self._on_preface_timeout)
        transport.write(frames.settings({
            frames.SETTINGS_MAX_CONCURRENT_STREAMS: self._limits.max_concurrent_streams,
            frames.SETTINGS_INITIAL_WINDOW_SIZE: STREAM_WINDOW,
            frames.SETTINGS_MAX_HEADER_LIST_SIZE: self._limits.max_header_list,
            frames.SETTINGS_ENABLE_PUSH: 0,
        }) + frames.window_update(0, self._connection_window - frames.DEFAULT_WINDOW))

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        self._buf += data
        try:  # _process_buffer, inlined on the per-call path
            self._process()
            if self._to_start:
                self._start_pending()
        except ConnectionError_ as exc:
            self._to_start.clear()
            self._fail(exc.code, str(exc))

    def _process_buffer(self) -> None:
        try:
            self._process()
            if self._to_start:
                self._start_pending()
        except ConnectionError_ as exc:
            self._to_start.clear()
            self._fail(exc.code, str(exc))

    def pause_writing(self) -> None:
        """The socket's write buffer is full: stop reading and parsing until it drains."""
        self._write_paused = True
        if self._transport is not None and self._loop is not None:
            self._transport.pause_reading()
            if self._stall_timer is None:
                self._stall_timer = self._loop.call_later(self._limits.send_stall_timeout,
                                                          self._on_write_stall)

    def resume_writing(self) -> None:
        self._write_paused = False
        self._queued_control = 0
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        self._wake_drain()
        if self._closed or self._transport is None:
            return
        if self._buf:
            self._process_buffer()
        if not self._write_paused and not self._closed and self._transport is not None:
            self._transport.resume_reading()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._transport = None
        for timer in (self._timer, self._stall_timer):
            if timer is not None:
                timer.cancel()
        self._wake_drain()
        for call in list(self._calls.values()):
            call.reset_by_peer = True
            call.ended = True
            self._cancel(call)
        if not self._refuse:
            self._on_close(self)

    # -- timers --------------------------------------------------------------

    def _on_preface_timeout(self) -> None:
        log.debug("no HTTP/2 client preface within %.0fs: closing", self._limits.preface_timeout)
        self._timer = None
        self._fail(frames.PROTOCOL_ERROR, "no client preface in time")

    def _schedule_idle_check(self, delay: float) -> None:
        assert self._loop is not None
        self._timer = self._loop.call_later(delay, self._on_idle_check)

    def _on_idle_check(self) -> None:
        """GOAWAY once no call has been open for the idle timeout (checked, not re-armed per call)."""
        self._timer = None
        if self._closed or self._going_away or self._loop is None:
            return
        timeout = self._limits.idle_timeout
        if self._calls:
            self._schedule_idle_check(timeout)
            return
        remaining = self.idle_since + timeout - _monotonic()
        if remaining > 0:
            self._schedule_idle_check(remaining)
            return
        log.debug("connection idle for %.0fs: GOAWAY", timeout)
        self.go_away()

    def _on_write_stall(self) -> None:
        """The client has not read for the send-stall timeout: drop the connection."""
        self._stall_timer = None
        log.debug("client read nothing for %.0fs: closing", self._limits.send_stall_timeout)
        self._closed = True
        if self._transport is not None:
            self._transport.abort()

    # -- shutdown ----------------------------------------------------------

    @property
    def open_calls(self) -> int:
        return len(self._calls)

    @property
    def is_idle(self) -> bool:
        """No call open and not already going away: the first to send away at the connection cap."""
        return not self._calls and not self._going_away and not self._closed

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
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()
            if self._loop is not None:  # a client that never reads would hold a closing transport forever
                self._loop.call_later(1.0, transport.abort)

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
            if self._timer is not None:
                self._timer.cancel()
            self._schedule_idle_check(self._limits.idle_timeout)
            pos = len(frames.PREFACE)
        end = len(buf)
        try:
            while end - pos >= frames.HEADER_SIZE and not self._closed and not self._write_paused:
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
                    self._charge_reset()
        finally:
            del buf[:pos]

    def _on_frame(self, ftype: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self._continuation is not None and ftype != frames.CONTINUATION:
            raise ConnectionError_(frames.PROTOCOL_ERROR, "expected CONTINUATION")
        if ftype == frames.DATA:
            self._on_data(flags, stream_id, payload)
        elif ftype == frames.HEADERS:
            self._empty_frames = 0
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
                self._write_control(frames.frame(frames.PING, frames.FLAG_ACK, 0, payload))
                self._check_ping_policy()
        elif ftype == frames.RST_STREAM:
            self._on_rst_stream(stream_id, payload)
        elif ftype == frames.GOAWAY:
            self._going_away = True
            if not self._calls:
                self.close()
        elif ftype == frames.PUSH_PROMISE:
            raise ConnectionError_(frames.PROTOCOL_ERROR, "PUSH_PROMISE from a client")
        # PRIORITY and unknown frame types are ignored (RFC 9113 5.5).

    def _count_empty_frame(self) -> None:
        self._empty_frames += 1
        if self._empty_frames > self._limits.max_empty_frames:
            raise ConnectionError_(frames.ENHANCE_YOUR_CALM, "too many empty frames")

    @staticmethod
    def _strip_padding(flags: int, payload: bytes) -> bytes:
        try:
            return frames.strip_padding(flags, payload)
        except ValueError as exc:
            raise ConnectionError_(frames.PROTOCOL_ERROR, str(exc)) from None

    # -- resets and pings ----------------------------------------------------

    def _on_rst_stream(self, stream_id: int, payload: bytes) -> None:
        if not stream_id or len(payload) != 4:
            raise ConnectionError_(frames.PROTOCOL_ERROR, "malformed RST_STREAM")
        call = self._calls.get(stream_id)
        if call is None:
            if stream_id > self._last_stream:
                raise ConnectionError_(frames.PROTOCOL_ERROR, f"RST_STREAM on idle stream {stream_id}")
            return  # already answered: it cost us nothing more
        call.reset_by_peer = True
        call.ended = True
        self._cancel(call)
        self._charge_reset()

    def _charge_reset(self) -> None:
        """Count a reset stream against the budget; GOAWAY ENHANCE_YOUR_CALM when it is spent."""
        self._reset_budget -= 1
        if self._reset_budget < 0:
            raise ConnectionError_(frames.ENHANCE_YOUR_CALM, "too many reset streams")

    def _check_ping_policy(self) -> None:
        """grpc-go's keepalive enforcement: too-frequent PINGs get GOAWAY "too_many_pings"."""
        assert self._loop is not None
        now = _monotonic()
        last, self._last_ping = self._last_ping, now
        if self._sent_since_ping:  # we sent headers or data since: not an abuse
            self._sent_since_ping = False
            self._ping_strikes = 0
            return
        limits = self._limits
        interval = limits.ping_min_interval if self._calls else limits.ping_idle_interval
        if now - last < interval:
            self._ping_strikes += 1
            if self._ping_strikes > limits.max_ping_strikes:
                raise ConnectionError_(frames.ENHANCE_YOUR_CALM, "too_many_pings")

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
        if not payload and not flags & frames.FLAG_END_HEADERS:
            self._count_empty_frame()
        pending[2].extend(payload)
        if len(pending[2]) > self._limits.max_header_list:
            raise ConnectionError_(frames.ENHANCE_YOUR_CALM, "header block too large")
        if flags & frames.FLAG_END_HEADERS:
            self._continuation = None
            self._on_header_block(stream_id, pending[1], bytes(pending[2]))

    def _on_header_block(self, stream_id: int, flags: int, block: bytes) -> None:
        try:  # always decode: the dynamic table must stay in step with the client's
            fields = self._decoder.decode(block)
        except hpack.HeaderListTooLarge as exc:
            raise ConnectionError_(frames.ENHANCE_YOUR_CALM, str(exc)) from None
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
        if self._going_away or len(self._calls) >= self._limits.max_concurrent_streams:
            self._write_control(frames.rst_stream(stream_id, frames.REFUSED_STREAM))
            return
        if self._decoder.uppercase_name:
            raise StreamError(stream_id, frames.PROTOCOL_ERROR, "uppercase header name")
        headers: dict[bytes, bytes] = {}
        repeated: dict[bytes, list[bytes]] | None = None
        for name, value in fields:
            if name in headers:
                if name[:1] == b":":
                    raise StreamError(stream_id, frames.PROTOCOL_ERROR, "repeated pseudo-header")
                if repeated is None:
                    repeated = {}
                repeated.setdefault(name, [headers[name]]).append(value)
            else:
                headers[name] = value
        if repeated is not None:  # joined once each, not by repeated concatenation
            for name, values in repeated.items():
                headers[name] = b",".join(values)
        call = Call(stream_id, self._methods.get(headers.get(b":path", b"").decode("latin-1")), headers)
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
        size = len(payload)
        self._recv_credit -= size
        if self._recv_credit < 0:
            raise ConnectionError_(frames.FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        end_stream = flags & frames.FLAG_END_STREAM
        if size or end_stream:
            self._empty_frames = 0
        else:
            self._count_empty_frame()
        call = self._calls.get(stream_id)
        if call is None:
            if stream_id > self._last_stream:
                raise ConnectionError_(frames.PROTOCOL_ERROR, f"DATA on idle stream {stream_id}")
            self._credit(size)  # a stream we already answered or reset: the data is moot
            return
        if call.half_closed:
            self._credit(size)
            raise StreamError(stream_id, frames.STREAM_CLOSED, "DATA after END_STREAM")
        call.recv_window -= size
        if call.recv_window < 0:
            self._credit(size)
            raise StreamError(stream_id, frames.FLOW_CONTROL_ERROR, "DATA beyond the stream window")
        data = self._strip_padding(flags, payload) if flags & frames.FLAG_PADDED else payload
        if len(data) != size:
            self._credit(size - len(data))  # padding is consumed on arrival
        call.body += data
        self._buffered += len(data)
        if len(call.body) > self._max_message + wire.PREFIX_SIZE:
            self._end(call, StatusCode.RESOURCE_EXHAUSTED,
                      f"request larger than the maximum of {self._max_message} bytes")
            return
        if self._buffered > self._max_buffered:
            self._end(call, StatusCode.RESOURCE_EXHAUSTED,
                      "too much request data buffered on this connection; retry")
            return
        if end_stream:
            self._half_close(call)

    def _credit(self, size: int) -> None:
        """Give consumed bytes back to the client's connection window, in batches."""
        unsent = self._unsent_credit + size
        if unsent >= _REFILL_AT:
            self._unsent_credit = 0
            self._recv_credit += unsent
            self._write(frames.window_update(0, unsent))
        else:
            self._unsent_credit = unsent

    def _release_body(self, call: Call) -> None:
        """The request bytes are taken (or dropped): free them and credit the connection window."""
        body = call.body
        size = len(body)
        if size:
            self._buffered -= size
            body.clear()
            unsent = self._unsent_credit + size
            if unsent >= _REFILL_AT:
                self._credit(size)
            else:
                self._unsent_credit = unsent

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
        if len(settings) > _MAX_SETTINGS:
            raise ConnectionError_(frames.PROTOCOL_ERROR, f"SETTINGS with {len(settings)} entries")
        initial_window = None
        for key, value in settings:
            if key == frames.SETTINGS_INITIAL_WINDOW_SIZE:
                if value > frames.MAX_WINDOW:
                    raise ConnectionError_(frames.FLOW_CONTROL_ERROR, "initial window too large")
                initial_window = value
            elif key == frames.SETTINGS_MAX_FRAME_SIZE:
                if not frames.DEFAULT_MAX_FRAME_SIZE <= value <= frames.MAX_FRAME_SIZE_LIMIT:
                    raise ConnectionError_(frames.PROTOCOL_ERROR, f"max frame size {value}")
                self._peer_max_frame = value
            elif key == frames.SETTINGS_ENABLE_PUSH and value > 1:
                raise ConnectionError_(frames.PROTOCOL_ERROR, "ENABLE_PUSH above 1")
        if initial_window is not None and initial_window != self._peer_initial_window:
            if initial_window + self._max_adj > frames.MAX_WINDOW:  # maybe: find the exact maximum
                self._max_adj = max((call.window_adj for call in self._calls.values()), default=0)
                if initial_window + self._max_adj > frames.MAX_WINDOW:
                    raise ConnectionError_(frames.FLOW_CONTROL_ERROR, "SETTINGS push a stream window past 2^31-1")
            self._peer_initial_window = initial_window
        self._write_control(frames.frame(frames.SETTINGS, frames.FLAG_ACK, 0))
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
            if stream_id > self._last_stream:
                raise ConnectionError_(frames.PROTOCOL_ERROR, f"WINDOW_UPDATE on idle stream {stream_id}")
            return
        if increment == 0:
            raise StreamError(stream_id, frames.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
        call.window_adj += increment
        if self._peer_initial_window + call.window_adj > frames.MAX_WINDOW:
            raise StreamError(stream_id, frames.FLOW_CONTROL_ERROR, "stream window overflow")
        if call.window_adj > self._max_adj:
            self._max_adj = call.window_adj
        self._wake_windows(call)

    def _wake_windows(self, call: Call | None) -> None:
        targets = [call] if call is not None else list(self._window_waiters)
        for target in targets:
            waiter = target.window_waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    # -- running a call -----------------------------------------------------

    def _half_close(self, call: Call) -> None:
        """The request is complete: queue the call to start once this read buffer is parsed."""
        call.half_closed = True
        if not call.ended:
            self._to_start.append(call)

    def _start_pending(self) -> None:
        """Start the calls completed in this buffer, except those reset in the same buffer."""
        pending = self._to_start
        for call in pending:
            if not call.ended and not self._closed and self._calls.get(call.stream_id) is call:
                self._start(call)
        pending.clear()

    def _start(self, call: Call) -> None:
        method = call.method
        if method is None:
            path = call.headers.get(b":path", b"").decode("latin-1")
            self._end(call, StatusCode.UNIMPLEMENTED, f"unknown method {path}")
            return
        timeout = None
        raw_timeout = call.headers.get(b"grpc-timeout")
        if raw_timeout is not None:
            timeout = wire.parse_timeout(raw_timeout)
            if timeout is None:
                self._end(call, StatusCode.INVALID_ARGUMENT,
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
            raise AbortError(StatusCode.INTERNAL, f"{method.name}: the request carries no message")
        compressed, length = wire.parse_prefix(body, 0)
        if len(body) != wire.PREFIX_SIZE + length:
            raise AbortError(StatusCode.INTERNAL,
                             f"{method.name}: the request must carry exactly one whole message")
        payload = bytes(body[wire.PREFIX_SIZE:])
        if compressed:
            payload = _decompress(call.headers.get(b"grpc-encoding", b""), payload, self._max_message)
        try:
            return method.deserialize(payload)
        except Exception as exc:  # protobuf's DecodeError and friends
            raise AbortError(StatusCode.INVALID_ARGUMENT,
                             f"{method.name}: cannot parse the request as {method.request_type}: {exc}") from None

    async def _run(self, call: Call, method: Method) -> None:
        assert call.context is not None
        code, details = StatusCode.OK, ""
        try:
            try:
                request = self._decode_request(call, method)
            finally:
                self._release_body(call)  # the handler has taken the request: credit the window
            if method.server_streaming:
                async for response in method.handler(request, call.context):
                    await self._send_message(call, method.serialize(response), method)
            else:
                response = await method.handler(request, call.context)
                payload = response.data if isinstance(response, Serialized) else method.serialize(response)
                if len(payload) > self._max_message:
                    raise AbortError(StatusCode.RESOURCE_EXHAUSTED,
                                     f"{method.name}: response of {len(payload)} bytes exceeds the "
                                     f"maximum of {self._max_message}")
                if self._write_paused:  # the client is not reading: add nothing to the buffer yet
                    await self._drain()
                if not call.headers_sent and self._fits(call, len(payload) + wire.PREFIX_SIZE):
                    self._send_unary(call, payload)
                else:
                    await self._send_message(call, payload, method)
        except AbortError as exc:
            code, details = exc.code, exc.details
        except _SendStalled:
            log.debug("%s: the client opened no window for %.0fs: resetting the stream",
                      method.name, self._limits.send_stall_timeout)
            if not call.ended:
                self._write_control(frames.rst_stream(call.stream_id, frames.CANCEL))
                call.ended = True
        except asyncio.CancelledError:
            if call.deadline_hit:
                code, details = StatusCode.DEADLINE_EXCEEDED, "deadline exceeded"
            else:
                call.ended = True  # the client reset the stream or left, or the server is stopping
        except Exception as exc:
            log.exception("%s failed", method.name)
            code, details = StatusCode.INTERNAL, f"{method.name}: internal error: {exc!r}"
        if call.timer is not None:
            call.timer.cancel()
        self._end(call, code, details)

    def _deadline_expired(self, call: Call) -> None:
        call.deadline_hit = True
        if call.task is not None and not call.task.done():
            call.task.cancel()

    def _fits(self, call: Call, size: int) -> bool:
        return size <= self._peer_initial_window + call.window_adj and size <= self._send_window

    def _send_unary(self, call: Call, payload: bytes) -> None:
        """Headers, message and trailers in one write: the common, fast case."""
        message = wire.length_prefixed(payload)
        size = len(message)
        call.window_adj -= size
        self._send_window -= size
        max_frame = self._peer_max_frame
        self._write(frames.headers_frames(call.stream_id, wire.RESPONSE_HEADERS, False, max_frame)
                    + frames.data_frames(call.stream_id, message, max_frame)
                    + frames.headers_frames(call.stream_id, wire.OK_TRAILERS, True, max_frame))
        call.headers_sent = call.ended = True
        self._sent_since_ping = True
        if self._reset_budget < self._max_reset_budget:
            self._reset_budget += 1
        self._forget(call)

    async def _send_headers(self, call: Call, metadata: Sequence[tuple[str, str]]) -> None:
        if call.headers_sent or call.ended:
            return
        fields = [(b":status", b"200"), (b"content-type", b"application/grpc")]
        fields += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in metadata]
        self._write(frames.headers_frames(call.stream_id, hpack.encode(fields), False, self._peer_max_frame))
        call.headers_sent = True
        self._sent_since_ping = True
        await self._drain()

    async def _send_message(self, call: Call, payload: bytes, method: Method) -> None:
        """One length-prefixed message, as the stream and connection windows allow."""
        if call.ended:
            raise asyncio.CancelledError()
        if len(payload) > self._max_message:
            raise AbortError(StatusCode.RESOURCE_EXHAUSTED,
                             f"{method.name}: message of {len(payload)} bytes exceeds the maximum")
        await self._drain()
        if not call.headers_sent:
            self._write(frames.headers_frames(call.stream_id, wire.RESPONSE_HEADERS, False, self._peer_max_frame))
            call.headers_sent = True
        message = memoryview(wire.length_prefixed(payload))
        pos = 0
        while pos < len(message):
            allowed = min(self._peer_initial_window + call.window_adj, self._send_window, len(message) - pos)
            if allowed <= 0:
                await self._wait_window(call)
                continue
            await self._drain()
            if call.ended:
                raise asyncio.CancelledError()
            self._write(frames.data_frames(call.stream_id, message[pos:pos + allowed], self._peer_max_frame))
            call.window_adj -= allowed
            self._send_window -= allowed
            pos += allowed
        self._sent_since_ping = True

    async def _wait_window(self, call: Call) -> None:
        """Wait for a WINDOW_UPDATE, at most the send-stall timeout (calls with no deadline too)."""
        if self._closed or call.ended:
            raise asyncio.CancelledError()
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        call.window_waiter = waiter
        self._window_waiters.add(call)
        timer = loop.call_later(self._limits.send_stall_timeout, _stall, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._window_waiters.discard(call)
            call.window_waiter = None

    def _end(self, call: Call, code: StatusCode, details: str) -> None:
        if not call.ended and not self._closed:
            block = wire.status_trailers(code, details, trailers_only=not call.headers_sent)
            self._write(frames.headers_frames(call.stream_id, block, True, self._peer_max_frame))
            if not call.half_closed:
                # The client is still sending (an oversized request): tell it to stop.
                self._write(frames.rst_stream(call.stream_id, frames.NO_ERROR))
            call.ended = True
            self._sent_since_ping = True
            if code is StatusCode.OK and self._reset_budget < self._max_reset_budget:
                self._reset_budget += 1
        self._forget(call)

    def _cancel(self, call: Call) -> None:
        """Forget the call now (it no longer counts against any limit) and cancel its handler."""
        if call.context is not None:
            call.context.cancelled_by_peer = call.reset_by_peer
        self._forget(call)
        if call.task is not None and not call.task.done():
            call.task.cancel()

    def _reset(self, stream_id: int, code: int) -> None:
        self._write_control(frames.rst_stream(stream_id, code))
        call = self._calls.get(stream_id)
        if call is not None:
            call.ended = True
            self._cancel(call)

    def _forget(self, call: Call) -> None:
        calls = self._calls
        if calls.get(call.stream_id) is call:
            del calls[call.stream_id]
            if call.body:
                self._release_body(call)
            if not calls:
                self.idle.set()
                self.idle_since = _monotonic()
                if self._going_away:
                    self.close()

    # -- writing -------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self._transport is not None and not self._closed:
            self._transport.write(data)

    def _write_control(self, data: bytes) -> None:
        """A frame we owe the client whatever it does; counted while it is not reading (Go's rule)."""
        if self._transport is None or self._closed:
            return
        self._transport.write(data)
        if self._write_paused:
            self._queued_control += 1
            if self._queued_control > self._limits.max_queued_control_frames:
                raise ConnectionError_(frames.ENHANCE_YOUR_CALM, "too many control frames queued")

    async def _drain(self) -> None:
        while self._write_paused and not self._closed:
            assert self._loop is not None
            waiter = self._loop.create_future()
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
        transport = self._transport
        if transport is not None:
            transport.close()
            if self._loop is not None:
                self._loop.call_later(1.0, transport.abort)


def _stall(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(_SendStalled())


def _decompress(encoding: bytes, payload: bytes, limit: int) -> bytes:
    wbits = {b"gzip": 31, b"deflate": 15}.get(encoding)
    if wbits is None:
        raise AbortError(StatusCode.UNIMPLEMENTED,
                         f"compressed request with unsupported grpc-encoding {encoding.decode('latin-1')!r}")
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(payload, limit + 1)
    except zlib.error as exc:
        raise AbortError(StatusCode.INTERNAL, f"cannot decompress the request: {exc}") from None
    if len(out) > limit:
        raise AbortError(StatusCode.RESOURCE_EXHAUSTED,
                         f"decompressed request larger than the maximum of {limit} bytes")
    return out
