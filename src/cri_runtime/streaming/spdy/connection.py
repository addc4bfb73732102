"""An asyncio SPDY/3.1 session, usable as server (kubelet side) or client (crictl side).

Interop notes that shaped this module:

* Kubernetes peers use Go's ``spdystream``, which never sends WINDOW_UPDATE and ignores the
  ones it receives.  Enforcing our send window against such a peer would stall every stream
  after 64 KiB.  So the send window is honoured only once the peer shows it does flow control
  (it sent WINDOW_UPDATE or SETTINGS/INITIAL_WINDOW_SIZE); this module's own client and server
  announce it with a SETTINGS frame at start, so between two of our ends flow control is real.
* For the same reason a peer overrunning *our* window is not an error; instead the reader
  stops reading the socket while one stream holds more than :data:`BUFFER_LIMIT` unread bytes
  (TCP back-pressure, which is what ``spdystream`` itself relies on).  Streams whose input
  nobody will read are marked with :meth:`SpdyStream.ignore_input` so they cannot stall it.
* A stream is half-closed by an empty DATA frame with FIN, reset by RST_STREAM (CANCEL).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from cri_runtime.streaming.spdy.frames import (
    DEFAULT_INITIAL_WINDOW,
    MAX_STREAM_ID,
    MAX_WINDOW,
    DataFrame,
    Frame,
    FrameCodec,
    GoAwayFrame,
    GoAwayStatus,
    Headers,
    HeadersFrame,
    PingFrame,
    ProtocolError,
    RstStatus,
    RstStreamFrame,
    Setting,
    SettingId,
    SettingsFrame,
    SynReplyFrame,
    SynStreamFrame,
    UnknownControlFrame,
    WindowUpdateFrame,
    header_value,
    normalize_headers,
    read_frame,
)
from cri_runtime.streaming.transport import ByteReader, ByteWriter, StreamClosedError

log = logging.getLogger(__name__)

MAX_DATA_CHUNK = 32 * 1024
BUFFER_LIMIT = 256 * 1024
"""Unread bytes one stream may hold before the session stops reading the socket."""
DEFAULT_MAX_STREAMS = 1000
MAX_UNACCEPTED_STREAMS = 16
"""Peer-opened streams waiting for :meth:`SpdyConnection.accept`; more are refused.

