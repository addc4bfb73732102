"""The Kubernetes remote-command protocol (exec/attach) over SPDY and WebSocket, both ends.

Versions (negotiated by ``X-Stream-Protocol-Version`` for SPDY, ``Sec-WebSocket-Protocol``
for WebSocket):

* ``channel.k8s.io`` (v1), ``v2.channel.k8s.io``: error stream carries a plain-text message;
* ``v3.channel.k8s.io``: adds the ``resize`` stream (JSON ``{"Width":w,"Height":h}`` objects);
* ``v4.channel.k8s.io``: the error stream carries a JSON ``metav1.Status``; a non-zero exit is
  ``status: Failure, reason: NonZeroExitCode, details.causes[{reason: ExitCode, message: "<n>"}]``;
* ``v5.channel.k8s.io`` (WebSocket only): v4 plus a close signal ``[255, channel]`` by which the
  client half-closes stdin.

Over SPDY each of stdin/stdout/stderr/error/resize is a stream the client opens with header
``streamType``.  Over WebSocket every message starts with a channel byte (0 stdin, 1 stdout,
2 stderr, 3 error, 4 resize); the ``base64.`` variants use text messages with an ASCII digit
and base64 payload.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from cri_runtime.streaming.http import HttpError, HttpHeaders
from cri_runtime.streaming.spdy.connection import SpdyConnection, SpdyStream
from cri_runtime.streaming.transport import AsyncReader, AsyncWriter, StreamClosedError
from cri_runtime.streaming.websocket import OP_BINARY, OP_TEXT, WebSocketConnection

V1 = "channel.k8s.io"
V2 = "v2.channel.k8s.io"
V3 = "v3.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V5 = "v5.channel.k8s.io"
BASE64_V1 = "base64.channel.k8s.io"
BASE64_V4 = "v4.base64.channel.k8s.io"

SPDY_PROTOCOLS = [V4, V3, V2, V1]
"""What the server speaks over SPDY, most preferred first (as kubelet)."""
WEBSOCKET_PROTOCOLS = [V5, V4, BASE64_V4, V1, BASE64_V1, ""]
"""What the server speaks over WebSocket; "" is a client that asks for no subprotocol."""
CLIENT_SPDY_PROTOCOLS = [V4, V3, V2, V1]
CLIENT_WEBSOCKET_PROTOCOLS = [V5]

STREAM_TYPE_HEADER = "streamtype"
STREAM_ERROR = "error"
STREAM_STDIN = "stdin"
STREAM_STDOUT = "stdout"
STREAM_STDERR = "stderr"
STREAM_RESIZE = "resize"

CHANNEL_STDIN = 0
CHANNEL_STDOUT = 1
CHANNEL_STDERR = 2
CHANNEL_ERROR = 3
CHANNEL_RESIZE = 4
CHANNEL_CLOSE_SIGNAL = 255

NON_ZERO_EXIT_REASON = "NonZeroExitCode"
EXIT_CODE_CAUSE = "ExitCode"

DEFAULT_STREAM_CREATION_TIMEOUT = 30.0
CLIENT_CLOSE_GRACE = 10.0


@dataclass(frozen=True)
class TerminalSize:
    width: int
    height: int


@dataclass(frozen=True)
class StreamOptions:
    """Which standard streams the exec/attach request asked for."""

    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


class RemoteCommandError(Exception):
    """The remote side reported an error that is not an exit code."""


# -------------------------------------------------------------------- versions
def supports_resize(protocol: str) -> bool:
    return protocol in (V3, V4, V5, BASE64_V4)


def uses_json_status(protocol: str) -> bool:
    return protocol in (V4, V5, BASE64_V4)


def is_base64(protocol: str) -> bool:
    return protocol in (BASE64_V1, BASE64_V4)


def negotiate_spdy_protocol(headers: HttpHeaders, supported: list[str]) -> str:
    """Pick the first client-offered ``X-Stream-Protocol-Version`` we speak.

    No header → 400; no overlap → 403 with ``X-Accepted-Stream-Protocol-Versions`` (as kubelet).
    """
    offered = headers.tokens("X-Stream-Protocol-Version")
    if not offered:
        raise HttpError(400, "unable to upgrade: X-Stream-Protocol-Version is required")
    for proto in offered:
        if proto in supported:
            return proto
    raise HttpError(
        403,
        f"unable to upgrade: unable to negotiate protocol: client supports {offered}, server accepts {supported}",
        [("X-Accepted-Stream-Protocol-Versions", p) for p in supported],
    )


# ------------------------------------------------------------------ exit status
def status_success() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def status_exit_code(code: int) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: exit code {code}",
        "reason": NON_ZERO_EXIT_REASON,
        "details": {"causes": [{"reason": EXIT_CODE_CAUSE, "message": str(code)}]},
    }


def status_error(message: str) -> dict[str, Any]:
    return {
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "details": {"causes": [{"message": message}]},
        "code": 500,
    }


def encode_result(protocol: str, result: int | str) -> bytes:
    """What the server writes on the error stream for an exit code (int) or an error (str)."""
    if uses_json_status(protocol):
        if isinstance(result, str):
            status = status_error(result)
        else:
            status = status_success() if result == 0 else status_exit_code(result)
        return json.dumps(status, separators=(",", ":")).encode()
    if isinstance(result, str):
        return result.encode()
    return b"" if result == 0 else status_exit_code(result)["message"].encode()


def decode_result(protocol: str, data: bytes) -> int:
    """Exit code from the error stream's content; RemoteCommandError for other failures."""
    if not uses_json_status(protocol):
        if not data:
            return 0
        raise RemoteCommandError(data.decode("utf-8", "replace"))
    try:
        status = json.loads(data)
    except ValueError as exc:
        raise RemoteCommandError(f"error stream protocol error: {exc} in {data[:200]!r}") from exc
    if not isinstance(status, dict):
        raise RemoteCommandError("error stream protocol error: not an object")
    if status.get("status") == "Success":
        return 0
    if status.get("status") != "Failure":
        raise RemoteCommandError("error stream protocol error: unknown error")
    if status.get("reason") == NON_ZERO_EXIT_REASON:
        causes = (status.get("details") or {}).get("causes") or []
        for cause in causes:
            if isinstance(cause, dict) and cause.get("reason") == EXIT_CODE_CAUSE:
                text = str(cause.get("message", ""))
                if not text.isdigit() or int(text) > 255:
                    raise RemoteCommandError(f"error stream protocol error: invalid exit code value {text!r}")
                return int(text)
        raise RemoteCommandError("error stream protocol error: no ExitCode cause given")
    raise RemoteCommandError(str(status.get("message", "")))


