"""Build small container images in pure Python and push them to a registry.

Images are made from Debian's static busybox (``/bin/busybox`` from busybox-static): one
rootfs layer with busybox, an applet symlink per applet, /etc/passwd and /etc/group (root,
nobody and ``www`` uid/gid 33 for user-resolution tests), plus optional extra layers.
Both manifest formats are produced (Docker schema 2 and OCI), with gzip or uncompressed
layers, and multi-platform indexes. Everything is deterministic (fixed mtimes, sorted
entries, gzip without timestamp), so the same inputs always give the same digests and a
test can assert them.

Terms: a layer's *digest* is the sha256 of the blob as stored (maybe gzip), its *diff ID*
the sha256 of the uncompressed tar; the *image ID* is the config blob's digest.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .registry import LocalRegistry, RegistryClient

BUSYBOX = Path("/bin/busybox")
#: Fixed mtime of every tar entry (2020-01-01) - determinism.
LAYER_MTIME = 1577836800
CREATED = "2020-01-01T00:00:00Z"
DEFAULT_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)

Format = Literal["oci", "docker"]
Compression = Literal["gzip", "none"]


class MediaType:
    """Media types of both manifest formats."""

    OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
    OCI_INDEX = "application/vnd.oci.image.index.v1+json"
    OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
    OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
    OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
    DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
    DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
    DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
    DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
    DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj: object) -> bytes:
    """Compact, key-sorted JSON: one byte string per value, hence stable digests."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Blob:
    """Bytes plus the media type they are referenced with."""

    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: object) -> dict[str, object]:
        """An OCI descriptor ({mediaType, digest, size} + extra fields such as platform)."""
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


# ---------------------------------------------------------------------------- layers
@dataclass(frozen=True)
class _Entry:
    kind: Literal["file", "dir", "symlink"]
    mode: int
    data: bytes = b""
    target: str = ""
    uid: int = 0
    gid: int = 0


class LayerBuilder:
    """Collects filesystem entries and renders them as a deterministic tar.

    Paths are absolute in the image (``/etc/passwd``); parent directories are added
    automatically. :meth:`whiteout` deletes a path of a lower layer (``.wh.<name>``).
    """

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    @staticmethod
    def _key(path: str) -> str:
        key = path.strip("/")
        if not key or ".." in key.split("/"):
            raise ValueError(f"bad path in layer: {path!r}")
        return key

    def _parents(self, key: str) -> None:
        parts = key.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parent = "/".join(parts[:i])
            self._entries.setdefault(parent, _Entry("dir", 0o755))

    def file(self, path: str, data: bytes | str, mode: int = 0o644, uid: int = 0, gid: int = 0) -> LayerBuilder:
        key = self._key(path)
        self._parents(key)
        raw = data.encode() if isinstance(data, str) else data
        self._entries[key] = _Entry("file", mode, data=raw, uid=uid, gid=gid)
        return self

    def dir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> LayerBuilder:
        key = self._key(path)
        self._parents(key)
        self._entries[key] = _Entry("dir", mode, uid=uid, gid=gid)
        return self

    def symlink(self, path: str, target: str) -> LayerBuilder:
        key = self._key(path)
        self._parents(key)
        self._entries[key] = _Entry("symlink", 0o777, target=target)
        return self

    def whiteout(self, path: str) -> LayerBuilder:
        """Mark ``path`` (from a lower layer) as deleted."""
        key = self._key(path)
        head, _, name = key.rpartition("/")
        return self.file(f"{head}/.wh.{name}" if head else f".wh.{name}", b"", mode=0o600)

    def tar(self) -> bytes:
        """The uncompressed layer tar (entries sorted, fixed mtime, owner root unless set)."""
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for key in sorted(self._entries):
                entry = self._entries[key]
                info = tarfile.TarInfo(key + ("/" if entry.kind == "dir" else ""))
                info.mtime = LAYER_MTIME
                info.mode = entry.mode
                info.uid, info.gid = entry.uid, entry.gid
                info.uname = info.gname = ""
                if entry.kind == "dir":
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                elif entry.kind == "symlink":
                    info.type = tarfile.SYMTYPE
                    info.linkname = entry.target
                    tar.addfile(info)
                else:
                    info.size = len(entry.data)
                    tar.addfile(info, io.BytesIO(entry.data))
        return buf.getvalue()


