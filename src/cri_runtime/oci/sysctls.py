"""Validation of namespaced sysctls a pod may set.

Only sysctls that live in a namespace the pod owns can be set: net.* needs the
pod's own network namespace, the IPC ones its own IPC namespace. Anything else
would change the host (runc refuses it too, but later and less clearly).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ..errors import InvalidArgument

_IPC_SYSCTLS = frozenset(
    {
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    }
)
_UTS_SYSCTLS = frozenset({"kernel.domainname"})
# kubelet's sysctl name pattern (dot or slash form): segments of [a-z0-9_-], starting and
# ending alphanumeric, so no empty, "." or ".." segment can step out of /proc/sys.
_NAME = re.compile(r"^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$")
_MAX_NAME = 253


def normalize_sysctl_name(name: str) -> str:
    """Slash form ``net/ipv4/conf/eth0.1/rp_filter`` → dot form ``net.ipv4.conf.eth0/1.rp_filter``."""
    if "/" not in name:
        return name
    return name.translate(str.maketrans("./", "/."))


def validate_sysctls(sysctls: Mapping[str, str], *, host_network: bool, host_ipc: bool) -> dict[str, str]:
    """Normalised copy of ``sysctls``; InvalidArgument naming the first unacceptable one."""
    out: dict[str, str] = {}
    for raw_name, value in sysctls.items():
        if len(raw_name) > _MAX_NAME or not _NAME.match(raw_name):
            raise InvalidArgument(
                f"sysctl {raw_name!r}: invalid name (segments of a-z, 0-9, '_' and '-' separated by '.' "
                f"or '/', at most {_MAX_NAME} characters)")
        if "\n" in value or "\0" in value:
            raise InvalidArgument(f"sysctl {raw_name!r}: the value must be one line")
        name = normalize_sysctl_name(raw_name)
        if name in _IPC_SYSCTLS or name.startswith("fs.mqueue."):
            if host_ipc:
                raise InvalidArgument(f"sysctl {raw_name!r} is not allowed with the host IPC namespace")
        elif name.startswith("net."):
            if host_network:
                raise InvalidArgument(f"sysctl {raw_name!r} is not allowed with the host network namespace")
        elif name in _UTS_SYSCTLS:
            if host_network:
                raise InvalidArgument(f"sysctl {raw_name!r} is not allowed with the host UTS namespace")
        else:
            raise InvalidArgument(f"sysctl {raw_name!r} is not namespaced: it would change the host")
        out[name] = value
    return out
