"""A small asyncio HTTP/1.1 client for registry traffic.

Why not http.client in threads: a pull must stop the moment its gRPC call is
cancelled or its deadline passes, and a blocked thread cannot be cancelled.
On asyncio streams every read is a cancellation point, connections are
reused (keep-alive) per endpoint, and bodies stream in large chunks straight
into the content store. Only what registries need is implemented: GET/HEAD/
POST, Content-Length / chunked / read-to-close bodies, redirects (dropping
credentials when the host changes), TLS with a per-endpoint context.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

log = logging.getLogger(__name__)

READ_CHUNK = 1 << 20
STREAM_LIMIT = 4 << 20
MAX_HEADER_BYTES = 64 << 10
MAX_REDIRECTS = 10
USER_AGENT = "cri-runtime/0.1"


class HttpError(Exception):
    """Transport failure: connection refused/reset, TLS, malformed response, truncation."""


class HttpTlsError(HttpError):
    """The TLS handshake failed; `maybe_plain_http` when the peer did not speak TLS at all."""

    def __init__(self, message: str, *, maybe_plain_http: bool) -> None:
        super().__init__(message)
        self.maybe_plain_http = maybe_plain_http


class Headers:
    """Case-insensitive multi-valued headers, in arrival order."""

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self.items: list[tuple[str, str]] = list(items or [])

    def get(self, name: str, default: str = "") -> str:
        lname = name.lower()
        for k, v in self.items:
            if k.lower() == lname:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for k, v in self.items if k.lower() == lname]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(k.lower() == name.lower() for k, _ in self.items)


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


@dataclass
class Response:
    """A response whose body is read (or streamed) by the caller, then released."""

    status: int
    reason: str
    headers: Headers
    url: str
    _client: HttpClient
    _conn: _Conn | None
    _key: tuple[str, str, int, int]
    _remaining: int | None  # Content-Length left; None = chunked or to-close
    _chunked: bool
    _to_close: bool
    _chunk_left: int = 0
    _done: bool = False
    history: list[str] = field(default_factory=list)

    async def iter_chunks(self, size: int = READ_CHUNK) -> AsyncIterator[bytes]:
        """Yield the body in chunks of at most `size`; raise HttpError if it is cut short."""
        conn = self._conn
        if conn is None or self._done:
            return
        try:
            if self._chunked:
                async for piece in self._iter_chunked(conn, size):
                    yield piece
            elif self._remaining is not None:
                while self._remaining > 0:
                    data = await conn.reader.read(min(size, self._remaining))
                    if not data:
                        raise HttpError(f"{self.url}: connection closed with {self._remaining} "
                                        "bytes of the body missing")
                    self._remaining -= len(data)
                    yield data
            else:
                while True:
                    data = await conn.reader.read(size)
                    if not data:
                        break
                    yield data
            self._done = True
        finally:
            self.release()

    async def _iter_chunked(self, conn: _Conn, size: int) -> AsyncIterator[bytes]:
        while True:
            if self._chunk_left == 0:
                line = await conn.reader.readline()
                if not line.endswith(b"\n"):
                    raise HttpError(f"{self.url}: connection closed inside a chunked body")
                try:
                    self._chunk_left = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise HttpError(f"{self.url}: malformed chunk header") from None
                if self._chunk_left == 0:
                    while True:  # trailers up to the empty line
                        trailer = await conn.reader.readline()
                        if trailer in (b"\r\n", b"\n", b""):
                            return
            data = await conn.reader.read(min(size, self._chunk_left))
            if not data:
                raise HttpError(f"{self.url}: connection closed inside a chunk")
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                await conn.reader.readexactly(2)
            yield data

    async def read(self, limit: int = 16 << 20) -> bytes:
        """The whole body (bounded by `limit`, to survive a hostile server)."""
        parts: list[bytes] = []
        total = 0
        async for chunk in self.iter_chunks():
            total += len(chunk)
            if total > limit:
                self.close()
                raise HttpError(f"{self.url}: response body larger than {limit} bytes")
            parts.append(chunk)
        return b"".join(parts)

    def release(self) -> None:
        """Return the connection to the pool if the body was read whole, else close it."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._done and not self._to_close:
            self._client._put(self._key, conn)
        else:
            conn.close()

    def close(self) -> None:
        self._done = False
        self.release()


