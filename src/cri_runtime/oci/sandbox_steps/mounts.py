"""Sandbox steps for the filesystem: read-only rootfs, the pod's /dev/shm and resolv.conf, /sys."""

from __future__ import annotations

from ..sandbox_input import SandboxSpecInput
from ..spec_steps import Spec

DEV_SHM = "/dev/shm"
ETC_RESOLV_CONF = "/etc/resolv.conf"


def with_readonly_rootfs(inp: SandboxSpecInput, spec: Spec) -> None:
    """The pause process writes nothing."""
    spec["root"]["readonly"] = True


def with_shm(inp: SandboxSpecInput, spec: Spec) -> None:
    """The pod's shm directory (the host's /dev/shm with host IPC) replaces the default tmpfs."""
    source = DEV_SHM if inp.host_ipc else inp.shm_path
    if source:
        spec["mounts"] = [
            *(m for m in spec["mounts"] if m["destination"] != DEV_SHM),
            {"destination": DEV_SHM, "type": "bind", "source": source, "options": ["rbind", "ro"]},
        ]


def with_resolv_conf(inp: SandboxSpecInput, spec: Spec) -> None:
    if inp.resolv_conf_path:
        spec["mounts"].append(
            {"destination": ETC_RESOLV_CONF, "type": "bind", "source": inp.resolv_conf_path, "options": ["rbind", "ro"]}
        )


def with_writable_sysfs(inp: SandboxSpecInput, spec: Spec) -> None:
    """Mount the pause container's /sys read-write (privileged pods with their own netns).

    The kernel keeps one sysfs superblock per network namespace, and the first
    mount decides whether it is read-only: the pause container mounts first, so
    a read-only /sys there would make every later /sys of the pod read-only,
    even the read-write one a privileged container asks for (as containerd gives
    it). Per-mount flags still keep the pod's other containers' /sys read-only.
    """
    if not inp.security_context.privileged or inp.host_network:
        return
    for m in spec["mounts"]:
        if m["type"] == "sysfs":
            m["options"] = ["rw" if o == "ro" else o for o in m["options"]]
