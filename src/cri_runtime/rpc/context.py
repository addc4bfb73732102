"""The per-call context handed to servicer methods.

It offers the part of grpcio's `ServicerContext` our services use (abort,
peer, initial metadata, invocation metadata, time remaining), so the
servicers read as they would under grpcio's server.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import NoReturn

from cri_runtime.h2.status import StatusCode


class AbortError(Exception):
    """Raised by `abort` to end the call with a status; the connection catches it."""

    def __init__(self, code: StatusCode, details: str) -> None:
        super().__init__(code, details)
        self.code = code
        self.details = details


class Serialized:
    """A response a handler has already encoded (e.g. assembled from cached entries).

    The transport sends `data` as the message as is, so a list answer can be
    joined from per-item bytes instead of copying and re-encoding every item.
    """

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class ServicerContext:
    """What a handler may ask of, or do to, its call."""

    def __init__(
        self,
        peer: str,
        headers: dict[bytes, bytes],
        deadline: float | None,
        send_headers: Callable[[Sequence[tuple[str, str]]], Awaitable[None]],
    ) -> None:
        self._peer = peer
        self._headers = headers
        self._deadline = deadline
        self._send_headers = send_headers
        self.cancelled_by_peer = False

    async def abort(self, code: StatusCode, details: str = "",
                    trailing_metadata: Sequence[tuple[str, str]] = ()) -> NoReturn:
        if code is StatusCode.OK:
            code = StatusCode.UNKNOWN  # as grpcio: abort must carry an error
        raise AbortError(code, details)

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return metadata_from_headers(self._headers)

    async def send_initial_metadata(self, metadata: Sequence[tuple[str, str]]) -> None:
        """Send the response headers now (a stream uses this to say it is live)."""
        await self._send_headers(metadata)

    def time_remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def cancelled(self) -> bool:
        return self.cancelled_by_peer


_NOT_METADATA = frozenset((b"content-type", b"te", b"grpc-timeout", b"grpc-encoding", b"grpc-accept-encoding"))


def metadata_from_headers(headers: dict[bytes, bytes]) -> tuple[tuple[str, str], ...]:
    """Custom metadata as grpcio presents it (binary values base64-decoded, as str)."""
    out = []
    for name, value in headers.items():
        if name.startswith(b":") or name in _NOT_METADATA:
            continue
        key = name.decode("latin-1")
        if key.endswith("-bin"):
            try:
                text = base64.b64decode(value + b"=" * (-len(value) % 4)).decode("latin-1")
            except ValueError:
                continue
        else:
            text = value.decode("latin-1")
        out.append((key, text))
    return tuple(out)
