"""Registry host configuration in containerd's ``hosts.toml`` directory format.

Operators already keep registry mirrors and certificates under
``/etc/containerd/certs.d``; reading that tree exactly as containerd's
``remotes/docker/config`` does lets them reuse it unchanged:

- the directory for a registry is the first of ``<root>/<host>_<port>_``
  (only for a host with a port), ``<root>/<host>``, ``<root>/_default`` that
  exists;
- in it, ``hosts.toml`` lists ``[host."<url>"]`` tables — tried first, in file
  order — and top-level keys for the upstream ``server``, which comes last; a
  missing ``server`` means the registry itself (``registry-1.docker.io`` for
  docker.io) over https with every capability;
- without ``hosts.toml`` (or when it cannot be parsed) the directory may hold
  Docker-style certificates: ``*.crt`` CAs, ``*.cert`` client certificates with
  their ``*.key``;
- a host only resolves tags when it has the ``resolve`` capability and only
  serves blobs when it has ``pull``.
"""

from __future__ import annotations

import logging
import os
import posixpath
import ssl
import tomllib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cri_runtime import errors

log = logging.getLogger(__name__)

CAP_PULL = "pull"
CAP_RESOLVE = "resolve"
CAP_PUSH = "push"
ALL_CAPABILITIES = frozenset({CAP_PULL, CAP_RESOLVE, CAP_PUSH})

DOCKER_IO = "docker.io"
DOCKER_IO_ENDPOINT = "registry-1.docker.io"


@dataclass(frozen=True)
class RegistryHost:
    """One endpoint to try for a registry: a mirror or the upstream itself."""

    scheme: str
    host: str  # host[:port] as it goes into the URL and the Host header
    path: str  # API root, normally "/v2"
    capabilities: frozenset[str] = ALL_CAPABILITIES
    ca_files: tuple[str, ...] = ()
    client_pairs: tuple[tuple[str, str], ...] = ()
    skip_verify: bool | None = None
    headers: tuple[tuple[str, str], ...] = ()
    # True for the registry's own endpoint chosen by default (not from a file):
    # https towards a loopback registry then falls back to plain http.
    implicit: bool = False

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}{self.path}"

    def can(self, capability: str) -> bool:
        return capability in self.capabilities

    def ssl_context(self) -> ssl.SSLContext | None:
        """TLS settings for this endpoint (None for plain http).

        Contexts are shared between pulls (the connection pool is keyed by
        context, so a fresh one per pull would defeat keep-alive and pile up
        idle sockets); an edited CA or client file gives a new one.
        """
        if self.scheme != "https":
            return None
        stamp = tuple(_mtime(p) for p in (*self.ca_files, *(c for pair in self.client_pairs for c in pair)))
        key = (self, stamp)
        ctx = _SSL_CONTEXTS.get(key)
        if ctx is None:
            if len(_SSL_CONTEXTS) >= _SSL_CACHE_MAX:
                _SSL_CONTEXTS.clear()
            ctx = _SSL_CONTEXTS[key] = self._new_ssl_context()
        return ctx

    def _new_ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        for ca in self.ca_files:
            try:
                ctx.load_verify_locations(cafile=ca)
            except (OSError, ssl.SSLError) as exc:
                raise errors.InvalidArgument(f"registry {self.host}: cannot load CA {ca}: {exc}") from None
        for cert, key in self.client_pairs:
            try:
                ctx.load_cert_chain(cert, key or None)
            except (OSError, ssl.SSLError) as exc:
                raise errors.InvalidArgument(
                    f"registry {self.host}: cannot load client certificate {cert}: {exc}") from None
        if self.skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx


_SSL_CACHE_MAX = 64
_SSL_CONTEXTS: dict[tuple[RegistryHost, tuple[float, ...]], ssl.SSLContext] = {}


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime if path else 0.0
    except OSError:
        return -1.0


@dataclass
class _HostEntry:
    """A parsed table before defaults are filled in (host may be empty)."""

    scheme: str = ""
    host: str = ""
    path: str = ""
    capabilities: frozenset[str] = ALL_CAPABILITIES
    ca_files: list[str] = field(default_factory=list)
    client_pairs: list[tuple[str, str]] = field(default_factory=list)
    skip_verify: bool | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)


def host_directory_candidates(root: str, host: str) -> list[str]:
    """Directories searched for `host`, most specific first (":port" → "_port_")."""
    out: list[str] = []
    idx = host.rfind(":")
    if idx > 0:
        out.append(os.path.join(root, f"{host[:idx]}_{host[idx + 1:]}_"))
    out.append(os.path.join(root, host))
    out.append(os.path.join(root, "_default"))
    return out


def find_host_dir(root: str, host: str) -> str | None:
    for path in host_directory_candidates(root, host):
        if os.path.exists(path):
            return path
    return None


def _abs(path: str, base: str) -> str:
    return path if os.path.isabs(path) else os.path.join(base, path)


