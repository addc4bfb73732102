"""The streaming HTTP server behind the CRI Exec/Attach/PortForward URLs.

Routes ``/exec/{token}``, ``/attach/{token}`` and ``/portforward/{token}`` (GET or POST).  A
request's token must come from :meth:`StreamingServer.request_url`, is single-use and expires
after a minute; anything else is 404.  The connection is then upgraded to SPDY/3.1 or to a
WebSocket and the matching protocol module runs it, calling the :class:`StreamingBackend`.

Every connection is one task; when the client goes away mid-stream the backend call is
cancelled and the connection's streams are reset, and :meth:`stop` ends them all.

Against hostile or broken clients: the request head is limited while it is read (the
reader's buffer limit), connections are capped, and a token is consumed only once the
request has passed every check, so a malformed request never burns a valid token.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from cri_runtime.streaming import portforward, remotecommand
from cri_runtime.streaming.backend import (
    AttachRequest,
    ExecRequest,
    PortForwardRequest,
    StreamingBackend,
    StreamRequest,
)
from cri_runtime.streaming.http import MAX_HEAD, HttpError, HttpRequest, format_response, read_request
from cri_runtime.streaming.remotecommand import CommandStreams, TerminalSize, WebSocketCommandStreams
from cri_runtime.streaming.spdy.connection import SpdyConnection
from cri_runtime.streaming.tokens import DEFAULT_TTL, TokenCache
from cri_runtime.streaming.transport import AsyncReader, AsyncWriter
from cri_runtime.streaming.websocket import (
    WebSocketByteStream,
    WebSocketConnection,
    is_websocket_request,
    server_handshake,
)

log = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT = 4 * 3600.0
REQUEST_HEAD_TIMEOUT = 30.0
# Connections at once. kubelet's streaming server has no cap; each session here holds at most
# a few MiB (head, SPDY stream buffers), so 128 bounds the whole server to a few hundred MiB
# while far above what one node's exec/attach/port-forward sessions need.
DEFAULT_MAX_CONNECTIONS = 128
KINDS = {"exec": ExecRequest, "attach": AttachRequest, "portforward": PortForwardRequest}


@dataclass
class _Upgrade:
    """How a checked request will be upgraded: decided before its token is consumed."""

    transport: str  # "spdy" or "websocket"
    protocol: str
    response_headers: list[tuple[str, str]]
    ports: list[int] = field(default_factory=list)


class StreamingServer:
    def __init__(
        self,
        backend: StreamingBackend,
        *,
        address: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        stream_creation_timeout: float = remotecommand.DEFAULT_STREAM_CREATION_TIMEOUT,
        token_ttl: float = DEFAULT_TTL,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self.backend = backend
        self.address = address
        self.port = port
        self.ssl_context = ssl_context
        self.idle_timeout = idle_timeout
        self.stream_creation_timeout = stream_creation_timeout
        self.max_connections = max_connections
        self.tokens: TokenCache[StreamRequest] = TokenCache(token_ttl)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @classmethod
    def from_config(cls, config: Any, backend: StreamingBackend) -> StreamingServer:
        """Build from a :class:`cri_runtime.config.StreamingConfig` section."""
        ctx = None
        if config.tls_cert_file:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(config.tls_cert_file, config.tls_key_file or None)
        return cls(backend, address=config.address, port=config.port, ssl_context=ctx,
                   idle_timeout=config.idle_timeout_seconds)

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self._server = await asyncio.start_server(self._on_connection, self.address, self.port,
                                                  ssl=self.ssl_context, limit=MAX_HEAD)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("streaming server listening on %s", self.base_url)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def __aenter__(self) -> StreamingServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def active_connections(self) -> int:
        return len(self._connections)

    @property
    def base_url(self) -> str:
        host = self.address
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if ip is not None and ip.is_unspecified:
            host = "127.0.0.1" if ip.version == 4 else "::1"
            ip = ipaddress.ip_address(host)
        if ip is not None and ip.version == 6:
            host = f"[{host}]"
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://{host}:{self.port}"

    def request_url(self, kind: str, request: StreamRequest) -> str:
        """Cache a validated request; the URL to hand out in the CRI response."""
        if KINDS.get(kind) is not type(request):
            raise ValueError(f"{kind!r} does not take a {type(request).__name__}")
        request.validate()
        token = self.tokens.insert(request)
        return f"{self.base_url}/{kind}/{token}"

    # ------------------------------------------------------------- connections
    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= self.max_connections:
            log.warning("streaming: refusing a connection, %d open", len(self._connections))
            await self._reply_error(writer, HttpError(503, "too many streaming connections"))
            writer.close()
            return
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            pass
        except HttpError as exc:
            await self._reply_error(writer, exc)
        except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
            log.debug("streaming connection ended: %s", exc)
        except Exception:
            log.exception("streaming connection failed")
        finally:
            with contextlib.suppress(Exception):
                writer.close()
            self._connections.discard(task)

    async def _reply_error(self, writer: asyncio.StreamWriter, exc: HttpError) -> None:
        with contextlib.suppress(Exception):
            writer.write(format_response(exc.status, exc.headers, (exc.message + "\n").encode()))
            await asyncio.wait_for(writer.drain(), 5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(read_request(reader), REQUEST_HEAD_TIMEOUT)
        except TimeoutError:
            raise HttpError(408, "timed out reading the request") from None
        if request is None:
            return
        parts = request.path.strip("/").split("/")
        if len(parts) != 2 or parts[0] not in KINDS:
            raise HttpError(404, "404 page not found")
        if request.method not in ("GET", "POST"):
            raise HttpError(405, f"method {request.method} not allowed")
        kind, token = parts
        cached = self.tokens.peek(token)
        if cached is None or not isinstance(cached, KINDS[kind]):
            raise HttpError(404, "404 page not found")
        plan = self._plan_upgrade(request, cached)
        if self.tokens.consume(token) is not cached:  # another connection used it meanwhile
            raise HttpError(404, "404 page not found")
        if isinstance(cached, PortForwardRequest):
            await self._serve_port_forward(plan, cached, reader, writer)
        else:
            await self._serve_command(plan, cached, reader, writer)

    def _plan_upgrade(self, request: HttpRequest, cached: StreamRequest) -> _Upgrade:
        """Every check a request must pass before its token is used; HttpError if one fails."""
        port_forward = isinstance(cached, PortForwardRequest)
        if self._upgrade_kind(request) == "spdy":
            supported = portforward.SPDY_PROTOCOLS if port_forward else remotecommand.SPDY_PROTOCOLS
            protocol = remotecommand.negotiate_spdy_protocol(request.headers, supported)
            return _Upgrade("spdy", protocol, [("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"),
                                               ("X-Stream-Protocol-Version", protocol)])
        if not isinstance(cached, PortForwardRequest):
            protocol, headers = server_handshake(request.headers, remotecommand.WEBSOCKET_PROTOCOLS)
            return _Upgrade("websocket", protocol, headers)
        ports = list(cached.ports)
        for value in request.query.get("port", []):
            for item in value.split(","):
                try:
                    ports.append(portforward.parse_port(item))
                except ValueError:
                    raise HttpError(400, f"unable to parse {item!r} as a port") from None
        protocol, headers = server_handshake(request.headers, portforward.WEBSOCKET_PROTOCOLS)
        if protocol != portforward.TUNNEL_PROTOCOL and not ports:
            raise HttpError(400, 'query parameter "port" is required')
        return _Upgrade("websocket", protocol, headers, ports)

    def _upgrade_kind(self, request: HttpRequest) -> str:
        if is_websocket_request(request.headers):
            return "websocket"
        if (request.headers.has_token("Connection", "upgrade")
                and "spdy/3.1" in request.headers.get("Upgrade").lower()):
            return "spdy"
        raise HttpError(400, "unable to upgrade: missing upgrade headers in request")

    async def _switch(self, writer: asyncio.StreamWriter, headers: list[tuple[str, str]]) -> None:
        writer.write(format_response(101, headers))
        await writer.drain()

    async def _upgrade_spdy(self, plan: _Upgrade, writer: asyncio.StreamWriter,
                            reader: asyncio.StreamReader) -> SpdyConnection:
        await self._switch(writer, plan.response_headers)
        conn = SpdyConnection(reader, writer, server=True, idle_timeout=self.idle_timeout)
        conn.start()
        return conn

    # ------------------------------------------------------------ exec / attach
    async def _serve_command(self, plan: _Upgrade, cached: ExecRequest | AttachRequest,
                             reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        opts = cached.options
        streams: CommandStreams
        if plan.transport == "spdy":
            conn = await self._upgrade_spdy(plan, writer, reader)
            try:
                streams = await remotecommand.accept_spdy_command_streams(conn, plan.protocol, opts,
                                                                          self.stream_creation_timeout)
            except BaseException:
                await conn.close()
                raise
        else:
            await self._switch(writer, plan.response_headers)
            ws = WebSocketConnection(reader, writer, client=False, idle_timeout=self.idle_timeout)
            ws_streams = WebSocketCommandStreams(ws, plan.protocol, opts)
            streams = ws_streams
            try:
                await ws_streams.start()
            except BaseException:
                await ws_streams.abort()
                raise
        await self._run_command(cached, streams)

    async def _run_command(self, cached: ExecRequest | AttachRequest, streams: CommandStreams) -> None:
        resize: AsyncIterator[TerminalSize] = remotecommand.resize_events(streams.resize)
        if isinstance(cached, ExecRequest):
            call = self.backend.exec(cached.container_id, list(cached.cmd), tty=cached.tty, stdin=streams.stdin,
                                     stdout=streams.stdout, stderr=streams.stderr, resize=resize)
        else:
            call = self.backend.attach(cached.container_id, tty=cached.tty, stdin=streams.stdin,
                                       stdout=streams.stdout, stderr=streams.stderr, resize=resize)
        work = asyncio.ensure_future(call)
        gone = asyncio.ensure_future(streams.wait_disconnected())
        try:
            await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            work.cancel()
            raise
        finally:
            gone.cancel()
            if not work.done():
                work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
            with contextlib.suppress(asyncio.CancelledError):
                await gone
        if work.cancelled():
            await streams.abort()
            return
        exc = work.exception()
        if exc is not None:
            log.info("streaming %s in %s failed: %s", type(cached).__name__, cached.container_id, exc)
            result: int | str = str(exc) or type(exc).__name__
        else:
            code = work.result()
            result = code if isinstance(code, int) and 0 <= code <= 255 else f"invalid exit code {code!r}"
        await streams.finish(result)

    # --------------------------------------------------------------- port-forward
    async def _serve_port_forward(self, plan: _Upgrade, cached: PortForwardRequest,
                                  reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pod = cached.pod_sandbox_id

        async def forward(port: int, source: AsyncReader, sink: AsyncWriter) -> None:
            await self.backend.port_forward(pod, port, source, sink)

        if plan.transport == "spdy":
            conn = await self._upgrade_spdy(plan, writer, reader)
            try:
                await portforward.serve_spdy_port_forward(conn, forward, self.stream_creation_timeout)
            finally:
                await conn.close()
            return
        await self._switch(writer, plan.response_headers)
        ws = WebSocketConnection(reader, writer, client=False, idle_timeout=self.idle_timeout)
        if plan.protocol == portforward.TUNNEL_PROTOCOL:
            tunnel = WebSocketByteStream(ws)
            conn = SpdyConnection(tunnel, tunnel, server=True, idle_timeout=self.idle_timeout)
            conn.start()
            try:
                await portforward.serve_spdy_port_forward(conn, forward, self.stream_creation_timeout)
            finally:
                await conn.close()
                await ws.close()
            return
        await portforward.serve_websocket_port_forward(ws, plan.protocol, plan.ports, forward)
