"""Client-side dialing of streaming URLs: HTTP upgrade to SPDY/3.1 or WebSocket.

This is what crictl (ours) uses to reach a runtime's exec/attach/port-forward URL.  Pure
asyncio + stdlib; no gRPC.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

from cri_runtime.streaming.http import (
    HttpHeaders,
    format_request,
    read_body,
    read_response_head,
)
from cri_runtime.streaming.spdy.connection import SpdyConnection
from cri_runtime.streaming.websocket import (
    WebSocketConnection,
    check_server_handshake,
    client_handshake_headers,
)

HEADER_PROTOCOL_VERSION = "X-Stream-Protocol-Version"
HEADER_ACCEPTED_VERSIONS = "X-Accepted-Stream-Protocol-Versions"
SPDY_UPGRADE = "SPDY/3.1"


class UpgradeError(ConnectionError):
    """The server refused the upgrade; ``status`` and ``body`` are its answer."""

    def __init__(self, status: int, body: str, headers: HttpHeaders) -> None:
        super().__init__(f"unable to upgrade connection: {body.strip() or status}")
        self.status = status
        self.body = body
        self.headers = headers


def _insecure_context() -> ssl.SSLContext:
    # Like crictl: the streaming server's certificate is not verified (kubelet does the same
    # when it has no CA for the runtime).
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def _open(url: str, ssl_context: ssl.SSLContext | None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter,
                                                                       str, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss"):
        raise ValueError(f"unsupported URL scheme in {url!r}")
    secure = parts.scheme in ("https", "wss")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if secure else 80)
    ctx = (ssl_context or _insecure_context()) if secure else None
    reader, writer = await asyncio.open_connection(host, port, ssl=ctx, limit=1 << 20)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    return reader, writer, parts.netloc, target


async def _upgrade(url: str, method: str, headers: list[tuple[str, str]], ssl_context: ssl.SSLContext | None,
                   timeout: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int, HttpHeaders]:
    reader, writer = None, None
    try:
        reader, writer, host, target = await asyncio.wait_for(_open(url, ssl_context), timeout)
        writer.write(format_request(method, target, host, headers))
        await writer.drain()
        head = await asyncio.wait_for(read_response_head(reader), timeout)
        if head.status != 101:
            body = await read_body(reader, head)
            raise UpgradeError(head.status, body.decode("utf-8", "replace"), head.headers)
        return reader, writer, head.status, head.headers
    except BaseException:
        if writer is not None:
            writer.close()
        raise


async def dial_spdy(url: str, protocols: list[str], *, method: str = "POST", ssl_context: ssl.SSLContext | None = None,
                    timeout: float = 30.0, idle_timeout: float | None = None) -> tuple[SpdyConnection, str]:
    """Upgrade to SPDY/3.1 offering ``protocols``; returns (started session, chosen protocol)."""
    headers = [("Connection", "Upgrade"), ("Upgrade", SPDY_UPGRADE)]
    headers += [(HEADER_PROTOCOL_VERSION, p) for p in protocols]
    reader, writer, _, response = await _upgrade(url, method, headers, ssl_context, timeout)
    if response.get("Upgrade").lower() != SPDY_UPGRADE.lower() or not response.has_token("Connection", "upgrade"):
        writer.close()
        raise ConnectionError("server did not upgrade to SPDY/3.1")
    protocol = response.get(HEADER_PROTOCOL_VERSION)
    conn = SpdyConnection(reader, writer, server=False, idle_timeout=idle_timeout)
    conn.start()
    return conn, protocol


async def dial_websocket(url: str, protocols: list[str], *, ssl_context: ssl.SSLContext | None = None,
                         timeout: float = 30.0) -> tuple[WebSocketConnection, str]:
    """Upgrade to a WebSocket offering ``protocols``; returns (connection, chosen subprotocol)."""
    key, headers = client_handshake_headers(protocols)
    reader, writer, status, response = await _upgrade(url, "GET", headers, ssl_context, timeout)
    try:
        protocol = check_server_handshake(status, response, key, protocols)
    except ConnectionError:
        writer.close()
        raise
    return WebSocketConnection(reader, writer, client=True), protocol
