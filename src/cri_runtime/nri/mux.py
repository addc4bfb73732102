"""NRI's connection multiplexer: several logical connections over one unix socket.

Written from containerd/nri pkg/net/multiplex: each trunk frame is an 8-byte
header (connection id, payload length; both big-endian uint32) and the
payload. Id 0 is reserved; NRI uses 1 for the plugin's services and 2 for the
runtime's. Payloads are at most one ttrpc message (10-byte header + 4 MiB).
Data for a connection nobody opened is dropped, as upstream does; a peer
that floods a connection faster than it is read loses the trunk (upstream's
bounded read queue), so memory stays bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

HEADER = struct.Struct(">II")
MAX_PAYLOAD = 10 + (4 << 20)
READ_QUEUE_LIMIT = 256

PLUGIN_SERVICE_CONN = 1
RUNTIME_SERVICE_CONN = 2


class MuxConn:
    """One logical connection: implements ttrpc.channel.Pipe."""

    def __init__(self, mux: Multiplexer, conn_id: int) -> None:
        self._mux = mux
        self.conn_id = conn_id
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()

    async def read(self) -> bytes:
        return await self._queue.get()

    async def write(self, data: bytes) -> None:
        await self._mux.send(self.conn_id, data)

    def close(self) -> None:
        self._mux.close()

    def _deliver(self, payload: bytes) -> bool:
        if self._queue.qsize() >= READ_QUEUE_LIMIT:
            return False
        self._queue.put_nowait(payload)
        return True


class Multiplexer:
    """The trunk: reads frames into per-connection queues and writes framed payloads."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._conns: dict[int, MuxConn] = {}
        self._write_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def open(self, conn_id: int) -> MuxConn:
        if conn_id == 0:
            raise ValueError("mux connection id 0 is reserved")
        conn = self._conns.get(conn_id)
        if conn is None:
            conn = self._conns[conn_id] = MuxConn(self, conn_id)
        return conn

    def start(self) -> None:
        self._task = asyncio.create_task(self._read_loop(), name="nri-mux")

    async def send(self, conn_id: int, data: bytes) -> None:
        if self._closed:
            raise ConnectionResetError("NRI connection closed")
        async with self._write_lock:
            view = memoryview(data)
            while True:
                chunk, view = view[:MAX_PAYLOAD], view[MAX_PAYLOAD:]
                self._writer.write(HEADER.pack(conn_id, len(chunk)) + chunk)
                if not view:
                    break
            await self._writer.drain()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()
        for conn in self._conns.values():
            conn._queue.put_nowait(b"")  # every reader sees end of stream

    async def _read_loop(self) -> None:
        try:
            while True:
                conn_id, length = HEADER.unpack(await self._reader.readexactly(HEADER.size))
                if length > MAX_PAYLOAD:
                    return
                payload = await self._reader.readexactly(length)
                conn = self._conns.get(conn_id)
                if conn is not None and payload and not conn._deliver(payload):
                    return
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            return
        finally:
            with contextlib.suppress(Exception):
                self.close()