def busybox_applets(busybox: Path = BUSYBOX) -> list[str]:
    """The applet names the busybox binary provides (``busybox --list``)."""
    out = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True)
    return sorted(a for a in out.stdout.split() if a and a != "busybox")


PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "www:x:33:33:www-data:/var/www:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\nwww:x:33:\nusers:x:100:www\nnogroup:x:65534:\n"


def busybox_rootfs(busybox: Path = BUSYBOX) -> LayerBuilder:
    """A minimal root filesystem: busybox, its applets in /bin, users root/www/nobody."""
    layer = LayerBuilder()
    for d in ("bin", "dev", "etc", "proc", "sys", "root", "usr/bin"):
        layer.dir(d, 0o700 if d == "root" else 0o755)
    layer.dir("tmp", 0o1777)
    layer.dir("var/www", 0o755, uid=33, gid=33)
    layer.file("bin/busybox", busybox.read_bytes(), mode=0o755)
    for applet in busybox_applets(busybox):
        layer.symlink(f"bin/{applet}", "busybox")
    layer.symlink("usr/bin/env", "../../bin/busybox")
    layer.file("etc/passwd", PASSWD)
    layer.file("etc/group", GROUP)
    layer.file("etc/hostname", "busybox\n")
    return layer


@functools.cache
def busybox_rootfs_tar() -> bytes:
    """The tar of :func:`busybox_rootfs`, built once per process (it never changes)."""
    return busybox_rootfs().tar()


