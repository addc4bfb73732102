"""``linux.cgroupsPath`` for both cgroup drivers."""

from __future__ import annotations

import posixpath
from typing import Literal

from ..errors import InvalidArgument

CgroupDriver = Literal["cgroupfs", "systemd"]

#: Middle part of runc's systemd ``slice:prefix:name`` form (unit "<prefix>-<id>.scope").
DEFAULT_SYSTEMD_PREFIX = "cri-runtime"
#: Where containers go when the pod names no parent (containerd: /<namespace>/<id>).
DEFAULT_CGROUPFS_PARENT = "/k8s.io"


def cgroups_path(
    parent: str, container_id: str, driver: CgroupDriver, systemd_prefix: str = DEFAULT_SYSTEMD_PREFIX
) -> str:
    """cgroupfs: ``<parent>/<id>``; systemd: ``<parent slice>:<prefix>:<id>``.

    With systemd the kubelet names the pod's slice (``.../kubepods-pod<uid>.slice``);
    runc wants only its last element. An empty parent leaves runc's default slice.
    """
    if driver == "cgroupfs":
        return posixpath.join(parent or DEFAULT_CGROUPFS_PARENT, container_id)
    if driver == "systemd":
        base = posixpath.basename(parent.rstrip("/")) if parent else ""
        if base and not base.endswith(".slice"):
            raise InvalidArgument(f"cgroup_parent {parent!r} must end in .slice with the systemd driver")
        return f"{base}:{systemd_prefix}:{container_id}"
    raise InvalidArgument(f"unknown cgroup driver {driver!r}")
