"""ImageFsInfo figures: the first call walks, later ones answer at once and refresh in the background."""

from __future__ import annotations

import asyncio

from cri_runtime.images.fs_usage import FsUsageCache
from cri_runtime.images.unpack import FsUsage


class Walker:
    """Counts walks; each returns the walk number as used_bytes."""

    def __init__(self) -> None:
        self.walks = 0
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self) -> FsUsage:
        self.walks += 1
        n = self.walks
        await self.release.wait()
        return FsUsage(mountpoint="/x", used_bytes=n, inodes_used=n, timestamp_ns=n)


def test_first_call_walks_once_for_all_callers_then_answers_from_memory() -> None:
    async def run() -> None:
        walker = Walker()
        cache = FsUsageCache(walker, max_age=60)
        walker.release.clear()
        calls = [asyncio.ensure_future(cache.get()) for _ in range(5)]
        await asyncio.sleep(0)
        walker.release.set()
        assert {u.used_bytes for u in await asyncio.gather(*calls)} == {1}
        assert (await cache.get()).used_bytes == 1
        assert walker.walks == 1
        await cache.close()

    asyncio.run(run())


def test_old_or_stale_figures_are_answered_while_one_refresh_runs() -> None:
    async def run() -> None:
        walker = Walker()
        cache = FsUsageCache(walker, max_age=0.01)
        assert (await cache.get()).used_bytes == 1
        await asyncio.sleep(0.02)  # the figures are now older than max_age
        walker.release.clear()
        assert (await cache.get()).used_bytes == 1  # the old figures, at once
        await asyncio.sleep(0)
        assert (await cache.get()).used_bytes == 1  # still refreshing: no third walk
        await asyncio.sleep(0)
        assert walker.walks == 2
        walker.release.set()
        for _ in range(10):
            await asyncio.sleep(0)
        assert (await cache.get()).used_bytes == 2
        await cache.close()

    asyncio.run(run())
