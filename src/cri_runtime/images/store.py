"""Image records in containerd's image store, grouped into CRI images.

containerd holds named records (name → target descriptor); CRI speaks of
images identified by their config digest with every name as a repo tag or
repo digest. As containerd's CRI plugin does, a pulled image gets up to three
records sharing one target: the normalised tag (``docker.io/library/x:1``),
the repo digest (``docker.io/library/x@sha256:<manifest or index>``) and the
image ID (``sha256:<config>``) — so ``ctr -n k8s.io images ls`` shows it and
the ID always resolves. Records are labelled with our own key, not
``io.cri-containerd.*``.

Everything is read from containerd on demand (it is the source of truth and
survives our restarts); only the immutable content-derived facts of a target
(config digest, size, chain IDs) are cached, keyed by target digest.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import field_mask_pb2

from cri_protos.containerd.services.images.v1 import images_pb2
from cri_protos.containerd.types import descriptor_pb2
from cri_runtime import errors
from cri_runtime.containerd.connection import Containerd
from cri_runtime.images import reference
from cri_runtime.images.content_store import ContentStore
from cri_runtime.images.manifest import (
    INDEX_TYPES,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    chain_ids,
)
from cri_runtime.images.platform import Matcher

log = logging.getLogger(__name__)

LABEL_MANAGED = "io.cri-runtime.image"
LABEL_MANAGED_VALUE = "managed"
LABEL_PINNED = "io.cri-runtime.image.pinned"
LABEL_PINNED_VALUE = "pinned"
ID_PREFIX = "sha256:"


@dataclass(frozen=True)
class TargetInfo:
    """Facts derived from a record's target content (immutable, so cacheable)."""

    image_id: str
    manifest_digest: str
    config: ImageConfig
    size: int
    chain_ids: tuple[str, ...]
    layers: tuple[Descriptor, ...]


@dataclass
class ImageRecord:
    """One CRI image: its ID, all names pointing at it, and its config."""

    id: str
    names: list[str]
    target: Descriptor
    info: TargetInfo
    pinned: bool = False
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def repo_tags(self) -> list[str]:
        out = []
        for name in self.names:
            ref = reference.try_parse(name)
            if ref is not None and ref.tag and name == str(ref):
                out.append(name)
        return sorted(out)

    @property
    def repo_digests(self) -> list[str]:
        out = []
        for name in self.names:
            ref = reference.try_parse(name)
            if ref is not None and ref.digest and name == str(ref):
                out.append(name)
        return sorted(out)

    @property
    def config(self) -> dict[str, Any]:
        return self.info.config.raw

    @property
    def chain_id(self) -> str:
        """Chain ID of the top layer (the snapshot a container's rootfs is prepared from)."""
        return self.info.chain_ids[-1] if self.info.chain_ids else ""

    @property
    def size(self) -> int:
        return self.info.size


def is_image_id(text: str) -> bool:
    return text.startswith(ID_PREFIX) and reference.IDENTIFIER_RE.match(text[len(ID_PREFIX):]) is not None


def _desc_from_pb(d: Any) -> Descriptor:
    return Descriptor(media_type=d.media_type, digest=d.digest, size=int(d.size))


def desc_to_pb(d: Descriptor) -> Any:
    return descriptor_pb2.Descriptor(media_type=d.media_type, digest=d.digest, size=d.size)


