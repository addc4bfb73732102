"""The per-call context handed to servicer methods.

It offers the part of `grpc.aio.ServicerContext` our services use (abort,
peer, initial metadata, invocation metadata, time remaining), so the
servicers are written exactly as for grpcio's server.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import NoReturn

import grpc


class AbortError(Exception):
    """Raised by `abort` to end the call with a status; the connection catches it."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, details)
        self.code = code
        self.details = details


class ServicerContext:
    """What a handler may ask of, or do to, its call."""

    def __init__(
        self,
        peer: str,
        metadata: tuple[tuple[str, str], ...],
        deadline: float | None,
        send_headers: Callable[[Sequence[tuple[str, str]]], Awaitable[None]],
    ) -> None:
        self._peer = peer
        self._metadata = metadata
        self._deadline = deadline
        self._send_headers = send_headers
        self.cancelled_by_peer = False

    async def abort(self, code: grpc.StatusCode, details: str = "",
                    trailing_metadata: Sequence[tuple[str, str]] = ()) -> NoReturn:
        if code is grpc.StatusCode.OK:
            code = grpc.StatusCode.UNKNOWN  # as grpcio: abort must carry an error
        raise AbortError(code, details)

    def peer(self) -> str:
        return self._peer

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    async def send_initial_metadata(self, metadata: Sequence[tuple[str, str]]) -> None:
        """Send the response headers now (a stream uses this to say it is live)."""
        await self._send_headers(metadata)

    def time_remaining(self) -> float | None:
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def cancelled(self) -> bool:
        return self.cancelled_by_peer
