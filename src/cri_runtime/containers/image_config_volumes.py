"""VOLUMEs an image config declares (``config.Volumes``, a Dockerfile's ``VOLUME /data``).

Not to be confused with ``image_volumes`` (CRI mounts whose source is an image).
What happens to each declared path is the ``[image] image_volumes`` setting,
named after CRI-O's option:

* ``bind`` (default, containerd's behaviour): a directory of the container's
  own under ``<root_dir>/containers/<id>/volumes/`` is seeded with the image's
  content at that path (ownership, modes, xattrs, links kept), bind-mounted
  there read-write, and removed with the container.
* ``mkdir``: the path is only created in the container's rootfs when the
  image lacks it; writes go to the container's writable layer.
* ``ignore``: nothing (containerd's ``ignore_image_defined_volumes``).

A CRI mount at the same destination wins (the path is skipped), as in containerd.

The copy runs coreutils ``cp -a``: it matches containerd's ``fs.CopyDir``
(ownership, modes, timestamps, xattrs, hard links, device nodes, sockets)
where ``shutil.copytree`` loses ownership, hard links and special files.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path

from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors
from cri_runtime.oci.mounts import same_destination
from cri_runtime.oci.rootfs import secure_join

BIND = "bind"
MKDIR = "mkdir"
IGNORE = "ignore"


def wanted(declared: Iterable[str], config: api_pb2.ContainerConfig, mode: str) -> list[str]:
    """The declared volume paths that need work: absolute, normalised, not covered by a CRI mount."""
    if mode == IGNORE:
        return []
    out: list[str] = []
    for raw in declared:
        if not raw.startswith("/"):
            raise errors.InvalidArgument(f"image config volume {raw!r} is not an absolute path")
        path = os.path.normpath(raw)
        if path == "/" or path in out:
            continue
        if any(same_destination(m.container_path, path) for m in config.mounts):
            continue
        out.append(path)
    return sorted(out)


def volume_dir(volumes_root: Path, path: str) -> Path:
    """The host directory of one volume: named by a hash of its path (stable, no path in the name)."""
    return volumes_root / hashlib.sha256(path.encode()).hexdigest()[:16]


async def _copy_contents(src: str, dst: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        "cp", "-a", "--", f"{src}/.", f"{dst}/",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise errors.Internal(f"copying the image's content of a volume into {dst}: "
                              f"{err.decode(errors='replace').strip()}")


async def prepare(paths: Sequence[str], mode: str, rootfs: str, volumes_root: Path,
                  image_id: str) -> list[api_pb2.Mount]:
    """Set up each volume in `paths` against the container's mounted rootfs.

    Returns the CRI mounts to add to the spec (``bind`` mode; none for ``mkdir``).
    The caller removes `volumes_root` if the container is not created after all.
    """
    mounts: list[api_pb2.Mount] = []
    for path in paths:
        inside = secure_join(rootfs, path)
        try:
            st: os.stat_result | None = os.stat(inside)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISDIR(st.st_mode):
            raise errors.InvalidArgument(
                f"image {image_id} declares volume {path!r}, which is not a directory in the image")
        if mode == MKDIR:
            if st is None:
                os.makedirs(inside, mode=0o755, exist_ok=True)
            continue
        host = volume_dir(volumes_root, path)
        host.mkdir(parents=True, mode=0o755)
        if st is not None:
            await _copy_contents(inside, host)
        mounts.append(api_pb2.Mount(container_path=path, host_path=str(host)))
    return mounts
