"""A gRPC server on a unix socket, written for CRI's call shapes.

Why not grpcio's server: on this kind of node a trivial unary call through
grpc.aio's server costs ~0.45 ms, more than twice what containerd's whole
ContainerStatus takes, so cheap RPCs (status, list) could never match a Go
runtime. CRI needs only unary and server-streaming calls over a local
socket, which this package serves with a fraction of the per-call work.
grpcio stays our client library and its generated `add_*_to_server`
functions register servicers here unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from .connection import Connection, Method

log = logging.getLogger(__name__)


def _request_type(handler: Any) -> str:
    owner = getattr(handler.request_deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "the request message"))


class RpcServer:
    """Collects method handlers, then serves them on a unix socket."""

    def __init__(self, max_message_bytes: int) -> None:
        self._max_message = max_message_bytes
        self._methods: dict[str, Method] = {}
        self._server: asyncio.Server | None = None
        self._connections: set[Connection] = set()

    def add_generic_rpc_handlers(self, handlers: Iterable[Any]) -> None:
        """Accepted for grpcio compatibility; the registered handlers carry the same methods."""

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        for name, handler in handlers.items():
            path = f"/{service}/{name}"
            if handler.request_streaming:
                raise ValueError(f"{path}: client-streaming calls are not supported")
            if handler.response_streaming:
                fn, streaming = handler.unary_stream, True
            else:
                fn, streaming = handler.unary_unary, False
            self._methods[path] = Method(path, fn, handler.request_deserializer,
                                         handler.response_serializer, streaming, _request_type(handler))

    @property
    def methods(self) -> frozenset[str]:
        return frozenset(self._methods)

    async def start(self, socket_path: str) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(self._new_connection, socket_path)

    def _new_connection(self) -> Connection:
        conn = Connection(self._methods, self._max_message, self._connections.discard)
        self._connections.add(conn)
        return conn

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