# ---------------------------------------------------------------------------- images
@dataclass
class ImageConfig:
    """The runtime part of an image config (``config`` in the JSON) and its platform."""

    user: str = ""
    env: list[str] = field(default_factory=lambda: list(DEFAULT_ENV))
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    working_dir: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    exposed_ports: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    architecture: str = "amd64"
    os: str = "linux"
    variant: str = ""

    def runtime_json(self) -> dict[str, object]:
        """The ``config`` object of the image config; empty fields are left out."""
        cfg: dict[str, object] = {}
        if self.user:
            cfg["User"] = self.user
        if self.env:
            cfg["Env"] = list(self.env)
        if self.entrypoint is not None:
            cfg["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            cfg["Cmd"] = list(self.cmd)
        if self.working_dir:
            cfg["WorkingDir"] = self.working_dir
        if self.labels:
            cfg["Labels"] = dict(self.labels)
        if self.stop_signal:
            cfg["StopSignal"] = self.stop_signal
        if self.exposed_ports:
            cfg["ExposedPorts"] = {p: {} for p in self.exposed_ports}
        if self.volumes:
            cfg["Volumes"] = {v: {} for v in self.volumes}
        return cfg

    def platform(self) -> dict[str, str]:
        plat = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            plat["variant"] = self.variant
        return plat


@dataclass(frozen=True)
class Layer:
    """One layer: the stored blob plus its diff ID."""

    blob: Blob
    diff_id: str
    tar: bytes

    @classmethod
    def from_tar(cls, tar: bytes, media_type: str, compression: Compression) -> Layer:
        data = gzip.compress(tar, compresslevel=6, mtime=0) if compression == "gzip" else tar
        return cls(Blob(media_type, data), sha256_digest(tar), tar)


def _layer_media_type(fmt: Format, compression: Compression) -> str:
    if fmt == "oci":
        return MediaType.OCI_LAYER_GZIP if compression == "gzip" else MediaType.OCI_LAYER
    return MediaType.DOCKER_LAYER_GZIP if compression == "gzip" else MediaType.DOCKER_LAYER


class Image:
    """A single-platform image: layers + config + manifest.

    ``digest`` is the manifest digest (what ``name@sha256:...`` pins), ``image_id`` the
    config digest (the CRI image ID).
    """

    def __init__(
        self,
        layers: Iterable[LayerBuilder | bytes],
        config: ImageConfig | None = None,
        *,
        fmt: Format = "oci",
        compression: Compression = "gzip",
        annotations: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config or ImageConfig()
        self.fmt: Format = fmt
        self.compression: Compression = compression
        media_type = _layer_media_type(fmt, compression)
        self.layers = [
            Layer.from_tar(lb.tar() if isinstance(lb, LayerBuilder) else lb, media_type, compression) for lb in layers
        ]
        self.annotations = dict(annotations or {})
        self.config_blob = Blob(
            MediaType.OCI_CONFIG if fmt == "oci" else MediaType.DOCKER_CONFIG,
            canonical_json(self._config_json()),
        )
        self.manifest_blob = Blob(
            MediaType.OCI_MANIFEST if fmt == "oci" else MediaType.DOCKER_MANIFEST,
            canonical_json(self._manifest_json()),
        )

    def _config_json(self) -> dict[str, object]:
        return {
            **self.config.platform(),
            "created": CREATED,
            "config": self.config.runtime_json(),
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in self.layers]},
            "history": [
                {"created": CREATED, "created_by": f"tests/rig/oci.py layer {i}"} for i in range(len(self.layers))
            ],
        }

    def _manifest_json(self) -> dict[str, object]:
        manifest: dict[str, object] = {
            "schemaVersion": 2,
            "mediaType": self.manifest_blob_media_type,
            "config": self.config_blob.descriptor(),
            "layers": [layer.blob.descriptor() for layer in self.layers],
        }
        if self.annotations:
            manifest["annotations"] = dict(self.annotations)
        return manifest

    @property
    def manifest_blob_media_type(self) -> str:
        return MediaType.OCI_MANIFEST if self.fmt == "oci" else MediaType.DOCKER_MANIFEST

    def push(
        self, target: RegistryClient | LocalRegistry, repo: str, tag: str, chunk_size: int | None = None
    ) -> PushResult:
        """Upload this image as ``repo:tag`` (see :func:`push`)."""
        return push(self, target, repo, tag, chunk_size=chunk_size)

    @property
    def digest(self) -> str:
        """The manifest digest."""
        return self.manifest_blob.digest

    @property
    def image_id(self) -> str:
        """The config digest (= CRI image ID, ``ctr images ls`` shows the manifest digest)."""
        return self.config_blob.digest

    @property
    def diff_ids(self) -> list[str]:
        return [layer.diff_id for layer in self.layers]

    def chain_id(self) -> str:
        """Chain ID of the top layer: sha256(parent_chain + " " + diff_id), iterated."""
        chain = ""
        for diff_id in self.diff_ids:
            chain = diff_id if not chain else sha256_digest(f"{chain} {diff_id}".encode())
        return chain

    @property
    def size(self) -> int:
        """Manifest + config + layer blob sizes (what the registry stores for it)."""
        return self.manifest_blob.size + self.config_blob.size + sum(lyr.blob.size for lyr in self.layers)

    def blobs(self) -> Iterator[Blob]:
        """Layer and config blobs (not the manifest), in upload order."""
        for layer in self.layers:
            yield layer.blob
        yield self.config_blob


class ImageIndex:
    """A multi-platform image: an OCI index or a Docker manifest list over :class:`Image` s."""

    def __init__(self, images: Iterable[Image], *, fmt: Format = "oci") -> None:
        self.images = list(images)
        self.fmt: Format = fmt
        media_type = MediaType.OCI_INDEX if fmt == "oci" else MediaType.DOCKER_LIST
        body: dict[str, object] = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [img.manifest_blob.descriptor(platform=img.config.platform()) for img in self.images],
        }
        self.manifest_blob = Blob(media_type, canonical_json(body))

    def push(
        self, target: RegistryClient | LocalRegistry, repo: str, tag: str, chunk_size: int | None = None
    ) -> PushResult:
        """Upload the members by digest and this index as ``repo:tag`` (see :func:`push`)."""
        return push(self, target, repo, tag, chunk_size=chunk_size)

    @property
    def digest(self) -> str:
        """The index digest (what the tag resolves to)."""
        return self.manifest_blob.digest

    def for_platform(self, architecture: str, os: str = "linux", variant: str = "") -> Image:
        """The member image for a platform (KeyError if there is none)."""
        for img in self.images:
            plat = img.config
            if (plat.architecture, plat.os) == (architecture, os) and (not variant or plat.variant == variant):
                return img
        raise KeyError(f"no {os}/{architecture} image in index")

    @property
    def image_id(self) -> str:
        """Image ID as seen on this (linux/amd64) host: the amd64 member's config digest."""
        return self.for_platform("amd64").image_id


