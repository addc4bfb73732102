"""Per-pod files bind-mounted into every container: hostname, hosts, resolv.conf, /dev/shm.

They live in the pod's directory so that all containers of the pod see the
same content, and a restart of cri-runtime finds them again.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cri_runtime import errors

HOST_RESOLV_CONF = "/etc/resolv.conf"
HOST_HOSTS = "/etc/hosts"
DEFAULT_SHM_SIZE = 64 * 1024 * 1024

DEFAULT_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)

_MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 2, 4, 8
_MNT_DETACH = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


@dataclass(frozen=True)
class PodFiles:
    """Where a pod's shared files are."""

    directory: str
    hostname: str
    hosts: str
    resolv_conf: str
    shm: str  # empty when the pod uses the host's IPC namespace (and /dev/shm)


def resolv_conf_text(servers: list[str], searches: list[str], options: list[str]) -> str:
    """resolv.conf from CRI DNSConfig, in the order glibc reads it."""
    lines = []
    if searches:
        lines.append("search " + " ".join(searches))
    lines.extend(f"nameserver {s}" for s in servers)
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def write_pod_files(directory: str, *, hostname: str, host_network: bool,
                    dns: tuple[list[str], list[str], list[str]] | None) -> tuple[str, str, str]:
    """Write hostname, hosts and resolv.conf; returns their paths."""
    os.makedirs(directory, mode=0o755, exist_ok=True)
    d = Path(directory)
    (d / "hostname").write_text(hostname + "\n")
    if host_network and os.path.exists(HOST_HOSTS):
        shutil.copyfile(HOST_HOSTS, d / "hosts")
    else:
        (d / "hosts").write_text(DEFAULT_HOSTS)
    if dns is not None and any(dns):
        (d / "resolv.conf").write_text(resolv_conf_text(*dns))
    elif os.path.exists(HOST_RESOLV_CONF):
        shutil.copyfile(HOST_RESOLV_CONF, d / "resolv.conf")
    else:
        (d / "resolv.conf").write_text("")
    for name in ("hostname", "hosts", "resolv.conf"):
        os.chmod(d / name, 0o644)
    return str(d / "hostname"), str(d / "hosts"), str(d / "resolv.conf")


def mount_shm(path: str, size: int = DEFAULT_SHM_SIZE) -> None:
    """A private tmpfs for the pod's /dev/shm (shared by its containers)."""
    os.makedirs(path, mode=0o755, exist_ok=True)
    if os.path.ismount(path):
        return
    opts = f"mode=1777,size={size}".encode()
    if _libc.mount(b"shm", path.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, opts) != 0:
        err = ctypes.get_errno()
        raise errors.Internal(f"mount shm tmpfs at {path}: {os.strerror(err)}")


def unmount_shm(path: str) -> None:
    """Unmount (lazily) and remove the pod's shm; missing is fine."""
    if not path:
        return
    while os.path.ismount(path):
        if _libc.umount2(path.encode(), _MNT_DETACH) != 0:
            err = ctypes.get_errno()
            raise errors.Internal(f"unmount shm at {path}: {os.strerror(err)}")
    with contextlib.suppress(FileNotFoundError, OSError):
        os.rmdir(path)


def remove_pod_dir(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)
