"""Fallback where idmapped mounts are impossible: a chowned copy-up of the container's snapshot.

As containerd 1.7 remaps snapshots for user namespaces: the snapshot is
mounted once, and every file is re-owned to the pod's range (uid → host_id +
uid), which makes overlay copy each one up into the container's own upper dir,
so the shared image layers are never touched. It costs a copy of the image per
container (idmapped layers cost nothing), so it is used only when the start-up
self-check finds idmapped mounts unusable, or when configured. Volumes are not
remapped in this mode: root in the pod sees their host-root-owned files as
nobody's.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..containerd import mounts as ctd_mounts
from .mappings import PodUserns

#: In the container's state dir once its snapshot has been remapped.
DONE_FILE = "userns-chowned"


def _shift(path: str, st: os.stat_result, userns: PodUserns) -> None:
    uid, gid = st.st_uid, st.st_gid
    if uid >= userns.uids.length or gid >= userns.gids.length:
        return  # outside the pod's range: left as is (nobody inside)
    os.lchown(path, userns.uids.to_host(uid), userns.gids.to_host(gid))
    if not stat.S_ISLNK(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
        os.chmod(path, stat.S_IMODE(st.st_mode))  # chown cleared set-id bits


def remap_tree(root: str, userns: PodUserns) -> int:
    """Re-own every entry under ``root`` (itself included) into the pod's range; returns how many."""
    count = 0
    _shift(root, os.lstat(root), userns)
    for top, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            path = os.path.join(top, name)
            _shift(path, os.lstat(path), userns)
            count += 1
    return count


def chowned_copy_up(mounts: Sequence[Any], userns: PodUserns, state_dir: Path) -> None:
    """Remap the snapshot behind ``mounts`` once (a marker in ``state_dir`` makes it idempotent)."""
    done = state_dir / DONE_FILE
    if done.exists():
        return
    with ctd_mounts.mounted(list(mounts), parent=str(state_dir), readonly=False) as rootfs:
        remap_tree(rootfs, userns)
    done.touch()
