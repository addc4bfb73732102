"""ImageFsInfo's answer, kept fresh in the background.

Walking every snapshot's usage costs one containerd call per snapshot, too much
for kubelet's periodic ImageFsInfo. containerd's CRI answers from figures its
snapshot syncer collects every 10 s; so do we: a call gets the last figures and,
when they are older than `max_age`, starts one refresh for the calls after it.
Only the first call (nothing known yet) waits for a walk. Pulls and removals do
not force a walk: one running beside kubelet's next calls slows them down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from cri_runtime.images.unpack import FsUsage

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE = 10.0  # seconds, containerd's CRI stats collect period


class FsUsageCache:
    def __init__(self, walk: Callable[[], Awaitable[FsUsage]], max_age: float = DEFAULT_MAX_AGE) -> None:
        self._walk = walk
        self.max_age = max_age
        self._value: FsUsage | None = None
        self._taken = 0.0
        self._refreshing: asyncio.Task[FsUsage] | None = None

    async def get(self) -> FsUsage:
        if self._value is None:
            return await asyncio.shield(self._refresh())
        if time.monotonic() - self._taken > self.max_age:
            self._refresh()
        return self._value

    def _refresh(self) -> asyncio.Task[FsUsage]:
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._take())
            self._refreshing.add_done_callback(_log_failure)
        return self._refreshing

    async def _take(self) -> FsUsage:
        started = time.monotonic()
        usage = await self._walk()
        self._value, self._taken = usage, started
        return usage

    async def close(self) -> None:
        if self._refreshing is not None and not self._refreshing.done():
            self._refreshing.cancel()
            with contextlib.suppress(BaseException):
                await self._refreshing


def _log_failure(task: asyncio.Task[FsUsage]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("image filesystem usage refresh failed: %s", task.exception())
