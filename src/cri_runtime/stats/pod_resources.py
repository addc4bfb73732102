"""UpdatePodSandboxResources: apply a pod's new resources to its pod cgroup.

kubelet resizes the pod cgroup itself before it calls us; we write the same
values (container sum plus pod overhead) to the pod cgroup named by the
pod's cgroup parent, so the pod cgroup matches what kubelet told us even if
kubelet's own write raced with a container start. A pod without a cgroup
parent has no pod cgroup: there is nothing to write. The pod cgroup itself
is the record, so nothing needs keeping across restarts of ours.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors
from cri_runtime.stats import cgroupfs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CgroupWrite:
    controller: str  # v1 controller name; "" on cgroup v2
    file: str
    value: str


def pod_total(overhead: api_pb2.LinuxContainerResources | None,
              resources: api_pb2.LinuxContainerResources | None) -> api_pb2.LinuxContainerResources:
    """The pod cgroup's limits: the containers' sum plus the pod overhead (additive fields)."""
    total = api_pb2.LinuxContainerResources()
    if resources is not None:
        total.CopyFrom(resources)
    if overhead is not None:
        total.cpu_shares += overhead.cpu_shares
        total.memory_limit_in_bytes += overhead.memory_limit_in_bytes
        if overhead.cpu_quota > 0 and total.cpu_quota > 0:
            total.cpu_quota += overhead.cpu_quota
        if not total.cpu_period:
            total.cpu_period = overhead.cpu_period
    return total


def v1_writes(r: api_pb2.LinuxContainerResources) -> list[CgroupWrite]:
    out = []
    if r.cpu_shares:
        out.append(CgroupWrite("cpu", "cpu.shares", str(r.cpu_shares)))
    if r.cpu_period:
        out.append(CgroupWrite("cpu", "cpu.cfs_period_us", str(r.cpu_period)))
    if r.cpu_quota:
        out.append(CgroupWrite("cpu", "cpu.cfs_quota_us", str(r.cpu_quota)))
    if r.memory_limit_in_bytes:
        out.append(CgroupWrite("memory", "memory.limit_in_bytes", str(r.memory_limit_in_bytes)))
    if r.cpuset_cpus:
        out.append(CgroupWrite("cpuset", "cpuset.cpus", r.cpuset_cpus))
    if r.cpuset_mems:
        out.append(CgroupWrite("cpuset", "cpuset.mems", r.cpuset_mems))
    for h in r.hugepage_limits:
        out.append(CgroupWrite("hugetlb", f"hugetlb.{h.page_size}.limit_in_bytes", str(h.limit)))
    return out


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2, 262144] to v2 cpu.weight [1, 10000] (runc's conversion)."""
    if shares == 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def v2_writes(r: api_pb2.LinuxContainerResources) -> list[CgroupWrite]:
    out = []
    if r.cpu_shares:
        out.append(CgroupWrite("", "cpu.weight", str(shares_to_weight(r.cpu_shares))))
    if r.cpu_quota or r.cpu_period:
        quota = "max" if r.cpu_quota <= 0 else str(r.cpu_quota)
        out.append(CgroupWrite("", "cpu.max", f"{quota} {r.cpu_period or 100000}"))
    if r.memory_limit_in_bytes:
        out.append(CgroupWrite("", "memory.max", str(r.memory_limit_in_bytes)))
    if r.cpuset_cpus:
        out.append(CgroupWrite("", "cpuset.cpus", r.cpuset_cpus))
    if r.cpuset_mems:
        out.append(CgroupWrite("", "cpuset.mems", r.cpuset_mems))
    for h in r.hugepage_limits:
        out.append(CgroupWrite("", f"hugetlb.{h.page_size}.max", str(h.limit)))
    for name, value in sorted(r.unified.items()):
        out.append(CgroupWrite("", name, value))
    return out


def _write(path: str, value: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(value)


def apply(h: cgroupfs.Hierarchies, cgroup_path: str, r: api_pb2.LinuxContainerResources,
          write: Callable[[str, str], None] = _write) -> list[str]:
    """Write `r` to the cgroup; returns the files written. Raises FailedPrecondition on a refused value."""
    written = []
    if h.v1:
        targets = [(os.path.join(h.v1[w.controller], cgroup_path.lstrip("/"), w.file), w)
                   for w in v1_writes(r) if w.controller in h.v1]
    else:
        targets = [(os.path.join(h.unified, cgroup_path.lstrip("/"), w.file), w) for w in v2_writes(r)]
    for path, w in targets:
        try:
            write(path, w.value)
        except FileNotFoundError:
            raise errors.NotFound(f"pod cgroup file {path} does not exist") from None
        except OSError as exc:
            reason = "the current usage is above it" if exc.errno == errno.EBUSY else exc.strerror
            raise errors.FailedPrecondition(f"cannot set {w.file}={w.value} on the pod cgroup: {reason}") from None
        written.append(path)
    return written


class PodResources:
    """Applies the resources kubelet reports for a pod to its pod cgroup."""

    def __init__(self, cgroup_driver: str, hierarchies: Callable[[], cgroupfs.Hierarchies]) -> None:
        self.cgroup_driver = cgroup_driver
        self._hierarchies = hierarchies

    def update(self, sandbox_id: str, cgroup_parent: str, overhead: api_pb2.LinuxContainerResources | None,
               resources: api_pb2.LinuxContainerResources | None) -> list[str]:
        total = pod_total(overhead, resources)
        path = cgroupfs.pod_cgroup_path(cgroup_parent, self.cgroup_driver)
        if not path or path == "/":
            log.info("pod %s has no pod cgroup; nothing to update", sandbox_id)
            return []
        written = apply(self._hierarchies(), path, total)
        log.info("pod cgroup resources updated", extra={"fields": {"pod": sandbox_id, "cgroup": path,
                                                                   "files": len(written)}})
        return written
