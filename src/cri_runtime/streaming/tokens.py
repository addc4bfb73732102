"""Single-use, short-lived tokens that stand for a cached exec/attach/port-forward request.

The CRI Exec/Attach/PortForward RPCs only return a URL; kubelet (or crictl) then connects to
it.  The token in that URL is the only link between the two, so it is random, usable once,
and expires after a minute (kubelet's streaming server uses the same rules).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from cri_runtime.errors import ResourceExhausted

T = TypeVar("T")

DEFAULT_TTL = 60.0
DEFAULT_MAX_IN_FLIGHT = 1000


@dataclass
class _Entry(Generic[T]):
    expires: float
    value: T


class TokenCache(Generic[T]):
    def __init__(self, ttl: float = DEFAULT_TTL, max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.max_in_flight = max_in_flight
        self._clock = clock
        self._entries: OrderedDict[str, _Entry[T]] = OrderedDict()

    def __len__(self) -> int:
        self._gc()
        return len(self._entries)

    def insert(self, value: T) -> str:
        """Store ``value``; returns its URL-safe token.  ResourceExhausted when too many wait."""
        self._gc()
        if len(self._entries) >= self.max_in_flight:
            raise ResourceExhausted("maximum number of in-flight streaming requests reached")
        while True:
            token = secrets.token_urlsafe(12)
            if token not in self._entries:
                break
        self._entries[token] = _Entry(self._clock() + self.ttl, value)
        return token

    def peek(self, token: str) -> T | None:
        """The value for ``token`` without using it up (None if unknown or expired).

        The server checks a request against the cached one before consuming the
        token, so a malformed request cannot burn a valid token.
        """
        entry = self._entries.get(token)
        if entry is None or self._clock() > entry.expires:
            return None
        return entry.value

    def consume(self, token: str) -> T | None:
        """The value for ``token`` (removing it), or None if unknown, used or expired."""
        entry = self._entries.pop(token, None)
        if entry is None or self._clock() > entry.expires:
            return None
        return entry.value

    def _gc(self) -> None:
        now = self._clock()
        while self._entries:
            token, entry = next(iter(self._entries.items()))
            if entry.expires >= now:
                return
            del self._entries[token]
