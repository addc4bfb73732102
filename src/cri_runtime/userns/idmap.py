"""Idmapped mounts through the new mount API (Linux ≥ 5.12), via ctypes.

``open_tree(OPEN_TREE_CLONE)`` makes a detached copy of a mount, ``mount_setattr``
with ``MOUNT_ATTR_IDMAP`` attaches a user namespace's mapping to it, and
``move_mount`` attaches it at a path. A helper user namespace carries the
mapping: an idmapped mount only depends on the mapping, not on which namespace
holds it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import subprocess
import time
from collections.abc import Iterator

from .mappings import PodUserns

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

# Syscall numbers are the same on x86_64 and aarch64 for the new mount API.
SYS_OPEN_TREE, SYS_MOVE_MOUNT, SYS_MOUNT_SETATTR = 428, 429, 442
OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC = 1, os.O_CLOEXEC
AT_FDCWD, AT_EMPTY_PATH, AT_RECURSIVE = -100, 0x1000, 0x8000
MOUNT_ATTR_IDMAP = 0x00100000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MNT_DETACH = 2


class IdmapError(OSError):
    """A syscall of the idmapping failed; the message names the step, the path and errno."""


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _fail(step: str, path: str) -> IdmapError:
    err = ctypes.get_errno()
    return IdmapError(err, f"{step} {path}: {os.strerror(err)} (errno {err})")


def idmapped_mount(source: str, target: str, userns_fd: int, *, recursive: bool = False) -> None:
    """Mount an idmapped copy of the mount tree at ``source`` on ``target`` (an existing directory or file)."""
    if platform.machine() not in ("x86_64", "aarch64"):
        raise IdmapError(0, f"idmapped mounts: syscall numbers unknown on {platform.machine()}")
    flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (AT_RECURSIVE if recursive else 0)
    fd = int(_libc.syscall(SYS_OPEN_TREE, AT_FDCWD, source.encode(), flags))
    if fd < 0:
        raise _fail("open_tree", source)
    try:
        attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
        rc = _libc.syscall(SYS_MOUNT_SETATTR, fd, b"", AT_EMPTY_PATH | (AT_RECURSIVE if recursive else 0),
                           ctypes.byref(attr), ctypes.sizeof(attr))
        if rc < 0:
            raise _fail("mount_setattr(MOUNT_ATTR_IDMAP)", source)
        rc = _libc.syscall(SYS_MOVE_MOUNT, fd, b"", AT_FDCWD, target.encode(), MOVE_MOUNT_F_EMPTY_PATH)
        if rc < 0:
            raise _fail("move_mount", target)
    finally:
        os.close(fd)


def detach(path: str) -> None:
    """Lazily unmount ``path`` (ENOENT/EINVAL: nothing mounted there)."""
    if _libc.umount2(path.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (2, 22):
            raise OSError(err, f"umount {path}: {os.strerror(err)}")


@contextlib.contextmanager
def helper_userns(userns: PodUserns, timeout: float = 5.0) -> Iterator[int]:
    """An fd of a short-lived user namespace with the pod's mappings."""
    own = os.readlink("/proc/self/ns/user")
    proc = subprocess.Popen(["unshare", "--user", "sh", "-c", "read _"], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while os.readlink(f"/proc/{proc.pid}/ns/user") == own:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise IdmapError(0, f"helper user namespace not created (unshare exited {proc.returncode})")
            time.sleep(0.001)
        u, g = userns.uids, userns.gids
        with open(f"/proc/{proc.pid}/uid_map", "w") as f:
            f.write(f"{u.container_id} {u.host_id} {u.length}\n")
        with open(f"/proc/{proc.pid}/gid_map", "w") as f:
            f.write(f"{g.container_id} {g.host_id} {g.length}\n")
        fd = os.open(f"/proc/{proc.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        try:
            yield fd
        finally:
            os.close(fd)
    finally:
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        proc.kill()
        proc.wait()
