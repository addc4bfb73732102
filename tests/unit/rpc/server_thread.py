"""An RpcServer with a test servicer, on its own event loop in a thread.

The tests talk to it with grpcio's blocking client and with a raw HTTP/2
socket, neither of which may block the loop that serves them.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import AsyncIterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import grpc

from cri_protos.runtime.v1 import api_pb2, api_pb2_grpc
from cri_runtime.h2 import frames, hpack
from cri_runtime.h2.status import StatusCode
from cri_runtime.rpc import RpcServer, Serialized
from cri_runtime.rpc.limits import Limits


class TestServicer:
    """Behaviour chosen by the request, so one servicer covers every case.

    Version(version=...): "echo:<text>", "abort:<code>:<message>", "raise",
    "sleep:<seconds>", "metadata", "peer". ExecSync(cmd=[n]) answers n bytes of stdout.
    StreamContainers(filter.id=n) yields n responses of 1 KiB, then ends, or with
    filter.pod_sandbox_id "abort:<code>:<message>" fails, or with "hold" waits to be cancelled.
    """

    def __init__(self) -> None:
        self.cancelled: list[str] = []
        self.finished: list[str] = []
        self.started: list[str] = []

    async def Version(self, request: Any, context: Any) -> Any:
        verb, _, arg = request.version.partition(":")
        if verb == "echo":
            return api_pb2.VersionResponse(version=arg)
        if verb == "abort":
            code, _, message = arg.partition(":")
            await context.abort(StatusCode[code], message)
        if verb == "raise":
            raise RuntimeError("boom")
        if verb == "sleep":
            self.started.append(request.version)
            try:
                await asyncio.sleep(float(arg))
            except asyncio.CancelledError:
                self.cancelled.append(request.version)
                raise
            self.finished.append(request.version)
            return api_pb2.VersionResponse(version="slept")
        if verb == "metadata":
            return api_pb2.VersionResponse(version=repr(sorted(context.invocation_metadata())))
        if verb == "peer":
            return api_pb2.VersionResponse(version=context.peer())
        if verb == "serialized":
            return Serialized(api_pb2.VersionResponse(version="pre-encoded").SerializeToString())
        if verb == "remaining":
            return api_pb2.VersionResponse(version=repr(context.time_remaining()))
        return api_pb2.VersionResponse(version="?")

    async def ExecSync(self, request: Any, context: Any) -> Any:
        return api_pb2.ExecSyncResponse(stdout=b"x" * int(request.cmd[0]), exit_code=len(request.cmd))

    async def StreamContainers(self, request: Any, context: Any) -> AsyncIterator[Any]:
        await context.send_initial_metadata((("x-live", "yes"),))
        for i in range(int(request.filter.id)):
            yield api_pb2.StreamContainersResponse(
                containers=[api_pb2.Container(id=f"{i}", image_ref="r" * 1024)])
        then = request.filter.pod_sandbox_id
        if then.startswith("abort:"):
            code, _, message = then.removeprefix("abort:").partition(":")
            await context.abort(StatusCode[code], message)
        if then == "hold":
            self.started.append("stream")
            try:
                await asyncio.get_running_loop().create_future()  # until the call is cancelled
            except asyncio.CancelledError:
                self.cancelled.append("stream")
                raise


class ServerThread:
    def __init__(self, path: Path, max_message: int = 4 * 1024 * 1024, limits: Limits | None = None) -> None:
        self.path = str(path)
        self.servicer = TestServicer()
        self.server = RpcServer(max_message, limits)
        self.server.add_service(api_pb2.DESCRIPTOR.services_by_name["RuntimeService"], self.servicer)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> ServerThread:
        self._thread.start()
        self.call(self.server.start(self.path))
        return self

    def call(self, coro: Any, timeout: float = 30) -> Any:
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def stop(self, grace: float = 0.5) -> None:
        self.call(self.server.stop(grace))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    def stub(self, **options: Any) -> tuple[grpc.Channel, api_pb2_grpc.RuntimeServiceStub]:
        channel = grpc.insecure_channel(f"unix://{self.path}", **options)
        return channel, api_pb2_grpc.RuntimeServiceStub(channel)


class RawClient:
    """A bare HTTP/2 client for what grpcio's client never sends."""

    def __init__(self, path: str, preface: bool = True) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(path)
        self._buf = b""
        if preface:
            self.sock.sendall(frames.PREFACE + frames.settings({}))

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def try_send(self, data: bytes, timeout: float) -> bool:
        """Send all of `data` unless the server stops reading for `timeout` seconds or hangs up (then False)."""
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(data)
        except (TimeoutError, BlockingIOError, BrokenPipeError, ConnectionResetError):
            return False
        finally:
            self.sock.settimeout(5)
        return True

    def closed_by_server(self, timeout: float) -> bool:
        """Whether the server closes (or resets) the connection within `timeout`, unread data discarded."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(1 << 20):
                pass
        except TimeoutError:
            return False
        except OSError:
            return True
        return True

    def request(self, stream: int, path: str, body: bytes | None, extra: list[tuple[bytes, bytes]] | None = None,
                content_type: bytes = b"application/grpc") -> None:
        fields = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", path.encode()),
                  (b":authority", b"localhost"), (b"content-type", content_type), (b"te", b"trailers")]
        block = hpack.encode(fields + (extra or []))
        if body is None:
            self.send(frames.frame(frames.HEADERS, frames.FLAG_END_HEADERS | frames.FLAG_END_STREAM, stream, block))
            return
        self.send(frames.frame(frames.HEADERS, frames.FLAG_END_HEADERS, stream, block)
                  + frames.frame(frames.DATA, frames.FLAG_END_STREAM, stream, body))

    def read_frame(self) -> tuple[int, int, int, bytes]:
        """The next frame that is not SETTINGS, WINDOW_UPDATE or a PING ack: (type, flags, stream, payload)."""
        while True:
            while len(self._buf) < frames.HEADER_SIZE:
                self._recv()
            length, ftype, flags, stream = frames.parse_header(self._buf, 0)
            while len(self._buf) < frames.HEADER_SIZE + length:
                self._recv()
            payload = self._buf[frames.HEADER_SIZE:frames.HEADER_SIZE + length]
            self._buf = self._buf[frames.HEADER_SIZE + length:]
            if ftype not in (frames.SETTINGS, frames.WINDOW_UPDATE):
                return ftype, flags, stream, payload

    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self._buf += chunk

    def response(self, stream: int) -> tuple[list[dict[bytes, bytes]], bytes]:
        """Header blocks and DATA bytes of one stream until it ends."""
        decoder = hpack.Decoder()
        blocks: list[dict[bytes, bytes]] = []
        data = b""
        while True:
            ftype, flags, sid, payload = self.read_frame()
            if ftype == frames.GOAWAY:
                raise AssertionError(f"GOAWAY {struct.unpack('>LL', payload[:8])} {payload[8:]!r}")
            if sid != stream:
                continue
            if ftype == frames.HEADERS:
                blocks.append(dict(decoder.decode(payload)))
            elif ftype == frames.DATA:
                data += payload
            elif ftype == frames.RST_STREAM:
                blocks.append({b"rst": payload})
                return blocks, data
            if flags & frames.FLAG_END_STREAM:
                return blocks, data

    def goaway_code(self) -> int:
        return self.goaway()[0]

    def goaway(self) -> tuple[int, bytes]:
        """(error code, debug data) of the next GOAWAY."""
        while True:
            ftype, _, _, payload = self.read_frame()
            if ftype == frames.GOAWAY:
                return int(struct.unpack(">L", payload[4:8])[0]), payload[8:]

    def close(self) -> None:
        self.sock.close()


def grpc_message(payload: bytes) -> bytes:
    return struct.pack(">BL", 0, len(payload)) + payload
