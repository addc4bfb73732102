"""Pull one image into containerd: resolve, fetch, store, unpack.

All writes happen under one lease, so until the caller creates the image
records nothing the pull made is referenced by anything else, and a pull that
fails or is cancelled releases all of it to containerd's GC when the lease is
deleted. Blobs get the GC labels containerd's client sets; the config gets
``containerd.io/gc.ref.snapshot.<snapshotter>`` → top chain ID.

Layers download in parallel (bounded by ``max_concurrent_downloads``) and
unpack in order as soon as each one and its parent are ready. A blob being
written by a concurrent pull is waited for (per-digest lock) and then reused,
so two pulls of the same image download it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass

from cri_runtime import errors
from cri_runtime.images.auth import Credentials
from cri_runtime.images.content_store import ContentStore, ingest_ref
from cri_runtime.images.httpclient import HttpClient
from cri_runtime.images.keyed_lock import KeyedLock
from cri_runtime.images.manifest import (
    INDEX_TYPES,
    LABEL_GC_SNAPSHOT,
    LABEL_UNCOMPRESSED,
    MANIFEST_TYPES,
    MT_DOCKER_SCHEMA1,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    chain_ids,
    distribution_source_label,
    index_gc_labels,
    manifest_gc_labels,
)
from cri_runtime.images.platform import Matcher
from cri_runtime.images.reference import Reference
from cri_runtime.images.registry import RegistryClient, iter_body
from cri_runtime.images.unpack import Unpacker

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PullResult:
    target: Descriptor  # what the tag resolved to (index or manifest)
    manifest: Descriptor
    config_digest: str
    chain_id: str
    config: ImageConfig
    layers: tuple[Descriptor, ...]
    chain_ids: tuple[str, ...]
    size: int  # of everything the image references (as containerd's CRI reports it)


@dataclass(frozen=True)
class Resolved:
    """A reference resolved on its registry: the first round trip of every pull."""

    client: RegistryClient
    target: Descriptor
    raw: bytes


class ProgressWatch:
    """Counts received bytes; `stalled_for` tells how long nothing arrived."""

    def __init__(self) -> None:
        self.bytes = 0
        self.last = time.monotonic()

    def tick(self, n: int) -> None:
        self.bytes += n
        self.last = time.monotonic()

    def stalled_for(self) -> float:
        return time.monotonic() - self.last


class Puller:
    def __init__(self, content: ContentStore, unpacker: Unpacker, http: HttpClient, matcher: Matcher,
                 *, registry_config_path: str, max_concurrent_downloads: int,
                 progress_timeout: float) -> None:
        self.content = content
        self.unpacker = unpacker
        self.http = http
        self.matcher = matcher
        self.registry_config_path = registry_config_path
        self.max_concurrent_downloads = max_concurrent_downloads
        self.progress_timeout = progress_timeout
        self._blob_locks = KeyedLock()

    async def resolve(self, ref: Reference, credentials: Credentials) -> Resolved:
        """Ask the registry what `ref` names now (one manifest GET)."""
        client = RegistryClient(self.http, ref, self.registry_config_path, credentials)
        target, raw = await client.resolve()
        return Resolved(client, target, raw)

    async def pull(self, ref: Reference, credentials: Credentials, lease: str,
                   resolved: Resolved | None = None) -> PullResult:
        """Fetch and unpack `ref` under `lease`; cancels itself when progress stalls."""
        watch = ProgressWatch()
        task = asyncio.ensure_future(self._pull(ref, credentials, lease, watch, resolved))
        try:
            while True:
                timeout = None
                if self.progress_timeout > 0:
                    timeout = max(0.05, self.progress_timeout - watch.stalled_for())
                done, _ = await asyncio.wait({task}, timeout=timeout)
                if done:
                    try:
                        return task.result()
                    except errors.CriError as exc:
                        if "no space left on device" in exc.message.lower():
                            raise errors.ResourceExhausted(exc.message) from None
                        raise
                if self.progress_timeout > 0 and watch.stalled_for() >= self.progress_timeout:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                    raise errors.DeadlineExceeded(
                        f"pull {ref}: cancelled, no progress for {self.progress_timeout:g}s "
                        f"after {watch.bytes} bytes")
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, errors.CriError):
                    await task

    async def _pull(self, ref: Reference, credentials: Credentials, lease: str,
                    watch: ProgressWatch, resolved: Resolved | None) -> PullResult:
        if resolved is None:
            resolved = await self.resolve(ref, credentials)
        client, target, raw = resolved.client, resolved.target, resolved.raw
        src_key, src_val = distribution_source_label(ref.domain, ref.path)
        watch.tick(len(raw))
        manifest_desc, manifest_raw = target, raw
        if target.media_type == MT_DOCKER_SCHEMA1:
            raise errors.InvalidArgument(f"pull {ref}: Docker schema 1 images are not supported")
        if target.media_type in INDEX_TYPES:
            index = Index.parse(raw, f"index of {ref}")
            chosen = index.select(self.matcher)
            if chosen is None:
                raise errors.NotFound(
                    f"pull {ref}: no image for platform {self.matcher.target} "
                    f"(the index offers: {', '.join(index.platforms()) or 'none'})")
            manifest_desc = chosen
            manifest_raw = await client.fetch_manifest(chosen)
            watch.tick(len(manifest_raw))
            if not manifest_desc.media_type:
                manifest_desc = Descriptor(MANIFEST_TYPES_DEFAULT, chosen.digest, chosen.size)
            await self._store_bytes("index", target, raw, {**index_gc_labels(index), src_key: src_val},
                                    lease, ref)
        elif target.media_type not in MANIFEST_TYPES:
            raise errors.InvalidArgument(f"pull {ref}: unsupported manifest media type "
                                         f"{target.media_type or '(none)'}")
        manifest = Manifest.parse(manifest_raw, f"manifest of {ref}")
        config_raw = await self._read_config(client, manifest.config, lease)
        watch.tick(len(config_raw))
        config = ImageConfig.parse(config_raw, f"config of {ref}")
        if config.platform is not None and target.media_type not in INDEX_TYPES \
                and not self.matcher.matches(config.platform):
            raise errors.NotFound(f"pull {ref}: the image is for {config.platform}, not for "
                                  f"{self.matcher.target}")
        if len(config.diff_ids) != len(manifest.layers):
            raise errors.DataLoss(f"pull {ref}: manifest has {len(manifest.layers)} layers but the config "
                                  f"lists {len(config.diff_ids)} diff IDs")
        chains = chain_ids(config.diff_ids)
        top = chains[-1] if chains else ""

        config_labels = {f"{LABEL_GC_SNAPSHOT}.{self.unpacker.snapshotter}": top} if top else {}
        # Everything is held by the lease until the records exist, so the small blobs
        # need not wait for the layers: store them while the layers download.
        await _all(
            self._fetch_and_unpack(client, ref, manifest, config, chains, lease, watch, {src_key: src_val}),
            self._store_bytes("config", manifest.config, config_raw, config_labels, lease, ref),
            self._store_bytes("manifest", manifest_desc, manifest_raw,
                              {**manifest_gc_labels(manifest), src_key: src_val}, lease, ref))
        size = manifest_desc.size + manifest.config.size + sum(ly.size for ly in manifest.layers)
        if target.media_type in INDEX_TYPES:
            size += target.size
        return PullResult(target=target, manifest=manifest_desc, config_digest=manifest.config.digest,
                          chain_id=top, config=config, layers=tuple(manifest.layers), chain_ids=tuple(chains),
                          size=size)

    async def _read_config(self, client: RegistryClient, desc: Descriptor, lease: str) -> bytes:
        if await self.content.info(desc.digest) is not None:
            with contextlib.suppress(errors.NotFound):
                await self.content.add_to_lease(lease, desc.digest)
                return await self.content.read(desc.digest)
        return await client.read_blob(desc)

    async def _store_bytes(self, kind: str, desc: Descriptor, data: bytes, labels: dict[str, str],
                           lease: str, ref: Reference) -> None:
        """Put a small blob we hold in memory (index, manifest, config) into the store."""
        async with self._blob_locks.hold(desc.digest):
            # Written straight away: when containerd has the blob already it says so, and has
            # added it to the lease; only then is it worth reading its labels.
            if await self.content.commit_whole(ingest_ref(kind, desc.digest), desc, data, labels, lease,
                                               f"pull {ref}: store {kind} {desc.digest}"):
                return
            info = await self.content.info(desc.digest)
            if info is not None:
                await self.content.label_missing(info, labels)

    async def _fetch_layer(self, client: RegistryClient, ref: Reference, layer: Descriptor,
                           labels: dict[str, str], lease: str, watch: ProgressWatch) -> None:
        what = f"pull {ref}: layer {layer.digest}"
        async with self._blob_locks.hold(layer.digest):
            info = await self.content.info(layer.digest)
            if info is not None:
                await self.content.add_to_lease(lease, layer.digest)
                await self.content.label_missing(info, labels)
                return

            async def opener(offset: int) -> tuple[AsyncIterator[bytes], int]:
                resp, start = await client.open_blob(layer, offset)
                return iter_body(resp, what), start

            await self.content.ingest(ingest_ref("layer", layer.digest), layer, opener, labels, lease,
                                      what, on_progress=watch.tick)

    async def _fetch_and_unpack(self, client: RegistryClient, ref: Reference, manifest: Manifest,
                                config: ImageConfig, chains: list[str], lease: str, watch: ProgressWatch,
                                extra_labels: dict[str, str]) -> None:
        sem = asyncio.Semaphore(self.max_concurrent_downloads)

        async def download(i: int) -> None:
            layer = manifest.layers[i]
            labels = {LABEL_UNCOMPRESSED: config.diff_ids[i], **extra_labels}
            async with sem:
                await self._fetch_layer(client, ref, layer, labels, lease, watch)

        downloads = [asyncio.ensure_future(download(i)) for i in range(len(manifest.layers))]
        try:
            parent = ""
            for i, layer in enumerate(manifest.layers):
                # Fail fast: a later layer's failure need not wait for earlier unpacks.
                for d in downloads:
                    if d.done() and not d.cancelled() and d.exception() is not None:
                        await d
                await downloads[i]
                await self.unpacker.ensure_layer(layer, config.diff_ids[i], chains[i], parent, lease,
                                                 f"pull {ref}")
                watch.tick(0)
                parent = chains[i]
            await asyncio.gather(*downloads)
        finally:
            for d in downloads:
                if not d.done():
                    d.cancel()
            if downloads:
                await asyncio.gather(*downloads, return_exceptions=True)


MANIFEST_TYPES_DEFAULT = "application/vnd.oci.image.manifest.v1+json"


async def _all(*steps: Awaitable[None]) -> None:
    """Run the steps concurrently; the first failure cancels the rest and is raised."""
    tasks = [asyncio.ensure_future(s) for s in steps]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            if not t.done():
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
