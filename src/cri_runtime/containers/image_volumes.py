"""Image volumes: an image's filesystem mounted read-only into a container.

Each image volume is a read-only View snapshot of the image's top layer,
mounted on the host under the container's state dir and bind-mounted into
the container (optionally a sub path of it). The snapshot carries our label
and a key derived from the container ID, so removal and orphan collection
find it; the host mount outlives restarts of cri-runtime like the container.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cri_protos.containerd.services.snapshots.v1 import snapshots_pb2
from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors
from cri_runtime.containerd import mounts as ctd_mounts
from cri_runtime.containerd import objects
from cri_runtime.containerd.connection import Containerd
from cri_runtime.oci.rootfs import secure_join

KEY_INFIX = "-imagevolume-"


def owner_of(snapshot_key: str) -> str:
    """The container ID an image-volume snapshot key belongs to ("" for other keys)."""
    return snapshot_key.split(KEY_INFIX, 1)[0] if KEY_INFIX in snapshot_key else ""


@dataclass
class ImageVolume:
    snapshot_key: str
    mountpoint: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def prepare(ctd: Containerd, images: Any, snapshotter: str, container_id: str, container_dir: Path,
                  config: api_pb2.ContainerConfig, lease: str,
                  created: list[ImageVolume]) -> list[api_pb2.Mount]:
    """Mount every image volume of `config`; returns the host-path mounts for the spec.

    Fills in `image_ref` of each image mount in `config` (reported by ContainerStatus).
    Volumes set up so far are appended to `created` so the caller can undo them.
    """
    extra = []
    for i, mount in enumerate(config.mounts):
        if not mount.HasField("image"):
            continue
        where = f"mounts[{i}] (image volume at {mount.container_path!r})"
        if not mount.readonly:
            raise errors.InvalidArgument(f"{where}: image volumes must be read-only (readonly: true)")
        if mount.propagation != api_pb2.PROPAGATION_PRIVATE:
            raise errors.InvalidArgument(f"{where}: image volumes only support private propagation")
        image = await images.resolve(mount.image.image)
        key = f"{container_id}{KEY_INFIX}{i}"
        req = snapshots_pb2.ViewSnapshotRequest(snapshotter=snapshotter, key=key, parent=image.chain_id,
                                                labels={objects.SNAPSHOT_OWNER_LABEL: "cri-runtime"})
        resp = await ctd.call(ctd.snapshots.View, req, f"view snapshot of image {image.id}", lease=lease)
        mountpoint = container_dir / "imagevolumes" / str(i)
        mountpoint.mkdir(parents=True, exist_ok=True)
        volume = ImageVolume(key, str(mountpoint))
        created.append(volume)
        ctd_mounts.mount_persistent(list(resp.mounts), str(mountpoint), readonly=True)
        source = str(mountpoint)
        if mount.image_sub_path:
            source = secure_join(str(mountpoint), mount.image_sub_path)
            if not os.path.exists(source):
                raise errors.InvalidArgument(
                    f"{where}: image_sub_path {mount.image_sub_path!r} does not exist in image {image.id}")
        mount.image.image_ref = image.id
        extra.append(api_pb2.Mount(container_path=mount.container_path, host_path=source, readonly=True))
    return extra


async def release(ctd: Containerd, snapshotter: str, volumes: list[ImageVolume]) -> None:
    """Unmount and drop the snapshots; missing pieces are fine."""
    for volume in volumes:
        ctd_mounts.unmount_tree(volume.mountpoint)
        with contextlib.suppress(OSError):
            shutil.rmtree(volume.mountpoint)
        await objects.remove_snapshot(ctd, snapshotter, volume.snapshot_key)