# ----------------------------------------------------------------------- resize
def encode_resize(size: TerminalSize) -> bytes:
    return json.dumps({"Width": size.width, "Height": size.height}).encode() + b"\n"


class ResizeDecoder:
    """Incremental decoder of the resize stream: concatenated JSON objects."""

    def __init__(self) -> None:
        self._pending = ""
        self._decoder = json.JSONDecoder()

    def feed(self, data: bytes) -> list[TerminalSize]:
        self._pending += data.decode("utf-8", "replace")
        out: list[TerminalSize] = []
        while True:
            text = self._pending.lstrip()
            if not text:
                self._pending = ""
                return out
            try:
                obj, end = self._decoder.raw_decode(text)
            except ValueError:
                if len(text) > 4096:
                    raise RemoteCommandError("malformed resize event") from None
                self._pending = text
                return out
            self._pending = text[end:]
            if isinstance(obj, dict):
                width, height = obj.get("Width", 0), obj.get("Height", 0)
                if isinstance(width, int) and isinstance(height, int) and 0 <= width < 65536 and 0 <= height < 65536:
                    out.append(TerminalSize(width, height))


async def resize_events(reader: AsyncReader | None) -> AsyncIterator[TerminalSize]:
    """Terminal sizes read from a resize stream until it ends (nothing if there is none)."""
    if reader is None:
        return
    decoder = ResizeDecoder()
    while chunk := await reader.read():
        try:
            sizes = decoder.feed(chunk)
        except RemoteCommandError:
            return
        for size in sizes:
            yield size


