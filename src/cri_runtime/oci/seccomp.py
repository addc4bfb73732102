"""Seccomp profiles for CRI containers and sandboxes.

``RuntimeDefault`` is generated here with the same effect as containerd's default
profile: deny (EPERM) by default, allow a fixed list of syscalls plus some that
depend on the CPU architecture and on the capabilities the process keeps in its
bounding set. Namespace-creating ``clone`` flags are refused and ``clone3`` gets
ENOSYS (so libc falls back to ``clone``) unless CAP_SYS_ADMIN is kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cri_protos.runtime.v1 import api_pb2

from ..errors import InvalidArgument, NotFound
from .seccomp_syscalls import BASE_ALLOWED_SYSCALLS

SecurityProfile = api_pb2.SecurityProfile

#: libseccomp architectures a profile covers, keyed by ``uname -m`` (and Go) names.
_ARCHES: dict[str, tuple[str, ...]] = {
    "x86_64": ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"),
    "aarch64": ("SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64"),
}
_ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}

#: Syscalls only one architecture family has and the default profile allows.
_ARCH_SYSCALLS: dict[str, tuple[str, ...]] = {
    "x86_64": ("arch_prctl", "modify_ldt"),
    "aarch64": (
        "arm_fadvise64_64",
        "arm_sync_file_range",
        "sync_file_range2",
        "breakpoint",
        "cacheflush",
        "set_tls",
    ),
}

#: Syscalls allowed only while the capability is in the bounding set.
_CAPABILITY_SYSCALLS: dict[str, tuple[str, ...]] = {
    "CAP_DAC_READ_SEARCH": ("open_by_handle_at",),
    "CAP_SYS_ADMIN": (
        "bpf",
        "clone",
        "clone3",
        "fanotify_init",
        "fsconfig",
        "fsmount",
        "fsopen",
        "fspick",
        "lookup_dcookie",
        "mount",
        "mount_setattr",
        "move_mount",
        "name_to_handle_at",
        "open_tree",
        "perf_event_open",
        "quotactl",
        "quotactl_fd",
        "setdomainname",
        "sethostname",
        "setns",
        "syslog",
        "umount",
        "umount2",
        "unshare",
    ),
    "CAP_SYS_BOOT": ("reboot",),
    "CAP_SYS_CHROOT": ("chroot",),
    "CAP_SYS_MODULE": ("delete_module", "init_module", "finit_module"),
    "CAP_SYS_PACCT": ("acct",),
    "CAP_SYS_PTRACE": ("kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"),
    "CAP_SYS_RAWIO": ("iopl", "ioperm"),
    "CAP_SYS_TIME": ("settimeofday", "stime", "clock_settime", "clock_settime64"),
    "CAP_SYS_TTY_CONFIG": ("vhangup",),
    "CAP_SYS_NICE": ("get_mempolicy", "mbind", "set_mempolicy"),
    "CAP_SYSLOG": ("syslog",),
    "CAP_BPF": ("bpf",),
    "CAP_PERFMON": ("perf_event_open",),
}

#: personality(2) personas allowed: PER_LINUX, PER_LINUX32, UNAME26 variants, and the query value.
_PERSONALITY_VALUES = (0x0, 0x0008, 0x20000, 0x20008, 0xFFFFFFFF)

#: CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET.
NAMESPACE_CLONE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000

_ENOSYS = 38
#: ptrace is safe to allow without CAP_SYS_PTRACE from Linux 4.8 (seccomp re-checks after ptrace).
_PTRACE_SAFE_KERNEL = (4, 8)

#: Keys of an OCI ``linux.seccomp`` object; others in a Localhost profile are dropped.
_SECCOMP_KEYS = (
    "defaultAction",
    "defaultErrnoRet",
    "architectures",
    "flags",
    "listenerPath",
    "listenerMetadata",
    "syscalls",
)

_DEPRECATED_DEFAULTS = ("runtime/default", "docker/default", "")
_LOCALHOST_PREFIX = "localhost/"


def normalize_arch(machine: str) -> str:
    """``uname -m`` / Go arch name → the key used here; InvalidArgument if unsupported."""
    arch = _ARCH_ALIASES.get(machine, machine)
    if arch not in _ARCHES:
        raise InvalidArgument(f"seccomp: unsupported architecture {machine!r} (supported: x86_64, aarch64)")
    return arch


def parse_kernel_release(release: str) -> tuple[int, int]:
    """``"6.1.0-9-amd64"`` → ``(6, 1)``."""
    parts = release.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1].split("-")[0] if ch.isdigit()) or 0)
    except (IndexError, ValueError) as exc:
        raise InvalidArgument(f"cannot parse kernel release {release!r}") from exc


def _allow(names: Iterable[str]) -> dict[str, Any]:
    return {"names": sorted(set(names)), "action": "SCMP_ACT_ALLOW"}


def runtime_default_profile(
    bounding_caps: Iterable[str],
    arch: str = "x86_64",
    kernel_version: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The RuntimeDefault profile for a process with ``bounding_caps``.

    ``kernel_version`` None means "new enough" (≥ 4.8, so plain ptrace is allowed).
    """
    arch = normalize_arch(arch)
    caps = set(bounding_caps)
    allowed = set(BASE_ALLOWED_SYSCALLS) | set(_ARCH_SYSCALLS[arch])
    if kernel_version is None or kernel_version >= _PTRACE_SAFE_KERNEL:
        allowed.add("ptrace")
    for cap, names in _CAPABILITY_SYSCALLS.items():
        if cap in caps:
            allowed.update(names)
    syscalls: list[dict[str, Any]] = [_allow(allowed)]
    syscalls.extend(
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": value, "op": "SCMP_CMP_EQ"}],
        }
        for value in _PERSONALITY_VALUES
    )
    if "CAP_SYS_ADMIN" not in caps:
        # clone without any namespace flag is fine; clone3's flags live in a struct
        # seccomp cannot inspect, so refuse it with ENOSYS and let libc fall back.
        syscalls.append(
            {
                "names": ["clone"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": NAMESPACE_CLONE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
            }
        )
        syscalls.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": _ENOSYS})
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": list(_ARCHES[arch]),
        "syscalls": syscalls,
    }


