"""The first terminal size of a TTY session, before the process starts.

Clients send the terminal size right after the streams are set up; a process
started before it arrives sees a 0x0 terminal (`stty size` prints "0 0").
Backends wait briefly for that first size and create the terminal with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from cri_runtime.streaming.remotecommand import TerminalSize

INITIAL_SIZE_WAIT = 1.0


async def split_initial_size(
    sizes: AsyncIterator[TerminalSize], timeout: float = INITIAL_SIZE_WAIT
) -> tuple[TerminalSize | None, AsyncIterator[TerminalSize]]:
    """(first size if it came within `timeout`, the sizes still to come)."""
    iterator = aiter(sizes)
    first = asyncio.ensure_future(anext(iterator))
    done, _ = await asyncio.wait({first}, timeout=timeout)
    if first in done:
        if first.exception() is not None:  # StopAsyncIteration: no sizes at all
            return None, _empty()
        return first.result(), iterator
    return None, _late(first, iterator)


async def _empty() -> AsyncIterator[TerminalSize]:
    return
    yield  # pragma: no cover


async def _late(first: asyncio.Future[TerminalSize], rest: AsyncIterator[TerminalSize]) -> AsyncIterator[TerminalSize]:
    try:
        yield await first
    except StopAsyncIteration:
        return
    finally:
        if not first.done():
            first.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await first
    async for size in rest:
        yield size