A remote command opens at most five streams (error, stdin, stdout, stderr, resize) and a
port-forward two per port request; kubelet hands streams to its handler through a channel
of one. Each unaccepted stream may buffer up to BUFFER_LIMIT, so the cap bounds that too.
"""


class SpdyStream:
    """One SPDY stream: a bidirectional byte stream with headers, half-close and reset."""

    def __init__(self, conn: SpdyConnection, stream_id: int, headers: Headers, *, incoming: bool) -> None:
        self._conn = conn
        self.id = stream_id
        self.headers = headers
        self.reply_headers: Headers = []
        self.incoming = incoming
        self._buf = bytearray()
        self._readable = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._remote_closed = False
        self._local_closed = False
        self._reset = False
        self._ignore_input = False
        self._replied = False
        self._reply_waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._send_window = conn._peer_initial_window
        self._window_open = asyncio.Event()
        self._window_open.set()
        self._unacked = 0

    def __repr__(self) -> str:
        return f"<SpdyStream {self.id} {dict(self.headers)!r}>"

    # ------------------------------------------------------------------ state
    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)

    @property
    def is_reset(self) -> bool:
        return self._reset

    @property
    def remote_closed(self) -> bool:
        return self._remote_closed or self._reset

    @property
    def local_closed(self) -> bool:
        return self._local_closed or self._reset

    def at_eof(self) -> bool:
        return self.remote_closed and not self._buf

    def ignore_input(self) -> None:
        """Drop whatever the peer sends on this stream (we never read it)."""
        self._ignore_input = True
        self._buf.clear()
        self._drained.set()

    # ------------------------------------------------------------------- read
    async def read(self, n: int = -1) -> bytes:
        """Up to n buffered bytes (all if n < 0), waiting for some; b"" at end of stream."""
        while not self._buf:
            if self.remote_closed:
                return b""
            self._readable.clear()
            await self._readable.wait()
        if n < 0 or n >= len(self._buf):
            chunk = bytes(self._buf)
            self._buf.clear()
        else:
            chunk = bytes(self._buf[:n])
            del self._buf[:n]
        if len(self._buf) <= BUFFER_LIMIT:
            self._drained.set()
        self._conn._consumed(self, len(chunk))
        if not self._buf:
            self._conn._maybe_forget(self)
        return chunk

    async def read_all(self, limit: int = 1 << 20) -> bytes:
        """Everything until end of stream (at most ``limit`` bytes are kept)."""
        out = bytearray()
        while chunk := await self.read():
            if len(out) < limit:
                out += chunk[: limit - len(out)]
        return bytes(out)

    # ------------------------------------------------------------------ write
    async def write(self, data: bytes) -> None:
        """Send data, split into frames and paced by flow control when the peer does it."""
        view = memoryview(data)
        while view:
            if self.local_closed:
                raise StreamClosedError(f"stream {self.id} is closed")
            size = min(len(view), MAX_DATA_CHUNK)
            if self._conn._peer_flow_control:
                size = min(size, self._send_window, self._conn._send_window)
                if size <= 0:
                    await self._wait_window()
                    continue
            self._conn._send(DataFrame(self.id, bytes(view[:size])))
            self._send_window -= size
            self._conn._send_window -= size
            view = view[size:]
            await self._conn._drain()

    async def _wait_window(self) -> None:
        if self._send_window <= 0:
            self._window_open.clear()
            await self._window_open.wait()
        else:
            await self._conn._wait_session_window()

    async def close(self) -> None:
        """Half-close: tell the peer we send nothing more (empty DATA with FIN)."""
        if self.local_closed:
            return
        self._local_closed = True
        with contextlib.suppress(ConnectionError):
            self._conn._send(DataFrame(self.id, b"", fin=True))
            await self._conn._drain()
        self._conn._maybe_forget(self)

    def reset(self, status: RstStatus = RstStatus.CANCEL) -> None:
        """Abort the stream in both directions (RST_STREAM)."""
        if self._reset:
            return
        if not (self._local_closed and self._remote_closed):
            with contextlib.suppress(ConnectionError):
                self._conn._send(RstStreamFrame(self.id, status))
        self._mark_reset()

    async def reply(self, headers: Headers | dict[str, str] | None = None, fin: bool = False) -> None:
        """Accept an incoming stream (SYN_REPLY)."""
        if not self.incoming or self._replied:
            return
        self._replied = True
        self._conn._send(SynReplyFrame(self.id, normalize_headers(headers or []), fin))
        if fin:
            self._local_closed = True
        await self._conn._drain()

    async def wait_reply(self, timeout: float | None = None) -> None:
        """Wait until the peer accepted a stream we opened; StreamClosedError if refused."""
        await asyncio.wait_for(asyncio.shield(self._reply_waiter), timeout)

    # --------------------------------------------------------- from the session
    async def _feed(self, data: bytes, fin: bool) -> None:
        if data and not self._ignore_input and not self._reset:
            self._buf += data
            self._readable.set()
            if len(self._buf) > BUFFER_LIMIT:
                self._drained.clear()
        elif data:
            self._conn._consumed(self, len(data))
        if fin:
            self._remote_closed = True
            self._readable.set()
            self._conn._maybe_forget(self)
        if not self._drained.is_set():
            await self._drained.wait()

    def _mark_reset(self) -> None:
        self._reset = True
        self._readable.set()
        self._drained.set()
        self._window_open.set()
        if not self._reply_waiter.done():
            self._reply_waiter.set_exception(StreamClosedError(f"stream {self.id} was reset"))
            self._reply_waiter.exception()  # mark retrieved: nobody may be waiting
        self._conn._forget(self)

    def _replied_by_peer(self, headers: Headers, fin: bool) -> None:
        self.reply_headers = headers
        if not self._reply_waiter.done():
            self._reply_waiter.set_result(None)
        if fin:
            self._remote_closed = True
            self._readable.set()

    def _grow_window(self, delta: int) -> None:
        self._send_window += delta
        if self._send_window > 0:
            self._window_open.set()


class SpdyConnection:
    """A SPDY/3.1 session over a byte stream pair.

    Call :meth:`start` once; then :meth:`open_stream` (client side), :meth:`accept` for the
    peer's streams, and :meth:`close` at the end.  The session ends when the peer closes the
    transport, sends a fatal protocol error, or stays silent longer than ``idle_timeout``.
    """

    def __init__(
        self,
        reader: ByteReader,
        writer: ByteWriter,
        *,
        server: bool,
        idle_timeout: float | None = None,
        max_streams: int = DEFAULT_MAX_STREAMS,
        initial_window: int = DEFAULT_INITIAL_WINDOW,
        announce_settings: bool = True,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.server = server
        self.idle_timeout = idle_timeout
        self._max_streams = max_streams
        self._initial_window = initial_window
        self._announce = announce_settings
        self._codec = FrameCodec()
        self._streams: dict[int, SpdyStream] = {}
        self._next_stream_id = 2 if server else 1
        self._last_peer_stream_id = 0
        self._next_ping_id = 2 if server else 1
        self._pings: dict[int, asyncio.Future[None]] = {}
        self._incoming: asyncio.Queue[SpdyStream | None] = asyncio.Queue()
        self._peer_initial_window = DEFAULT_INITIAL_WINDOW
        self._peer_flow_control = False
        self._send_window = DEFAULT_INITIAL_WINDOW
        self._session_window_open = asyncio.Event()
        self._session_window_open.set()
        self._session_unacked = 0
        self._goaway_sent = False
        self._goaway_received = False
        self._closed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_activity = time.monotonic()
        self._owe_reply = False
        self.close_reason = ""

    # ------------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._tasks:
            return
        if self._announce:
            with contextlib.suppress(ConnectionError):
                self._send(SettingsFrame([Setting(SettingId.INITIAL_WINDOW_SIZE, self._initial_window)]))
        self._tasks.append(asyncio.create_task(self._read_loop(), name="spdy-read"))
        if self.idle_timeout:
            self._tasks.append(asyncio.create_task(self._idle_watch(self.idle_timeout), name="spdy-idle"))

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def close(self, status: GoAwayStatus = GoAwayStatus.OK, reason: str = "closed") -> None:
        """Send GOAWAY (once), reset what is still open and close the transport."""
        if self._closed.is_set():
            return
        self._send_goaway(status)
        with contextlib.suppress(ConnectionError, OSError):
            await asyncio.wait_for(self._drain(), 5)
        self._shutdown(reason)
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        for task in self._tasks:
            if task is not current:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), 5)

    async def __aenter__(self) -> SpdyConnection:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---------------------------------------------------------------- streams
    async def open_stream(self, headers: Headers | dict[str, str], *, fin: bool = False,
                          timeout: float | None = 30.0) -> SpdyStream:
        """Open a stream and wait for the peer's SYN_REPLY."""
        if self.closed or self._goaway_received or self._goaway_sent:
            raise StreamClosedError("connection is going away")
        stream_id = self._next_stream_id
        if stream_id > MAX_STREAM_ID:
            raise StreamClosedError("stream ids exhausted")
        self._next_stream_id += 2
        stream = SpdyStream(self, stream_id, normalize_headers(headers), incoming=False)
        stream._local_closed = fin
        self._streams[stream_id] = stream
        self._send(SynStreamFrame(stream_id, stream.headers, fin=fin))
        await self._drain()
        try:
            await stream.wait_reply(timeout)
        except TimeoutError:
            stream.reset()
            raise
        return stream

    async def accept(self) -> SpdyStream | None:
        """The next stream the peer opened, or None once the session is closed."""
        if self.closed and self._incoming.empty():
            return None
        stream = await self._incoming.get()
        if stream is None:
            self._incoming.put_nowait(None)  # wake any other waiter too
        return stream

    async def ping(self, timeout: float = 10.0) -> float:
        """Round-trip time of a PING."""
        ping_id = self._next_ping_id
        self._next_ping_id = (self._next_ping_id + 2) & 0xFFFFFFFF or (2 if self.server else 1)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pings[ping_id] = waiter
        start = time.monotonic()
        try:
            self._send(PingFrame(ping_id))
            await asyncio.wait_for(waiter, timeout)
        finally:
            self._pings.pop(ping_id, None)
        return time.monotonic() - start

    @property
    def open_streams(self) -> int:
        return len(self._streams)

    # ---------------------------------------------------------------- sending
    def _send(self, frame: Frame) -> None:
        if self._closed.is_set() or self._writer.is_closing():
            raise StreamClosedError("connection closed")
        self._writer.write(self._codec.encode(frame))
        self._last_activity = time.monotonic()

    async def _drain(self) -> None:
        try:
            await self._writer.drain()
        except (ConnectionError, OSError) as exc:
            self._shutdown(f"write failed: {exc}")
            raise StreamClosedError(str(exc)) from exc

    def _send_goaway(self, status: GoAwayStatus) -> None:
        if self._goaway_sent:
            return
        self._goaway_sent = True
        with contextlib.suppress(ConnectionError, OSError):
            self._send(GoAwayFrame(self._last_peer_stream_id, status))

    async def _wait_session_window(self) -> None:
        if self._send_window <= 0:
            self._session_window_open.clear()
            await self._session_window_open.wait()
            if self.closed:
                raise StreamClosedError("connection closed")

    def _consumed(self, stream: SpdyStream | None, n: int) -> None:
        """Return consumed bytes to the peer's send windows (stream and session)."""
        if n <= 0 or self.closed:
            return
        threshold = self._initial_window // 2
        self._session_unacked += n
        if stream is not None:
            stream._unacked += n
        with contextlib.suppress(ConnectionError, OSError):
            if stream is not None and stream._unacked >= threshold and not stream.remote_closed:
                self._send(WindowUpdateFrame(stream.id, min(stream._unacked, MAX_WINDOW)))
                stream._unacked = 0
            if self._session_unacked >= threshold:
                self._send(WindowUpdateFrame(0, min(self._session_unacked, MAX_WINDOW)))
                self._session_unacked = 0

    # ---------------------------------------------------------------- receiving
    async def _read_loop(self) -> None:
        reason = "peer closed the connection"
        try:
            while True:
                if self._owe_reply:  # a control reply went out: read on only once it drains
                    self._owe_reply = False
                    await self._drain()
                try:
                    frame = await read_frame(self._reader, self._codec)
                except ProtocolError as exc:
                    if exc.stream_id:
                        self._reset_stream_id(exc.stream_id, exc.status)
                        continue
                    raise
                if frame is None:
                    break
                self._last_activity = time.monotonic()
                await self._handle(frame)
        except ProtocolError as exc:
            reason = f"protocol error: {exc}"
            log.info("spdy session protocol error: %s", exc)
            self._send_goaway(GoAwayStatus.PROTOCOL_ERROR)
        except (ConnectionError, OSError) as exc:
            reason = f"connection error: {exc}"
        except asyncio.CancelledError:
            reason = "cancelled"
            raise
        finally:
            self._shutdown(reason)

    async def _handle(self, frame: Frame) -> None:
        if isinstance(frame, DataFrame):
            await self._on_data(frame)
        elif isinstance(frame, SynStreamFrame):
            self._on_syn_stream(frame)
        elif isinstance(frame, SynReplyFrame):
            stream = self._streams.get(frame.stream_id)
            if stream is not None and not stream.incoming:
                stream._replied_by_peer(frame.headers, frame.fin)
                if frame.fin:
                    self._maybe_forget(stream)
        elif isinstance(frame, HeadersFrame):
            stream = self._streams.get(frame.stream_id)
            if stream is not None:
                stream.reply_headers = stream.reply_headers + frame.headers
                if frame.fin:
                    await stream._feed(b"", True)
        elif isinstance(frame, RstStreamFrame):
            stream = self._streams.get(frame.stream_id)
            if stream is not None:
                stream._mark_reset()
        elif isinstance(frame, SettingsFrame):
            self._on_settings(frame)
        elif isinstance(frame, PingFrame):
            if (frame.id & 1) != (self._next_ping_id & 1):
                self._send(frame)  # the peer's ping: echo it
                self._owe_reply = True
            else:
                waiter = self._pings.get(frame.id)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
        elif isinstance(frame, GoAwayFrame):
            self._goaway_received = True
            for stream in list(self._streams.values()):
                if not stream.incoming and stream.id > frame.last_good_stream_id:
                    stream._mark_reset()
        elif isinstance(frame, WindowUpdateFrame):
            self._on_window_update(frame)
        elif isinstance(frame, UnknownControlFrame):
            log.debug("ignoring unknown SPDY control frame type %d", frame.type)

    def _on_syn_stream(self, frame: SynStreamFrame) -> None:
        sid = frame.stream_id
        peer_parity = 1 if self.server else 0
        if sid % 2 != peer_parity or sid <= self._last_peer_stream_id:
            raise ProtocolError(f"invalid new stream id {sid}")
        self._last_peer_stream_id = sid
        if self._goaway_sent or self.closed:
            self._reset_stream_id(sid, RstStatus.REFUSED_STREAM)
            return
        if len(self._streams) >= self._max_streams or self._incoming.qsize() >= MAX_UNACCEPTED_STREAMS:
            self._reset_stream_id(sid, RstStatus.REFUSED_STREAM)
            return
        stream = SpdyStream(self, sid, frame.headers, incoming=True)
        stream._remote_closed = frame.fin
        stream._local_closed = frame.unidirectional
        self._streams[sid] = stream
        self._incoming.put_nowait(stream)

    async def _on_data(self, frame: DataFrame) -> None:
        stream = self._streams.get(frame.stream_id)
        if stream is None:
            own_parity = 0 if self.server else 1
            highest = self._last_peer_stream_id if frame.stream_id % 2 != own_parity else self._next_stream_id - 2
            if frame.stream_id > highest:
                self._reset_stream_id(frame.stream_id, RstStatus.INVALID_STREAM)
            # otherwise: data in flight for a stream already gone; drop it
            self._consumed(None, len(frame.data))
            return
        if stream._remote_closed:
            stream.reset(RstStatus.STREAM_ALREADY_CLOSED)
            return
        await stream._feed(frame.data, frame.fin)

    def _on_settings(self, frame: SettingsFrame) -> None:
        window = frame.get(SettingId.INITIAL_WINDOW_SIZE)
        if window is None:
            return
        if window > MAX_WINDOW:
            raise ProtocolError("INITIAL_WINDOW_SIZE too large")
        self._peer_flow_control = True
        delta = window - self._peer_initial_window
        self._peer_initial_window = window
        for stream in self._streams.values():
            stream._grow_window(delta)

    def _on_window_update(self, frame: WindowUpdateFrame) -> None:
        self._peer_flow_control = True
        if frame.stream_id == 0:
            self._send_window = min(self._send_window + frame.delta, MAX_WINDOW)
            if self._send_window > 0:
                self._session_window_open.set()
            return
        stream = self._streams.get(frame.stream_id)
        if stream is not None:
            stream._grow_window(frame.delta)

    def _reset_stream_id(self, stream_id: int, status: RstStatus) -> None:
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream.reset(status)
            return
        with contextlib.suppress(ConnectionError, OSError):
            self._send(RstStreamFrame(stream_id, status))
            self._owe_reply = True

    # ---------------------------------------------------------------- teardown
    def _maybe_forget(self, stream: SpdyStream) -> None:
        if stream._local_closed and stream._remote_closed and not stream._buf:
            self._forget(stream)

    def _forget(self, stream: SpdyStream) -> None:
        if self._streams.get(stream.id) is stream:
            del self._streams[stream.id]

    def _shutdown(self, reason: str) -> None:
        if self._closed.is_set():
            return
        self.close_reason = reason
        self._closed.set()
        for stream in list(self._streams.values()):
            stream._mark_reset()
        self._streams.clear()
        self._session_window_open.set()
        for waiter in self._pings.values():
            if not waiter.done():
                waiter.set_exception(StreamClosedError("connection closed"))
                waiter.exception()
        self._incoming.put_nowait(None)
        with contextlib.suppress(Exception):
            self._writer.close()

    async def _idle_watch(self, timeout: float) -> None:
        while not self.closed:
            remaining = self._last_activity + timeout - time.monotonic()
            if remaining <= 0:
                log.info("spdy session idle for %.0fs: closing", timeout)
                self._send_goaway(GoAwayStatus.OK)
                self._shutdown("idle timeout")
                for task in self._tasks:
                    if task is not asyncio.current_task():
                        task.cancel()
                return
            await asyncio.sleep(remaining)
