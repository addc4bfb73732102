"""Just enough HTTP/1.1 for the streaming endpoints: one request head, then an upgrade.

Every streaming request is a single GET/POST that either upgrades (101) or gets a short
error response and the connection is closed, so there is no keep-alive, no request body and
no chunked coding to handle.  Shared by the server and the client side (crictl).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

MAX_HEAD = 64 * 1024

REASONS = {
    101: "Switching Protocols",
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class HttpError(Exception):
    """A request that cannot be served; ``status`` is the response code to send."""

    def __init__(self, status: int, message: str, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


@dataclass
class HttpHeaders:
    items: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str, default: str = "") -> str:
        wanted = name.lower()
        for key, value in self.items:
            if key.lower() == wanted:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.items if key.lower() == wanted]

    def tokens(self, name: str) -> list[str]:
        """Comma-separated values of every occurrence of ``name``, trimmed, in order."""
        out: list[str] = []
        for value in self.get_all(name):
            out.extend(token.strip() for token in value.split(",") if token.strip())
        return out

    def has_token(self, name: str, token: str) -> bool:
        return token.lower() in (t.lower() for t in self.tokens(name))


@dataclass
class HttpRequest:
    method: str
    target: str
    version: str
    headers: HttpHeaders

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)


@dataclass
class HttpResponseHead:
    status: int
    reason: str
    headers: HttpHeaders


def _parse_header_lines(lines: list[str]) -> HttpHeaders:
    headers = HttpHeaders()
    for line in lines:
        if not line:
            continue
        if line[0] in " \t":
            raise HttpError(400, "obsolete header line folding")
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise HttpError(400, f"malformed header line {line[:80]!r}")
        headers.items.append((name, value.strip()))
    return headers


async def _read_head(reader: asyncio.StreamReader) -> list[str] | None:
    """The head's lines; the reader's limit (MAX_HEAD on the server) bounds what is buffered
    while looking for its end, so an endless head fails at the limit, not after it."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise HttpError(400, "connection closed inside the request head") from exc
    except asyncio.LimitOverrunError as exc:
        raise HttpError(431, "request head too large") from exc
    if len(raw) > MAX_HEAD:
        raise HttpError(431, "request head too large")
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes everything
        raise HttpError(400, "undecodable head") from exc
    return text[:-4].split("\r\n")


async def read_request(reader: asyncio.StreamReader) -> HttpRequest | None:
    """The next request head, or None if the client closed before sending one."""
    lines = await _read_head(reader)
    if lines is None:
        return None
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, f"malformed request line {lines[0][:80]!r}")
    method, target, version = parts
    if not target.startswith("/"):
        target = urlsplit(target).path or "/"
    return HttpRequest(method, target, version, _parse_header_lines(lines[1:]))


async def read_response_head(reader: asyncio.StreamReader) -> HttpResponseHead:
    lines = await _read_head(reader)
    if lines is None:
        raise ConnectionError("server closed the connection without a response")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ConnectionError(f"malformed response line {lines[0][:80]!r}")
    return HttpResponseHead(int(parts[1]), parts[2] if len(parts) > 2 else "", _parse_header_lines(lines[1:]))


def format_response(status: int, headers: list[tuple[str, str]] | None = None, body: bytes = b"") -> bytes:
    head = [f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}"]
    all_headers = list(headers or [])
    if status != 101:
        all_headers += [("Content-Length", str(len(body))), ("Connection", "close")]
        if body and not any(k.lower() == "content-type" for k, _ in all_headers):
            all_headers.append(("Content-Type", "text/plain; charset=utf-8"))
    head += [f"{k}: {v}" for k, v in all_headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def format_request(method: str, target: str, host: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def read_body(reader: asyncio.StreamReader, head: HttpResponseHead, limit: int = 64 * 1024) -> bytes:
    """A short (error) response body: Content-Length bytes or up to EOF, at most ``limit``."""
    length = head.headers.get("Content-Length")
    try:
        if length.isdigit():
            return await reader.readexactly(min(int(length), limit))
        return await reader.read(limit)
    except (asyncio.IncompleteReadError, ConnectionError):
        return b""
