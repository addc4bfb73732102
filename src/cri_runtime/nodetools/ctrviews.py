"""`cri-runtime ctr … ls`: containerd's objects as ctr lists them, plus their CRI owner.

Each lister returns a `View`: ctr's header and rows (same columns, same
order, same formatting as Debian's ctr 1.6), the IDs `-q` prints, and one
record per object for JSON/YAML. `cri=True` adds the CRI owner column (ours
or containerd CRI's, from labels, see owners.py); for content also whether
an image still refers to the blob.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from cri_protos.containerd.services.containers.v1 import containers_pb2
from cri_protos.containerd.services.content.v1 import content_pb2
from cri_protos.containerd.services.images.v1 import images_pb2
from cri_protos.containerd.services.leases.v1 import leases_pb2
from cri_protos.containerd.services.namespaces.v1 import namespace_pb2
from cri_protos.containerd.services.snapshots.v1 import snapshots_pb2
from cri_protos.containerd.services.tasks.v1 import tasks_pb2
from cri_protos.containerd.types.task import task_pb2
from cri_runtime import errors
from cri_runtime.containerd.connection import Containerd
from cri_runtime.gotabwriter import TabStyle
from cri_runtime.images.content_store import ContentStore
from cri_runtime.images.platform import Platform, host_platform
from cri_runtime.nodetools import owners, render

INDEX_TYPES = {"application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json"}
MANIFEST_TYPES = {"application/vnd.oci.image.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v2+json"}
CONFIG_TYPES = {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
SNAPSHOT_KINDS = {snapshots_pb2.VIEW: "View", snapshots_pb2.ACTIVE: "Active", snapshots_pb2.COMMITTED: "Committed"}


@dataclass
class View:
    """One listing: the ctr table, the IDs, and the records."""

    header: list[str]
    style: TabStyle
    rows: list[list[str]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    terminated: bool = True

    def table(self) -> str:
        return render.table(self.header, self.rows, self.style, terminated=self.terminated)


def _ts(ts: Any) -> int:
    return int(ts.seconds)


def _rfc3339(ts: Any) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts.seconds))


# ------------------------------------------------------------------ namespaces

async def namespaces(ctd: Containerd) -> View:
    resp = await ctd.call(ctd.namespaces.List, namespace_pb2.ListNamespacesRequest(), "list namespaces")
    view = View(["NAME", "LABELS"], render.NARROW)
    for ns in resp.namespaces:
        labels = dict(ns.labels)
        view.rows.append([ns.name, render.labels_text(labels, empty="")])
        view.ids.append(ns.name)
        view.records.append({"name": ns.name, "labels": labels})
    return view


# ------------------------------------------------------------------ containers

async def list_containers(ctd: Containerd) -> list[containers_pb2.Container]:
    resp = await ctd.call(ctd.containers.List, containers_pb2.ListContainersRequest(), "list containers")
    return list(resp.containers)  # containerd's order (by ID), as ctr prints it


async def containers(ctd: Containerd, cri: bool) -> View:
    view = View(["CONTAINER", "IMAGE", "RUNTIME"] + (["CRI"] if cri else []), render.WIDE)
    for c in await list_containers(ctd):
        owner = owners.of_record(c)
        view.rows.append([c.id, c.image or "-", c.runtime.name] + ([owner.text()] if cri else []))
        view.ids.append(c.id)
        view.records.append({"id": c.id, "image": c.image, "runtime": c.runtime.name,
                             "snapshotter": c.snapshotter, "snapshotKey": c.snapshot_key,
                             "labels": dict(c.labels), "createdAt": _rfc3339(c.created_at),
                             "cri": owner.to_json()})
    return view


# ---------------------------------------------------------------------- tasks

async def list_tasks(ctd: Containerd) -> list[task_pb2.Process]:
    resp = await ctd.call(ctd.tasks.List, tasks_pb2.ListTasksRequest(), "list tasks")
    return list(resp.tasks)


async def tasks(ctd: Containerd, cri: bool) -> View:
    view = View(["TASK", "PID", "STATUS"] + (["CRI"] if cri else []), render.WIDE)
    records = {c.id: c for c in await list_containers(ctd)} if cri else {}
    for t in await list_tasks(ctd):
        record = records.get(t.id)
        owner = owners.of_record(record) if record is not None else owners.NONE
        status = task_pb2.Status.Name(t.status)
        view.rows.append([t.id, str(t.pid), status] + ([owner.text()] if cri else []))
        view.ids.append(t.id)
        view.records.append({"id": t.id, "pid": t.pid, "status": status, "exitStatus": t.exit_status,
                             "cri": owner.to_json()})
    return view


# ------------------------------------------------------------------ snapshots

async def list_snapshots(ctd: Containerd, snapshotter: str) -> list[snapshots_pb2.Info]:
    req = snapshots_pb2.ListSnapshotsRequest(snapshotter=snapshotter)
    found: list[snapshots_pb2.Info] = []
    async for resp in ctd.stream(ctd.snapshots.List, req, f"list snapshots of {snapshotter}"):
        found.extend(resp.info)
    return found


async def snapshots(ctd: Containerd, snapshotter: str, cri: bool) -> View:
    view = View(["KEY", "PARENT", "KIND"] + (["CRI"] if cri else []), render.NARROW)
    by_key: dict[str, owners.CriOwner] = {}
    if cri:
        for c in await list_containers(ctd):
            if c.snapshotter == snapshotter and c.snapshot_key:
                by_key[c.snapshot_key] = owners.of_record(c)
    for info in await list_snapshots(ctd, snapshotter):
        kind = SNAPSHOT_KINDS.get(info.kind, "Unknown")
        owner = by_key.get(info.name, owners.NONE)
        if owner is owners.NONE and owners.snapshot_is_ours(info.labels):
            owner = owners.CriOwner(owners.OURS, "snapshot", "")
        view.rows.append([info.name, info.parent, kind] + ([owner.text()] if cri else []))
        view.ids.append(info.name)
        view.records.append({"key": info.name, "parent": info.parent, "kind": kind, "labels": dict(info.labels),
                             "createdAt": _rfc3339(info.created_at), "cri": owner.to_json()})
    return view


# --------------------------------------------------------------------- leases

async def list_leases(ctd: Containerd) -> list[leases_pb2.Lease]:
    resp = await ctd.call(ctd.leases.List, leases_pb2.ListRequest(), "list leases")
    return list(resp.leases)


async def leases(ctd: Containerd, cri: bool) -> View:
    view = View(["ID", "CREATED AT", "LABELS"] + (["CRI"] if cri else []), render.NARROW)
    for lease in await list_leases(ctd):
        owner = owners.of_lease(lease.labels)
        view.rows.append([lease.id, render.rfc3339_local(_ts(lease.created_at)), render.labels_text(dict(lease.labels))]
                         + ([owner.text()] if cri else []))
        view.ids.append(lease.id)
        view.records.append({"id": lease.id, "createdAt": _rfc3339(lease.created_at), "labels": dict(lease.labels),
                             "cri": owner.to_json()})
    return view


# --------------------------------------------------------------------- images

@dataclass
class ImageTree:
    """What one image refers to in the content store."""

    digests: set[str] = field(default_factory=set)  # every blob reachable (all platforms)
    size: int = 0  # ctr's SIZE: the default platform's first manifest, config and layers
    platforms: set[str] = field(default_factory=set)


def _platform_text(p: dict[str, Any]) -> str:
    return str(Platform(os=str(p.get("os", "")), architecture=str(p.get("architecture", "")),
                        variant=str(p.get("variant", ""))).normalized())


class ImageWalker:
    """Walks image indexes and manifests in containerd's content store (blobs read once)."""

    def __init__(self, ctd: Containerd) -> None:
        self.store = ContentStore(ctd)
        self._blobs: dict[str, dict[str, Any] | None] = {}
        self.host = host_platform()

    async def _json(self, digest: str) -> dict[str, Any] | None:
        if digest not in self._blobs:
            try:
                data = json.loads(await self.store.read(digest))
                self._blobs[digest] = data if isinstance(data, dict) else None
            except (errors.CriError, ValueError):
                self._blobs[digest] = None
        return self._blobs[digest]

    async def walk(self, target: dict[str, Any]) -> ImageTree:
        tree = ImageTree()
        await self._all(target, tree)
        await self._sized(target, tree)
        return tree

    async def _all(self, desc: dict[str, Any], tree: ImageTree) -> None:
        """Every blob reachable, and the platforms (as ctr's images.Platforms finds them)."""
        digest, mt = str(desc.get("digest", "")), str(desc.get("mediaType", ""))
        if digest in tree.digests:
            return
        tree.digests.add(digest)
        platform = desc.get("platform")
        if isinstance(platform, dict) and platform.get("os") != "unknown" and platform.get("architecture") != "unknown":
            # As ctr: a descriptor's platform verbatim, a config's normalized.
            tree.platforms.add("/".join(str(platform.get(k, "")) for k in ("os", "architecture", "variant")
                                        if platform.get(k)))
            count_platform = False
        else:
            count_platform = True
        if mt in CONFIG_TYPES and count_platform:
            cfg = await self._json(digest)
            if cfg is not None:
                tree.platforms.add(_platform_text(cfg))
            return
        if mt not in INDEX_TYPES | MANIFEST_TYPES:
            return
        doc = await self._json(digest)
        if doc is None:
            return
        children = list(doc.get("manifests") or []) if mt in INDEX_TYPES else \
            [doc.get("config") or {}, *(doc.get("layers") or [])]
        for child in children:
            if isinstance(child, dict):
                if not count_platform and mt in MANIFEST_TYPES:
                    tree.digests.add(str(child.get("digest", "")))  # ctr skips below a platform-tagged manifest
                    continue
                await self._all(child, tree)

    def _matches(self, platform: Any) -> bool:
        if not isinstance(platform, dict):
            return True
        plat = Platform.from_dict(platform)
        return plat is None or (plat.normalized().os == self.host.os
                                and plat.normalized().architecture == self.host.architecture)

    async def _sized(self, desc: dict[str, Any], tree: ImageTree) -> None:
        """ctr's image.Size: the descriptor, then the first manifest matching the host platform."""
        tree.size += int(desc.get("size", 0))
        mt = str(desc.get("mediaType", ""))
        if mt not in INDEX_TYPES | MANIFEST_TYPES:
            return
        doc = await self._json(str(desc.get("digest", "")))
        if doc is None:
            return
        if mt in INDEX_TYPES:
            for child in doc.get("manifests") or []:
                if isinstance(child, dict) and self._matches(child.get("platform")):
                    await self._sized(child, tree)
                    return
            return
        for child in [doc.get("config") or {}, *(doc.get("layers") or [])]:
            if isinstance(child, dict):
                tree.size += int(child.get("size", 0))


