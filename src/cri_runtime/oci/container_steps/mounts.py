"""Container steps for the filesystem: read-only rootfs, cgroupfs, the pod's files, CRI mounts."""

from __future__ import annotations

import os

from cri_protos.runtime.v1 import api_pb2

from ..container_input import ContainerSpecInput
from ..defaults import CGROUP_MOUNT
from ..mounts import bind_mount, mount_depth, parse_mountinfo, same_destination
from ..spec_steps import Spec

ETC_HOSTNAME = "/etc/hostname"
ETC_HOSTS = "/etc/hosts"
ETC_RESOLV_CONF = "/etc/resolv.conf"
DEV_SHM = "/dev/shm"


def with_readonly_rootfs(inp: ContainerSpecInput, spec: Spec) -> None:
    if inp.security_context.readonly_rootfs:
        spec["root"]["readonly"] = True


def with_cgroup_mount(inp: ContainerSpecInput, spec: Spec) -> None:
    """/sys/fs/cgroup, read-only: every application container gets it, the pause container does not."""
    spec["mounts"].append(dict(CGROUP_MOUNT, options=list(CGROUP_MOUNT["options"])))


def with_writable_sysfs_and_cgroupfs(inp: ContainerSpecInput, spec: Spec) -> None:
    """Privileged containers get /sys and /sys/fs/cgroup read-write (as containerd's WithPrivileged)."""
    if not inp.privileged:
        return
    for m in spec["mounts"]:
        if m["type"] in ("sysfs", "cgroup"):
            m["options"] = ["rw" if o == "ro" else o for o in m["options"]]


def pod_file_mounts(inp: ContainerSpecInput) -> list[api_pb2.Mount]:
    """The pod's hostname/hosts/resolv.conf/shm as CRI mounts, unless the config mounts over them."""
    config, sandbox = inp.config, inp.sandbox
    sc = config.linux.security_context
    readonly = sc.readonly_rootfs

    def taken(dst: str) -> bool:
        return any(same_destination(m.container_path, dst) for m in config.mounts)

    mounts = []
    if sandbox.hostname_path and not taken(ETC_HOSTNAME):
        mounts.append(api_pb2.Mount(container_path=ETC_HOSTNAME, host_path=sandbox.hostname_path, readonly=readonly))
    if sandbox.hosts_path and not taken(ETC_HOSTS):
        mounts.append(api_pb2.Mount(container_path=ETC_HOSTS, host_path=sandbox.hosts_path, readonly=readonly))
    if sandbox.resolv_conf_path and not taken(ETC_RESOLV_CONF):
        mounts.append(
            api_pb2.Mount(container_path=ETC_RESOLV_CONF, host_path=sandbox.resolv_conf_path, readonly=readonly)
        )
    if not taken(DEV_SHM):
        shm = DEV_SHM if sc.namespace_options.ipc == api_pb2.NODE else sandbox.shm_path
        if shm:
            mounts.append(api_pb2.Mount(container_path=DEV_SHM, host_path=shm))
    return mounts


def _requested_mounts(inp: ContainerSpecInput) -> list[api_pb2.Mount]:
    """Config mounts (but image mounts, which the caller resolves), then the pod's files and extra mounts
    not shadowed by one; parents before children."""
    cri_mounts = [m for m in inp.config.mounts if not m.HasField("image")]
    extra = [*pod_file_mounts(inp), *inp.extra_mounts]
    mounts = list(cri_mounts)
    mounts += [e for e in extra if not any(same_destination(e.container_path, c.container_path) for c in cri_mounts)]
    mounts.sort(key=lambda m: mount_depth(m.container_path))  # stable: parents before children
    return mounts


def with_cri_mounts(inp: ContainerSpecInput, spec: Spec) -> None:
    """Bind the requested mounts; they replace default mounts at their destination (/dev: all below it).

    A mount with host-to-container or bidirectional propagation needs the
    rootfs to be rslave or rshared, so the strongest one asked sets it.
    """
    mounts = _requested_mounts(inp)
    taken = {os.path.normpath(m.container_path) for m in mounts}
    kept = []
    for m in spec["mounts"]:
        dst = os.path.normpath(m["destination"])
        if dst in taken or ("/dev" in taken and dst.startswith("/dev/")):
            continue
        kept.append(m)

    table = parse_mountinfo(inp.options.mountinfo)
    rootfs_propagation = ""
    for m in mounts:
        oci_mount, needs = bind_mount(m, mountinfo=table, rro_supported=inp.options.recursive_read_only_mounts)
        if needs == "rshared" or (needs == "rslave" and rootfs_propagation != "rshared"):
            rootfs_propagation = needs
        kept.append(oci_mount)
    spec["mounts"] = kept
    if rootfs_propagation:
        spec["linux"]["rootfsPropagation"] = rootfs_propagation
