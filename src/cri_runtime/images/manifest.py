"""OCI / Docker schema 2 manifests, indexes and image configs.

Parsing is strict about what a pull depends on (digests, sizes, media types,
the config's diff IDs) and lenient about everything else, so images built by
any tool work. The GC label helpers give each blob the same
``containerd.io/gc.ref.content.*`` labels containerd's own client sets, so a
record that points at the manifest keeps exactly the blobs it needs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from cri_runtime import errors
from cri_runtime.images.platform import Matcher, Platform
from cri_runtime.images.reference import validate_digest

MT_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MT_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MT_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MT_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MT_DOCKER_LAYER_FOREIGN_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
MT_DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MT_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MT_OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
MT_OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"

INDEX_TYPES = frozenset({MT_DOCKER_LIST, MT_OCI_INDEX})
MANIFEST_TYPES = frozenset({MT_DOCKER_MANIFEST, MT_OCI_MANIFEST})
LAYER_TYPES = frozenset({
    MT_DOCKER_LAYER_GZIP, MT_DOCKER_LAYER_FOREIGN_GZIP, MT_OCI_LAYER, MT_OCI_LAYER_GZIP,
    MT_OCI_LAYER_ZSTD, MT_OCI_LAYER_NONDIST, MT_OCI_LAYER_NONDIST_GZIP,
    "application/vnd.docker.image.rootfs.diff.tar",
})
ACCEPT_MANIFESTS = ", ".join([MT_DOCKER_MANIFEST, MT_DOCKER_LIST, MT_OCI_MANIFEST, MT_OCI_INDEX, "*/*"])

LABEL_GC_CONTENT = "containerd.io/gc.ref.content"
LABEL_GC_SNAPSHOT = "containerd.io/gc.ref.snapshot"
LABEL_UNCOMPRESSED = "containerd.io/uncompressed"
LABEL_DISTRIBUTION_SOURCE = "containerd.io/distribution.source"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Descriptor:
        if not isinstance(data, dict):
            raise errors.InvalidArgument(f"{where}: descriptor is not an object")
        digest = data.get("digest")
        size = data.get("size")
        if not isinstance(digest, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise errors.InvalidArgument(f"{where}: descriptor needs a digest and a size")
        validate_digest(digest, f"digest in {where}")
        annotations = data.get("annotations") or {}
        return cls(
            media_type=str(data.get("mediaType", "")),
            digest=digest, size=size,
            platform=Platform.from_dict(data.get("platform")),
            annotations=tuple(sorted((str(k), str(v)) for k, v in annotations.items()))
            if isinstance(annotations, dict) else (),
        )


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _load(raw: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.DataLoss(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise errors.DataLoss(f"{what} is not a JSON object")
    return data


def detect_media_type(raw: bytes, header_type: str) -> str:
    """The manifest's media type: its own field, else the HTTP header, else by shape."""
    data = _load(raw, "manifest")
    mt = data.get("mediaType")
    if isinstance(mt, str) and mt:
        return mt
    if header_type and header_type.split(";")[0].strip() in INDEX_TYPES | MANIFEST_TYPES:
        return header_type.split(";")[0].strip()
    if data.get("schemaVersion") == 1:
        return MT_DOCKER_SCHEMA1
    if "manifests" in data:
        return MT_OCI_INDEX
    if "config" in data and "layers" in data:
        return MT_OCI_MANIFEST
    return header_type


@dataclass(frozen=True)
class Index:
    manifests: tuple[Descriptor, ...]

    @classmethod
    def parse(cls, raw: bytes, what: str) -> Index:
        data = _load(raw, what)
        items = data.get("manifests")
        if not isinstance(items, list):
            raise errors.DataLoss(f"{what}: index has no manifests list")
        return cls(tuple(Descriptor.from_dict(m, f"{what} manifests[{i}]") for i, m in enumerate(items)))

    def select(self, matcher: Matcher) -> Descriptor | None:
        """The best manifest for the platform (first in index order among equals)."""
        best: tuple[int, int] | None = None
        chosen: Descriptor | None = None
        for pos, desc in enumerate(self.manifests):
            if desc.platform is None or desc.media_type not in MANIFEST_TYPES | INDEX_TYPES | {""}:
                continue
            rank = matcher.rank(desc.platform)
            if rank is None:
                continue
            if best is None or (rank, pos) < best:
                best, chosen = (rank, pos), desc
        return chosen

    def platforms(self) -> list[str]:
        return sorted({str(d.platform) for d in self.manifests if d.platform})


@dataclass(frozen=True)
class Manifest:
    config: Descriptor
    layers: tuple[Descriptor, ...]

    @classmethod
    def parse(cls, raw: bytes, what: str) -> Manifest:
        data = _load(raw, what)
        if data.get("schemaVersion") == 1:
            raise errors.InvalidArgument(f"{what}: Docker schema 1 manifests are not supported")
        config = Descriptor.from_dict(data.get("config"), f"{what} config")
        layers_raw = data.get("layers")
        if not isinstance(layers_raw, list):
            raise errors.DataLoss(f"{what}: manifest has no layers list")
        layers = tuple(Descriptor.from_dict(ly, f"{what} layers[{i}]") for i, ly in enumerate(layers_raw))
        for ly in layers:
            if ly.media_type and ly.media_type not in LAYER_TYPES:
                raise errors.InvalidArgument(f"{what}: unsupported layer media type {ly.media_type}")
        return cls(config, layers)


@dataclass(frozen=True)
class ImageConfig:
    """The parts of the image config the runtime uses, plus the raw JSON."""

    diff_ids: tuple[str, ...]
    platform: Platform | None
    user: str
    raw: dict[str, Any] = field(compare=False, hash=False)

    @classmethod
    def parse(cls, raw: bytes, what: str) -> ImageConfig:
        data = _load(raw, what)
        rootfs = data.get("rootfs")
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
            raise errors.DataLoss(f"{what}: config has no rootfs.diff_ids")
        for d in diff_ids:
            validate_digest(d, f"diff ID in {what}")
        plat = None
        if data.get("os") and data.get("architecture"):
            plat = Platform(str(data["os"]), str(data["architecture"]), str(data.get("variant", "")))
        cfg = data.get("config")
        user = str(cfg.get("User") or "") if isinstance(cfg, dict) else ""
        return cls(tuple(diff_ids), plat, user, data)


def chain_ids(diff_ids: list[str] | tuple[str, ...]) -> list[str]:
    """Chain IDs of a layer stack: c0 = d0, cN = sha256(c(N-1) + " " + dN)."""
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            out.append(digest_of(f"{out[-1]} {diff_id}".encode()))
    return out


def index_gc_labels(index: Index) -> dict[str, str]:
    return {f"{LABEL_GC_CONTENT}.m.{i}": d.digest for i, d in enumerate(index.manifests)}


def manifest_gc_labels(manifest: Manifest) -> dict[str, str]:
    labels = {f"{LABEL_GC_CONTENT}.config": manifest.config.digest}
    labels.update({f"{LABEL_GC_CONTENT}.l.{i}": d.digest for i, d in enumerate(manifest.layers)})
    return labels


def distribution_source_label(domain: str, path: str) -> tuple[str, str]:
    """containerd's ``containerd.io/distribution.source.<registry>=<repo>`` label."""
    return f"{LABEL_DISTRIBUTION_SOURCE}.{domain}", path


def user_to_uid_username(user: str) -> tuple[int | None, str]:
    """CRI's uid/username from the config's User ("1000", "www-data", "1000:1000")."""
    name = user.split(":", 1)[0]
    if not name:
        return None, ""
    if name.isdigit():
        return int(name), ""
    return None, name
