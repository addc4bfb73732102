"""Ranges of LinuxContainerResources, for every request that carries them.

CreateContainer, UpdateContainerResources, RunPodSandbox (overhead and
resources) and UpdatePodSandboxResources all pass these checks, so an
out-of-range value is InvalidArgument naming the field, never a kernel
write error or an integer overflow (which protobuf reports as ValueError:
"Value out of range") half-way through the work. The ranges are the kernel's
(cgroup v1 files; v2 takes the same values after runc's conversion).
"""

from __future__ import annotations

import re

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.errors import InvalidArgument

INT64_MAX = 2**63 - 1
HUGEPAGE_SIZE = re.compile(r"^[1-9][0-9]*[KMGTP]B$")
# cpuset list format: "0-3,5,7-8".
CPUSET = re.compile(r"^[0-9]+(-[0-9]+)?(,[0-9]+(-[0-9]+)?)*$")
# A cgroup v2 interface file: "<controller>.<name>", nothing that could leave the cgroup's directory.
UNIFIED_KEY = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
OOM_SCORE_ADJ = (-1000, 1000)
CPU_SHARES = (2, 262144)  # cpu.shares, kernel MIN_SHARES..MAX_SHARES
CPU_PERIOD_US = (1000, 1_000_000)  # cpu.cfs_period_us: 1 ms .. 1 s
CPU_QUOTA_MIN_US = 1000  # cpu.cfs_quota_us: at least 1 ms (or -1 = unlimited)


def validate_resources(res: api_pb2.LinuxContainerResources, field: str) -> None:
    """Every field in the range the kernel accepts (0 and "" mean unset)."""
    if res.cpu_shares and not CPU_SHARES[0] <= res.cpu_shares <= CPU_SHARES[1]:
        raise InvalidArgument(f"{field}.cpu_shares must be 0 (unset) or in [{CPU_SHARES[0]}, {CPU_SHARES[1]}], "
                              f"got {res.cpu_shares}")
    if res.cpu_period and not CPU_PERIOD_US[0] <= res.cpu_period <= CPU_PERIOD_US[1]:
        raise InvalidArgument(f"{field}.cpu_period must be 0 (unset) or in [{CPU_PERIOD_US[0]}, "
                              f"{CPU_PERIOD_US[1]}] microseconds, got {res.cpu_period}")
    if res.cpu_quota < -1:
        raise InvalidArgument(f"{field}.cpu_quota must be -1 (unlimited) or more, got {res.cpu_quota}")
    if 0 < res.cpu_quota < CPU_QUOTA_MIN_US:
        raise InvalidArgument(f"{field}.cpu_quota must be at least {CPU_QUOTA_MIN_US} microseconds, "
                              f"got {res.cpu_quota}")
    for name in ("memory_limit_in_bytes", "memory_swap_limit_in_bytes"):
        if getattr(res, name) < 0:
            raise InvalidArgument(f"{field}.{name} must not be negative, got {getattr(res, name)}")
    if res.memory_swap_limit_in_bytes and res.memory_limit_in_bytes > res.memory_swap_limit_in_bytes:
        raise InvalidArgument(f"{field}.memory_swap_limit_in_bytes must not be below memory_limit_in_bytes")
    if not OOM_SCORE_ADJ[0] <= res.oom_score_adj <= OOM_SCORE_ADJ[1]:
        raise InvalidArgument(f"{field}.oom_score_adj must be in [-1000, 1000], got {res.oom_score_adj}")
    for name in ("cpuset_cpus", "cpuset_mems"):
        value = getattr(res, name)
        if value and not CPUSET.match(value):
            raise InvalidArgument(f"{field}.{name} {value!r} is not a CPU/node list such as 0-3,5")
    for i, h in enumerate(res.hugepage_limits):
        if not HUGEPAGE_SIZE.match(h.page_size):
            raise InvalidArgument(f"{field}.hugepage_limits[{i}].page_size {h.page_size!r} is not like 2MB or 1GB")
        if h.limit > INT64_MAX:
            raise InvalidArgument(f"{field}.hugepage_limits[{i}].limit {h.limit} is out of range")
    for key, value in res.unified.items():
        if not UNIFIED_KEY.match(key):
            raise InvalidArgument(f"{field}.unified: {key!r} is not a cgroup v2 file name such as memory.high")
        if "\n" in value or "\0" in value:
            raise InvalidArgument(f"{field}.unified[{key!r}]: the value must be one line")


def validate_pod_resources(overhead: api_pb2.LinuxContainerResources | None,
                           resources: api_pb2.LinuxContainerResources | None, rpc: str) -> None:
    """Both parts valid, and their sum (what the pod cgroup gets) still in range."""
    if overhead is not None:
        validate_resources(overhead, f"{rpc}: overhead")
    if resources is not None:
        validate_resources(resources, f"{rpc}: resources")
    if overhead is None or resources is None:
        return
    for name in ("cpu_shares", "memory_limit_in_bytes", "cpu_quota"):
        total = getattr(overhead, name) + getattr(resources, name)
        if total > INT64_MAX:
            raise InvalidArgument(f"{rpc}: resources.{name} + overhead.{name} = {total} is out of range")
    total_shares = overhead.cpu_shares + resources.cpu_shares
    if total_shares > CPU_SHARES[1]:
        raise InvalidArgument(f"{rpc}: resources.cpu_shares + overhead.cpu_shares = {total_shares} is above "
                              f"the kernel's maximum {CPU_SHARES[1]}")
