"""Gather the facts behind ListPodSandboxMetrics and turn them into PodSandboxMetrics.

Per pod: network counters of its netns. Per container with a running task:
the cgroup sample (shared Tasks.Metrics call), the task's PIDs (Tasks.ListPids)
for threads/fds/sockets read from /proc, the init process's ulimits, its
writable layer and the filesystem holding it, and the resources it was
created or last updated with.
"""

from __future__ import annotations

import asyncio
import logging
import time

from cri_protos.containerd.services.tasks.v1 import tasks_pb2
from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors
from cri_runtime.containers.model import RUNNING, Container
from cri_runtime.sandbox.model import Sandbox
from cri_runtime.stats import pod_metrics, procfs
from cri_runtime.stats.collector import METRICS_CALL_TIMEOUT, LayerUsage, StatsCollector, TaskSample

log = logging.getLogger(__name__)


class MetricsCollector:
    def __init__(self, stats: StatsCollector) -> None:
        self.stats = stats

    async def _pids(self, container_id: str) -> list[int]:
        if container_id in self.stats.stuck:
            return []  # its shim does not answer (see StatsCollector.answered_samples)
        try:
            resp = await self.stats.ctd.call(self.stats.ctd.tasks.ListPids,
                                             tasks_pb2.ListPidsRequest(container_id=container_id),
                                             f"pids of {container_id}", timeout=METRICS_CALL_TIMEOUT)
        except errors.CriError as exc:
            log.debug("pids of %s: %s", container_id, exc)
            return []
        return [p.pid for p in resp.processes]

    async def fs(self) -> procfs.FsInfo | None:
        return await asyncio.to_thread(procfs.fs_info, await self.stats.mountpoint())

    async def collect(self, pods: list[tuple[Sandbox, list[Container]]]) -> list[api_pb2.PodSandboxMetrics]:
        containers = [c for _, cs in pods for c in cs]
        running = [c for c in containers if c.state == RUNNING]
        samples, layers, fs, nets, pids = await asyncio.gather(
            self.stats.task_samples([c.id for c in running]),
            self.stats.layer_usage([c.id for c in containers]),
            self.fs(),
            asyncio.gather(*(self.stats.network(sb) for sb, _ in pods)),
            asyncio.gather(*(self._pids(c.id) for c in running)))
        pids_by_id = {c.id: p for c, p in zip(running, pids, strict=True)}
        proc_facts = await asyncio.to_thread(self._proc_facts, running, pids_by_id)
        now = time.time_ns()
        out = []
        for (sb, cs), net in zip(pods, nets, strict=True):
            md = sb.config.metadata
            pm = api_pb2.PodSandboxMetrics(pod_sandbox_id=sb.id)
            if net is not None:
                pm.metrics.extend(pod_metrics.pod_network_metrics(md.name, md.namespace, sb.id, net))
            for c in cs:
                facts = self._facts(sb, c, samples.get(c.id), layers.get(c.id), fs, proc_facts.get(c.id))
                pm.container_metrics.append(pod_metrics.container_metrics(facts, now))
            out.append(pm)
        return out

    @staticmethod
    def _proc_facts(running: list[Container], pids: dict[str, list[int]]
                    ) -> dict[str, tuple[procfs.ProcessCounts, dict[str, int]]]:
        return {c.id: (procfs.count_processes(pids.get(c.id, [])), procfs.soft_limits(c.status.pid))
                for c in running}

    @staticmethod
    def _facts(sb: Sandbox, c: Container, task: TaskSample | None, layer: LayerUsage | None,
               fs: procfs.FsInfo | None, proc: tuple[procfs.ProcessCounts, dict[str, int]] | None
               ) -> pod_metrics.ContainerFacts:
        md = sb.config.metadata
        res = c.resources or api_pb2.LinuxContainerResources()
        image = c.config.image.user_specified_image or c.metadata.image_name
        return pod_metrics.ContainerFacts(
            pod_name=md.name, pod_namespace=md.namespace, container_name=c.config.metadata.name,
            container_id=c.id, image=image, started_at_ns=c.status.started_at,
            sample=task.sample if task else None,
            layer_used_bytes=layer.used_bytes if layer else None,
            layer_timestamp_ns=layer.timestamp_ns if layer else 0, fs=fs,
            processes=proc[0] if proc else None, ulimits=proc[1] if proc else {},
            cpu_period=res.cpu_period, cpu_quota=res.cpu_quota, cpu_shares=res.cpu_shares,
            memory_limit=res.memory_limit_in_bytes, memory_swap_limit=res.memory_swap_limit_in_bytes)
