"""The byte-stream interfaces the streaming protocols run over.

SPDY runs over a TCP (or TLS) connection, or, for crictl's ``--transport websocket``
port-forward, over a WebSocket carrying the SPDY bytes in binary messages.  Both sides are
expressed through these two protocols so the SPDY session does not care which it has;
``asyncio.StreamReader``/``asyncio.StreamWriter`` satisfy them as they are.
"""

from __future__ import annotations

from typing import Protocol


class ByteReader(Protocol):
    async def readexactly(self, n: int) -> bytes:
        """Exactly n bytes, or ``asyncio.IncompleteReadError`` at end of stream."""
        ...


class ByteWriter(Protocol):
    def write(self, data: bytes) -> None:
        """Queue data; one call's bytes are never interleaved with another call's."""
        ...

    async def drain(self) -> None: ...

    def close(self) -> None: ...

    def is_closing(self) -> bool: ...

    async def wait_closed(self) -> None: ...


class AsyncReader(Protocol):
    """A readable stream end: ``read`` returns b"" at end of stream."""

    async def read(self, n: int = -1) -> bytes: ...


class AsyncWriter(Protocol):
    """A writable stream end: ``close`` signals end of stream to the reader."""

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class StreamClosedError(ConnectionError):
    """Writing to a stream (or connection) that the peer reset or that is closed."""
