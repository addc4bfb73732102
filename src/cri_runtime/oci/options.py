"""Node facts and runtime-handler settings the spec builders depend on.

The builders never probe the host themselves; whoever calls them detects these
once (cgroup mode, swap controller, our own oom_score_adj, kernel features)
and passes them here, which keeps the builders pure and testable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .cgroups import DEFAULT_SYSTEMD_PREFIX, CgroupDriver
from .defaults import ALL_CAPABILITIES


@dataclass(frozen=True)
class SpecOptions:
    #: cgroup driver of the runtime handler ("cgroupfs" or "systemd").
    cgroup_driver: CgroupDriver = "cgroupfs"
    systemd_cgroup_prefix: str = DEFAULT_SYSTEMD_PREFIX
    #: Never ask for an oom_score_adj below ``current_oom_score_adj`` (no CAP_SYS_RESOURCE).
    restrict_oom_score_adj: bool = True
    #: Our own /proc/self/oom_score_adj.
    current_oom_score_adj: int = 0
    #: Capabilities a privileged container gets (ideally our own bounding set).
    all_capabilities: tuple[str, ...] = ALL_CAPABILITIES
    #: Host devices for privileged containers; None: read /dev when one is needed.
    host_devices: tuple[dict[str, Any], ...] | None = None
    #: Runtime handler option: privileged containers do not get the host's devices.
    privileged_without_host_devices: bool = False
    seccomp_enabled: bool = True
    apparmor_enabled: bool = False
    #: AppArmor profile applied for RuntimeDefault when AppArmor is enabled (must be loaded by the caller).
    apparmor_default_profile: str = "cri-containerd.apparmor.d"
    #: The OCI runtime supports "rro" mounts (runc ≥ 1.1 on kernel ≥ 5.12).
    recursive_read_only_mounts: bool = False
    #: The memory swap controller exists (memory.memsw.* on v1, memory.swap.max on v2).
    swap_available: bool = False
    hugetlb_available: bool = True
    tolerate_missing_hugetlb: bool = False
    #: cgroup v2 unified hierarchy: unprivileged containers get their own cgroup namespace.
    cgroup_namespace: bool = False
    #: ``uname -m`` (seccomp architectures).
    arch: str = "x86_64"
    #: (major, minor) of the running kernel; None: assume a recent one.
    kernel_version: tuple[int, int] | None = None
    #: Seccomp profile for pods that ask for none (containerd's ``unset_seccomp_profile``).
    unset_seccomp_profile: str = ""
    #: Node hostname: HOSTNAME env of containers whose pod has no hostname (host network).
    node_hostname: str = ""
    #: Text of /proc/self/mountinfo, for the mount-propagation checks.
    mountinfo: str = ""
    #: Glob patterns of pod/container annotations copied into the spec (containerd's pod_annotations).
    passthrough_annotations: tuple[str, ...] = field(default_factory=tuple)
    #: Sandbox sysctls containerd can add for unprivileged ports / ICMP echo.
    enable_unprivileged_ports: bool = False
    enable_unprivileged_icmp: bool = False
