"""The asyncio HTTP/1.1 client against a scripted local server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

from cri_runtime.images.httpclient import HttpClient, HttpError

Handler = Callable[[str, dict[str, str], asyncio.StreamWriter], Awaitable[bool]]


class Server:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                target = line.decode().split(" ")[1]
                headers: dict[str, str] = {}
                while (h := await reader.readline()) not in (b"\r\n", b""):
                    k, _, v = h.decode().partition(":")
                    headers[k.strip().lower()] = v.strip()
                if not await self.handler(target, headers, writer):
                    return
        finally:
            writer.close()

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest_asyncio.fixture
async def client() -> AsyncIterator[HttpClient]:
    c = HttpClient()
    yield c
    c.close()


@pytest.mark.asyncio
async def test_chunked_body_and_keepalive(client: HttpClient) -> None:
    async def handler(target: str, headers: dict[str, str], w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: y\r\n\r\n")
        await w.drain()
        return True

    async with Server(handler) as srv:
        for _ in range(3):
            resp = await client.request("GET", f"http://127.0.0.1:{srv.port}/x")
            assert resp.status == 200
            assert await resp.read() == b"hello world"
        assert srv.connections == 1


@pytest.mark.asyncio
async def test_redirect_to_other_host_drops_authorization(client: HttpClient) -> None:
    seen: list[tuple[str, str]] = []

    async def handler(target: str, headers: dict[str, str], w: asyncio.StreamWriter) -> bool:
        seen.append((target, headers.get("authorization", "")))
        if target == "/start":
            port = w.get_extra_info("sockname")[1]
            w.write(f"HTTP/1.1 307 X\r\nLocation: http://localhost:{port}/blob\r\nContent-Length: 0\r\n\r\n"
                    .encode())
        else:
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndata")
        await w.drain()
        return True

    async with Server(handler) as srv:
        resp = await client.request("GET", f"http://127.0.0.1:{srv.port}/start", {"Authorization": "Basic c2VjcmV0"})
        assert await resp.read() == b"data"
        assert resp.history == [f"http://127.0.0.1:{srv.port}/start"]
    assert seen == [("/start", "Basic c2VjcmV0"), ("/blob", "")]


@pytest.mark.asyncio
async def test_truncated_body_raises(client: HttpClient) -> None:
    async def handler(target: str, headers: dict[str, str], w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
        await w.drain()
        return False

    async with Server(handler) as srv:
        resp = await client.request("GET", f"http://127.0.0.1:{srv.port}/")
        with pytest.raises(HttpError, match="95 bytes of the body missing"):
            await resp.read()


@pytest.mark.asyncio
async def test_stale_pooled_connection_is_retried(client: HttpClient) -> None:
    async def handler(target: str, headers: dict[str, str], w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await w.drain()
        return False  # close after each response, without saying so

    async with Server(handler) as srv:
        for _ in range(2):
            resp = await client.request("GET", f"http://127.0.0.1:{srv.port}/")
            assert await resp.read() == b"ok"
        assert srv.connections == 2


@pytest.mark.asyncio
async def test_refused_connection(client: HttpClient) -> None:
    async with Server(lambda *a: asyncio.sleep(0, False)) as srv:
        port = srv.port
    with pytest.raises(HttpError, match="cannot connect"):
        await client.request("GET", f"http://127.0.0.1:{port}/")
