"""Facts about this node that the OCI spec builders need, detected once.

The spec builders are pure; everything they must know about the host (our
oom_score_adj and whether we may lower it, kernel version, cgroup
controllers, seccomp/AppArmor availability) is read here at start-up, so a
difference between machines shows up in one place.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
from pathlib import Path

from cri_runtime.config import Config, RuntimeHandlerConfig
from cri_runtime.oci.defaults import ALL_CAPABILITIES
from cri_runtime.oci.options import SpecOptions

CAP_SYS_RESOURCE = 24


def own_oom_score_adj() -> int:
    try:
        return int(Path("/proc/self/oom_score_adj").read_text().strip())
    except (OSError, ValueError):
        return 0


def has_capability(bit: int) -> bool:
    """Whether this process has capability `bit` in its effective set."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) & (1 << bit))
    except OSError:
        pass
    return False


def bounding_capabilities() -> tuple[str, ...]:
    """Our own capability bounding set: all a privileged container can be given.

    Asking runc for a capability we do not hold fails every privileged
    container ("unable to apply caps"), e.g. CAP_SYS_RESOURCE on this kind of host.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapBnd:"):
                mask = int(line.split()[1], 16)
                return tuple(name for bit, name in enumerate(ALL_CAPABILITIES) if mask & (1 << bit))
    except (OSError, ValueError):
        pass
    return ALL_CAPABILITIES


def runc_mount_options(binary: str = "runc") -> frozenset[str]:
    """Mount options runc supports, from `runc features` (empty if it cannot tell)."""
    try:
        out = subprocess.run([binary, "features"], capture_output=True, timeout=10, check=True).stdout
        return frozenset(json.loads(out).get("mountOptions") or ())
    except (OSError, subprocess.SubprocessError, ValueError):
        return frozenset()


def kernel_version() -> tuple[int, int] | None:
    parts = platform.release().split(".")
    try:
        return int(parts[0]), int(parts[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def seccomp_available() -> bool:
    try:
        return any(line.startswith("Seccomp:") for line in Path("/proc/self/status").read_text().splitlines())
    except OSError:
        return False


def apparmor_enabled() -> bool:
    try:
        return Path("/sys/module/apparmor/parameters/enabled").read_text().strip() == "Y"
    except OSError:
        return False


def cgroup_v2_unified() -> bool:
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def swap_controller_available() -> bool:
    if cgroup_v2_unified():
        return True
    return os.path.exists("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")


def hugetlb_available() -> bool:
    if cgroup_v2_unified():
        try:
            return "hugetlb" in Path("/sys/fs/cgroup/cgroup.controllers").read_text().split()
        except OSError:
            return False
    return os.path.isdir("/sys/fs/cgroup/hugetlb")


class NodeFacts:
    """Detected once at start-up; `spec_options()` adds per-call facts (mountinfo)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.current_oom_score_adj = own_oom_score_adj()
        setting = config.runtime.restrict_oom_score_adj
        self.restrict_oom_score_adj = (not has_capability(CAP_SYS_RESOURCE)) if setting == "auto" \
            else setting == "true"
        self.kernel = kernel_version()
        self.arch = platform.machine()
        self.seccomp = seccomp_available()
        self.apparmor = apparmor_enabled()
        self.cgroup_v2 = cgroup_v2_unified()
        self.swap = swap_controller_available()
        self.hugetlb = hugetlb_available()
        # "rro" needs runc support (it lists it in `runc features`) and mount_setattr (kernel 5.12).
        self.recursive_read_only = (self.kernel is not None and self.kernel >= (5, 12)
                                    and "rro" in runc_mount_options())
        self.hostname = platform.node()
        self.capabilities = bounding_capabilities()

    def spec_options(self, handler: RuntimeHandlerConfig | None = None, *,
                     mountinfo: bool = False) -> SpecOptions:
        """Options for the spec builders; `mountinfo` reads the host mount table (it grows
        with every pod), needed only for mounts with shared or slave propagation."""
        table = ""
        if mountinfo:
            with contextlib.suppress(OSError):
                table = Path("/proc/self/mountinfo").read_text()
        return SpecOptions(
            cgroup_driver="systemd" if self.config.runtime.cgroup_driver == "systemd" else "cgroupfs",
            restrict_oom_score_adj=self.restrict_oom_score_adj,
            current_oom_score_adj=self.current_oom_score_adj,
            all_capabilities=self.capabilities,
            privileged_without_host_devices=bool(handler and handler.privileged_without_host_devices),
            seccomp_enabled=self.seccomp,
            apparmor_enabled=self.apparmor,
            recursive_read_only_mounts=self.recursive_read_only,
            swap_available=self.swap,
            hugetlb_available=self.hugetlb,
            cgroup_namespace=self.cgroup_v2,
            arch=self.arch,
            kernel_version=self.kernel,
            node_hostname=self.hostname,
            mountinfo=table,
        )
