"""A local OCI registry (Debian's ``docker-registry``, distribution 2.8) and a tiny client.

The registry listens on 127.0.0.1 and a free port, stores blobs in the session dir, and can
require HTTP Basic auth (htpasswd, bcrypt) and/or serve TLS with a self-signed certificate.
The client speaks just enough of the OCI distribution API (``http.client``) to push the
images :mod:`tests.rig.oci` builds and to probe auth.
"""

from __future__ import annotations

import atexit
import base64
import ctypes
import ctypes.util
import hashlib
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from . import paths

REGISTRY_BIN = "/usr/bin/docker-registry"
#: Accept header of manifest GETs: OCI index/manifest, Docker list/manifest.
MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)


class RegistryError(RuntimeError):
    """An unexpected HTTP status from the registry."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


class RegistryClient:
    """Minimal OCI distribution client: ping, blob upload, manifest put/get.

    ``host`` is ``HOST:PORT``; with ``username``/``password`` every request carries a Basic
    ``Authorization`` header (distribution's htpasswd auth is plain Basic, no token dance).
    """

    def __init__(
        self,
        host: str,
        *,
        tls: bool = False,
        ca_file: Path | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.tls = tls
        self.ca_file = ca_file
        self.username = username
        self.password = password
        self.timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        if self.tls:
            ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
            return http.client.HTTPSConnection(self.host, timeout=self.timeout, context=ctx)
        return http.client.HTTPConnection(self.host, timeout=self.timeout)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """One HTTP request; ``path`` may also be an absolute URL (upload ``Location`` s)."""
        if path.startswith(("http://", "https://")):
            url = urllib.parse.urlsplit(path)
            path = url.path + (f"?{url.query}" if url.query else "")
        hdrs = dict(headers or {})
        if self.username is not None:
            token = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
            hdrs["Authorization"] = f"Basic {token}"
        conn = self._connection()
        try:
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
        finally:
            conn.close()

    @staticmethod
    def _expect(resp: Response, what: str, *ok: int) -> Response:
        if resp.status not in ok:
            raise RegistryError(f"{what}: HTTP {resp.status}: {resp.body[:300]!r}", resp.status)
        return resp

    def ping(self) -> int:
        """Status of ``GET /v2/`` (200 open, 401 auth required)."""
        return self.request("GET", "/v2/").status

    def blob_exists(self, repo: str, digest: str) -> bool:
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}")
        if resp.status == 404:
            return False
        self._expect(resp, f"HEAD blob {digest}", 200)
        return True

    def upload_blob(self, repo: str, data: bytes, chunk_size: int | None = None) -> str:
        """Upload ``data``; monolithic (POST + PUT) or chunked (POST + PATCH... + PUT).

        Returns the digest the registry stored it under.
        """
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        start = self._expect(self.request("POST", f"/v2/{repo}/blobs/uploads/"), "start upload", 202)
        location = start.headers["location"]
        if chunk_size:
            offset = 0
            while offset < len(data):
                chunk = data[offset : offset + chunk_size]
                resp = self._expect(
                    self.request(
                        "PATCH",
                        location,
                        chunk,
                        {
                            "Content-Type": "application/octet-stream",
                            "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                            "Content-Length": str(len(chunk)),
                        },
                    ),
                    "upload chunk",
                    202,
                )
                location = resp.headers["location"]
                offset += len(chunk)
            body = b""
        else:
            body = data
        sep = "&" if "?" in location else "?"
        put = self.request(
            "PUT",
            f"{location}{sep}digest={urllib.parse.quote(digest)}",
            body,
            {"Content-Type": "application/octet-stream", "Content-Length": str(len(body))},
        )
        self._expect(put, f"finish upload {digest}", 201)
        return digest

    def put_manifest(self, repo: str, reference: str, media_type: str, data: bytes) -> str:
        """PUT a manifest/index under a tag or digest; returns the registry's digest."""
        resp = self._expect(
            self.request("PUT", f"/v2/{repo}/manifests/{reference}", data, {"Content-Type": media_type}),
            f"PUT manifest {repo}:{reference}",
            201,
        )
        return resp.headers.get("docker-content-digest", "")

    def get_manifest(self, repo: str, reference: str, accept: tuple[str, ...] = ()) -> Response:
        """GET a manifest; ``accept`` lists media types (default: all four kinds)."""
        types = accept or MANIFEST_MEDIA_TYPES
        return self.request("GET", f"/v2/{repo}/manifests/{reference}", headers={"Accept": ", ".join(types)})


# ----------------------------------------------------------------------- htpasswd
def bcrypt_hash(password: str) -> str:
    """A bcrypt (``$2b$``/``$2y$``) hash, the only scheme distribution's htpasswd accepts.

    Uses libxcrypt (``libcrypt.so.1``, always present on Debian) through ctypes, so no
    Python package is needed; falls back to ``htpasswd -B`` from apache2-utils.
    """
    lib_name = ctypes.util.find_library("crypt") or "libcrypt.so.1"
    try:
        lib = ctypes.CDLL(lib_name)
        lib.crypt_gensalt.restype = ctypes.c_char_p
        lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
        lib.crypt.restype = ctypes.c_char_p
        lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        # Cost 5: the registry verifies every request; the default (10+) makes tests slow.
        salt = lib.crypt_gensalt(b"$2b$", 5, None, 0)
        hashed = lib.crypt(password.encode(), salt) if salt else None
        if hashed and hashed.startswith(b"$2b$"):
            return str(hashed.decode())
    except (OSError, AttributeError):
        pass
    if shutil.which("htpasswd"):
        out = subprocess.run(
            ["htpasswd", "-nbB", "-C", "5", "user", password], capture_output=True, text=True, check=True
        )
        return out.stdout.strip().split(":", 1)[1]
    raise RuntimeError("no bcrypt implementation: need libxcrypt or apache2-utils (htpasswd)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------------- registry
class LocalRegistry:
    """``docker-registry serve`` on 127.0.0.1:<free port>, storage under the session dir.

    * ``host`` -- ``"127.0.0.1:PORT"`` (image refs are ``f"{host}/repo:tag"``)
    * ``url``  -- ``http://host`` or ``https://host``
    * ``credentials`` -- ``(user, password)`` when auth is on, else None
    * ``ca_file`` -- the self-signed certificate (PEM) when TLS is on; clients trust it
    * :meth:`client` -- a :class:`RegistryClient` with the credentials
    """

    def __init__(self, *, auth: tuple[str, str] | None = None, tls: bool = False) -> None:
        self.credentials = auth
        self.tls = tls
        self.tmpdir = paths.make_dir("registry")
        self.storage = self.tmpdir / "storage"
        self.config_path = self.tmpdir / "config.yml"
        self.log_path = self.tmpdir / "registry.log"
        self.htpasswd_path = self.tmpdir / "htpasswd"
        self.ca_file: Path | None = self.tmpdir / "cert.pem" if tls else None
        self.key_file = self.tmpdir / "key.pem"
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped = False

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}"

    def client(self, *, authenticated: bool = True) -> RegistryClient:
        """A client for this registry; ``authenticated=False`` omits the credentials."""
        user, password = self.credentials if (self.credentials and authenticated) else (None, None)
        return RegistryClient(self.host, tls=self.tls, ca_file=self.ca_file, username=user, password=password)

    def _config_yaml(self) -> str:
        lines = [
            "version: 0.1",
            "log:",
            "  level: warn",
            "  accesslog:",
            "    disabled: true",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.storage}",
            "  delete:",
            "    enabled: true",
            "  maintenance:",
            "    uploadpurging:",
            "      enabled: false",
            "http:",
            f"  addr: {self.host}",
            "  headers:",
            "    X-Content-Type-Options: [nosniff]",
        ]
        if self.tls:
            lines += ["  tls:", f"    certificate: {self.ca_file}", f"    key: {self.key_file}"]
        if self.credentials:
            lines += ["auth:", "  htpasswd:", "    realm: crirt-test", f"    path: {self.htpasswd_path}"]
        return "\n".join(lines) + "\n"

    def _make_cert(self) -> None:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1,DNS:localhost",
                "-keyout",
                str(self.key_file),
                "-out",
                str(self.ca_file),
            ],
            check=True,
            capture_output=True,
        )

    def start(self, timeout: float = 20.0) -> LocalRegistry:
        """Write config (and htpasswd/cert), start the registry, wait until ``/v2/`` answers."""
        self.storage.mkdir(parents=True, exist_ok=True)
        if self.credentials:
            user, password = self.credentials
            self.htpasswd_path.write_text(f"{user}:{bcrypt_hash(password)}\n")
        if self.tls:
            self._make_cert()
        for _attempt in range(5):
            self.port = free_port()
            self.config_path.write_text(self._config_yaml())
            with open(self.log_path, "ab") as log:
                self._proc = subprocess.Popen(
                    [REGISTRY_BIN, "serve", str(self.config_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            atexit.register(self.stop)
            if self._wait_ready(timeout):
                return self
            # Port taken between free_port() and bind: try another one.
            self._terminate()
        self.stop()
        raise RuntimeError(f"registry did not start:\n{self.log_path.read_text(errors='replace')[-2000:]}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        probe = self.client(authenticated=False)
        probe.timeout = 2
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                return False
            try:
                if probe.ping() in (200, 401):
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def stop(self) -> None:
        """Stop the registry and delete its storage; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._terminate()
        shutil.rmtree(self.tmpdir, ignore_errors=True)
        atexit.unregister(self.stop)

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
