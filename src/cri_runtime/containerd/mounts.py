"""Mount a containerd mount list (a snapshot) on a host directory, briefly.

CreateContainer needs to read /etc/passwd and /etc/group of the image to
resolve a user name; the snapshot is mounted read-only in a private temp
directory for that, and unmounted right after.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import tempfile
from collections.abc import Iterator, Sequence

from cri_protos.containerd.types import mount_pb2
from cri_runtime import errors

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

MS_RDONLY = 0x1
MS_BIND = 0x1000
MS_REC = 0x4000
MNT_DETACH = 0x2

_FLAG_OPTIONS = {"ro": MS_RDONLY, "bind": MS_BIND, "rbind": MS_BIND | MS_REC}
_IGNORED = {"rw", "private", "rprivate"}


def _mount_one(m: mount_pb2.Mount, target: str, readonly: bool) -> None:
    flags = MS_RDONLY if readonly else 0
    data = []
    for opt in m.options:
        if opt in _FLAG_OPTIONS:
            flags |= _FLAG_OPTIONS[opt]
        elif opt not in _IGNORED:
            data.append(opt)
    if m.type == "bind":
        flags |= MS_BIND
    fstype = None if flags & MS_BIND else m.type.encode()
    ret = _libc.mount(m.source.encode(), target.encode(), fstype, flags, ",".join(data).encode() or None)
    if ret != 0:
        err = ctypes.get_errno()
        raise errors.Internal(f"mount {m.type} {m.source} on {target}: {os.strerror(err)}")
    if flags & MS_BIND and readonly:
        # A read-only bind needs a remount to take effect.
        _libc.mount(None, target.encode(), None, MS_BIND | MS_RDONLY | 0x20, None)  # 0x20 = MS_REMOUNT


def mount_persistent(mounts: Sequence[mount_pb2.Mount], target: str, *, readonly: bool = True) -> None:
    """Mount a snapshot on `target` until `unmount_tree` removes it."""
    if len(mounts) != 1:
        raise errors.Internal(f"expected one mount for a snapshot, got {len(mounts)}")
    _mount_one(mounts[0], target, readonly)


@contextlib.contextmanager
def mounted(mounts: Sequence[mount_pb2.Mount], *, parent: str, readonly: bool = True) -> Iterator[str]:
    """Mount `mounts` on a fresh directory under `parent`; yields its path."""
    if len(mounts) != 1:
        raise errors.Internal(f"expected one mount for a snapshot, got {len(mounts)}")
    os.makedirs(parent, exist_ok=True)
    target = tempfile.mkdtemp(prefix="rootfs-", dir=parent)
    try:
        _mount_one(mounts[0], target, readonly)
        try:
            yield target
        finally:
            _libc.umount2(target.encode(), MNT_DETACH)
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(target)


def unmount_tree(path: str) -> None:
    """Lazily unmount every mount point at or below `path`, deepest first."""
    prefix = os.path.normpath(path)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4].replace("\\040", " ") for line in f]
    below = [p for p in points if p == prefix or p.startswith(prefix + "/")]
    for point in sorted(set(below), key=len, reverse=True):
        _libc.umount2(point.encode(), MNT_DETACH)
