"""A container's snapshot and volumes made usable inside the pod's user namespace.

As containerd 2.x's overlay snapshotter does with idmapped layers: every
overlay lowerdir gets an idmapped copy (so files owned by root in the image
are owned by the pod's root), overlay is mounted by the shim over those
copies, and the upper dir is chowned to the pod's root, so "/" and everything
the container writes belong to it. The copies are needed only while the shim
mounts the rootfs (overlay keeps private clones of its layers): they are
detached right after CreateTask. A snapshot that is not overlay (e.g. native,
a bind mount of a directory) gets an idmapped copy of the directory itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from cri_protos.containerd.types import mount_pb2

from ..containerd import mounts as ctd_mounts
from ..errors import FailedPrecondition
from . import support
from .copyup import chowned_copy_up
from .idmap import IdmapError, detach, helper_userns, idmapped_mount
from .mappings import PodUserns

#: Under a container's state dir: volumes to idmap at start ({"source": ..., "target": ...} list).
VOLUMES_FILE = "idmap-volumes.json"


def _option(options: Sequence[str], key: str) -> str | None:
    for o in options:
        if o.startswith(key + "="):
            return o[len(key) + 1:]
    return None


def chown_upper(mounts: Sequence[Any], userns: PodUserns) -> None:
    """Give the pod's root the snapshot's upper dir (the rootfs "/" and everything written)."""
    uid, gid = userns.host_root
    for m in mounts:
        upper = _option(m.options, "upperdir") if m.type == "overlay" else None
        if upper:
            os.chown(upper, uid, gid)


class PreparedMounts:
    """Idmapped copies made for one CreateTask; ``release()`` detaches them."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.targets: list[str] = []

    def add(self, source: str, fd: int, *, recursive: bool = False) -> str:
        target = str(self.workdir / str(len(self.targets)))
        if os.path.isdir(source):
            os.makedirs(target, exist_ok=True)
        else:
            Path(target).touch()
        idmapped_mount(source, target, fd, recursive=recursive)
        self.targets.append(target)
        return target

    def release(self) -> None:
        for target in reversed(self.targets):
            detach(target)
        self.targets.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _rootfs(mounts: Sequence[Any], prepared: PreparedMounts, fd: int) -> list[Any]:
    out = []
    for m in mounts:
        options = list(m.options)
        if m.type == "overlay":
            lower = _option(options, "lowerdir")
            if lower:
                mapped = [prepared.add(d, fd) for d in lower.split(":")]
                options = [f"lowerdir={':'.join(mapped)}" if o.startswith("lowerdir=") else o for o in options]
            out.append(mount_pb2.Mount(type=m.type, source=m.source, target=m.target, options=options))
        elif m.type == "bind" or "bind" in options or "rbind" in options:
            out.append(mount_pb2.Mount(type=m.type, source=prepared.add(m.source, fd), target=m.target,
                                       options=options))
        else:
            raise FailedPrecondition(f"user namespaces: cannot idmap a {m.type!r} rootfs mount "
                                     "(only overlay and bind snapshots are supported)")
    return out


def mount_dir(state_dir: Path) -> Path:
    """Where the idmapped copies of the object with state dir ``<state>/<kind>/<id>`` are mounted."""
    return state_dir.parent.parent / support.IDMAP_DIR / f"{state_dir.parent.name}-{state_dir.name}"


@contextlib.contextmanager
def _userns_fd(userns: PodUserns, holder_pid: int | None) -> Iterator[int]:
    """An fd of the pod's user namespace (held by the pause process), else of a helper with its mapping."""
    if holder_pid:
        try:
            fd = os.open(f"/proc/{holder_pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            pass  # the pause is gone: a helper with the same mapping idmaps the same way
        else:
            try:
                yield fd
            finally:
                os.close(fd)
            return
    with helper_userns(userns) as fd:
        yield fd


def _prepare_idmapped(mounts: Sequence[Any], userns: PodUserns, state_dir: Path,
                      holder_pid: int | None) -> tuple[list[Any], PreparedMounts]:
    chown_upper(mounts, userns)
    prep = PreparedMounts(mount_dir(state_dir))
    if prep.workdir.exists():  # leftovers of an interrupted start
        ctd_mounts.unmount_tree(str(prep.workdir))
        shutil.rmtree(prep.workdir)
    prep.workdir.mkdir(parents=True)
    try:
        with _userns_fd(userns, holder_pid) as fd:
            rootfs = _rootfs(mounts, prep, fd)
            for vol in load_volumes(state_dir):
                target = vol["target"]
                if os.path.isdir(vol["source"]):
                    os.makedirs(target, exist_ok=True)
                else:
                    Path(target).touch()
                idmapped_mount(vol["source"], target, fd, recursive=True)
                prep.targets.append(target)
    except BaseException as exc:
        prep.release()
        if isinstance(exc, IdmapError):
            raise FailedPrecondition(f"user namespaces: cannot prepare idmapped mounts: {exc.strerror}") from None
        raise
    return rootfs, prep


@contextlib.asynccontextmanager
async def prepared(mounts: Sequence[Any], userns: PodUserns, state_dir: Path,
                   holder_pid: int | None = None) -> AsyncIterator[list[Any]]:
    """The rootfs mounts to hand CreateTask, made usable for the pod's root.

    With idmapped mounts: layers idmapped, the upper dir chowned, and the
    volumes listed in ``state_dir/VOLUMES_FILE`` idmapped onto the paths the
    OCI spec names; all detached on exit. ``holder_pid``: the pause process
    (its user namespace is used; a helper one is made when None). With the chowned copy-up fallback:
    the snapshot is remapped once and the mounts are handed on unchanged.
    """
    if support.result().method == support.COPY:
        await asyncio.to_thread(chowned_copy_up, mounts, userns, state_dir)
        yield list(mounts)
        return
    rootfs, prep = await asyncio.to_thread(_prepare_idmapped, mounts, userns, state_dir, holder_pid)
    try:
        yield rootfs
    finally:
        prep.release()


def volume_target(state_dir: Path, index: int) -> str:
    return str(mount_dir(state_dir) / f"v{index}")


def save_volumes(state_dir: Path, volumes: list[dict[str, str]]) -> None:
    (state_dir / VOLUMES_FILE).write_text(json.dumps(volumes))


def load_volumes(state_dir: Path) -> list[dict[str, str]]:
    try:
        data = json.loads((state_dir / VOLUMES_FILE).read_text())
    except FileNotFoundError:
        return []
    return list(data)


def idmap_volumes(spec: dict[str, Any], config: Any, state_dir: Path) -> None:
    """Point the spec's bind mounts of the volumes the container asked for at idmapped copies made at start.

    Only ``config.mounts`` (what the pod asked for) are idmapped; the pod's own
    files (/etc/hosts, resolv.conf, …) stay owned by the host's root, so root in
    the pod cannot write them.
    """
    if support.result().method != support.IDMAP:
        return  # the chowned copy-up fallback leaves volumes as they are
    asked = {os.path.normpath(m.container_path): m.host_path for m in config.mounts if m.host_path}
    volumes: list[dict[str, str]] = []
    for m in spec.get("mounts", []):
        dst = os.path.normpath(m.get("destination", ""))
        if dst in asked and m.get("source") and ({"bind", "rbind"} & {m.get("type"), *m.get("options", [])}):
            target = volume_target(state_dir, len(volumes))
            volumes.append({"source": m["source"], "target": target})
            m["source"] = target
    if volumes:
        save_volumes(state_dir, volumes)
