"""One ttrpc peer over a byte pipe: issues unary calls, serves unary calls, or both.

Calls are matched to responses by stream id (odd, rising, as a ttrpc client
must use). A served call runs as its own task with the caller's deadline
(`timeout_nano`), so one slow handler never holds up the connection's reader.
Streaming RPCs are not used by anything we talk to (NRI is unary), so Data
frames are refused. When the pipe ends, every pending call fails UNAVAILABLE.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from cri_protos.google.rpc import status_pb2
from cri_protos.ttrpc import request_pb2

from . import frames

log = logging.getLogger(__name__)

# gRPC status codes ttrpc reuses.
OK, CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND = 0, 1, 2, 3, 4, 5
UNIMPLEMENTED, INTERNAL, UNAVAILABLE = 12, 13, 14

Handler = Callable[[bytes], Awaitable[bytes]]


class Pipe(Protocol):
    """A duplex byte stream: a unix socket, or one logical connection of a multiplexer."""

    async def read(self) -> bytes: ...  # b"" at end of stream
    async def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...


class TtrpcError(Exception):
    """A call ended with a non-OK status (from the peer, or from the connection ending)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"ttrpc status {code}: {message}")
        self.code = code
        self.message = message


class Channel:
    """ttrpc over `pipe`; `handlers` maps (service, method) to a coroutine taking and returning bytes."""

    def __init__(self, pipe: Pipe, handlers: dict[tuple[str, str], Handler] | None = None,
                 *, name: str = "ttrpc") -> None:  # fmt: skip
        self._pipe = pipe
        self._handlers = handlers or {}
        self._name = name
        self._next_id = 1
        self._pending: dict[int, asyncio.Future[request_pb2.Response]] = {}
        self._served: set[asyncio.Task[None]] = set()
        self._write_lock = asyncio.Lock()
        self._closed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._reader = asyncio.create_task(self._read_loop(), name=f"{self._name}-reader")

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def call(self, service: str, method: str, payload: bytes, timeout: float | None = None,
                   metadata: dict[str, str] | None = None) -> bytes:  # fmt: skip
        """One unary call; raises TtrpcError for a non-OK status or a lost connection."""
        if self.closed:
            raise TtrpcError(UNAVAILABLE, f"{self._name}: connection closed")
        stream_id = self._next_id
        self._next_id += 2
        request = request_pb2.Request(service=service, method=method, payload=payload,
                                      timeout_nano=int(timeout * 1e9) if timeout else 0)  # fmt: skip
        for key, value in (metadata or {}).items():
            request.metadata.add(key=key, value=value)
        future: asyncio.Future[request_pb2.Response] = asyncio.get_running_loop().create_future()
        self._pending[stream_id] = future
        try:
            try:
                await self._send(frames.encode(stream_id, frames.TYPE_REQUEST, request.SerializeToString()))
            except (ConnectionError, OSError) as exc:
                self._pending.pop(stream_id, None)  # this call reports the loss itself
                self._finish()
                raise TtrpcError(UNAVAILABLE, f"{self._name}: connection lost: {exc}") from None
            try:
                response = await asyncio.wait_for(future, timeout)
            except TimeoutError:
                raise TtrpcError(DEADLINE_EXCEEDED, f"{service}/{method}: no answer within {timeout:g}s") from None
        finally:
            self._pending.pop(stream_id, None)
        if response.status.code != OK:
            raise TtrpcError(response.status.code, response.status.message)
        return response.payload

    def close(self) -> None:
        self._pipe.close()
        if self._reader is not None:
            self._reader.cancel()
        self._finish()

    async def _send(self, data: bytes) -> None:
        async with self._write_lock:
            await self._pipe.write(data)

    async def _read_loop(self) -> None:
        parser = frames.FrameParser()
        try:
            while chunk := await self._pipe.read():
                for frame in parser.feed(chunk):
                    self._dispatch(frame)
        except frames.FrameError as exc:
            log.warning("%s: closing a connection that broke ttrpc framing: %s", self._name, exc)
            self._pipe.close()
        except (ConnectionError, OSError) as exc:
            log.debug("%s: connection ended: %s", self._name, exc)
        finally:
            self._finish()

    def _dispatch(self, frame: frames.Frame) -> None:
        if frame.type == frames.TYPE_RESPONSE:
            future = self._pending.get(frame.stream_id)
            if future is not None and not future.done():
                response = request_pb2.Response()
                try:
                    response.ParseFromString(frame.data)
                except Exception:  # a peer's garbage becomes this call's error, not ours
                    response.status.code, response.status.message = INTERNAL, "malformed ttrpc response"
                future.set_result(response)
        elif frame.type == frames.TYPE_REQUEST:
            task = asyncio.create_task(self._serve(frame), name=f"{self._name}-serve-{frame.stream_id}")
            self._served.add(task)
            task.add_done_callback(self._served.discard)
        else:
            self._reply_soon(frame.stream_id, UNIMPLEMENTED, "ttrpc streams are not supported")

    def _reply_soon(self, stream_id: int, code: int, message: str) -> None:
        task = asyncio.create_task(self._reply(stream_id, code, message, b""))
        self._served.add(task)
        task.add_done_callback(self._served.discard)

    async def _serve(self, frame: frames.Frame) -> None:
        request = request_pb2.Request()
        try:
            request.ParseFromString(frame.data)
        except Exception:
            await self._reply(frame.stream_id, INVALID_ARGUMENT, "malformed ttrpc request", b"")
            return
        handler = self._handlers.get((request.service, request.method))
        if handler is None:
            await self._reply(frame.stream_id, UNIMPLEMENTED,
                              f"{request.service}/{request.method} is not served here", b"")  # fmt: skip
            return
        timeout = request.timeout_nano / 1e9 if request.timeout_nano > 0 else None
        try:
            payload = await asyncio.wait_for(handler(request.payload), timeout)
        except TtrpcError as exc:
            await self._reply(frame.stream_id, exc.code, exc.message, b"")
        except TimeoutError:
            await self._reply(frame.stream_id, DEADLINE_EXCEEDED, "deadline exceeded", b"")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one handler's bug answers that call, never kills the connection
            log.exception("%s: %s/%s failed", self._name, request.service, request.method)
            await self._reply(frame.stream_id, UNKNOWN, str(exc) or type(exc).__name__, b"")
        else:
            await self._reply(frame.stream_id, OK, "", payload)

    async def _reply(self, stream_id: int, code: int, message: str, payload: bytes) -> None:
        response = request_pb2.Response(status=status_pb2.Status(code=code, message=message), payload=payload)
        with contextlib.suppress(ConnectionError, OSError):
            await self._send(frames.encode(stream_id, frames.TYPE_RESPONSE, response.SerializeToString()))

    def _finish(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(TtrpcError(UNAVAILABLE, f"{self._name}: connection closed"))
        for task in list(self._served):
            task.cancel()


class StreamPipe:
    """A Pipe over an asyncio stream pair (a plain unix socket, as a shim serves)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self) -> bytes:
        return await self._reader.read(65536)

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    def close(self) -> None:
        self._writer.close()
