"""A gRPC server on a unix socket, written for CRI's call shapes.

Why not grpcio's server: on this kind of node a trivial unary call through
grpc.aio's server costs ~0.45 ms, more than twice what containerd's whole
ContainerStatus takes, so cheap RPCs (status, list) could never match a Go
runtime. CRI needs only unary and server-streaming calls over a local
socket, which this package serves with a fraction of the per-call work.
A servicer is registered from its service's protobuf descriptor (`add_service`),
so the server process never loads grpcio (its C core alone is ~9 MiB of memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor

from .connection import Connection, Method
from .limits import Limits

log = logging.getLogger(__name__)


def bind_unix_socket(path: str, mode: int, backlog: int) -> socket.socket:
    """A listening unix socket at `path` whose file is never more open than `mode`.

    The socket is bound under a temporary name, given its mode, and only then
    renamed into place and put to listening: nobody can connect while the file
    still has the umask's mode, and `path` never names a wider-open socket.
    The caller owns `path` (and has removed any stale file there).
    """
    directory, name = os.path.split(path)
    temporary = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        sock.bind(temporary)
        try:
            os.chmod(temporary, mode)
            os.rename(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class RpcServer:
    """Collects method handlers, then serves them on a unix socket."""

    def __init__(self, max_message_bytes: int, limits: Limits | None = None) -> None:
        self._max_message = max_message_bytes
        self._limits = limits or Limits()
        self._methods: dict[str, Method] = {}
        self._server: asyncio.Server | None = None
        self._connections: set[Connection] = set()

    def add_service(self, service: ServiceDescriptor, servicer: Any) -> None:
        """Serve `servicer`'s methods named in `service`; one it lacks answers UNIMPLEMENTED.

        Each method is found on the servicer by its RPC name, as grpcio's generated
        registration finds it, and decoded with the message classes its descriptor names.
        """
        for rpc in service.methods:
            path = f"/{service.full_name}/{rpc.name}"
            if rpc.client_streaming:
                raise ValueError(f"{path}: client-streaming calls are not supported")
            handler = getattr(servicer, rpc.name, None)
            if handler is None:
                continue
            request = message_factory.GetMessageClass(rpc.input_type)
            response = message_factory.GetMessageClass(rpc.output_type)
            self._methods[path] = Method(path, handler, request.FromString, response.SerializeToString,
                                         rpc.server_streaming, rpc.input_type.full_name)

    @property
    def methods(self) -> frozenset[str]:
        return frozenset(self._methods)

    @property
    def connection_count(self) -> int:
        return len(self._connections)

    @property
    def open_calls(self) -> int:
        """Streams counted against the connections' limits right now."""
        return sum(conn.open_calls for conn in self._connections)

    async def start(self, socket_path: str, mode: int = 0o660) -> None:
        """Listen on `socket_path`, created with `mode` from the start (see bind_unix_socket)."""
        sock = bind_unix_socket(socket_path, mode, self._limits.backlog)
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_unix_server(self._new_connection, sock=sock,
                                                         backlog=self._limits.backlog)
        except BaseException:
            sock.close()
            raise

    def _new_connection(self) -> Connection:
        if len(self._connections) >= self._limits.max_connections and not self._send_one_away():
            log.warning("refusing a connection: %d open, none idle", len(self._connections))
            return Connection(self._methods, self._max_message, self._connections.discard, self._limits,
                              refuse=True)
        conn = Connection(self._methods, self._max_message, self._connections.discard, self._limits)
        self._connections.add(conn)
        return conn

    def _send_one_away(self) -> bool:
        """At the connection cap: GOAWAY the connection idle the longest; False if none is idle."""
        idle = [conn for conn in self._connections if conn.is_idle]
        if not idle:
            return False
        oldest = min(idle, key=lambda conn: conn.idle_since)
        log.debug("connection cap reached: sending the longest-idle connection away")
        oldest.go_away()
        self._connections.discard(oldest)
        return True

    async def stop(self, grace: float | None) -> None:
        """Stop accepting, let running calls finish within `grace` seconds, cancel the rest."""
        if self._server is not None:
            self._server.close()
        connections = list(self._connections)
        for conn in connections:
            conn.go_away()
        if connections and grace:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(c.idle.wait() for c in connections)), grace)
        for conn in connections:
            conn.cancel_all()
        if connections:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(c.idle.wait() for c in connections)), 1.0)
        for conn in connections:
            conn.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        log.debug("rpc server stopped")