# ---------------------------------------------------------- server: the stream set
class CommandStreams:
    """The negotiated streams of one exec/attach, transport-independent (server side)."""

    protocol: str
    stdin: AsyncReader | None
    stdout: AsyncWriter | None
    stderr: AsyncWriter | None
    resize: AsyncReader | None

    async def finish(self, result: int | str) -> None:
        """Close stdout/stderr, report the result on the error stream, end the connection."""
        raise NotImplementedError

    async def wait_disconnected(self) -> None:
        """Returns when the client's connection is gone."""
        raise NotImplementedError

    async def abort(self) -> None:
        raise NotImplementedError


class SpdyCommandStreams(CommandStreams):
    def __init__(self, conn: SpdyConnection, protocol: str, streams: dict[str, SpdyStream]) -> None:
        self.conn = conn
        self.protocol = protocol
        self._streams = streams
        self.stdin = streams.get(STREAM_STDIN)
        self.stdout = streams.get(STREAM_STDOUT)
        self.stderr = streams.get(STREAM_STDERR)
        self.resize: SpdyStream | None = streams.get(STREAM_RESIZE)
        self.error = streams.get(STREAM_ERROR)

    async def finish(self, result: int | str) -> None:
        with contextlib.suppress(ConnectionError):
            for out in (self.stdout, self.stderr, self._streams.get(STREAM_STDIN), self.resize):
                if out is not None:
                    await out.close()
            if self.error is not None:
                payload = encode_result(self.protocol, result)
                if payload:
                    await self.error.write(payload)
                await self.error.close()
        # client-go closes the connection once it has read everything; closing first could
        # make a Go peer drop frames it has queued but not yet delivered.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.conn.wait_closed(), CLIENT_CLOSE_GRACE)
        await self.conn.close()

    async def wait_disconnected(self) -> None:
        await self.conn.wait_closed()

    async def abort(self) -> None:
        await self.conn.close()


async def accept_spdy_command_streams(conn: SpdyConnection, protocol: str, opts: StreamOptions,
                                      timeout: float = DEFAULT_STREAM_CREATION_TIMEOUT) -> SpdyCommandStreams:
    """Wait until the client opened every stream the request needs (as kubelet counts them)."""
    expected = 1 + opts.stdin + opts.stdout + opts.stderr + (1 if opts.tty and supports_resize(protocol) else 0)
    streams: dict[str, SpdyStream] = {}

    async def collect() -> None:
        received = 0
        while received < expected:
            stream = await conn.accept()
            if stream is None:
                raise StreamClosedError("connection closed while waiting for streams")
            kind = stream.header(STREAM_TYPE_HEADER) or ""
            if kind not in (STREAM_ERROR, STREAM_STDIN, STREAM_STDOUT, STREAM_STDERR, STREAM_RESIZE) or kind in streams:
                stream.reset()
                continue
            await stream.reply()
            if kind in (STREAM_ERROR, STREAM_STDOUT, STREAM_STDERR):
                stream.ignore_input()
            # Input streams stay open on our side until the command ends: client-go treats our
            # half-close of stdin as "stop sending" and would race its FIN with pending data.
            streams[kind] = stream
            received += 1

    try:
        await asyncio.wait_for(collect(), timeout)
    except TimeoutError:
        await conn.close()
        raise StreamClosedError("timed out waiting for client to create streams") from None
    return SpdyCommandStreams(conn, protocol, streams)


class ChannelBuffer:
    """An AsyncReader fed by a demultiplexer (WebSocket channels)."""

    def __init__(self, limit: int = 1 << 20) -> None:
        self._buf = bytearray()
        self._eof = False
        self._readable = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._limit = limit

    async def feed(self, data: bytes) -> None:
        if self._eof or not data:
            return
        self._buf += data
        self._readable.set()
        if len(self._buf) > self._limit:
            self._drained.clear()
            await self._drained.wait()

    def feed_eof(self) -> None:
        self._eof = True
        self._readable.set()
        self._drained.set()

    async def read(self, n: int = -1) -> bytes:
        while not self._buf:
            if self._eof:
                return b""
            self._readable.clear()
            await self._readable.wait()
        if n < 0 or n >= len(self._buf):
            out = bytes(self._buf)
            self._buf.clear()
        else:
            out = bytes(self._buf[:n])
            del self._buf[:n]
        if len(self._buf) <= self._limit:
            self._drained.set()
        return out


