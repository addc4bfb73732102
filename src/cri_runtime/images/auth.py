"""Registry credentials and the authentication handshake.

A registry answers 401 with a ``WWW-Authenticate`` challenge: ``Basic`` (send
the user's credentials directly) or ``Bearer`` (fetch a token from the named
realm for the requested scope, then send it). CRI's AuthConfig carries the
credentials in several forms — username/password, ``auth`` (base64
"user:password"), an identity (refresh) token, or a registry token to send as
is. Secrets live only in `Credentials` (whose repr hides them) and in request
headers; they never go into a log line or an error message.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from cri_runtime import errors
from cri_runtime.images.hosts import RegistryHost
from cri_runtime.images.httpclient import HttpClient, HttpError, Response

log = logging.getLogger(__name__)

TOKEN_CLIENT_ID = "cri-runtime"
DEFAULT_TOKEN_LIFETIME = 60.0


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lowercase: "bearer", "basic"
    params: dict[str, str]


def parse_www_authenticate(value: str) -> list[Challenge]:
    """Parse a WWW-Authenticate header into challenges (RFC 7235, leniently)."""
    out: list[Challenge] = []
    i, n = 0, len(value)
    current: Challenge | None = None
    while i < n:
        while i < n and value[i] in " \t,":
            i += 1
        start = i
        while i < n and value[i] not in " \t,=":
            i += 1
        token = value[start:i]
        if not token:
            break
        j = i
        while j < n and value[j] in " \t":
            j += 1
        if j < n and value[j] == "=" and current is not None:
            i = j + 1
            while i < n and value[i] in " \t":
                i += 1
            if i < n and value[i] == '"':
                i += 1
                chars: list[str] = []
                while i < n and value[i] != '"':
                    if value[i] == "\\" and i + 1 < n:
                        i += 1
                    chars.append(value[i])
                    i += 1
                i += 1
                param = "".join(chars)
            else:
                start = i
                while i < n and value[i] not in " \t,":
                    i += 1
                param = value[start:i]
            current.params[token.lower()] = param
        else:
            current = Challenge(token.lower(), {})
            out.append(current)
            i = j
    return out


@dataclass(frozen=True)
class Credentials:
    """What the caller gave us to authenticate with (any field may be empty)."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)
    registry_token: str = field(default="", repr=False)
    server_address: str = ""

    def __repr__(self) -> str:
        return (f"Credentials(username={self.username!r}, server_address={self.server_address!r}, "
                f"secret={'set' if self.has_secret else 'none'})")

    @property
    def has_secret(self) -> bool:
        return bool(self.password or self.identity_token or self.registry_token)

    @property
    def anonymous(self) -> bool:
        return not (self.username or self.has_secret)

    @classmethod
    def from_auth_config(cls, username: str = "", password: str = "", auth: str = "",
                         server_address: str = "", identity_token: str = "",
                         registry_token: str = "") -> Credentials:
        """Build from CRI AuthConfig fields; `auth` is base64("user:password")."""
        if auth and not username:
            try:
                decoded = base64.b64decode(auth, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise errors.InvalidArgument("auth config: 'auth' is not valid base64") from None
            user, sep, secret = decoded.partition(":")
            if not sep:
                raise errors.InvalidArgument("auth config: decoded 'auth' is not of the form user:password")
            username, password = user, secret.strip("\x00")
        return cls(username=username, password=password, identity_token=identity_token,
                   registry_token=registry_token, server_address=server_address)

    def applies_to(self, host: str) -> bool:
        """A server_address, when given, limits the credentials to that host."""
        if not self.server_address:
            return True
        addr = self.server_address
        netloc = urlsplit(addr).netloc if "://" in addr else addr.split("/", 1)[0]
        return netloc == host


ANONYMOUS = Credentials()


@dataclass
class _Token:
    value: str
    expires: float


def registry_error_message(body: bytes) -> str:
    """The human part of a registry's JSON error body (``errors[].message``), if any."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        text = body.decode("utf-8", "replace").strip()
        return text[:200]
    if isinstance(data, dict):
        errs = data.get("errors")
        if isinstance(errs, list):
            msgs = []
            for e in errs:
                if isinstance(e, dict):
                    code, msg = e.get("code", ""), e.get("message", "")
                    msgs.append(f"{code}: {msg}" if code and msg else str(code or msg))
            if msgs:
                return "; ".join(msgs)
        for key in ("message", "error", "details"):
            if isinstance(data.get(key), str):
                return str(data[key])
    return ""


class Authorizer:
    """Per-pull authentication state: challenges seen and tokens fetched, per host."""

    def __init__(self, http: HttpClient, credentials: Credentials) -> None:
        self.http = http
        self.credentials = credentials
        self._challenges: dict[str, Challenge] = {}
        self._tokens: dict[tuple[str, str], _Token] = {}

    def _creds_for(self, host: str) -> Credentials:
        return self.credentials if self.credentials.applies_to(host) else ANONYMOUS

    def header(self, host: RegistryHost, scope: str) -> str | None:
        """The Authorization header to send to `host`, if known already."""
        creds = self._creds_for(host.host)
        challenge = self._challenges.get(host.host)
        if challenge is None:
            if creds.registry_token:
                return f"Bearer {creds.registry_token}"
            return None
        if challenge.scheme == "basic":
            return _basic(creds) if creds.username else None
        token = self._tokens.get((host.host, scope))
        if token and token.expires > time.monotonic():
            return f"Bearer {token.value}"
        return None

    async def on_unauthorized(self, host: RegistryHost, scope: str, resp_headers: list[str],
                              what: str) -> bool:
        """Handle a 401: learn the challenge, fetch a token. False if nothing more to try."""
        challenges = [c for h in resp_headers for c in parse_www_authenticate(h)]
        creds = self._creds_for(host.host)
        for challenge in challenges:
            if challenge.scheme == "bearer":
                previous = self._tokens.get((host.host, scope))
                if previous is not None and self._challenges.get(host.host) == challenge:
                    return False  # a fresh token was refused already
                self._challenges[host.host] = challenge
                if creds.registry_token and "realm" not in challenge.params:
                    return False
                token = await self._fetch_token(host, challenge, scope, creds, what)
                self._tokens[(host.host, scope)] = token
                return True
            if challenge.scheme == "basic":
                if not creds.username or self._challenges.get(host.host) == challenge:
                    return False
                self._challenges[host.host] = challenge
                return True
        return False

    async def _fetch_token(self, host: RegistryHost, challenge: Challenge, scope: str,
                           creds: Credentials, what: str) -> _Token:
        realm = challenge.params.get("realm", "")
        if not realm.startswith(("http://", "https://")):
            raise errors.Unauthenticated(f"{what}: registry {host.host} sent a bearer challenge "
                                         "without a usable realm")
        service = challenge.params.get("service", "")
        scopes = [s for s in (challenge.params.get("scope", ""), scope) if s]
        scopes = list(dict.fromkeys(scopes))
        ssl_ctx = host.ssl_context() if realm.startswith("https://") and \
            urlsplit(realm).netloc == host.host else None
        resp: Response
        try:
            if creds.identity_token:
                form = [("grant_type", "refresh_token"), ("refresh_token", creds.identity_token),
                        ("client_id", TOKEN_CLIENT_ID)]
                if service:
                    form.append(("service", service))
                form += [("scope", s) for s in scopes]
                resp = await self.http.request(
                    "POST", realm, {"Content-Type": "application/x-www-form-urlencoded"},
                    urlencode(form).encode(), ssl_ctx=ssl_ctx)
            else:
                query = ([("service", service)] if service else []) + [("scope", s) for s in scopes]
                url = realm + ("&" if "?" in realm else "?") + urlencode(query) if query else realm
                headers = {"Authorization": _basic(creds)} if creds.username else {}
                resp = await self.http.request("GET", url, headers, ssl_ctx=ssl_ctx)
            body = await resp.read(1 << 20)
        except HttpError as exc:
            raise errors.Unavailable(f"{what}: cannot reach the token service of {host.host}: "
                                     f"{exc}") from None
        if resp.status in (401, 403):
            detail = registry_error_message(body)
            cls = errors.Unauthenticated if resp.status == 401 else errors.PermissionDenied
            raise cls(f"{what}: the token service of {host.host} refused the credentials"
                      + (f": {detail}" if detail else f" (HTTP {resp.status})"))
        if resp.status != 200:
            raise errors.Unavailable(f"{what}: token service of {host.host} answered HTTP {resp.status}"
                                     + (f": {registry_error_message(body)}" if body else ""))
        try:
            data = json.loads(body)
            value = data.get("token") or data.get("access_token")
            lifetime = float(data.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError):
            value, lifetime = None, 0.0
        if not isinstance(value, str) or not value:
            raise errors.Unauthenticated(f"{what}: token service of {host.host} returned no token")
        # Refresh a little early so a long pull does not trip on expiry mid-blob.
        return _Token(value, time.monotonic() + max(lifetime - 10.0, lifetime / 2))


def _basic(creds: Credentials) -> str:
    raw = f"{creds.username}:{creds.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()
