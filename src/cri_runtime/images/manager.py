"""The image business layer behind CRI's ImageService (and CreateContainer).

Pull → records → lookups. Callers pass references as users write them; the
manager normalises, pulls under a lease, and names the result the way
containerd's CRI plugin does (tag, repo digest, image ID). `ensure_image`
pulls only when missing (the sandbox image); `resolve` finds an image by ID,
ID prefix, tag or digest and exposes its config and chain IDs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from cri_runtime.config import ImageConfig as ImageSettings
from cri_runtime.containerd.connection import Containerd
from cri_runtime.images import reference
from cri_runtime.images.auth import ANONYMOUS, Credentials
from cri_runtime.images.content_store import ContentStore
from cri_runtime.images.fs_usage import FsUsageCache
from cri_runtime.images.httpclient import HttpClient
from cri_runtime.images.manifest import Descriptor
from cri_runtime.images.platform import Matcher, Platform, host_platform
from cri_runtime.images.puller import Puller
from cri_runtime.images.store import (
    LABEL_CRI_CONTAINERD_MANAGED,
    LABEL_CRI_CONTAINERD_PINNED,
    LABEL_MANAGED,
    LABEL_MANAGED_VALUE,
    LABEL_PINNED,
    LABEL_PINNED_VALUE,
    ImageRecord,
    ImageStore,
    TargetInfo,
    verbose_info,
)
from cri_runtime.images.unpack import FsUsage, Unpacker

log = logging.getLogger(__name__)


PullObserver = Callable[[bool, float, int], None]


class ImageManager:
    def __init__(self, ctd: Containerd, settings: ImageSettings, snapshotter: str,
                 *, platform: Platform | None = None, on_pull: PullObserver | None = None,
                 on_removed: Callable[[str], None] | None = None,
                 image_events_live: Callable[[], bool] = lambda: False) -> None:
        """`on_pull` is told of every pull: (succeeded, seconds, image size in bytes) - the metrics
        listen; `on_removed` the ID of every image RemoveImage removed (caches keyed by image ID
        listen); `image_events_live` whether containerd's image events reach the store now (its
        record copy is kept only then)."""
        self.ctd = ctd
        self.settings = settings
        self.snapshotter = snapshotter
        self.matcher = Matcher(platform or host_platform())
        self.http = HttpClient()
        self.content = ContentStore(ctd)
        self.unpacker = Unpacker(ctd, snapshotter)
        self.fs_usage = FsUsageCache(self.unpacker.usage)
        self.store = ImageStore(ctd, self.content, self.matcher, settings.sandbox_image,
                                events_live=image_events_live)
        self.puller = Puller(
            self.content, self.unpacker, self.http, self.matcher,
            registry_config_path=settings.registry_config_path,
            max_concurrent_downloads=settings.max_concurrent_downloads,
            progress_timeout=settings.image_pull_progress_timeout_seconds)
        self.sandbox_ref = reference.normalize(settings.sandbox_image)
        self.on_pull = on_pull
        self.on_removed = on_removed

    async def pull(self, ref_text: str, credentials: Credentials = ANONYMOUS, *,
                   pinned: bool = False) -> ImageRecord:
        """Pull `ref_text` (any docker-style spelling); returns the image."""
        started = time.monotonic()
        ok, size = False, 0
        try:
            image = await self._pull(ref_text, credentials, pinned)
            ok, size = True, int(getattr(getattr(image, "info", None), "size", 0) or 0)
            return image
        finally:
            if self.on_pull is not None:
                self.on_pull(ok, time.monotonic() - started, size)

    async def _pull(self, ref_text: str, credentials: Credentials, pinned: bool) -> ImageRecord:
        ref = reference.parse(ref_text)
        pinned = pinned or str(ref) == self.sandbox_ref
        labels = {LABEL_MANAGED: LABEL_MANAGED_VALUE, LABEL_CRI_CONTAINERD_MANAGED: LABEL_MANAGED_VALUE}
        if pinned:
            labels[LABEL_PINNED] = LABEL_PINNED_VALUE
            labels[LABEL_CRI_CONTAINERD_PINNED] = LABEL_PINNED_VALUE
        log.info("pulling %s", ref)
        resolved = await self.puller.resolve(ref, credentials)
        present = self.store.present_target(resolved.target.digest)
        if present is not None and (not present.chain_ids or await self.unpacker.exists(present.chain_ids[-1])):
            # Already here, content and snapshots held by a record: only (re)name it.
            await self._create_records(self._names(ref, resolved.target, present.image_id), resolved.target,
                                       labels)
            log.info("%s is present as %s", ref, present.image_id)
            return await self.store.resolve(present.image_id)
        async with self.ctd.lease("pull") as lease:
            result = await self.puller.pull(ref, credentials, lease, resolved)
            self.store.remember(result.target, TargetInfo(
                image_id=result.config_digest, manifest_digest=result.manifest.digest, config=result.config,
                size=result.size, chain_ids=result.chain_ids, layers=result.layers))
            await self._create_records(self._names(ref, result.target, result.config_digest), result.target,
                                       labels)
        log.info("pulled %s as %s", ref, result.config_digest)
        return await self.store.resolve(result.config_digest)

    @staticmethod
    def _names(ref: reference.Reference, target: Descriptor, image_id: str) -> list[str]:
        """The records a pulled image gets: ID, tag (if any), repo digest (as containerd's CRI)."""
        names = [image_id]
        if ref.tag:
            names.append(str(ref))
        names.append(f"{ref.name}@{target.digest}")
        return names

    async def _create_records(self, names: list[str], target: Descriptor, labels: dict[str, str]) -> None:
        """Name the image: all records at once (independent writes), or none if one fails."""
        puts = [asyncio.ensure_future(self.store.put(name, target, labels)) for name in names]
        ok = False
        try:
            await asyncio.gather(*puts)
            ok = True
        finally:
            if not ok:
                # A pull failed or cut short here must not leave a half-named image visible.
                await asyncio.shield(self._undo_records(names, puts))

    async def _undo_records(self, names: list[str], puts: list[asyncio.Task[bool]]) -> None:
        await asyncio.gather(*puts, return_exceptions=True)
        for name, put in zip(names, puts, strict=True):
            if not put.cancelled() and put.exception() is None and put.result():
                with contextlib.suppress(Exception):
                    await self.store.delete(name)

    async def ensure_image(self, ref_text: str, credentials: Credentials = ANONYMOUS) -> ImageRecord:
        """The image if present, else pulled now (used for the sandbox image)."""
        image = await self.store.find(ref_text)
        if image is not None:
            return image
        return await self.pull(ref_text, credentials, pinned=reference.normalize(ref_text) == self.sandbox_ref)

    async def resolve(self, ref_or_id: str) -> ImageRecord:
        """The image by ID, ID prefix, tag or digest; NotFound otherwise."""
        return await self.store.resolve(ref_or_id)

    async def status(self, ref_or_id: str) -> ImageRecord | None:
        return await self.store.find(ref_or_id)

    async def list(self, ref_filter: str = "") -> list[ImageRecord]:
        if ref_filter:
            image = await self.store.find(ref_filter)
            return [image] if image is not None else []
        return await self.store.list()

    async def remove(self, ref_or_id: str) -> None:
        """Remove every name of the image; not found is success."""
        image = await self.store.find(ref_or_id)
        if image is None:
            return
        # The ID record last (containerd's CRI removes the same records), with containerd's
        # garbage collection: the disk is free when RemoveImage returns.
        names = sorted(image.names, key=lambda n: n == image.id)
        if names:
            await self.store.delete_collected(names[:-1], names[-1])
        if self.on_removed is not None:
            self.on_removed(image.id)

    async def fs_info(self) -> FsUsage:
        return await self.fs_usage.get()

    def verbose_info(self, image: ImageRecord) -> dict[str, str]:
        return verbose_info(image, self.snapshotter)

    async def close(self) -> None:
        await self.fs_usage.close()
        await self.store.close()
        self.http.close()