def _string_list(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(f"{where}: expected a string or a list of strings")


def _parse_entry(server: str, base_dir: str, table: dict[str, Any], where: str) -> _HostEntry:
    entry = _HostEntry()
    override_path = bool(table.get("override_path", False))
    if server:
        if not server.startswith("http"):
            server = "https://" + server
        url = urlsplit(server)
        if not url.netloc:
            raise ValueError(f"{where}: cannot parse server {server!r}")
        entry.scheme, entry.host = url.scheme, url.netloc
        path = url.path
        if path:
            path = posixpath.normpath(path)
            if not path.endswith("/v2") and not override_path:
                path += "/v2"
        elif not override_path:
            path = "/v2"
        entry.path = path
    skip = table.get("skip_verify")
    if skip is not None and not isinstance(skip, bool):
        raise ValueError(f"{where}.skip_verify: expected a boolean")
    entry.skip_verify = skip
    caps = table.get("capabilities")
    if caps:
        names = {c.lower() for c in _string_list(caps, f"{where}.capabilities")}
        unknown = names - ALL_CAPABILITIES
        if unknown:
            raise ValueError(f"{where}.capabilities: unknown capability {sorted(unknown)[0]!r}")
        entry.capabilities = frozenset(names)
    if "ca" in table:
        entry.ca_files = [_abs(p, base_dir) for p in _string_list(table["ca"], f"{where}.ca")]
    if "client" in table:
        client = table["client"]
        items = [client] if isinstance(client, str) else client
        if not isinstance(items, list):
            raise ValueError(f"{where}.client: expected a string or a list")
        for item in items:
            if isinstance(item, str):
                entry.client_pairs.append((_abs(item, base_dir), ""))
            elif isinstance(item, list) and len(item) == 2 and all(isinstance(s, str) for s in item):
                entry.client_pairs.append((_abs(item[0], base_dir), _abs(item[1], base_dir)))
            else:
                raise ValueError(f"{where}.client: invalid pair {item!r}")
    headers = table.get("header")
    if headers is not None:
        if not isinstance(headers, dict):
            raise ValueError(f"{where}.header: expected a table")
        for key, value in headers.items():
            for v in _string_list(value, f"{where}.header.{key}"):
                entry.headers.append((key, v))
    return entry


def parse_hosts_toml(text: str, base_dir: str) -> list[_HostEntry]:
    """Parse a hosts.toml: mirrors in file order, then the (possibly empty) server."""
    data = tomllib.loads(text)
    where = os.path.join(base_dir, "hosts.toml")
    entries: list[_HostEntry] = []
    hosts = data.get("host", {})
    if not isinstance(hosts, dict):
        raise ValueError(f"{where}: host must be a table")
    for name, table in hosts.items():
        if not isinstance(table, dict):
            raise ValueError(f"{where}: host.{name!r} must be a table")
        entries.append(_parse_entry(name, base_dir, table, f"{where} host.{name!r}"))
    server = data.get("server", "")
    if not isinstance(server, str):
        raise ValueError(f"{where}: server must be a string")
    entries.append(_parse_entry(server, base_dir, data, where))
    return entries


def _load_cert_files(directory: str) -> list[_HostEntry]:
    entry = _HostEntry()
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        names = []
    for name in names:
        path = os.path.join(directory, name)
        if os.path.isdir(path):
            continue
        if name.endswith(".crt"):
            entry.ca_files.append(path)
        if name.endswith(".cert"):
            key = os.path.join(directory, name[: -len(".cert")] + ".key")
            entry.client_pairs.append((path, key if os.path.exists(key) else ""))
    return [entry]


def _load_dir(directory: str) -> list[_HostEntry]:
    try:
        with open(os.path.join(directory, "hosts.toml"), "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raw = b""
    except IsADirectoryError:
        raw = b""
    if not raw:
        return _load_cert_files(directory)
    try:
        return parse_hosts_toml(raw.decode(), directory)
    except (ValueError, UnicodeDecodeError) as exc:  # tomllib.TOMLDecodeError is a ValueError
        log.error("failed to decode %s/hosts.toml, using its certificate files only: %s", directory, exc)
        return _load_cert_files(directory)


def registry_hosts(config_root: str, registry: str) -> list[RegistryHost]:
    """The endpoints to try for `registry` (a reference's domain), in order."""
    entries: list[_HostEntry] | None = None
    if config_root:
        directory = find_host_dir(config_root, registry)
        if directory:
            log.debug("registry %s: loading host directory %s", registry, directory)
            entries = _load_dir(directory)
    if entries is None:
        entries = [_HostEntry()]
    implicit = False
    if entries and not entries[-1].host:
        last = entries[-1]
        if registry == DOCKER_IO:
            last.host = DOCKER_IO_ENDPOINT
        else:
            last.host = registry
        last.scheme = "https"
        last.path = "/v2"
        last.capabilities = ALL_CAPABILITIES
        implicit = True
    out: list[RegistryHost] = []
    for i, e in enumerate(entries):
        out.append(RegistryHost(
            scheme=e.scheme, host=e.host, path=e.path, capabilities=e.capabilities,
            ca_files=tuple(e.ca_files), client_pairs=tuple(e.client_pairs),
            skip_verify=e.skip_verify, headers=tuple(e.headers),
            implicit=implicit and i == len(entries) - 1,
        ))
    return out


def is_loopback_host(host: str) -> bool:
    """True for localhost / 127.0.0.0/8 / ::1, with or without a port."""
    name = host
    if name.startswith("["):
        name = name[1:name.find("]")]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    return name == "localhost" or name.startswith("127.") or name == "::1"
