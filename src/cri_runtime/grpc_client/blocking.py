"""A blocking gRPC client over one HTTP/2 connection to a unix socket, without grpcio.

Made for crictl, a short-lived program: importing grpcio and starting its channel cost more
than the rest of a `crictl ps` together. One call at a time runs on a `Channel`, in the
caller's thread, so a signal handler that raises (Ctrl-C) interrupts the wait at once and
the call is reset on its way out, as Go's crictl cancels the call's context.

Errors are `status.RpcError`, worded as grpc-go words them, because crictl prints them.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterator, Sequence

from cri_runtime.h2 import frames, hpack, wire

from .status import RpcError, StatusCode, from_reset, from_trailers

Metadata = Sequence[tuple[str, str]]
DEFAULT_MAX_MESSAGE = 4 * 1024 * 1024  # grpc-go's default receive limit
_RECV_WINDOW = frames.MAX_WINDOW  # what we let the server send: replenished at half
_READ_SIZE = 256 * 1024


def _go_quote(text: str) -> str:
    """Go's %q of a printable string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dial_error(path: str, exc: OSError) -> RpcError:
    """grpc-go's words for a failed dial (crictl prints them)."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    reason = reason[:1].lower() + reason[1:]
    desc = _go_quote(f"transport: Error while dialing: dial unix {path}: connect: {reason}")
    return RpcError(StatusCode.UNAVAILABLE, f"connection error: desc = {desc}")


class _Stream:
    """What arrived so far on the one open stream."""

    def __init__(self, stream_id: int, send_window: int) -> None:
        self.id = stream_id
        self.fields: dict[bytes, bytes] = {}
        self.data = bytearray()
        self.ended = False
        self.error: RpcError | None = None  # set when the stream ended other than by trailers
        self.send_window = send_window


class Channel:
    """One connection to a gRPC server on a unix socket, dialled on the first call.

    Not for concurrent use: crictl makes one call at a time. A call that does not end
    normally (deadline, interrupt, broken connection) leaves the connection closed; the
    next call dials again.
    """

    def __init__(self, socket_path: str, *, max_receive: int = DEFAULT_MAX_MESSAGE,
                 max_send: int = frames.MAX_WINDOW) -> None:  # fmt: skip
        self.path = socket_path
        self.max_receive = max_receive
        self.max_send = max_send
        self._sock: socket.socket | None = None
        self._buf = bytearray()
        self._decoder = hpack.Decoder()
        self._next_id = 1
        self._stream: _Stream | None = None
        self._peer_window = frames.DEFAULT_WINDOW
        self._peer_max_frame = frames.DEFAULT_MAX_FRAME_SIZE
        self._send_window = frames.DEFAULT_WINDOW
        self._unacked = 0
        self._header_block: tuple[int, int, bytearray] | None = None  # (stream, flags, block) until END_HEADERS
        self._last_stream = frames.MAX_WINDOW  # lowered by GOAWAY

    # ------------------------------------------------------------------ calls

    def unary(self, method: str, request: bytes, *, timeout: float | None = None, metadata: Metadata = ()) -> bytes:
        """One unary call; its response message, or RpcError."""
        deadline = None if timeout is None else time.monotonic() + timeout
        stream = self._start(method, request, deadline, metadata)
        try:
            while not stream.ended:
                self._read(deadline)
            response = self._messages(stream)
            failure = stream.error or from_trailers(stream.fields)
        except BaseException:
            self._abandon(stream)
            raise
        self._stream = None
        if failure is not None:
            raise failure
        if len(response) != 1:
            raise RpcError(StatusCode.INTERNAL, "cardinality violation: expected one response message, got "
                                                f"{len(response)}")  # fmt: skip
        return response[0]

    def server_stream(self, method: str, request: bytes, *, timeout: float | None = None,
                      metadata: Metadata = ()) -> ServerStream:  # fmt: skip
        """A call whose responses are read by iterating the returned stream."""
        deadline = None if timeout is None else time.monotonic() + timeout
        return ServerStream(self, self._start(method, request, deadline, metadata), deadline)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._stream = None

    # ------------------------------------------------------------------ connection

    def _connect(self, deadline: float | None) -> socket.socket:
        if self._sock is not None:
            self._catch_up()
        if self._sock is not None and self._next_id <= self._last_stream and self._next_id < frames.MAX_WINDOW:
            return self._sock
        self.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self._remaining(deadline))
            sock.connect(self.path)
        except TimeoutError:
            sock.close()
            raise RpcError(StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded") from None
        except OSError as exc:
            sock.close()
            raise _dial_error(self.path, exc) from None
        self._sock = sock
        self._buf.clear()
        self._decoder = hpack.Decoder()
        self._next_id = 1
        self._peer_window = frames.DEFAULT_WINDOW
        self._peer_max_frame = frames.DEFAULT_MAX_FRAME_SIZE
        self._send_window = frames.DEFAULT_WINDOW
        self._unacked = 0
        self._header_block = None
        self._last_stream = frames.MAX_WINDOW
        self._write(frames.PREFACE + frames.settings({
            frames.SETTINGS_ENABLE_PUSH: 0, frames.SETTINGS_INITIAL_WINDOW_SIZE: _RECV_WINDOW,
        }) + frames.window_update(0, _RECV_WINDOW - frames.DEFAULT_WINDOW))  # fmt: skip
        return sock

    def _catch_up(self) -> None:
        """Handle what the server sent while the connection sat idle (PING, GOAWAY, a close), so that
        no call starts on a connection the server has left: `logs -f` polls across a runtime restart."""
        sock = self._sock
        assert sock is not None
        try:
            while True:
                sock.settimeout(0.0)  # again each round: answering a PING or SETTINGS made it blocking
                try:
                    chunk = sock.recv(_READ_SIZE)
                except BlockingIOError:
                    return
                if not chunk:
                    self.close()
                    return
                self._handle(chunk)
        except (OSError, RpcError):
            self.close()

    def _start(self, method: str, request: bytes, deadline: float | None, metadata: Metadata) -> _Stream:
        if len(request) > self.max_send:
            raise RpcError(StatusCode.RESOURCE_EXHAUSTED,
                           f"grpc: trying to send message larger than max ({len(request)} vs. {self.max_send})")
        self._connect(deadline)
        stream = _Stream(self._next_id, self._peer_window)
        self._next_id += 2
        self._stream = stream
        fields = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", method.encode()),
                  (b":authority", b"localhost"), (b"content-type", b"application/grpc"), (b"te", b"trailers")]
        remaining = self._remaining(deadline)
        if remaining is not None:
            fields.append((b"grpc-timeout", f"{max(1, int(remaining * 1_000_000))}u".encode()))
        fields += [(key.lower().encode(), value.encode()) for key, value in metadata]
        try:
            self._write(frames.headers_frames(stream.id, hpack.encode(fields), False, self._peer_max_frame))
            self._send_message(stream, memoryview(wire.length_prefixed(request)), deadline)
        except BaseException:
            self._abandon(stream)
            raise
        return stream

    def _send_message(self, stream: _Stream, message: memoryview, deadline: float | None) -> None:
        pos = 0
        while pos < len(message):
            allowed = min(stream.send_window, self._send_window, len(message) - pos)
            if allowed <= 0:
                if stream.ended:
                    return  # the server answered (or reset) before taking the whole request
                self._read(deadline)
                continue
            self._write(frames.data_frames(stream.id, message[pos:pos + allowed], self._peer_max_frame))
            stream.send_window -= allowed
            self._send_window -= allowed
            pos += allowed
        self._write(frames.frame(frames.DATA, frames.FLAG_END_STREAM, stream.id))

    def _abandon(self, stream: _Stream) -> None:
        """A call cut short: reset it (best effort) and drop the connection."""
        if self._sock is not None and not stream.ended:
            try:
                self._sock.settimeout(0.1)
                self._sock.sendall(frames.rst_stream(stream.id, frames.CANCEL))
            except OSError:
                pass
        self.close()

    # ------------------------------------------------------------------ reading

    @staticmethod
    def _remaining(deadline: float | None) -> float | None:
        return None if deadline is None else max(0.0, deadline - time.monotonic())

    def _write(self, data: bytes) -> None:
        assert self._sock is not None
        try:
            self._sock.settimeout(None)
            self._sock.sendall(data)
        except OSError as exc:
            self.close()
            raise RpcError(StatusCode.UNAVAILABLE, f"connection error: desc = {_go_quote(str(exc))}") from None

    def _read(self, deadline: float | None) -> None:
        """Wait for bytes from the server and handle them."""
        sock = self._sock
        if sock is None:
            raise RpcError(StatusCode.UNAVAILABLE, "error reading from server: connection closed")
        remaining = self._remaining(deadline)
        if remaining is not None and remaining <= 0:
            raise RpcError(StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded")
        try:
            sock.settimeout(remaining)
            chunk = sock.recv(_READ_SIZE)
        except TimeoutError:
            raise RpcError(StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded") from None
        except OSError as exc:
            raise RpcError(StatusCode.UNAVAILABLE, f"error reading from server: {exc}") from None
        if not chunk:
            raise RpcError(StatusCode.UNAVAILABLE, "error reading from server: EOF")
        self._handle(chunk)

    def _handle(self, chunk: bytes) -> None:
        """Handle every whole frame received so far; keep the rest for the next chunk."""
        buf = self._buf
        buf += chunk
        pos = 0
        try:
            while len(buf) - pos >= frames.HEADER_SIZE:
                length, ftype, flags, stream_id = frames.parse_header(buf, pos)
                start = pos + frames.HEADER_SIZE
                if len(buf) - start < length:
                    break
                self._on_frame(ftype, flags, stream_id, bytes(buf[start:start + length]))
                pos = start + length
        except (hpack.HpackError, struct.error, ValueError) as exc:
            raise RpcError(StatusCode.INTERNAL, f"connection error: desc = {_go_quote(str(exc))}") from None
        finally:
            del buf[:pos]

    def _on_frame(self, ftype: int, flags: int, stream_id: int, payload: bytes) -> None:
        stream = self._stream if self._stream is not None and self._stream.id == stream_id else None
        if ftype == frames.DATA:
            self._credit(stream_id, len(payload))
            if stream is not None:
                stream.data += frames.strip_padding(flags, payload)
                if len(stream.data) > wire.PREFIX_SIZE + self.max_receive:
                    self._check_size(stream)
                if flags & frames.FLAG_END_STREAM:
                    stream.ended = True
        elif ftype in (frames.HEADERS, frames.CONTINUATION):
            if ftype == frames.HEADERS:
                self._header_block = (stream_id, flags, bytearray(frames.header_block(flags, payload)))
            elif self._header_block is not None:
                self._header_block[2].extend(payload)
            if flags & frames.FLAG_END_HEADERS and self._header_block is not None:
                sid, first_flags, block = self._header_block
                self._header_block = None
                decoded = self._decoder.decode(bytes(block))  # always decoded: it updates the HPACK table
                if stream is not None and sid == stream.id:
                    stream.fields.update(decoded)
                    if first_flags & frames.FLAG_END_STREAM:
                        stream.ended = True
        elif ftype == frames.SETTINGS:
            if not flags & frames.FLAG_ACK:
                for key, value in frames.parse_settings(payload):
                    if key == frames.SETTINGS_INITIAL_WINDOW_SIZE:
                        if self._stream is not None:
                            self._stream.send_window += value - self._peer_window
                        self._peer_window = value
                    elif key == frames.SETTINGS_MAX_FRAME_SIZE:
                        self._peer_max_frame = value
                self._write(frames.frame(frames.SETTINGS, frames.FLAG_ACK, 0))
        elif ftype == frames.WINDOW_UPDATE:
            increment = struct.unpack(">L", payload)[0] & 0x7FFFFFFF
            if stream_id == 0:
                self._send_window += increment
            elif stream is not None:
                stream.send_window += increment
        elif ftype == frames.PING:
            if not flags & frames.FLAG_ACK:
                self._write(frames.frame(frames.PING, frames.FLAG_ACK, 0, payload))
        elif ftype == frames.RST_STREAM:
            if stream is not None and not stream.ended:
                stream.error = from_reset(struct.unpack(">L", payload)[0])
                stream.ended = True
        elif ftype == frames.GOAWAY:
            self._last_stream = struct.unpack(">L", payload[:4])[0] & 0x7FFFFFFF
            if self._stream is not None and self._stream.id > self._last_stream and not self._stream.ended:
                self._stream.error = RpcError(StatusCode.UNAVAILABLE, "the connection is draining")
                self._stream.ended = True

    def _credit(self, stream_id: int, size: int) -> None:
        """Give received bytes back to the server's send windows once half of ours is used."""
        self._unacked += size
        if self._unacked >= _RECV_WINDOW // 2:
            update = frames.window_update(0, self._unacked)
            if self._stream is not None and self._stream.id == stream_id and not self._stream.ended:
                update += frames.window_update(stream_id, self._unacked)
            self._write(update)
            self._unacked = 0

    def _check_size(self, stream: _Stream) -> None:
        _, length = wire.parse_prefix(stream.data, 0)
        if length > self.max_receive:
            raise RpcError(StatusCode.RESOURCE_EXHAUSTED,
                           f"grpc: received message larger than max ({length} vs. {self.max_receive})")

    def _messages(self, stream: _Stream) -> list[bytes]:
        """Take the whole length-prefixed messages received so far off the stream's buffer."""
        data, pos, out = stream.data, 0, []
        while len(data) - pos >= wire.PREFIX_SIZE:
            compressed, length = wire.parse_prefix(data, pos)
            if length > self.max_receive:
                raise RpcError(StatusCode.RESOURCE_EXHAUSTED,
                               f"grpc: received message larger than max ({length} vs. {self.max_receive})")
            if len(data) - pos - wire.PREFIX_SIZE < length:
                break
            if compressed:
                raise RpcError(StatusCode.INTERNAL, "grpc: compressed message received, but none was asked for")
            out.append(bytes(data[pos + wire.PREFIX_SIZE:pos + wire.PREFIX_SIZE + length]))
            pos += wire.PREFIX_SIZE + length
        del data[:pos]
        if stream.ended and data and stream.error is None and from_trailers(stream.fields) is None:
            raise RpcError(StatusCode.INTERNAL, "the server ended the stream inside a message")
        return out


class ServerStream:
    """The responses of a server-streaming call, as they arrive; `cancel()` resets the call."""

    def __init__(self, channel: Channel, stream: _Stream, deadline: float | None) -> None:
        self._channel = channel
        self._stream = stream
        self._deadline = deadline
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        stream, channel = self._stream, self._channel
        try:
            while True:
                messages = channel._messages(stream)
                yield from messages
                if stream.ended:
                    break
                if not messages:
                    channel._read(self._deadline)
            failure = stream.error or from_trailers(stream.fields)
        except BaseException:
            self.cancel()
            raise
        self._done = True
        channel._stream = None
        if failure is not None:
            raise failure

    def cancel(self) -> None:
        if not self._done:
            self._done = True
            self._channel._abandon(self._stream)