Artifact = Image | ImageIndex


# ----------------------------------------------------------------- standard images
def busybox_image(
    config: ImageConfig | None = None,
    *,
    extra_layers: Iterable[LayerBuilder] = (),
    fmt: Format = "oci",
    compression: Compression = "gzip",
) -> Image:
    """The busybox rootfs layer plus ``extra_layers``, with ``config`` (default cmd sh)."""
    return Image(
        [busybox_rootfs_tar(), *extra_layers],
        config or ImageConfig(cmd=["sh"]),
        fmt=fmt,
        compression=compression,
    )


def foreign_platform_image(architecture: str, variant: str = "", fmt: Format = "oci") -> Image:
    """A non-runnable stand-in for another architecture (a marker file, right platform).

    We have no busybox for other architectures; the member only has to exist so that a
    pull on amd64 must pick the right manifest from the index.
    """
    layer = LayerBuilder().file("etc/platform", f"linux/{architecture}{'/' + variant if variant else ''}\n")
    return Image([layer], ImageConfig(cmd=["sh"], architecture=architecture, variant=variant), fmt=fmt)


# --------------------------------------------------------------------------- output
@dataclass(frozen=True)
class PushResult:
    """What a push produced; ``ref`` is pullable as ``<host>/<repo>:<tag>``."""

    ref: str
    repo: str
    tag: str
    digest: str  # manifest (or index) digest
    image_id: str  # config digest of the image this host would run

    @property
    def ref_by_digest(self) -> str:
        return f"{self.ref.rsplit(':', 1)[0]}@{self.digest}"


def push(
    artifact: Artifact,
    target: RegistryClient | LocalRegistry,
    repo: str,
    tag: str,
    *,
    chunk_size: int | None = None,
) -> PushResult:
    """Upload blobs and manifest(s) of ``artifact`` and tag it ``repo:tag``.

    ``target`` is a :class:`~tests.rig.registry.LocalRegistry` (its credentials are used)
    or any :class:`~tests.rig.registry.RegistryClient`. Blobs already in the repository
    are skipped; ``chunk_size`` switches from monolithic to chunked (PATCH) uploads. For
    an index, member manifests are pushed by digest first, then the index by tag.
    """
    client = target.client() if isinstance(target, LocalRegistry) else target
    images = artifact.images if isinstance(artifact, ImageIndex) else [artifact]
    for img in images:
        for blob in img.blobs():
            if not client.blob_exists(repo, blob.digest):
                client.upload_blob(repo, blob.data, chunk_size=chunk_size)
        if img is not artifact:
            client.put_manifest(repo, img.digest, img.manifest_blob.media_type, img.manifest_blob.data)
    client.put_manifest(repo, tag, artifact.manifest_blob.media_type, artifact.manifest_blob.data)
    return PushResult(f"{client.host}/{repo}:{tag}", repo, tag, artifact.digest, artifact.image_id)


def write_oci_layout(directory: Path, tagged: Mapping[str, Artifact]) -> Path:
    """Write an OCI image layout (``oci-layout``, ``index.json``, ``blobs/sha256``).

    ``tagged`` maps a ref name (``org.opencontainers.image.ref.name``, e.g. ``busybox:latest``)
    to an image or index. Usable with ``skopeo copy oci:DIR:NAME`` or ``ctr images import``.
    """
    blob_dir = directory / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)

    def put(blob: Blob) -> None:
        (blob_dir / blob.digest.split(":", 1)[1]).write_bytes(blob.data)

    manifests = []
    for name, artifact in tagged.items():
        images = artifact.images if isinstance(artifact, ImageIndex) else [artifact]
        for img in images:
            for blob in img.blobs():
                put(blob)
            put(img.manifest_blob)
        put(artifact.manifest_blob)
        manifests.append(artifact.manifest_blob.descriptor(annotations={"org.opencontainers.image.ref.name": name}))
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (directory / "index.json").write_bytes(
        canonical_json({"schemaVersion": 2, "mediaType": MediaType.OCI_INDEX, "manifests": manifests})
    )
    return directory
