"""What ContainerStatus reports beyond the container record, in containerd's shape.

* ``effective_resources``: the Linux resources the container runs with, read
  back from its OCI spec, so ``ContainerStatus.resources`` is always filled
  (containerd's ``copyResourcesToStatus``), not only when the request gave some.
* ``verbose_info``: the ``info`` document of ``ContainerStatus(verbose)`` with
  containerd's keys (``sandboxID``, ``pid``, ``removing``, ``snapshotKey``,
  ``snapshotter``, ``runtimeType``, ``runtimeOptions``, ``config``,
  ``runtimeSpec``) plus ours under their own names. Keys are documented in
  docs/verbose-info.md.
"""

from __future__ import annotations

from typing import Any

from cri_protos.containerd.services.containers.v1 import containers_pb2
from cri_protos.runtime.v1 import api_pb2
from cri_runtime.gojson import go_json
from cri_runtime.sandbox.status_info import runtime_options


def effective_resources(spec: dict[str, Any]) -> api_pb2.LinuxContainerResources:
    """The CRI view of the spec's ``linux.resources`` and ``process.oomScoreAdj``."""
    out = api_pb2.LinuxContainerResources()
    oom = (spec.get("process") or {}).get("oomScoreAdj")
    if oom is not None:
        out.oom_score_adj = int(oom)
    res = (spec.get("linux") or {}).get("resources") or {}
    cpu = res.get("cpu") or {}
    if cpu.get("period") is not None:
        out.cpu_period = int(cpu["period"])
    if cpu.get("quota") is not None:
        out.cpu_quota = int(cpu["quota"])
    if cpu.get("shares") is not None:
        out.cpu_shares = int(cpu["shares"])
    out.cpuset_cpus = cpu.get("cpus") or ""
    out.cpuset_mems = cpu.get("mems") or ""
    memory = res.get("memory") or {}
    if memory.get("limit") is not None:
        out.memory_limit_in_bytes = int(memory["limit"])
    if memory.get("swap") is not None:
        out.memory_swap_limit_in_bytes = int(memory["swap"])
    for limit in res.get("hugepageLimits") or ():
        out.hugepage_limits.add(page_size=str(limit.get("pageSize", "")), limit=int(limit.get("limit", 0)))
    out.unified.update({str(k): str(v) for k, v in (res.get("unified") or {}).items()})
    return out


def verbose_info(*, sandbox_id: str, pid: int, removing: bool, record: containers_pb2.Container,
                 spec: dict[str, Any] | None, config: api_pb2.ContainerConfig,
                 extra: dict[str, Any]) -> dict[str, Any]:
    """ContainerStatus(verbose) ``info``: containerd's keys first, then ``extra`` (ours)."""
    info: dict[str, Any] = {
        "sandboxID": sandbox_id,
        "pid": pid,
        "removing": removing,
        "snapshotKey": record.snapshot_key,
        "snapshotter": record.snapshotter,
        "runtimeType": record.runtime.name,
        "runtimeOptions": runtime_options(record),
        "config": go_json(config),
        # The spec as stored on the containerd record: what containerd writes into the
        # task bundle's config.json for runc (updated by UpdateContainerResources).
        "runtimeSpec": spec,
    }
    for key, value in extra.items():
        info.setdefault(key, value)
    return info
