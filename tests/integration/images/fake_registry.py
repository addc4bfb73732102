"""A programmable in-process registry for failures docker-registry cannot produce.

It serves rig-built images from memory on 127.0.0.1 (asyncio, same loop as the
test) and can: require a Bearer token from its own token endpoint (checking
Basic credentials), redirect blob GETs to "blob storage" on another host name
(``localhost`` vs ``127.0.0.1``) that refuses an Authorization header, corrupt
or truncate a blob, trickle a blob slowly, and count requests per path.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
from collections import Counter
from dataclasses import dataclass, field

from tests.rig.oci import Image, ImageIndex


@dataclass
class FakeRegistry:
    bearer_user: tuple[str, str] | None = None
    redirect_blobs: bool = False
    corrupt: set[str] = field(default_factory=set)  # blob digests served with wrong bytes
    truncate: set[str] = field(default_factory=set)  # blob digests cut off half-way
    truncate_times: int = 1_000_000  # how many GETs of a truncated blob are cut
    slow: set[str] = field(default_factory=set)  # blob digests trickled 1 KiB / 50 ms
    stall: set[str] = field(default_factory=set)  # blob digests: half sent, then silence
    ranges: list[str] = field(default_factory=list)  # Range headers of blob GETs
    honour_range: bool = True
    requests: Counter[str] = field(default_factory=Counter)
    seen_auth: list[str] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self.manifests: dict[tuple[str, str], tuple[str, bytes]] = {}
        self.blobs: dict[str, bytes] = {}
        self.tokens: set[str] = set()
        self._server: asyncio.AbstractServer | None = None
        self._conns: set[asyncio.StreamWriter] = set()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add(self, repo: str, tag: str, artifact: Image | ImageIndex) -> None:
        images = artifact.images if isinstance(artifact, ImageIndex) else [artifact]
        for img in images:
            for blob in img.blobs():
                self.blobs[blob.digest] = blob.data
            mb = img.manifest_blob
            self.manifests[(repo, img.digest)] = (mb.media_type, mb.data)
        mb = artifact.manifest_blob
        self.manifests[(repo, tag)] = (mb.media_type, mb.data)
        self.manifests[(repo, artifact.digest)] = (mb.media_type, mb.data)

    async def start(self) -> FakeRegistry:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._conns):
                w.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                try:
                    method, target, _ = line.decode().split(" ", 2)
                except (UnicodeDecodeError, ValueError):
                    return  # not HTTP (e.g. a TLS ClientHello): hang up
                headers: dict[str, str] = {}
                while True:
                    h = await reader.readline()
                    if h in (b"\r\n", b""):
                        break
                    k, _, v = h.decode().partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = b""
                if headers.get("content-length"):
                    body = await reader.readexactly(int(headers["content-length"]))
                keep = await self._route(method, target, headers, body, writer)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._conns.discard(writer)
            writer.close()

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, body: bytes = b"",
                    headers: dict[str, str] | None = None, method: str = "GET") -> None:
        lines = [f"HTTP/1.1 {status} X"]
        hdrs = {"Content-Length": str(len(body)), **(headers or {})}
        lines += [f"{k}: {v}" for k, v in hdrs.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + (b"" if method == "HEAD" else body))
        await writer.drain()

    async def _route(self, method: str, target: str, headers: dict[str, str], body: bytes,
                     writer: asyncio.StreamWriter) -> bool:
        path, _, query = target.partition("?")
        self.requests[path] += 1
        auth = headers.get("authorization", "")
        if auth:
            self.seen_auth.append(auth)
        if path == "/token":
            return await self._token(headers, query, writer)
        if path.startswith("/storage/"):
            if auth:
                await self._send(writer, 400, b"storage got an Authorization header")
                return True
            digest = path[len("/storage/"):]
            return await self._blob(digest, headers, writer, method)
        if self.bearer_user is not None and auth.removeprefix("Bearer ") not in self.tokens:
            realm = f"http://{self.host}/token"
            await self._send(writer, 401, b'{"errors":[{"code":"UNAUTHORIZED","message":"token needed"}]}', {
                "WWW-Authenticate": f'Bearer realm="{realm}",service="fake",scope="repository:x:pull"'})
            return True
        if path in ("/v2", "/v2/"):
            await self._send(writer, 200, b"{}")
            return True
        parts = path.split("/")
        # /v2/<repo...>/manifests/<ref> or /v2/<repo...>/blobs/<digest>
        kind, obj = parts[-2], parts[-1]
        repo = "/".join(parts[2:-2])
        if kind == "manifests":
            item = self.manifests.get((repo, obj))
            if item is None:
                await self._send(writer, 404, b'{"errors":[{"code":"MANIFEST_UNKNOWN",'
                                              b'"message":"manifest unknown"}]}')
                return True
            await self._send(writer, 200, item[1], {"Content-Type": item[0]}, method)
            return True
        if kind == "blobs":
            if self.redirect_blobs:
                await self._send(writer, 307, b"", {"Location": f"http://localhost:{self.port}/storage/{obj}"})
                return True
            return await self._blob(obj, headers, writer, method)
        await self._send(writer, 404, b"not found")
        return True

    async def _token(self, headers: dict[str, str], query: str, writer: asyncio.StreamWriter) -> bool:
        assert self.bearer_user is not None
        user, password = self.bearer_user
        expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        if headers.get("authorization") != expected:
            await self._send(writer, 401, b'{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}')
            return True
        token = secrets.token_hex(8)
        self.tokens.add(token)
        await self._send(writer, 200, json.dumps({"token": token, "expires_in": 300}).encode())
        return True

    async def _blob(self, digest: str, headers: dict[str, str], writer: asyncio.StreamWriter,
                    method: str) -> bool:
        data = self.blobs.get(digest)
        if data is None:
            await self._send(writer, 404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}')
            return True
        if digest in self.corrupt:
            data = bytes(b ^ 0xFF for b in data[:16]) + data[16:]
        start = 0
        rng = headers.get("range", "")
        if rng:
            self.ranges.append(rng)
        if rng.startswith("bytes=") and self.honour_range:
            start = int(rng[len("bytes="):].split("-")[0])
        payload = data[start:]
        status = 206 if start else 200
        head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(payload)}"]
        if start:
            head.append(f"Content-Range: bytes {start}-{len(data) - 1}/{len(data)}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        if digest in self.truncate and self.truncate_times > 0:
            self.truncate_times -= 1
            writer.write(payload[: len(payload) // 2])
            await writer.drain()
            return False  # close the connection mid-body
        if digest in self.stall:
            writer.write(payload[: len(payload) // 2])
            await writer.drain()
            await asyncio.sleep(3600)  # until the client hangs up (or the server stops)
            return False
        if digest in self.slow:
            for i in range(0, len(payload), 1024):
                writer.write(payload[i:i + 1024])
                await writer.drain()
                await asyncio.sleep(0.05)
            return True
        writer.write(payload)
        await writer.drain()
        return True