def load_localhost_profile(path: str) -> dict[str, Any]:
    """Read a seccomp profile file (OCI ``linux.seccomp`` JSON) from the node."""
    if not path or not Path(path).is_absolute():
        raise InvalidArgument(f"seccomp localhost profile path must be absolute, got {path!r}")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise NotFound(f"seccomp profile {path!r} not found") from exc
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"seccomp profile {path!r} is not a readable JSON file: {exc}") from exc
    except OSError as exc:
        raise InvalidArgument(f"cannot read seccomp profile {path!r}: {exc}") from exc
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"seccomp profile {path!r} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidArgument(f"seccomp profile {path!r} must be a JSON object")
    if not isinstance(doc.get("defaultAction"), str):
        raise InvalidArgument(f"seccomp profile {path!r} has no string defaultAction")
    if "syscalls" in doc and not isinstance(doc["syscalls"], list | type(None)):
        raise InvalidArgument(f"seccomp profile {path!r}: syscalls must be a list")
    return {key: doc[key] for key in _SECCOMP_KEYS if doc.get(key) is not None}


def profile_from_deprecated_path(value: str) -> SecurityProfile:
    """Translate the deprecated ``seccomp_profile_path`` / ``apparmor_profile`` string form."""
    if value in _DEPRECATED_DEFAULTS:
        return SecurityProfile(profile_type=SecurityProfile.RuntimeDefault)
    if value == "unconfined":
        return SecurityProfile(profile_type=SecurityProfile.Unconfined)
    if not value.startswith(_LOCALHOST_PREFIX):
        raise InvalidArgument(f"invalid security profile {value!r}: want runtime/default, unconfined, localhost/<ref>")
    return SecurityProfile(profile_type=SecurityProfile.Localhost, localhost_ref=value[len(_LOCALHOST_PREFIX) :])


def requested_profile(
    profile: SecurityProfile | None, deprecated_path: str, unset_default: str = ""
) -> SecurityProfile | None:
    """The profile a security context asks for, or None for "not set" (= unconfined).

    The structured field wins; else the deprecated string; else the runtime's
    configured default for pods that say nothing (containerd's
    ``unset_seccomp_profile``).
    """
    if profile is not None:
        return profile
    if deprecated_path:
        return profile_from_deprecated_path(deprecated_path)
    if unset_default:
        return profile_from_deprecated_path(unset_default)
    return None


def seccomp_section(
    profile: SecurityProfile | None,
    *,
    privileged: bool,
    seccomp_enabled: bool,
    bounding_caps: Iterable[str],
    arch: str = "x86_64",
    kernel_version: tuple[int, int] | None = None,
) -> dict[str, Any] | None:
    """The spec's ``linux.seccomp`` for ``profile``, or None to run without a filter.

    Call it after capabilities are final: RuntimeDefault depends on the bounding set.
    """
    if privileged:
        return None
    if not seccomp_enabled:
        if profile is not None and profile.profile_type != SecurityProfile.Unconfined:
            raise InvalidArgument("seccomp is not supported on this node")
        return None
    if profile is None:
        return None
    if profile.profile_type != SecurityProfile.Localhost and profile.localhost_ref:
        raise InvalidArgument("seccomp: localhost_ref must only be set with profile_type Localhost")
    if profile.profile_type == SecurityProfile.Unconfined:
        return None
    if profile.profile_type == SecurityProfile.RuntimeDefault:
        return runtime_default_profile(bounding_caps, arch, kernel_version)
    if profile.profile_type == SecurityProfile.Localhost:
        ref = profile.localhost_ref
        if ref.startswith(_LOCALHOST_PREFIX):
            ref = ref[len(_LOCALHOST_PREFIX) :]
        return load_localhost_profile(ref)
    raise InvalidArgument(f"seccomp: unknown profile_type {profile.profile_type}")
