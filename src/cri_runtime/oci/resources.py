"""CRI ``LinuxContainerResources`` → OCI ``linux.resources`` and oom_score_adj."""

from __future__ import annotations

from typing import Any

from cri_protos.runtime.v1 import api_pb2

from ..errors import FailedPrecondition

#: oom_score_adj containerd gives the pause process: killed almost last.
SANDBOX_OOM_SCORE_ADJ = -998
#: cpu.shares of the pause container (the minimum the kernel accepts).
SANDBOX_CPU_SHARES = 2


def clamp_oom_score_adj(requested: int, *, restrict: bool, current: int) -> int:
    """The value to ask runc for: never below our own when restricted.

    Without CAP_SYS_RESOURCE a process cannot lower oom_score_adj below its own,
    and runc would fail the start; ``current`` is /proc/self/oom_score_adj.
    """
    if restrict and requested < current:
        return current
    return requested


def linux_resources(
    res: api_pb2.LinuxContainerResources | None,
    *,
    swap_available: bool,
    hugetlb_available: bool = True,
    tolerate_missing_hugetlb: bool = False,
) -> dict[str, Any]:
    """cpu / memory / hugepageLimits / unified sections for ``res`` (0 and "" mean unset).

    ``swap_available``: the memory swap controller exists (cgroup v1
    memory.memsw.*, v2 memory.swap.max). Then a memory limit without a swap
    limit also caps memory+swap at the limit, i.e. no swap, as containerd does.
    """
    out: dict[str, Any] = {}
    if res is None:
        return out
    cpu: dict[str, Any] = {}
    if res.cpu_shares:
        cpu["shares"] = res.cpu_shares
    if res.cpu_quota:
        cpu["quota"] = res.cpu_quota
    if res.cpu_period:
        cpu["period"] = res.cpu_period
    if res.cpuset_cpus:
        cpu["cpus"] = res.cpuset_cpus
    if res.cpuset_mems:
        cpu["mems"] = res.cpuset_mems
    if cpu:
        out["cpu"] = cpu
    memory: dict[str, Any] = {}
    if res.memory_limit_in_bytes:
        memory["limit"] = res.memory_limit_in_bytes
        if not res.memory_swap_limit_in_bytes and swap_available:
            memory["swap"] = res.memory_limit_in_bytes
    if res.memory_swap_limit_in_bytes:
        memory["swap"] = res.memory_swap_limit_in_bytes
    if memory:
        out["memory"] = memory
    if res.hugepage_limits:
        if hugetlb_available:
            out["hugepageLimits"] = [{"pageSize": h.page_size, "limit": h.limit} for h in res.hugepage_limits]
        elif not tolerate_missing_hugetlb:
            raise FailedPrecondition("huge page limits are requested but the hugetlb cgroup controller is missing")
    if res.unified:
        out["unified"] = dict(sorted(res.unified.items()))
    return out