async def list_images(ctd: Containerd) -> list[images_pb2.Image]:
    resp = await ctd.call(ctd.images.List, images_pb2.ListImagesRequest(), "list images")
    return list(resp.images)


def _target(image: images_pb2.Image) -> dict[str, Any]:
    t = image.target
    return {"mediaType": t.media_type, "digest": t.digest, "size": t.size}


async def images(ctd: Containerd, cri: bool) -> View:
    view = View(["REF", "TYPE", "DIGEST", "SIZE", "PLATFORMS", "LABELS"] + (["CRI"] if cri else []), render.NARROW)
    walker = ImageWalker(ctd)
    for image in await list_images(ctd):
        tree = await walker.walk(_target(image))
        platforms = ",".join(sorted(tree.platforms)) or "-"
        owner = owners.of_image(image.labels)
        view.rows.append([image.name, image.target.media_type, image.target.digest,
                          render.human_size_binary(tree.size), platforms, render.labels_text(dict(image.labels))]
                         + ([owner.text()] if cri else []))
        view.ids.append(image.name)
        view.records.append({"name": image.name, "target": _target(image), "size": tree.size,
                             "platforms": sorted(tree.platforms), "labels": dict(image.labels),
                             "cri": owner.to_json()})
    return view


# -------------------------------------------------------------------- content

