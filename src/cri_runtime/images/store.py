"""Image records in containerd's image store, grouped into CRI images.

containerd holds named records (name → target descriptor); CRI speaks of
images identified by their config digest with every name as a repo tag or
repo digest. As containerd's CRI plugin does, a pulled image gets up to three
records sharing one target: the normalised tag (``docker.io/library/x:1``),
the repo digest (``docker.io/library/x@sha256:<manifest or index>``) and the
image ID (``sha256:<config>``) — so ``ctr -n k8s.io images ls`` shows it and
the ID always resolves. Records are labelled with our own key and with
containerd's (``io.cri-containerd.image=managed``: its CRI plugin, should it run
on the same containerd, would otherwise rewrite each record to add it); pinning
honours containerd's ``io.cri-containerd.pinned`` label as well.

containerd is the source of truth. While its image events reach us
(`events_live`), the store keeps a copy of every record and the images
grouped from it, as containerd's CRI plugin keeps its image store:

- our own writes are applied to the copy when containerd confirms them, and
  the event each one causes is recognised and skipped;
- any other client's change (``ctr images tag``, ``rm``, ``pull``) arrives as
  an event naming the record, which is then re-read alone (Images.Get);
- a lookup that misses is checked with containerd before answering "absent"
  (a record made elsewhere may not have been announced yet).

Without live events nothing is kept and every call reads containerd. The
immutable content-derived facts of a target (config digest, size, chain IDs)
are cached by target digest either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
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
# containerd's CRI plugin, when it runs on the same containerd (side-by-side
# benchmarks, a migration), relabels every record lacking its own key with it,
# several writes per pull; records we create carry it from the start.
LABEL_CRI_CONTAINERD_MANAGED = "io.cri-containerd.image"
LABEL_PINNED = "io.cri-runtime.image.pinned"
# containerd's CRI plugin pins with this label (its sandbox image, and images an
# operator labels): kubelet's image GC never removes an image reported pinned.
LABEL_CRI_CONTAINERD_PINNED = "io.cri-containerd.pinned"
LABEL_PINNED_VALUE = "pinned"
ID_PREFIX = "sha256:"

# Event kinds, the last part of containerd's /images/<kind> topics.
CREATE, UPDATE, DELETE = "create", "update", "delete"


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
    # The service layer's encoding of this image, kept while the image is unchanged.
    wire: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def repo_tags(self) -> list[str]:
        out = []
        for name in self.names:
            ref = reference.try_parse(name)
            if ref is not None and ref.tag and name == str(ref):
                out.append(name)
        return sorted(out)

    @property
    def record_name(self) -> str:
        """The image name a containerd record made from this image carries: its first tag, else its
        first digest reference, else its ID. (`names` follow containerd's events: their order is not stable.)"""
        tags = self.repo_tags
        if tags:
            return tags[0]
        digests = self.repo_digests
        return digests[0] if digests else self.id

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


@dataclass(frozen=True)
class _Entry:
    """One containerd record as the store last saw it; `info` None = content unusable."""

    target: Descriptor
    labels: dict[str, str]
    info: TargetInfo | None


@dataclass
class _View:
    """Records grouped into images, with the lookups every RPC needs."""

    images: list[ImageRecord]
    by_name: dict[str, ImageRecord]
    by_id: dict[str, ImageRecord]


def is_image_id(text: str) -> bool:
    return text.startswith(ID_PREFIX) and reference.IDENTIFIER_RE.match(text[len(ID_PREFIX):]) is not None


def is_pinned_label(labels: dict[str, str]) -> bool:
    return LABEL_PINNED_VALUE in (labels.get(LABEL_PINNED), labels.get(LABEL_CRI_CONTAINERD_PINNED))


def _labels_only(old: _Entry | None, new: _Entry | None) -> bool:
    """True when a record changed nothing but labels that do not pin."""
    return (old is not None and new is not None and old.target.digest == new.target.digest
            and (old.info is None) == (new.info is None)
            and is_pinned_label(old.labels) == is_pinned_label(new.labels))


def _desc_from_pb(d: Any) -> Descriptor:
    return Descriptor(media_type=d.media_type, digest=d.digest, size=int(d.size))


def desc_to_pb(d: Descriptor) -> Any:
    return descriptor_pb2.Descriptor(media_type=d.media_type, digest=d.digest, size=d.size)


class ImageStore:
    def __init__(self, ctd: Containerd, content: ContentStore, matcher: Matcher,
                 sandbox_image: str = "", *, events_live: Callable[[], bool] = lambda: False) -> None:
        """`events_live` says whether containerd's image events reach `on_event` now (the event monitor's
        subscription, made after this store)."""
        self.ctd = ctd
        self.content = content
        self.matcher = matcher
        self.sandbox_ref = reference.normalize(sandbox_image) if sandbox_image else ""
        self._targets: dict[str, TargetInfo] = {}
        # The record copy is kept only while `events_live()` says containerd's image
        # events reach `on_event` (other clients may change records too).
        self.events_live = events_live
        self._records: dict[str, _Entry] | None = None
        self._view: _View | None = None
        self._generation = 0  # bumped whenever the copy is dropped or changed
        self._versions: Counter[str] = Counter()  # per name: bumped by every local change or re-read
        self._expected: Counter[tuple[str, str]] = Counter()  # events our own writes will cause
        self._refreshes: set[asyncio.Task[None]] = set()
        self._rereading: dict[str, bool] = {}  # name -> changed again since its re-read began
        self._reading: tuple[int, asyncio.Task[_View]] | None = None

    # -- keeping the copy true --------------------------------------------------

    def invalidate(self) -> None:
        """Forget the copy: anything may have changed (events were not live)."""
        log.debug("image record copy dropped")
        self._generation += 1
        self._records = None
        self._view = None
        # An event we expected may have been lost with the subscription; one that still
        # comes is then taken for another client's and re-read (harmless).
        self._expected.clear()

    def on_event(self, topic: str, name: str) -> None:
        """An /images/* event from containerd; no name = resubscribed, anything may have changed."""
        if not name:
            self.invalidate()
            return
        kind = topic.rsplit("/", 1)[-1]
        key = (kind, name)
        if self._expected[key] > 0:
            self._expected[key] -= 1
            if not self._expected[key]:
                del self._expected[key]
            return  # caused by our own write, already applied
        self._generation += 1  # a list read in flight must not be kept
        if self._records is None:
            return
        if kind == DELETE and not any(n == name for _, n in self._expected):
            # Events come in containerd's order and none of ours on this name is still
            # to come: nothing newer can exist, so no need to ask (Images.Get).
            if name in self._records:
                self._set(name, None)
            else:
                self._versions[name] += 1
            return
        self._schedule_reread(name)

    def _schedule_reread(self, name: str) -> None:
        """Re-read `name` in the background; events during a re-read add one more, not one each."""
        if name in self._rereading:
            self._rereading[name] = True
            return
        self._rereading[name] = False
        task = asyncio.ensure_future(self._reread_until_settled(name))
        self._refreshes.add(task)
        task.add_done_callback(self._refreshes.discard)

    async def _reread_until_settled(self, name: str) -> None:
        try:
            while True:
                await self._reread(name)
                if not self._rereading.get(name):
                    return
                self._rereading[name] = False  # changed again while we read: once more
        finally:
            self._rereading.pop(name, None)

    async def _reread(self, name: str) -> None:
        """Re-read one record another client changed; a newer change of ours wins."""
        self._versions[name] += 1
        stamp = self._stamp(name)
        try:
            rec = await self.get_record(name)
            entry = await self._entry(rec) if rec is not None else None
        except errors.CriError as exc:
            log.warning("re-reading image record %s failed (%s); dropping the image cache", name, exc)
            self.invalidate()
            return
        self._set_if_unchanged(name, entry, stamp)

    def _stamp(self, name: str) -> tuple[int, int]:
        """What must still hold for a read of `name` begun now to be applied."""
        return self._versions[name], id(self._records)

    def _set_if_unchanged(self, name: str, entry: _Entry | None, stamp: tuple[int, int]) -> None:
        if self._records is not None and self._stamp(name) == stamp:
            self._set(name, entry)

    def _set(self, name: str, entry: _Entry | None) -> None:
        """Apply one record's new state to the copy (None = deleted)."""
        self._versions[name] += 1
        if self._records is None:
            self._generation += 1
            return
        old = self._records.pop(name, None)
        if entry is not None:
            self._records[name] = entry
        if self._view is not None and _labels_only(old, entry):
            # Names, pin and encoded answers stand (containerd's CRI, when it runs on
            # the same containerd, labels every new record right after its creation).
            image = self._view.by_name.get(name)
            if image is not None and entry is not None:
                image.labels.update(entry.labels)
            return
        self._view = None

    def _expect(self, kind: str, name: str) -> None:
        self._expected[(kind, name)] += 1

    def _unexpect(self, kind: str, name: str) -> None:
        key = (kind, name)
        if self._expected[key] > 0:
            self._expected[key] -= 1
        if not self._expected[key]:
            del self._expected[key]

    async def settled(self) -> None:
        """Return once the re-reads that events started (and any they chained) have finished."""
        while self._refreshes:
            await asyncio.gather(*list(self._refreshes), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._refreshes):
            task.cancel()
        for task in list(self._refreshes):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- content-derived facts ----------------------------------------------

    def remember(self, target: Descriptor, info: TargetInfo) -> None:
        """Seed the facts of a target just pulled (so naming it reads no content)."""
        self._targets[target.digest] = info

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

    def present_target(self, digest: str) -> TargetInfo | None:
        """Facts of a target some current record points at (so its content is held), if known."""
        if self._records is None or not self.events_live():
            return None
        for entry in self._records.values():
            if entry.target.digest == digest and entry.info is not None:
                return entry.info
        return None

    # -- records ----------------------------------------------------------------

    async def _list_raw(self) -> list[Any]:
        resp = await self.ctd.call(self.ctd.images.List, images_pb2.ListImagesRequest(), "list images")
        return list(resp.images)

    async def list(self) -> list[ImageRecord]:
        """All images whose content is present, one entry per image ID, sorted by ID."""
        return list((await self._current()).images)

    async def _current(self) -> _View:
        if self._records is not None and self.events_live():
            if self._view is None:
                self._view = self._group(self._records)
            return self._view
        return await self._read_fresh()

    async def _read_fresh(self) -> _View:
        """Read every record from containerd; callers arriving meanwhile share that read."""
        reading = self._reading
        if reading is None or reading[0] != self._generation or reading[1].done():
            reading = self._reading = (self._generation, asyncio.ensure_future(self._read_all(self._generation)))
        return await asyncio.shield(reading[1])

    async def _read_all(self, generation: int) -> _View:
        raw = await self._list_raw()
        entries = await asyncio.gather(*(self._entry(r) for r in raw))
        records = {rec.name: entry for rec, entry in zip(raw, entries, strict=True)}
        view = self._group(records)
        if generation == self._generation and self.events_live():
            self._records, self._view = records, view  # nothing changed while we were reading
        log.debug("image records read", extra={"fields": {"records": len(records),
                                                           "kept": self._records is records}})
        return view

    async def _entry(self, rec: Any) -> _Entry:
        target = _desc_from_pb(rec.target)
        return _Entry(target, dict(rec.labels), await self._safe_describe(rec.name, target))

    async def _safe_describe(self, name: str, target: Descriptor) -> TargetInfo | None:
        try:
            return await self.describe(target)
        except errors.NotFound:
            return None  # content gone or still being pulled by someone else
        except (errors.DataLoss, errors.InvalidArgument) as exc:
            log.warning("image record %s is unusable: %s", name, exc)
            return None

    def _group(self, records: dict[str, _Entry]) -> _View:
        by_id: dict[str, ImageRecord] = {}
        by_name: dict[str, ImageRecord] = {}
        for name, entry in records.items():
            info = entry.info
            if info is None:
                continue
            image = by_id.get(info.image_id)
            if image is None:
                image = by_id[info.image_id] = ImageRecord(id=info.image_id, names=[], target=entry.target,
                                                           info=info)
            image.names.append(name)
            image.labels.update(entry.labels)
            if is_pinned_label(entry.labels) or name == self.sandbox_ref:
                image.pinned = True
            by_name[name] = image
        images = sorted(by_id.values(), key=lambda i: i.id)
        return _View(images, by_name, by_id)

    async def get_record(self, name: str) -> Any | None:
        try:
            resp = await self.ctd.call(self.ctd.images.Get, images_pb2.GetImageRequest(name=name),
                                       f"get image {name}")
        except errors.NotFound:
            return None
        return resp.image

    async def find(self, ref_or_id: str) -> ImageRecord | None:
        """Look an image up by ID, ID prefix, tag or digest reference; None if absent.

        A hit in the kept copy is trusted; a miss is always checked with containerd
        (a record made by another client may not have been announced yet).
        """
        if not ref_or_id:
            raise errors.InvalidArgument("image reference is empty")
        kept = self._records is not None and self.events_live()
        view = await self._current()
        hit = self._match(view, ref_or_id)
        if hit is not None or not kept:
            return hit
        # Missed in the kept copy: ask containerd for that one name.
        name = ref_or_id if is_image_id(ref_or_id) else ""
        if not name:
            ref = reference.try_parse(ref_or_id)
            name = str(ref) if ref is not None else ""
        if name:
            stamp = self._stamp(name)
            rec = await self.get_record(name)
            if rec is not None:
                entry = await self._entry(rec)
                self._set_if_unchanged(name, entry, stamp)
                if entry.info is not None:
                    found = (await self._current()).by_id.get(entry.info.image_id)
                    if found is not None:
                        return found
                    return self._match(await self._read_fresh(), ref_or_id)
            if not is_image_id(ref_or_id):
                return None  # a name is exact: containerd has no such record
        # An ID (or prefix) may belong to records made elsewhere without an ID record.
        return self._match(await self._read_fresh(), ref_or_id)

    def _match(self, view: _View, ref_or_id: str) -> ImageRecord | None:
        if is_image_id(ref_or_id):
            return view.by_id.get(ref_or_id)
        ref = reference.try_parse(ref_or_id)
        if ref is not None:
            hit = view.by_name.get(str(ref))
            if hit is not None:
                return hit
        return self._match_prefix(view.images, ref_or_id)

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

    def _kept_entry(self, name: str) -> _Entry | None:
        if self._records is None or not self.events_live():
            return None
        return self._records.get(name)

    async def put(self, name: str, target: Descriptor, labels: dict[str, str]) -> bool:
        """Create or repoint the record `name`; True if it was created.

        A record already pointing at `target` with these labels is left alone (no
        write), as containerd's CRI plugin does on a repeated pull.
        """
        kept = self._kept_entry(name)
        if kept is not None and kept.target.digest == target.digest \
                and all(kept.labels.get(k) == v for k, v in labels.items()):
            return False
        info = self._targets.get(target.digest)
        image = images_pb2.Image(name=name, target=desc_to_pb(target), labels=labels)
        self._expect(CREATE, name)
        try:
            resp = await self.ctd.call(self.ctd.images.Create, images_pb2.CreateImageRequest(image=image),
                                       f"create image record {name}")
        except errors.AlreadyExists:
            self._unexpect(CREATE, name)
        except BaseException:
            self._unexpect(CREATE, name)
            self._forget_name(name)
            raise
        else:
            self._set(name, _Entry(target, dict(resp.image.labels), info) if info is not None
                      else await self._entry(resp.image))
            return True
        paths = ["target"] + [f"labels.{k}" for k in labels]
        self._expect(UPDATE, name)
        try:
            resp = await self.ctd.call(
                self.ctd.images.Update,
                images_pb2.UpdateImageRequest(image=image, update_mask=field_mask_pb2.FieldMask(paths=paths)),
                f"update image record {name}")
        except BaseException:
            self._unexpect(UPDATE, name)
            self._forget_name(name)
            raise
        self._set(name, _Entry(target, dict(resp.image.labels), info) if info is not None
                  else await self._entry(resp.image))
        return False

    def _forget_name(self, name: str) -> None:
        """The outcome of a write to `name` is unknown: re-read it."""
        self._generation += 1
        if self._records is not None:
            self._schedule_reread(name)

    async def delete(self, name: str, *, sync: bool = False) -> bool:
        """Delete one record; already gone is fine (False: it was)."""
        self._expect(DELETE, name)
        try:
            await self.ctd.call(self.ctd.images.Delete, images_pb2.DeleteImageRequest(name=name, sync=sync),
                                f"delete image record {name}")
        except errors.NotFound:
            self._unexpect(DELETE, name)
            self._set(name, None)
            return False
        except BaseException:
            self._unexpect(DELETE, name)
            self._forget_name(name)
            raise
        self._set(name, None)
        return True

    async def delete_collected(self, names: Sequence[str], last: str) -> None:
        """Delete the records `names`, then `last` with containerd's garbage collection: when this
        returns, the image's content and snapshots no longer referenced are gone.

        `last` goes only once the others are deleted: sent together, containerd often
        committed `last` (and began its collection) before them (seen in its event order),
        and that collection then kept what they still referenced. When `last` is already
        gone the collection is run on its own (`Containerd.collect_garbage`).
        """
        await asyncio.gather(*(self.delete(name) for name in names))
        if not await self.delete(last, sync=True):
            await self.ctd.collect_garbage(f"removal of image {last}")


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
