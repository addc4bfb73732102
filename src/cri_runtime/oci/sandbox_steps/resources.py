"""Sandbox steps for the pod's kernel settings and cgroup: sysctls, cpu.shares, the cgroup path."""

from __future__ import annotations

from ..cgroups import cgroups_path
from ..resources import SANDBOX_CPU_SHARES
from ..sandbox_input import SandboxSpecInput
from ..spec_steps import Spec
from ..sysctls import validate_sysctls


def with_sysctls(inp: SandboxSpecInput, spec: Spec) -> None:
    """The pod's namespaced sysctls (set once, in the pause process's namespaces), plus
    unprivileged ports and ICMP echo when the node enables them and the pod has its own netns."""
    sysctls = validate_sysctls(inp.config.linux.sysctls, host_network=inp.host_network, host_ipc=inp.host_ipc)
    if not inp.host_network:
        if inp.options.enable_unprivileged_ports:
            sysctls.setdefault("net.ipv4.ip_unprivileged_port_start", "0")
        if inp.options.enable_unprivileged_icmp:
            sysctls.setdefault("net.ipv4.ping_group_range", "0 2147483647")
    if sysctls:
        spec["linux"]["sysctl"] = sysctls


def with_cpu_shares(inp: SandboxSpecInput, spec: Spec) -> None:
    """The minimum cpu.shares: the pause process needs no CPU (the pod's limits are on its parent cgroup)."""
    spec["linux"]["resources"]["cpu"] = {"shares": SANDBOX_CPU_SHARES}


def with_cgroups_path(inp: SandboxSpecInput, spec: Spec) -> None:
    """Under the pod's cgroup parent, in the runtime handler's driver's syntax."""
    options = inp.options
    spec["linux"]["cgroupsPath"] = cgroups_path(
        inp.config.linux.cgroup_parent, inp.sandbox_id, options.cgroup_driver, options.systemd_cgroup_prefix
    )