class ImageStore:
    def __init__(self, ctd: Containerd, content: ContentStore, matcher: Matcher,
                 sandbox_image: str = "") -> None:
        self.ctd = ctd
        self.content = content
        self.matcher = matcher
        self.sandbox_ref = reference.normalize(sandbox_image) if sandbox_image else ""
        self._targets: dict[str, TargetInfo] = {}
        # The image list as last read, kept only while `events_live()` says containerd's
        # image events reach `invalidate` (other clients may change records too).
        self.events_live: Callable[[], bool] = lambda: False
        self._cached: list[ImageRecord] | None = None
        self._generation = 0
        self._reading: tuple[int, asyncio.Task[list[ImageRecord]]] | None = None

    def invalidate(self) -> None:
        """Forget the cached image list: a record was created, changed or deleted."""
        log.debug("image list cache dropped")
        self._generation += 1
        self._cached = None

    # -- content-derived facts ----------------------------------------------

    async def describe(self, target: Descriptor) -> TargetInfo:
        """Config digest, size and chain IDs of a target (index or manifest)."""
        cached = self._targets.get(target.digest)
        if cached is not None:
            return cached
        size = 0
        desc = target
        if desc.media_type in INDEX_TYPES:
            raw = await self.content.read(desc.digest)
            size += desc.size
            chosen = Index.parse(raw, f"index {desc.digest}").select(self.matcher)
            if chosen is None:
                raise errors.NotFound(f"index {desc.digest} has no manifest for {self.matcher.target}")
            desc = chosen
        raw = await self.content.read(desc.digest)
        manifest = Manifest.parse(raw, f"manifest {desc.digest}")
        config_raw = await self.content.read(manifest.config.digest)
        config = ImageConfig.parse(config_raw, f"config {manifest.config.digest}")
        size += desc.size + manifest.config.size + sum(ly.size for ly in manifest.layers)
        info = TargetInfo(image_id=manifest.config.digest, manifest_digest=desc.digest, config=config,
                          size=size, chain_ids=tuple(chain_ids(config.diff_ids)), layers=manifest.layers)
        self._targets[target.digest] = info
        return info

    # -- records ----------------------------------------------------------------

    async def _list_raw(self) -> list[Any]:
        resp = await self.ctd.call(self.ctd.images.List, images_pb2.ListImagesRequest(), "list images")
        return list(resp.images)

    async def list(self) -> list[ImageRecord]:
        """All images whose content is present, one entry per image ID."""
        cached = self._cached
        if cached is not None and self.events_live():
            return list(cached)
        return await self._list_fresh()

    async def _list_fresh(self) -> builtins.list[ImageRecord]:
        """Read the list from containerd; callers arriving meanwhile share that read."""
        reading = self._reading
        if reading is None or reading[0] != self._generation or reading[1].done():
            reading = self._reading = (self._generation, asyncio.ensure_future(self._read_list(self._generation)))
        return list(await asyncio.shield(reading[1]))

    async def _read_list(self, generation: int) -> builtins.list[ImageRecord]:
        raw = await self._list_raw()
        infos = await asyncio.gather(*(self._safe_describe(r) for r in raw))
        by_id: dict[str, ImageRecord] = {}
        for rec, info in zip(raw, infos, strict=True):
            if info is None:
                continue
            image = by_id.get(info.image_id)
            if image is None:
                image = by_id[info.image_id] = ImageRecord(
                    id=info.image_id, names=[], target=_desc_from_pb(rec.target), info=info)
            image.names.append(rec.name)
            image.labels.update(rec.labels)
            if rec.labels.get(LABEL_PINNED) == LABEL_PINNED_VALUE or rec.name == self.sandbox_ref:
                image.pinned = True
        images = sorted(by_id.values(), key=lambda i: i.id)
        if generation == self._generation and self.events_live():
            self._cached = images  # nothing changed while we were reading
        log.debug("image list read", extra={"fields": {"images": len(images), "cached": self._cached is images}})
        return images

    async def _safe_describe(self, rec: Any) -> TargetInfo | None:
        try:
            return await self.describe(_desc_from_pb(rec.target))
        except errors.NotFound:
            return None  # content gone or still being pulled by someone else
        except (errors.DataLoss, errors.InvalidArgument) as exc:
            log.warning("image record %s is unusable: %s", rec.name, exc)
            return None

    async def get_record(self, name: str) -> Any | None:
        try:
            resp = await self.ctd.call(self.ctd.images.Get, images_pb2.GetImageRequest(name=name),
                                       f"get image {name}")
        except errors.NotFound:
            return None
        return resp.image

    async def find(self, ref_or_id: str) -> ImageRecord | None:
        """Look an image up by ID, ID prefix, tag or digest reference; None if absent.

        A hit in the cached list is trusted; a miss is always checked with containerd
        (a record made by another client may not have been announced yet).
        """
        if not ref_or_id:
            raise errors.InvalidArgument("image reference is empty")
        if self._cached is not None and self.events_live():
            hit = self._match(self._cached, ref_or_id)
            if hit is not None:
                return hit
        image_id = ""
        if is_image_id(ref_or_id):
            image_id = ref_or_id
        else:
            ref = reference.try_parse(ref_or_id)
            if ref is not None:
                rec = await self.get_record(str(ref))
                if rec is not None:
                    info = await self._safe_describe(rec)
                    if info is not None:
                        image_id = info.image_id
        images = await self._list_fresh()
        if image_id:
            return next((i for i in images if i.id == image_id), None)
        return self._match_prefix(images, ref_or_id)

    def _match(self, images: Sequence[ImageRecord], ref_or_id: str) -> ImageRecord | None:
        if is_image_id(ref_or_id):
            return next((i for i in images if i.id == ref_or_id), None)
        ref = reference.try_parse(ref_or_id)
        if ref is not None:
            name = str(ref)
            hit = next((i for i in images if name in i.names), None)
            if hit is not None:
                return hit
        return self._match_prefix(images, ref_or_id)

    @staticmethod
    def _match_prefix(images: Sequence[ImageRecord], ref_or_id: str) -> ImageRecord | None:
        """An ID prefix, with or without "sha256:" (as docker and containerd accept)."""
        prefix = ref_or_id.removeprefix(ID_PREFIX).lower()
        if not prefix or not all(c in "0123456789abcdef" for c in prefix):
            return None
        matches = [i for i in images if i.id[len(ID_PREFIX):].startswith(prefix)]
        return matches[0] if len(matches) == 1 else None

    async def resolve(self, ref_or_id: str) -> ImageRecord:
        image = await self.find(ref_or_id)
        if image is None:
            raise errors.NotFound(f"image {ref_or_id!r} not found")
        return image

    async def put(self, name: str, target: Descriptor, labels: dict[str, str]) -> bool:
        """Create or repoint the record `name`; True if it was created."""
        image = images_pb2.Image(name=name, target=desc_to_pb(target), labels=labels)
        self.invalidate()
        try:
            await self.ctd.call(self.ctd.images.Create, images_pb2.CreateImageRequest(image=image),
                                f"create image record {name}")
            return True
        except errors.AlreadyExists:
            pass
        paths = ["target"] + [f"labels.{k}" for k in labels]
        await self.ctd.call(
            self.ctd.images.Update,
            images_pb2.UpdateImageRequest(image=image, update_mask=field_mask_pb2.FieldMask(paths=paths)),
            f"update image record {name}")
        return False

    async def delete(self, name: str, *, sync: bool = False) -> None:
        """Delete one record; already gone is fine."""
        self.invalidate()
        with contextlib.suppress(errors.NotFound):
            await self.ctd.call(self.ctd.images.Delete, images_pb2.DeleteImageRequest(name=name, sync=sync),
                                f"delete image record {name}")


def verbose_info(image: ImageRecord, snapshotter: str) -> dict[str, str]:
    """ImageStatus(verbose) info: one JSON document under "info", like containerd."""
    doc = {
        "chainID": image.chain_id,
        "imageSpec": image.config,
        "manifestDigest": image.info.manifest_digest,
        "target": {"mediaType": image.target.media_type, "digest": image.target.digest,
                   "size": image.target.size},
        "names": sorted(image.names),
        "snapshotter": snapshotter,
        "pinned": image.pinned,
    }
    return {"info": json.dumps(doc)}