class HttpClient:
    """Keep-alive connection pool plus request/redirect logic."""

    def __init__(self, *, connect_timeout: float = 30.0, max_idle_per_host: int = 8) -> None:
        self.connect_timeout = connect_timeout
        self.max_idle_per_host = max_idle_per_host
        self._idle: dict[tuple[str, str, int, int], list[_Conn]] = {}
        # One shared default context, so pooled connections to other hosts
        # (blob storage after a redirect) are found again.
        self._default_ssl: ssl.SSLContext | None = None

    def default_ssl(self) -> ssl.SSLContext:
        if self._default_ssl is None:
            self._default_ssl = ssl.create_default_context()
        return self._default_ssl

    def _put(self, key: tuple[str, str, int, int], conn: _Conn) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) < self.max_idle_per_host and not conn.reader.at_eof():
            idle.append(conn)
        else:
            conn.close()

    async def _connect(self, scheme: str, host: str, port: int,
                       ssl_ctx: ssl.SSLContext | None) -> _Conn:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    host, port, ssl=ssl_ctx if scheme == "https" else None,
                    server_hostname=host if scheme == "https" else None, limit=STREAM_LIMIT),
                self.connect_timeout)
        except ssl.SSLCertVerificationError as exc:
            raise HttpTlsError(f"TLS handshake with {host}:{port} failed: {exc.verify_message or exc}",
                               maybe_plain_http=False) from None
        except ssl.SSLError as exc:
            raise HttpTlsError(f"TLS handshake with {host}:{port} failed: {exc.reason or exc}",
                               maybe_plain_http=True) from None
        except TimeoutError:
            raise HttpError(f"connecting to {host}:{port} timed out") from None
        except (ConnectionResetError, BrokenPipeError) as exc:
            if scheme == "https":  # a plain-http server hanging up on our ClientHello
                raise HttpTlsError(f"TLS handshake with {host}:{port} failed: {type(exc).__name__}",
                                   maybe_plain_http=True) from None
            raise HttpError(f"cannot connect to {host}:{port}: {type(exc).__name__}") from None
        except OSError as exc:
            why = exc.strerror or str(exc) or type(exc).__name__
            raise HttpError(f"cannot connect to {host}:{port}: {why}") from None
        return _Conn(reader, writer)

    async def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        *,
        ssl_ctx: ssl.SSLContext | None = None,
        follow_redirects: bool = True,
    ) -> Response:
        """Send a request; the caller must read or close the response."""
        history: list[str] = []
        hdrs = dict(headers or {})
        for _ in range(MAX_REDIRECTS + 1):
            resp = await self._send(method, url, hdrs, body, ssl_ctx)
            resp.history = history
            location = resp.headers.get("Location")
            if not (follow_redirects and resp.status in (301, 302, 303, 307, 308) and location):
                return resp
            await resp.read(1 << 20)
            new_url = urljoin(url, location)
            history.append(url)
            old, new = urlsplit(url), urlsplit(new_url)
            if (old.scheme, old.netloc) != (new.scheme, new.netloc):
                # Never hand registry credentials to blob storage elsewhere.
                hdrs = {k: v for k, v in hdrs.items() if k.lower() != "authorization"}
                # The registry's own TLS settings do not apply to another host.
                ssl_ctx = self.default_ssl() if new.scheme == "https" else None
            if resp.status == 303:
                method, body = "GET", None
            url = new_url
        raise HttpError(f"{url}: more than {MAX_REDIRECTS} redirects")

    async def _send(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None,
                    ssl_ctx: ssl.SSLContext | None) -> Response:
        parts = urlsplit(url)
        scheme = parts.scheme
        if scheme not in ("http", "https"):
            raise HttpError(f"{url}: unsupported scheme {scheme!r}")
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        if scheme == "https" and ssl_ctx is None:
            ssl_ctx = self.default_ssl()
        key = (scheme, host, port, id(ssl_ctx) if ssl_ctx else 0)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", f"User-Agent: {USER_AGENT}",
                 "Accept-Encoding: identity"]
        for k, v in headers.items():
            lines.append(f"{k}: {v}")
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
        # A pooled connection may have been closed by the server meanwhile:
        # retry once on a fresh one when a reused connection fails early.
        for attempt in range(2):
            idle = self._idle.get(key)
            reused = bool(idle)
            conn = idle.pop() if idle else await self._connect(scheme, host, port, ssl_ctx)
            try:
                conn.writer.write(raw)
                await conn.writer.drain()
                status_line = await conn.reader.readline()
                if not status_line:
                    raise HttpError(f"{url}: server closed the connection without answering")
                return await self._read_head(conn, status_line, method, url, key)
            except (HttpError, OSError, asyncio.IncompleteReadError) as exc:
                conn.close()
                if reused and attempt == 0:
                    continue
                if isinstance(exc, HttpError):
                    raise
                raise HttpError(f"{url}: {exc.__class__.__name__}: {exc}") from None
            except BaseException:
                conn.close()
                raise
        raise HttpError(f"{url}: request failed")  # pragma: no cover

    async def _read_head(self, conn: _Conn, status_line: bytes, method: str, url: str,
                         key: tuple[str, str, int, int]) -> Response:
        try:
            version, code, *rest = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
            status = int(code)
        except ValueError:
            raise HttpError(f"{url}: malformed status line {status_line[:80]!r}") from None
        if not version.startswith("HTTP/1."):
            raise HttpError(f"{url}: unsupported protocol {version!r}")
        items: list[tuple[str, str]] = []
        size = 0
        while True:
            line = await conn.reader.readline()
            size += len(line)
            if size > MAX_HEADER_BYTES:
                raise HttpError(f"{url}: response headers too large")
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise HttpError(f"{url}: connection closed inside the response headers")
            name, sep, value = line.decode("latin-1").partition(":")
            if sep:
                items.append((name.strip(), value.strip()))
        headers = Headers(items)
        to_close = headers.get("Connection").lower() == "close" or version == "HTTP/1.0"
        chunked = "chunked" in headers.get("Transfer-Encoding").lower()
        remaining: int | None = None
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            remaining = 0
        elif not chunked:
            length = headers.get("Content-Length")
            if length:
                try:
                    remaining = int(length)
                except ValueError:
                    raise HttpError(f"{url}: bad Content-Length {length!r}") from None
            else:
                to_close = True
        resp = Response(status=status, reason=rest[0] if rest else "", headers=headers, url=url,
                        _client=self, _conn=conn, _key=key, _remaining=remaining, _chunked=chunked,
                        _to_close=to_close)
        if remaining == 0 and not chunked:
            resp._done = True
            resp.release()
        return resp

    def close(self) -> None:
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()
