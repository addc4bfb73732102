"""CRI volume mounts → OCI bind mounts, with containerd's host-side checks.

Propagation other than private needs the host mount holding the source to be
shared (bidirectional) or shared/slave (host-to-container), or the container
would silently see nothing; that is checked against ``/proc/self/mountinfo``
text the caller passes in, so the check is testable with fake tables.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cri_protos.runtime.v1 import api_pb2

from ..errors import FailedPrecondition, InvalidArgument, NotFound

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class MountInfo:
    """One line of /proc/<pid>/mountinfo (the fields the checks need)."""

    mount_point: str
    optional: tuple[str, ...]
    fs_type: str = ""
    source: str = ""

    @property
    def shared(self) -> bool:
        return any(o.startswith("shared:") for o in self.optional)

    @property
    def slave(self) -> bool:
        return any(o.startswith("master:") for o in self.optional)


def _unescape(field: str) -> str:
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[MountInfo]:
    """Parse mountinfo text; lines that do not fit the format are skipped."""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        try:
            sep = fields.index("-", 6)
        except ValueError:
            continue
        if len(fields) < sep + 3:
            continue
        entries.append(
            MountInfo(
                mount_point=_unescape(fields[4]),
                optional=tuple(fields[6:sep]),
                fs_type=fields[sep + 1],
                source=_unescape(fields[sep + 2]),
            )
        )
    return entries


def lookup_mount(path: str, mounts: Iterable[MountInfo]) -> MountInfo:
    """The mount ``path`` lives on: the deepest mount point containing it (the last one wins on ties)."""
    path = os.path.normpath(path)
    best: MountInfo | None = None
    for m in mounts:
        mp = m.mount_point
        inside = path == mp or mp == "/" or path.startswith(mp.rstrip("/") + "/")
        if inside and (best is None or len(mp) >= len(best.mount_point)):
            best = m
    if best is None:
        raise FailedPrecondition(f"no mount found for {path!r} in mountinfo")
    return best


def _propagation_option(
    m: api_pb2.Mount, source: str, mountinfo: list[MountInfo]
) -> tuple[str, str | None]:
    """(mount option, rootfs propagation the mount needs or None)."""
    if m.propagation == api_pb2.PROPAGATION_PRIVATE:
        return "rprivate", None
    if m.propagation == api_pb2.PROPAGATION_BIDIRECTIONAL:
        info = lookup_mount(source, mountinfo)
        if not info.shared:
            raise FailedPrecondition(
                f"mount {m.container_path!r}: host path {source!r} is mounted on {info.mount_point!r} "
                "but it is not a shared mount (needed for bidirectional propagation)"
            )
        return "rshared", "rshared"
    if m.propagation == api_pb2.PROPAGATION_HOST_TO_CONTAINER:
        info = lookup_mount(source, mountinfo)
        if not (info.shared or info.slave):
            raise FailedPrecondition(
                f"mount {m.container_path!r}: host path {source!r} is mounted on {info.mount_point!r} "
                "but it is not a shared or slave mount (needed for host-to-container propagation)"
            )
        return "rslave", "rslave"
    raise InvalidArgument(f"mount {m.container_path!r}: unknown propagation {m.propagation}")


def resolve_host_path(path: str) -> str:
    """The symlink-free form of an existing host path; NotFound naming it otherwise."""
    if not os.path.isabs(path):
        raise InvalidArgument(f"mount host_path {path!r} must be absolute")
    if not os.path.lexists(path):
        raise NotFound(f"mount host_path {path!r} does not exist")
    resolved = os.path.realpath(path, strict=False)
    if not os.path.exists(resolved):
        raise NotFound(f"mount host_path {path!r} resolves to {resolved!r}, which does not exist")
    return resolved


def ensure_host_paths(mounts: Iterable[api_pb2.Mount]) -> None:
    """Create missing host-path directories (containerd does so before mounting).

    Not called by the builders (they do no writes); the caller may call it first.
    """
    for m in mounts:
        if m.host_path and not os.path.lexists(m.host_path):
            os.makedirs(m.host_path, mode=0o755, exist_ok=True)


def bind_mount(
    m: api_pb2.Mount,
    *,
    mountinfo: list[MountInfo],
    rro_supported: bool,
    resolve: Callable[[str], str] = resolve_host_path,
) -> tuple[dict[str, Any], str | None]:
    """OCI mount for a CRI host-path mount, and the rootfs propagation it needs (or None)."""
    source = resolve(m.host_path)
    propagation, rootfs_propagation = _propagation_option(m, source, mountinfo)
    options = ["rbind", propagation]
    if m.readonly:
        if m.recursive_read_only:
            if not rro_supported:
                raise InvalidArgument(
                    f"mount {m.container_path!r}: the runtime handler does not support recursive read-only mounts"
                )
            if m.propagation != api_pb2.PROPAGATION_PRIVATE:
                raise InvalidArgument(
                    f"mount {m.container_path!r}: recursive read-only needs private propagation, "
                    f"got {api_pb2.MountPropagation.Name(m.propagation)}"
                )
            options.append("rro")
        else:
            options.append("ro")
    else:
        if m.recursive_read_only:
            raise InvalidArgument(f"mount {m.container_path!r}: recursive_read_only requires readonly")
        options.append("rw")
    spec: dict[str, Any] = {"destination": m.container_path, "type": "bind", "source": source, "options": options}
    if m.uidMappings:
        spec["uidMappings"] = [
            {"containerID": x.container_id, "hostID": x.host_id, "size": x.length} for x in m.uidMappings
        ]
    if m.gidMappings:
        spec["gidMappings"] = [
            {"containerID": x.container_id, "hostID": x.host_id, "size": x.length} for x in m.gidMappings
        ]
    return spec, rootfs_propagation


def mount_depth(container_path: str) -> int:
    """Number of path separators in the cleaned path: parents sort before children."""
    return os.path.normpath(container_path).count("/")


def same_destination(a: str, b: str) -> bool:
    return os.path.normpath(a) == os.path.normpath(b)
