"""The runtime's pods and containers as NRI messages (what plugins see in events and Synchronize).

Names follow containerd's NRI integration: pod name, namespace and uid from
the CRI metadata, a container's name is its CRI metadata name, and process,
mounts and Linux settings come from the OCI spec the container runs with.
"""

from __future__ import annotations

from typing import Any

from cri_protos.nri.v1alpha1 import api_pb2 as api
from cri_protos.runtime.v1 import api_pb2 as cri
from cri_runtime.containers import model as cmodel
from cri_runtime.containers.model import Container
from cri_runtime.oci.process import cri_env
from cri_runtime.sandbox.model import Sandbox

_STATES = {
    cmodel.CREATED: api.CONTAINER_CREATED,
    cmodel.RUNNING: api.CONTAINER_RUNNING,
    cmodel.EXITED: api.CONTAINER_STOPPED,
    cmodel.UNKNOWN: api.CONTAINER_UNKNOWN,
}


def pod(sandbox: Sandbox) -> api.PodSandbox:
    cfg = sandbox.config
    md = sandbox.metadata
    out = api.PodSandbox(id=md.id, name=cfg.metadata.name, uid=cfg.metadata.uid, namespace=cfg.metadata.namespace,
                         labels=dict(cfg.labels), annotations=dict(cfg.annotations),
                         runtime_handler=md.runtime_handler, pid=sandbox.status.pid)  # fmt: skip
    out.ips.extend(ip for ip in (md.ip, *md.additional_ips) if ip)
    out.linux.cgroup_parent = md.cgroup_parent
    if cfg.linux.HasField("resources"):
        out.linux.pod_resources.CopyFrom(resources(cfg.linux.resources))
    if cfg.linux.HasField("overhead"):
        out.linux.pod_overhead.CopyFrom(resources(cfg.linux.overhead))
    if md.netns_path:
        out.linux.namespaces.append(api.LinuxNamespace(type="network", path=md.netns_path))
    return out


def container(ctr: Container, spec: dict[str, Any] | None = None) -> api.Container:
    """`spec` is the OCI spec when at hand (CreateContainer); otherwise the CRI config stands in."""
    cfg, md, st = ctr.config, ctr.metadata, ctr.status
    out = api.Container(id=md.id, pod_sandbox_id=md.sandbox_id, name=cfg.metadata.name,
                        state=_STATES.get(st.state, api.CONTAINER_UNKNOWN), labels=dict(cfg.labels),
                        annotations=dict(cfg.annotations), pid=st.pid, created_at=md.created_at,
                        started_at=st.started_at, finished_at=st.finished_at, exit_code=st.exit_code,
                        status_reason=st.reason, status_message=st.message)  # fmt: skip
    if spec is not None:
        fill_from_spec(out, spec)
    else:
        out.args.extend([*cfg.command, *cfg.args])
        out.env.extend(cri_env(cfg.envs))
        out.mounts.extend(api.Mount(destination=m.container_path, source=m.host_path, type="bind",
                                    options=["rbind", "ro" if m.readonly else "rw"]) for m in cfg.mounts)  # fmt: skip
        if ctr.resources is not None:
            out.linux.resources.CopyFrom(resources(ctr.resources))
    return out


def new_container(container_id: str, sandbox_id: str, cfg: cri.ContainerConfig,
                  spec: dict[str, Any]) -> api.Container:  # fmt: skip
    """A container being created, as plugins see it in CreateContainer."""
    out = api.Container(id=container_id, pod_sandbox_id=sandbox_id, name=cfg.metadata.name,
                        state=api.CONTAINER_CREATED, labels=dict(cfg.labels),
                        annotations=dict(spec.get("annotations") or cfg.annotations))  # fmt: skip
    fill_from_spec(out, spec)
    return out


def fill_from_spec(out: api.Container, spec: dict[str, Any]) -> None:
    process = spec.get("process") or {}
    out.args.extend(process.get("args") or [])
    out.env.extend(process.get("env") or [])
    for m in spec.get("mounts") or []:
        out.mounts.append(api.Mount(destination=m.get("destination", ""), type=m.get("type", ""),
                                    source=m.get("source", ""), options=m.get("options") or []))  # fmt: skip
    for r in process.get("rlimits") or []:
        out.rlimits.append(api.POSIXRlimit(type=r["type"], hard=r["hard"], soft=r["soft"]))
    linux = spec.get("linux") or {}
    for ns in linux.get("namespaces") or []:
        out.linux.namespaces.append(api.LinuxNamespace(type=ns.get("type", ""), path=ns.get("path", "")))
    out.linux.cgroups_path = linux.get("cgroupsPath", "")
    if "oomScoreAdj" in process:
        out.linux.oom_score_adj.value = process["oomScoreAdj"]
    res = linux.get("resources") or {}
    mem, cpu = res.get("memory") or {}, res.get("cpu") or {}
    target = out.linux.resources
    if "limit" in mem:
        target.memory.limit.value = mem["limit"]
    if "shares" in cpu:
        target.cpu.shares.value = cpu["shares"]
    if "quota" in cpu:
        target.cpu.quota.value = cpu["quota"]
    if "period" in cpu:
        target.cpu.period.value = cpu["period"]
    target.cpu.cpus = cpu.get("cpus", "")
    target.cpu.mems = cpu.get("mems", "")
    if (res.get("pids") or {}).get("limit"):
        target.pids.limit = res["pids"]["limit"]


def resources(r: cri.LinuxContainerResources) -> api.LinuxResources:
    out = api.LinuxResources()
    if r.memory_limit_in_bytes:
        out.memory.limit.value = r.memory_limit_in_bytes
    if r.memory_swap_limit_in_bytes:
        out.memory.swap.value = r.memory_swap_limit_in_bytes
    if r.cpu_shares:
        out.cpu.shares.value = r.cpu_shares
    if r.cpu_quota:
        out.cpu.quota.value = r.cpu_quota
    if r.cpu_period:
        out.cpu.period.value = r.cpu_period
    out.cpu.cpus, out.cpu.mems = r.cpuset_cpus, r.cpuset_mems
    for h in r.hugepage_limits:
        out.hugepage_limits.append(api.HugepageLimit(page_size=h.page_size, limit=h.limit))
    for key, value in r.unified.items():
        out.unified[key] = value
    return out


def to_cri_resources(r: api.LinuxResources, base: cri.LinuxContainerResources | None) -> cri.LinuxContainerResources:
    """NRI resources over `base`: what UpdateContainerResources should apply."""
    out = cri.LinuxContainerResources()
    if base is not None:
        out.CopyFrom(base)
    if r.memory.HasField("limit"):
        out.memory_limit_in_bytes = r.memory.limit.value
    if r.memory.HasField("swap"):
        out.memory_swap_limit_in_bytes = r.memory.swap.value
    if r.cpu.HasField("shares"):
        out.cpu_shares = r.cpu.shares.value
    if r.cpu.HasField("quota"):
        out.cpu_quota = r.cpu.quota.value
    if r.cpu.HasField("period"):
        out.cpu_period = r.cpu.period.value
    if r.cpu.cpus:
        out.cpuset_cpus = r.cpu.cpus
    if r.cpu.mems:
        out.cpuset_mems = r.cpu.mems
    for h in r.hugepage_limits:
        kept = [x for x in out.hugepage_limits if x.page_size != h.page_size]
        del out.hugepage_limits[:]
        out.hugepage_limits.extend([*kept, cri.HugepageLimit(page_size=h.page_size, limit=h.limit)])
    for key, value in r.unified.items():
        out.unified[key] = value
    return out
