"""Read files inside an image rootfs without ever leaving it.

An image can ship ``/etc/passwd`` as a symlink to ``/../../host/etc/shadow``; its
symlinks must be resolved as if the rootfs were ``/`` (chroot semantics), the
way runc's securejoin does, or the runtime would read host files for the image.
"""

from __future__ import annotations

import errno
import os
import stat

_MAX_SYMLINKS = 255


def secure_join(root: str, unsafe_path: str) -> str:
    """Host path of ``unsafe_path`` inside ``root``, resolving symlinks within ``root``.

    Components that do not exist are appended as they are; ``..`` never climbs
    above ``root``.
    """
    root = os.path.abspath(root)
    resolved: list[str] = []
    pending = [p for p in unsafe_path.split("/") if p]
    pending.reverse()  # pop() takes the next component
    links = 0
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        except NotADirectoryError:
            resolved.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(part)
            continue
        links += 1
        if links > _MAX_SYMLINKS:
            raise OSError(errno.ELOOP, "too many symlinks", os.path.join("/", *resolved, part))
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        pending.extend(reversed([p for p in target.split("/") if p]))
    return os.path.join(root, *resolved)


def read_rootfs_file(root: str, path: str) -> str | None:
    """Text of ``path`` inside ``root`` (symlinks confined to root), or None if absent."""
    host_path = secure_join(root, path)
    try:
        fd = os.open(host_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        return f.read().decode("utf-8", errors="replace")