class ChannelWriter:
    """An AsyncWriter that sends one WebSocket channel's data."""

    def __init__(self, ws: WebSocketConnection, channel: int, base64_text: bool) -> None:
        self._ws = ws
        self._channel = channel
        self._base64 = base64_text
        self._closed = False

    async def write(self, data: bytes) -> None:
        if self._closed:
            raise StreamClosedError(f"channel {self._channel} closed")
        if self._base64:
            await self._ws.send(chr(ord("0") + self._channel) + base64.b64encode(data).decode("ascii"))
        else:
            await self._ws.send(bytes([self._channel]) + data)

    async def close(self) -> None:
        # The channel protocols have no server-side half-close: the client sees the end of
        # every stream when the WebSocket closes.
        self._closed = True


class WebSocketCommandStreams(CommandStreams):
    def __init__(self, ws: WebSocketConnection, protocol: str, opts: StreamOptions) -> None:
        self.ws = ws
        self.protocol = protocol
        b64 = is_base64(protocol)
        self._inputs: dict[int, ChannelBuffer] = {}
        self.stdin = self._inputs.setdefault(CHANNEL_STDIN, ChannelBuffer()) if opts.stdin else None
        self.resize = self._inputs.setdefault(CHANNEL_RESIZE, ChannelBuffer(64 * 1024)) if opts.tty else None
        self.stdout = ChannelWriter(ws, CHANNEL_STDOUT, b64) if opts.stdout else None
        self.stderr = ChannelWriter(ws, CHANNEL_STDERR, b64) if opts.stderr else None
        self.error = ChannelWriter(ws, CHANNEL_ERROR, b64)
        self._opts = opts
        self._reader = asyncio.create_task(self._demux(), name="ws-demux")

    async def start(self) -> None:
        # kubelet sends an empty message on the lowest writable channel so the client knows
        # the streams are ready.
        first = self.stdout or self.stderr or self.error
        await first.write(b"")

    async def _demux(self) -> None:
        try:
            while (message := await self.ws.recv()) is not None:
                data = message.data
                if not data:
                    continue
                if self.protocol == V5 and data[0] == CHANNEL_CLOSE_SIGNAL:
                    if len(data) == 2 and data[1] in self._inputs:
                        self._inputs[data[1]].feed_eof()
                    continue
                if message.opcode == OP_TEXT and is_base64(self.protocol):
                    channel = data[0] - ord("0")
                    try:
                        payload = base64.b64decode(data[1:], validate=True)
                    except ValueError:
                        continue
                elif message.opcode == OP_BINARY and not is_base64(self.protocol):
                    channel, payload = data[0], data[1:]
                else:
                    continue
                target = self._inputs.get(channel)
                if target is not None:
                    await target.feed(payload)
        finally:
            for buf in self._inputs.values():
                buf.feed_eof()

    async def finish(self, result: int | str) -> None:
        with contextlib.suppress(ConnectionError):
            payload = encode_result(self.protocol, result)
            if payload:
                await self.error.write(payload)
        await self.abort()

    async def wait_disconnected(self) -> None:
        await self.ws.wait_closed()

    async def abort(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


# ------------------------------------------------------------------- client side
async def _pump(source: AsyncReader, sink: AsyncWriter, *, close_sink: bool) -> None:
    try:
        while chunk := await source.read(32 * 1024):
            await sink.write(chunk)
    finally:
        if close_sink:
            with contextlib.suppress(ConnectionError):
                await sink.close()


async def _send_resizes(resize: AsyncIterator[TerminalSize], sink: AsyncWriter) -> None:
    async for size in resize:
        await sink.write(encode_resize(size))


async def run_spdy_client(conn: SpdyConnection, protocol: str, opts: StreamOptions, *, stdin: AsyncReader | None,
                          stdout: AsyncWriter | None, stderr: AsyncWriter | None,
                          resize: AsyncIterator[TerminalSize] | None) -> int:
    """Drive one exec/attach over an upgraded SPDY session (client side); returns the exit code."""
    error = await conn.open_stream({STREAM_TYPE_HEADER: STREAM_ERROR})
    await error.close()
    remote_stdin = await conn.open_stream({STREAM_TYPE_HEADER: STREAM_STDIN}) if opts.stdin else None
    remote_stdout = await conn.open_stream({STREAM_TYPE_HEADER: STREAM_STDOUT}) if opts.stdout else None
    remote_stderr = (await conn.open_stream({STREAM_TYPE_HEADER: STREAM_STDERR})
                     if opts.stderr and not opts.tty else None)
    remote_resize = (await conn.open_stream({STREAM_TYPE_HEADER: STREAM_RESIZE})
                     if opts.tty and supports_resize(protocol) else None)
    for s in (remote_stdout, remote_stderr):
        if s is not None:
            await s.close()
    background: list[asyncio.Task[None]] = []
    if remote_stdin is not None and stdin is not None:
        background.append(asyncio.create_task(_pump(stdin, remote_stdin, close_sink=True)))
    if remote_resize is not None and resize is not None:
        background.append(asyncio.create_task(_send_resizes(resize, remote_resize)))
    try:
        outputs = []
        if remote_stdout is not None and stdout is not None:
            outputs.append(_pump(remote_stdout, stdout, close_sink=False))
        if remote_stderr is not None and stderr is not None:
            outputs.append(_pump(remote_stderr, stderr, close_sink=False))
        await asyncio.gather(*outputs)
        message = await error.read_all()
    finally:
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    return decode_result(protocol, message)


async def run_websocket_client(ws: WebSocketConnection, protocol: str, opts: StreamOptions, *,
                               stdin: AsyncReader | None, stdout: AsyncWriter | None, stderr: AsyncWriter | None,
                               resize: AsyncIterator[TerminalSize] | None) -> int:
    """Drive one exec/attach over a WebSocket (client side); returns the exit code."""
    b64 = is_base64(protocol)
    error = bytearray()
    background: list[asyncio.Task[None]] = []

    class _StdinSink:
        async def write(self, data: bytes) -> None:
            await ChannelWriter(ws, CHANNEL_STDIN, b64).write(data)

        async def close(self) -> None:
            if protocol == V5:
                await ws.send(bytes([CHANNEL_CLOSE_SIGNAL, CHANNEL_STDIN]))

    if opts.stdin and stdin is not None:
        background.append(asyncio.create_task(_pump(stdin, _StdinSink(), close_sink=True)))
    if opts.tty and resize is not None and supports_resize(protocol):
        background.append(asyncio.create_task(_send_resizes(resize, ChannelWriter(ws, CHANNEL_RESIZE, b64))))
    try:
        while (message := await ws.recv()) is not None:
            data = message.data
            if not data:
                continue
            if b64:
                channel, payload = data[0] - ord("0"), base64.b64decode(data[1:])
            else:
                channel, payload = data[0], data[1:]
            if channel == CHANNEL_STDOUT and stdout is not None and payload:
                await stdout.write(payload)
            elif channel == CHANNEL_STDERR and stderr is not None and payload:
                await stderr.write(payload)
            elif channel == CHANNEL_ERROR:
                error += payload
    finally:
        for task in background:
            task.cancel()
        for task in background:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await ws.close()
    return decode_result(protocol, bytes(error))


async def run_remote_command(url: str, opts: StreamOptions, *, stdin: AsyncReader | None = None,
                             stdout: AsyncWriter | None = None, stderr: AsyncWriter | None = None,
                             resize: AsyncIterator[TerminalSize] | None = None, transport: str = "spdy",
                             ssl_context: Any = None) -> int:
    """Client entry point (crictl exec/attach): connect to ``url`` and run to completion.

    Returns the remote exit code; raises RemoteCommandError for a reported failure,
    ``UpgradeError`` when the server refuses the upgrade, ConnectionError when it drops.
    """
    from cri_runtime.streaming.client import dial_spdy, dial_websocket

    if transport == "websocket":
        ws, protocol = await dial_websocket(url, CLIENT_WEBSOCKET_PROTOCOLS, ssl_context=ssl_context)
        return await run_websocket_client(ws, protocol, opts, stdin=stdin, stdout=stdout, stderr=stderr,
                                          resize=resize)
    if transport != "spdy":
        raise ValueError(f"unknown transport {transport!r} (spdy or websocket)")
    conn, protocol = await dial_spdy(url, CLIENT_SPDY_PROTOCOLS, ssl_context=ssl_context)
    try:
        return await run_spdy_client(conn, protocol or V1, opts, stdin=stdin, stdout=stdout, stderr=stderr,
                                     resize=resize)
    finally:
        await conn.close()
