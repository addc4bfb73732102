"""What ContainerStatus reports beyond the container record, in containerd's shape.

* ``effective_resources``: the Linux resources the container runs with, read
  back from its OCI spec, so ``ContainerStatus.resources`` is always filled
  (containerd's ``copyResourcesToStatus``), not only when the request gave some.
* ``verbose_info_json``: the ``info`` document of ``ContainerStatus(verbose)`` with
  containerd's keys (``sandboxID``, ``pid``, ``removing``, ``snapshotKey``,
  ``snapshotter``, ``runtimeType``, ``runtimeOptions``, ``config``,
  ``runtimeSpec``) plus ours under their own names. Keys are documented in
  docs/verbose-info.md.
"""

from __future__ import annotations

import json
from typing import Any

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.containerd.cached_state import Record
from cri_runtime.gojson import encode_members
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


def verbose_info_json(*, sandbox_id: str, pid: int, removing: bool, record: Record, config_json: str,
                      extra: dict[str, Any]) -> str:
    """ContainerStatus(verbose) ``info``, encoded: containerd's keys first, then `extra` (ours).

    The two big members come already encoded, as `json.dumps` of the whole
    document would lay them out: the container's config (`config_json`, once per
    container) and the runtime spec (as containerd stores it on the record:
    what containerd writes into the task bundle's config.json for runc,
    updated by UpdateContainerResources).
    """
    container = record.container
    members = [
        ("sandboxID", json.dumps(sandbox_id)),
        ("pid", json.dumps(pid)),
        ("removing", json.dumps(removing)),
        ("snapshotKey", json.dumps(container.snapshot_key)),
        ("snapshotter", json.dumps(container.snapshotter)),
        ("runtimeType", json.dumps(container.runtime.name)),
        ("runtimeOptions", json.dumps(runtime_options(container))),
        ("config", config_json),
        ("runtimeSpec", record.spec_json),
    ]
    known = {key for key, _ in members}
    members += [(key, json.dumps(value)) for key, value in extra.items() if key not in known]
    return encode_members(members)
