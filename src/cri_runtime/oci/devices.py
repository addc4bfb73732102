"""Host device nodes → OCI ``linux.devices`` entries and device-cgroup rules."""

from __future__ import annotations

import os
import stat
from typing import Any

from ..errors import InvalidArgument, NotFound

#: Directories of /dev a privileged container does not get as devices.
_SKIPPED_DIRS = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})


def parse_permissions(permissions: str, what: str = "device") -> str:
    """Validate cgroup device access ("r", "w", "m" in any combination, no repeats)."""
    if not permissions or any(c not in "rwm" for c in permissions) or len(set(permissions)) != len(permissions):
        raise InvalidArgument(f"{what}: invalid permissions {permissions!r}: want a combination of r, w and m")
    return permissions


def device_from_path(path: str, container_path: str | None = None) -> dict[str, Any] | None:
    """OCI device for the node at ``path`` (not following a final symlink), None if not a device."""
    st = os.lstat(path)
    mode = st.st_mode
    if stat.S_ISBLK(mode):
        kind = "b"
    elif stat.S_ISCHR(mode):
        kind = "c"
    else:
        return None
    return {
        "path": container_path or path,
        "type": kind,
        "major": os.major(st.st_rdev),
        "minor": os.minor(st.st_rdev),
        "fileMode": stat.S_IMODE(mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
    }


def devices_under(path: str, container_path: str = "") -> list[dict[str, Any]]:
    """Devices at ``path``: the node itself, or every device below a directory."""
    if not os.path.exists(path):
        raise NotFound(f"device {path!r} does not exist")
    if not os.path.isdir(path):
        dev = device_from_path(path, container_path or None)
        if dev is None:
            raise InvalidArgument(f"{path!r} is not a device node")
        return [dev]
    out: list[dict[str, Any]] = []
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        child_cpath = os.path.join(container_path, entry.name) if container_path else ""
        if entry.is_dir(follow_symlinks=False):
            if entry.name in _SKIPPED_DIRS:
                continue
            out.extend(devices_under(entry.path, child_cpath))
            continue
        if entry.name == "console":
            continue
        try:
            dev = device_from_path(entry.path, child_cpath or None)
        except FileNotFoundError:
            continue
        if dev is not None:
            out.append(dev)
    return out


def host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """All host devices, as a privileged container gets them."""
    return devices_under(root)


def cgroup_rule(device: dict[str, Any], access: str) -> dict[str, Any]:
    """Device-cgroup allow rule for one device."""
    return {
        "allow": True,
        "type": device["type"],
        "major": device["major"],
        "minor": device["minor"],
        "access": access,
    }
