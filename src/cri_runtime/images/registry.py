"""OCI distribution client: resolve a reference, fetch manifests and blobs.

Endpoints come from `hosts.registry_hosts` (mirrors first, then upstream).
As in containerd, a tag is resolved on the first endpoint with the
``resolve`` capability that has it (404 and failures move on to the next; the
first failure is what the caller sees if none has it), and blobs come from
the endpoints with ``pull``. Requests to a mirror carry ``?ns=<registry>``.
Transient failures (connection reset, truncated body, 5xx, 429) are retried
with exponential backoff before moving on.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass

from cri_runtime import errors
from cri_runtime.images import hosts as hostcfg
from cri_runtime.images.auth import Authorizer, Credentials, registry_error_message
from cri_runtime.images.httpclient import HttpClient, HttpError, HttpTlsError, Response
from cri_runtime.images.manifest import ACCEPT_MANIFESTS, Descriptor, detect_media_type, digest_of
from cri_runtime.images.reference import Reference

log = logging.getLogger(__name__)

MAX_MANIFEST_BYTES = 8 << 20
RETRIES = 3
BACKOFF_BASE = 0.2


class RegistryStatusError(Exception):
    """An HTTP status the pull cannot continue past; `error` is the domain error to raise."""

    def __init__(self, error: errors.CriError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass
class _Fetched:
    data: bytes
    content_type: str
    digest_header: str


class RegistryClient:
    """Talks to one repository (`ref.name`) through its configured endpoints."""

    def __init__(self, http: HttpClient, ref: Reference, config_root: str, credentials: Credentials) -> None:
        self.http = http
        self.ref = ref
        self.hosts = hostcfg.registry_hosts(config_root, ref.domain)
        self.authorizer = Authorizer(http, credentials)
        self.scope = f"repository:{ref.path}:pull"
        # Loopback upstreams without config fall back to http when TLS fails.
        self._plain: set[hostcfg.RegistryHost] = set()

    # -- plumbing -----------------------------------------------------------

    def _url(self, host: hostcfg.RegistryHost, suffix: str) -> str:
        scheme = "http" if host in self._plain else host.scheme
        url = f"{scheme}://{host.host}{host.path}/{self.ref.path}/{suffix}"
        if host.host != self.ref.domain and not (host.implicit and self.ref.domain == hostcfg.DOCKER_IO):
            url += f"?ns={self.ref.domain}"
        return url

    async def _request(self, host: hostcfg.RegistryHost, method: str, suffix: str,
                       headers: dict[str, str], what: str) -> Response:
        """One request with auth handling; retries transient failures."""
        delay = BACKOFF_BASE
        last: Exception | None = None
        for attempt in range(RETRIES):
            try:
                resp = await self._authed(host, method, suffix, headers, what)
            except HttpTlsError as exc:
                if exc.maybe_plain_http and host.implicit and host.scheme == "https" \
                        and hostcfg.is_loopback_host(host.host) and host not in self._plain:
                    log.info("registry %s: TLS failed, falling back to plain http for loopback", host.host)
                    self._plain.add(host)
                    continue
                raise
            except HttpError as exc:
                last = exc
                if "cannot connect" in str(exc) and "refused" not in str(exc).lower():
                    raise  # DNS failures do not heal in a second
                if attempt + 1 < RETRIES:
                    await asyncio.sleep(delay * (1 + random.random() / 2))
                    delay *= 2
                continue
            if resp.status in (429, 500, 502, 503, 504) and attempt + 1 < RETRIES:
                resp.close()
                retry_after = resp.headers.get("Retry-After")
                wait = float(retry_after) if retry_after.isdigit() else delay * (1 + random.random() / 2)
                await asyncio.sleep(min(wait, 10.0))
                delay *= 2
                continue
            return resp
        assert last is not None
        raise last

    async def _authed(self, host: hostcfg.RegistryHost, method: str, suffix: str,
                      headers: dict[str, str], what: str) -> Response:
        hdrs = dict(host.headers)
        hdrs.update(headers)
        for _ in range(3):
            auth = self.authorizer.header(host, self.scope)
            if auth:
                hdrs["Authorization"] = auth
            resp = await self.http.request(method, self._url(host, suffix), hdrs,
                                           ssl_ctx=host.ssl_context())
            if resp.status != 401:
                return resp
            challenges = resp.headers.get_all("WWW-Authenticate")
            resp.close() if method == "HEAD" else await resp.read(1 << 20)
            if not await self.authorizer.on_unauthorized(host, self.scope, challenges, what):
                return resp
        return resp

    async def _status_error(self, resp: Response, what: str, host: hostcfg.RegistryHost) -> errors.CriError:
        body = b""
        if resp._conn is not None:
            try:
                body = await resp.read(1 << 20)
            except HttpError:
                body = b""
        detail = registry_error_message(body) or resp.reason or f"HTTP {resp.status}"
        where = f"{what} from {host.host}"
        if resp.status == 401:
            return errors.Unauthenticated(
                f"{where}: pull access denied, the repository does not exist or requires "
                f"authorization: {detail}")
        if resp.status == 403:
            return errors.PermissionDenied(f"{where}: access forbidden: {detail}")
        if resp.status == 404:
            return errors.NotFound(f"{where}: not found: {detail}")
        if resp.status == 429 or resp.status >= 500:
            return errors.Unavailable(f"{where}: registry answered HTTP {resp.status}: {detail}")
        return errors.Internal(f"{where}: unexpected HTTP {resp.status}: {detail}")

    @staticmethod
    def _transport_error(exc: HttpError, what: str) -> errors.CriError:
        return errors.Unavailable(f"{what}: {exc}")

    # -- manifests ------------------------------------------------------------

    async def resolve(self) -> tuple[Descriptor, bytes]:
        """The descriptor and bytes of the manifest/index the reference names."""
        what = f"resolve {self.ref}"
        # As containerd: a tag needs an endpoint that can resolve and pull; a
        # digest is content-addressed, so any endpoint that can pull serves it.
        needed = {hostcfg.CAP_PULL} if self.ref.digest else {hostcfg.CAP_PULL, hostcfg.CAP_RESOLVE}
        candidates = [h for h in self.hosts if needed <= h.capabilities]
        if not candidates:
            raise errors.NotFound(f"{what}: no registry endpoint has the {'/'.join(sorted(needed))} "
                                  "capabilities")
        first: errors.CriError | None = None
        not_found: errors.NotFound | None = None
        for host in candidates:
            try:
                fetched = await self._get_manifest(host, self.ref.object, what)
            except errors.NotFound as exc:
                not_found = exc  # the next endpoint may have it
                continue
            except errors.CriError as exc:
                log.info("%s: %s; trying next host", what, exc)
                first = first or exc
                continue
            media_type = detect_media_type(fetched.data, fetched.content_type)
            digest = digest_of(fetched.data)
            expected = self.ref.digest or fetched.digest_header
            if expected and expected.startswith("sha256:") and expected != digest:
                raise errors.DataLoss(f"{what} from {host.host}: manifest digest {digest} does not "
                                      f"match {expected}")
            if self.ref.digest and not self.ref.digest.startswith("sha256:"):
                raise errors.InvalidArgument(f"{what}: only sha256 digests are supported")
            return Descriptor(media_type, digest, len(fetched.data)), fetched.data
        if first is not None:
            raise first
        raise not_found or errors.NotFound(f"{what}: not found")

    async def fetch_manifest(self, desc: Descriptor) -> bytes:
        """A child manifest of an index, by digest; verified."""
        what = f"fetch manifest {desc.digest} of {self.ref}"
        first: errors.CriError | None = None
        for host in self.hosts:
            if not host.can(hostcfg.CAP_PULL):
                continue
            try:
                fetched = await self._get_manifest(host, desc.digest, what)
            except errors.CriError as exc:
                first = first or exc
                continue
            if digest_of(fetched.data) != desc.digest or len(fetched.data) != desc.size:
                raise errors.DataLoss(f"{what} from {host.host}: content does not match its digest/size")
            return fetched.data
        raise first or errors.NotFound(f"{what}: no registry endpoint has the pull capability")

    async def _get_manifest(self, host: hostcfg.RegistryHost, obj: str, what: str) -> _Fetched:
        try:
            resp = await self._request(host, "GET", f"manifests/{obj}", {"Accept": ACCEPT_MANIFESTS}, what)
            if resp.status != 200:
                raise await self._status_error(resp, what, host)
            length = resp.headers.get("Content-Length")
            if length.isdigit() and int(length) > MAX_MANIFEST_BYTES:
                resp.close()
                raise errors.InvalidArgument(f"{what} from {host.host}: manifest of {length} bytes is "
                                             "too large")
            data = await resp.read(MAX_MANIFEST_BYTES)
        except HttpError as exc:
            raise self._transport_error(exc, f"{what} from {host.host}") from None
        return _Fetched(data, resp.headers.get("Content-Type"), resp.headers.get("Docker-Content-Digest"))

    # -- blobs ------------------------------------------------------------------

    async def open_blob(self, desc: Descriptor, offset: int = 0) -> tuple[Response, int]:
        """Open a blob stream at `offset` (honoured if the server supports ranges).

        Returns the response and the offset its body actually starts at.
        """
        what = f"fetch blob {desc.digest} of {self.ref}"
        first: errors.CriError | None = None
        for host in self.hosts:
            if not host.can(hostcfg.CAP_PULL):
                continue
            headers = {"Accept": "*/*"}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            try:
                resp = await self._request(host, "GET", f"blobs/{desc.digest}", headers, what)
            except HttpError as exc:
                first = first or self._transport_error(exc, f"{what} from {host.host}")
                continue
            if resp.status == 200:
                return resp, 0
            if resp.status == 206 and offset:
                return resp, offset
            first = first or await self._status_error(resp, what, host)
        raise first or errors.NotFound(f"{what}: no registry endpoint has the pull capability")

    async def read_blob(self, desc: Descriptor, limit: int = MAX_MANIFEST_BYTES) -> bytes:
        """A small blob (config) in memory, verified against its descriptor."""
        resp, _ = await self.open_blob(desc)
        try:
            data = await resp.read(max(limit, desc.size))
        except HttpError as exc:
            raise errors.DataLoss(f"fetch blob {desc.digest} of {self.ref}: {exc}") from None
        if len(data) != desc.size or digest_of(data) != desc.digest:
            raise errors.DataLoss(f"fetch blob {desc.digest} of {self.ref}: content does not match its "
                                  f"digest/size (got {len(data)} bytes)")
        return data


async def iter_body(resp: Response, what: str) -> AsyncIterator[bytes]:
    """A response body as chunks; transport failures become DataLoss naming `what`."""
    try:
        async for chunk in resp.iter_chunks():
            yield chunk
    except HttpError as exc:
        raise errors.DataLoss(f"{what}: {exc}") from None