async def list_content(ctd: Containerd) -> list[content_pb2.Info]:
    found: list[content_pb2.Info] = []
    async for resp in ctd.stream(ctd.content.List, content_pb2.ListContentRequest(), "list content"):
        found.extend(resp.info)
    return found


async def image_refs(ctd: Containerd) -> dict[str, list[images_pb2.Image]]:
    """For each blob digest, the images that refer to it."""
    walker = ImageWalker(ctd)
    refs: dict[str, list[images_pb2.Image]] = {}
    for image in await list_images(ctd):
        with contextlib.suppress(errors.CriError):
            for digest in (await walker.walk(_target(image))).digests:
                refs.setdefault(digest, []).append(image)
    return refs


async def content(ctd: Containerd, cri: bool) -> View:
    view = View(["DIGEST", "SIZE", "AGE", "LABELS"] + (["CRI", "IMAGES"] if cri else []), render.TABS,
                terminated=False)
    refs = await image_refs(ctd) if cri else {}
    now = time.time()
    for info in await list_content(ctd):
        using = refs.get(info.digest, [])
        owner_set = sorted({owners.of_image(i.labels).text() for i in using})
        age = render.human_duration(now - info.created_at.seconds - info.created_at.nanos / 1e9)
        view.rows.append([info.digest, render.human_size_decimal(info.size), age, render.labels_text(dict(info.labels))]
                         + ([",".join(owner_set) or "-", str(len(using)) if using else "unreferenced"] if cri else []))
        view.ids.append(info.digest)
        view.records.append({"digest": info.digest, "size": info.size, "createdAt": _rfc3339(info.created_at),
                             "labels": dict(info.labels), "images": sorted(i.name for i in using),
                             "referenced": bool(using)})
    return view
