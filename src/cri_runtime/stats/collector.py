"""Collect container and pod stats from containerd, cgroupfs and the pods' netns.

One Tasks.Metrics call fetches the cgroup counters of every task asked for
(containerd asks each shim in turn); writable-layer usage comes from
Snapshots.Usage, cached for `layer_ttl` seconds because the overlay
snapshotter walks the whole upper directory to answer (containerd's CRI
caches it the same way). Pod CPU/memory/pids come from the pod's own cgroup
when the pod names a cgroup parent, otherwise from the sum of its containers
and its pause task; pod network counters are read inside the pod's netns.

A shim that does not answer (frozen, or blocked behind a stuck runc) would
hold the whole Metrics call, and with it every container's stats. So the
call has a short deadline; when it passes, each task is asked on its own,
and those that still do not answer are marked stuck: logged, counted in
`shims.COUNTERS.stats_skipped`, and left out of the answer. Later calls ask
stuck tasks separately (so they never slow the others) until they answer again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cri_protos.containerd.services.snapshots.v1 import snapshots_pb2
from cri_protos.containerd.services.tasks.v1 import tasks_pb2
from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors
from cri_runtime.containerd import shims
from cri_runtime.containerd.connection import Containerd
from cri_runtime.containers.model import Container
from cri_runtime.network import ifstats
from cri_runtime.sandbox.model import Sandbox
from cri_runtime.stats import cgroupfs, convert
from cri_runtime.stats.cpu_rate import CpuRateTracker
from cri_runtime.stats.sample import CgroupSample, UnknownMetricsType, add, decode

log = logging.getLogger(__name__)

LAYER_TTL_SECONDS = 10.0
LAYER_CONCURRENCY = 8
POD_KEY = "pod:"
#: Seconds one Metrics call may take before its tasks are asked one by one; twice this
#: bounds a stats answer when a shim stops answering (kubelet's stats loop expects ~1 s).
METRICS_CALL_TIMEOUT = 0.8


@dataclass(frozen=True)
class TaskSample:
    sample: CgroupSample
    timestamp_ns: int


@dataclass(frozen=True)
class LayerUsage:
    used_bytes: int
    inodes_used: int
    timestamp_ns: int


class StatsCollector:
    """Builds ContainerStats / PodSandboxStats; keeps the CPU reference samples."""

    def __init__(self, ctd: Containerd, snapshotter: str, cgroup_driver: str,
                 fs_mountpoint: Callable[[], Awaitable[str]], *, layer_ttl: float = LAYER_TTL_SECONDS,
                 hierarchies: cgroupfs.Hierarchies | None = None) -> None:
        self.ctd = ctd
        self.snapshotter = snapshotter
        self.cgroup_driver = cgroup_driver
        self._fs_mountpoint = fs_mountpoint
        self._mountpoint: str | None = None
        self.layer_ttl = layer_ttl
        self.cpu = CpuRateTracker()
        self._layers: dict[str, LayerUsage] = {}
        self._hierarchies = hierarchies
        #: Tasks whose shim did not answer the last time they were asked.
        self.stuck: set[str] = set()

    # ----------------------------------------------------------- raw sources

    async def task_samples(self, ids: list[str]) -> dict[str, TaskSample]:
        """cgroup samples of the running tasks among `ids` (missing = no task, or its shim is stuck)."""
        samples, _ = await self.answered_samples(ids)
        return samples

    async def answered_samples(self, ids: list[str], time_left: float | None = None
                               ) -> tuple[dict[str, TaskSample], set[str]]:
        """(samples, IDs whose shim did not answer in time); never waits on a stuck shim for long.

        `time_left`: the caller's remaining deadline; each of the (at most two) rounds of
        calls then gets under half of it, so the answer is out before the caller gives up.
        """
        if not ids:
            return {}, set()
        wait = METRICS_CALL_TIMEOUT if time_left is None else max(0.05, min(METRICS_CALL_TIMEOUT, time_left * 0.4))
        fresh = [i for i in ids if i not in self.stuck]
        suspects = [i for i in ids if i in self.stuck]
        results = await asyncio.gather(self._metrics_or_one_by_one(fresh, wait),
                                       *(self._metrics_of_one(i, wait) for i in suspects))
        out: dict[str, TaskSample] = {}
        unanswered: set[str] = set()
        for samples, silent in results:
            out.update(samples)
            unanswered |= silent
        for i in ids:
            if i in unanswered:
                if i not in self.stuck:
                    log.warning("shim of task %s did not answer for stats within %gs; its stats are left out "
                                "until it answers", i, wait)
                self.stuck.add(i)
            elif i in self.stuck:
                log.info("shim of task %s answers stats again", i)
                self.stuck.discard(i)
        shims.COUNTERS.stats_skipped += len(unanswered)
        return out, unanswered

    async def _metrics_or_one_by_one(self, ids: list[str], wait: float) -> tuple[dict[str, TaskSample], set[str]]:
        if not ids:
            return {}, set()
        try:
            return await self._metrics(ids, wait), set()
        except errors.DeadlineExceeded:
            pass
        results = await asyncio.gather(*(self._metrics_of_one(i, wait) for i in ids))
        out: dict[str, TaskSample] = {}
        silent: set[str] = set()
        for samples, stuck in results:
            out.update(samples)
            silent |= stuck
        return out, silent

    async def _metrics_of_one(self, task_id: str, wait: float) -> tuple[dict[str, TaskSample], set[str]]:
        try:
            return await self._metrics([task_id], wait), set()
        except errors.DeadlineExceeded:
            return {}, {task_id}

    async def _metrics(self, ids: list[str], wait: float) -> dict[str, TaskSample]:
        req = tasks_pb2.MetricsRequest(filters=[f"id=={i}" for i in ids])
        try:
            resp = await asyncio.wait_for(
                self.ctd.call(self.ctd.tasks.Metrics, req, "task metrics", timeout=wait + 1), wait)
        except TimeoutError:
            raise errors.DeadlineExceeded(f"task metrics: no answer within {wait:g}s") from None
        out: dict[str, TaskSample] = {}
        for m in resp.metrics:
            if not m.HasField("data"):
                continue
            try:
                sample = decode(m.data)
            except UnknownMetricsType as exc:
                log.warning("metrics of task %s: %s", m.id, exc)
                continue
            ts = m.timestamp.seconds * 1_000_000_000 + m.timestamp.nanos if m.HasField("timestamp") else 0
            out[m.id] = TaskSample(sample, ts or time.time_ns())
        return out

    async def mountpoint(self) -> str:
        if self._mountpoint is None:
            self._mountpoint = await self._fs_mountpoint()
        return self._mountpoint

    async def layer_usage(self, container_ids: list[str]) -> dict[str, LayerUsage]:
        """Snapshots.Usage of each container's writable snapshot, cached `layer_ttl` seconds."""
        now = time.time_ns()
        ttl_ns = int(self.layer_ttl * 1e9)
        stale = [cid for cid in container_ids
                 if cid not in self._layers or now - self._layers[cid].timestamp_ns >= ttl_ns]
        sem = asyncio.Semaphore(LAYER_CONCURRENCY)

        async def one(cid: str) -> None:
            async with sem:
                try:
                    u = await self.ctd.call(self.ctd.snapshots.Usage,
                                            snapshots_pb2.UsageRequest(snapshotter=self.snapshotter, key=cid),
                                            f"usage of snapshot {cid}")
                except errors.NotFound:
                    self._layers.pop(cid, None)
                    return
            self._layers[cid] = LayerUsage(int(u.size), int(u.inodes), time.time_ns())

        if stale:
            await asyncio.gather(*(one(c) for c in stale))
        return {cid: self._layers[cid] for cid in container_ids if cid in self._layers}

    def hierarchies(self) -> cgroupfs.Hierarchies:
        if self._hierarchies is None:
            self._hierarchies = cgroupfs.host_hierarchies()
        return self._hierarchies

    def pod_cgroup_sample(self, sandbox: Sandbox) -> CgroupSample | None:
        path = cgroupfs.pod_cgroup_path(sandbox.metadata.cgroup_parent, self.cgroup_driver)
        if not path or path == "/":
            return None
        return cgroupfs.read_cgroup(self.hierarchies(), path)

    def forget(self, object_id: str) -> None:
        """Drop the cached state of a removed container or pod."""
        self.cpu.forget(object_id)
        self.cpu.forget(POD_KEY + object_id)
        self._layers.pop(object_id, None)

    # ------------------------------------------------------------- builders

    async def container_stats(self, containers: list[Container],
                              time_left: float | None = None) -> list[api_pb2.ContainerStats]:
        """ContainerStats for each container (cpu/memory only while it has a task)."""
        ids = [c.id for c in containers]
        (samples, stuck), layers, mountpoint = await asyncio.gather(
            self.answered_samples(ids, time_left), self.layer_usage(ids), self.mountpoint())
        return [self.build_container_stats(c, samples.get(c.id), layers.get(c.id), mountpoint)
                for c in containers if c.id not in stuck]

    def build_container_stats(self, c: Container, task: TaskSample | None, layer: LayerUsage | None,
                              mountpoint: str) -> api_pb2.ContainerStats:
        cfg = c.config
        out = api_pb2.ContainerStats(attributes=api_pb2.ContainerAttributes(
            id=c.id, metadata=cfg.metadata, labels=dict(cfg.labels), annotations=dict(cfg.annotations)))
        out.writable_layer.CopyFrom(api_pb2.FilesystemUsage(
            timestamp=layer.timestamp_ns if layer else time.time_ns(),
            fs_id=api_pb2.FilesystemIdentifier(mountpoint=mountpoint),
            used_bytes=convert.u64(layer.used_bytes if layer else 0),
            inodes_used=convert.u64(layer.inodes_used if layer else 0)))
        if task is None:
            return out
        self._fill_usage(out, c.id, task.sample, task.timestamp_ns)
        return out

    def _fill_usage(self, out: api_pb2.ContainerStats | api_pb2.LinuxPodSandboxStats, key: str,
                    s: CgroupSample, ts: int) -> None:
        rate = self.cpu.rate(key, s.cpu_usage_ns, ts) if s.cpu_usage_ns is not None else None
        cpu = convert.cpu_usage(s, ts, rate)
        if cpu is not None:
            out.cpu.CopyFrom(cpu)
        mem = convert.memory_usage(s, ts)
        if mem is not None:
            out.memory.CopyFrom(mem)
        io = convert.io_usage(s, ts)
        if io is not None:
            out.io.CopyFrom(io)
        if isinstance(out, api_pb2.ContainerStats):
            swap = convert.swap_usage(s, ts)
            if swap is not None:
                out.swap.CopyFrom(swap)

    async def pod_stats(self, pods: list[tuple[Sandbox, list[Container]]],
                        time_left: float | None = None) -> list[api_pb2.PodSandboxStats]:
        """PodSandboxStats of each (sandbox, its containers)."""
        all_containers = [c for _, cs in pods for c in cs]
        ids = [c.id for c in all_containers] + [sb.id for sb, _ in pods if sb.ready]
        (samples, stuck), layers, mountpoint = await asyncio.gather(
            self.answered_samples(ids, time_left), self.layer_usage([c.id for c in all_containers]),
            self.mountpoint())
        nets = await asyncio.gather(*(self.network(sb) for sb, _ in pods))
        out = []
        for (sb, cs), net in zip(pods, nets, strict=True):
            if sb.id in stuck:
                continue  # its shim (shared by its containers) does not answer
            answered = [c for c in cs if c.id not in stuck]
            out.append(self._build_pod_stats(sb, answered, samples, layers, mountpoint, net))
        return out

    async def network(self, sb: Sandbox) -> dict[str, ifstats.InterfaceCounters] | None:
        if not sb.metadata.netns_path or not sb.ready:
            return None
        try:
            return await ifstats.interface_counters(sb.metadata.netns_path)
        except (errors.NotFound, OSError) as exc:
            log.debug("network stats of pod %s: %s", sb.id, exc)
            return None

    def _build_pod_stats(self, sb: Sandbox, cs: list[Container], samples: dict[str, TaskSample],
                         layers: dict[str, LayerUsage], mountpoint: str,
                         net: dict[str, ifstats.InterfaceCounters] | None) -> api_pb2.PodSandboxStats:
        cfg = sb.config
        out = api_pb2.PodSandboxStats(attributes=api_pb2.PodSandboxAttributes(
            id=sb.id, metadata=cfg.metadata, labels=dict(cfg.labels), annotations=dict(cfg.annotations)))
        linux = out.linux
        linux.SetInParent()
        for c in cs:
            linux.containers.append(self.build_container_stats(c, samples.get(c.id), layers.get(c.id), mountpoint))
        now = time.time_ns()
        pod_sample = self.pod_cgroup_sample(sb) if sb.ready else None
        ts = now
        if pod_sample is None:
            parts = [samples[i] for i in [sb.id, *(c.id for c in cs)] if i in samples]
            pod_sample = add([p.sample for p in parts])
            if parts:
                ts = max(p.timestamp_ns for p in parts)
        if pod_sample is not None:
            self._fill_usage(linux, POD_KEY + sb.id, pod_sample, ts)
            if pod_sample.pids_current is not None:
                linux.process.CopyFrom(convert.process_usage(pod_sample.pids_current, ts))
        if net is not None:
            linux.network.CopyFrom(convert.network_usage(net, now))
        return out
