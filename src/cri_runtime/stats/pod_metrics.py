"""PodSandboxMetrics values, built from samples with cAdvisor's names, units and labels (pure).

cAdvisor exports seconds as floats; the CRI carries unsigned integers, so
second-valued counters are whole seconds (as containerd does). Label values
follow the descriptor's label keys exactly, in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.network.ifstats import InterfaceCounters
from cri_runtime.stats import descriptors
from cri_runtime.stats.procfs import FsInfo, ProcessCounts
from cri_runtime.stats.sample import CgroupSample

NS = 1_000_000_000
US = 1_000_000


@dataclass
class MetricSink:
    """Collects Metric messages, checking each against its descriptor."""

    base: list[str]
    timestamp_ns: int = 0  # 0 = live value
    metrics: list[api_pb2.Metric] = field(default_factory=list)

    def add(self, name: str, value: int | None, *extra: str, timestamp_ns: int | None = None) -> None:
        if value is None:
            return
        d = descriptors.BY_NAME[name]
        labels = [*self.base, *extra]
        if len(labels) != len(d.labels):
            raise ValueError(f"{name}: {len(labels)} label values for {len(d.labels)} keys")
        self.metrics.append(api_pb2.Metric(
            name=name, timestamp=self.timestamp_ns if timestamp_ns is None else timestamp_ns,
            metric_type=d.kind, label_values=labels, value=api_pb2.UInt64Value(value=max(int(value), 0))))


@dataclass(frozen=True)
class ContainerFacts:
    """Everything container metrics are computed from (gathered by the collector)."""

    pod_name: str
    pod_namespace: str
    container_name: str
    container_id: str
    image: str
    started_at_ns: int
    sample: CgroupSample | None
    layer_used_bytes: int | None = None
    layer_timestamp_ns: int = 0
    fs: FsInfo | None = None
    processes: ProcessCounts | None = None
    ulimits: dict[str, int] = field(default_factory=dict)
    cpu_period: int = 0
    cpu_quota: int = 0
    cpu_shares: int = 0
    memory_limit: int = 0
    memory_swap_limit: int = 0


def container_labels(f: ContainerFacts) -> list[str]:
    return [f.pod_name, f.pod_namespace, f.container_name, f.container_id, f.image]


def _cpu(sink: MetricSink, s: CgroupSample) -> None:
    if s.cpu_usage_ns is None:
        return
    sink.add("container_cpu_usage_seconds_total", s.cpu_usage_ns // NS)
    sink.add("container_cpu_user_seconds_total", None if s.cpu_user_ns is None else s.cpu_user_ns // NS)
    sink.add("container_cpu_system_seconds_total", None if s.cpu_system_ns is None else s.cpu_system_ns // NS)
    sink.add("container_cpu_cfs_periods_total", s.cpu_periods)
    sink.add("container_cpu_cfs_throttled_periods_total", s.cpu_throttled_periods)
    sink.add("container_cpu_cfs_throttled_seconds_total",
             None if s.cpu_throttled_ns is None else s.cpu_throttled_ns // NS)


def _memory(sink: MetricSink, s: CgroupSample) -> None:
    if s.memory_usage is None:
        return
    sink.add("container_memory_usage_bytes", s.memory_usage)
    sink.add("container_memory_working_set_bytes", s.working_set)
    sink.add("container_memory_max_usage_bytes", s.memory_max_usage)
    sink.add("container_memory_rss", s.memory_rss)
    sink.add("container_memory_cache", s.memory_cache)
    sink.add("container_memory_mapped_file", s.memory_mapped_file)
    sink.add("container_memory_kernel_usage", s.memory_kernel)
    sink.add("container_memory_swap", s.memory_swap)
    sink.add("container_memory_failcnt", s.memory_failcnt if s.version == 1 else None)
    # cAdvisor's failure types: pgfault (minor) and pgmajfault, scope container (no hierarchy on CRI).
    sink.add("container_memory_failures_total", s.page_faults, "pgfault", "container")
    sink.add("container_memory_failures_total", s.major_page_faults, "pgmajfault", "container")
    sink.add("container_oom_events_total", s.oom_kills)


def _pressure(sink: MetricSink, s: CgroupSample) -> None:
    for resource, psi in (("cpu", s.cpu_psi), ("memory", s.memory_psi), ("io", s.io_psi)):
        if psi is None:
            continue
        sink.add(f"container_pressure_{resource}_waiting_seconds_total", psi.some_total_us // US)
        sink.add(f"container_pressure_{resource}_stalled_seconds_total", psi.full_total_us // US)


def _block_io(sink: MetricSink, s: CgroupSample) -> None:
    for e in s.io_service_bytes:
        op = e.op.lower()
        sink.add("container_blkio_device_usage_total", e.value, e.device, str(e.major), str(e.minor), e.op)
        if op == "read":
            sink.add("container_fs_reads_bytes_total", e.value, e.device)
        elif op == "write":
            sink.add("container_fs_writes_bytes_total", e.value, e.device)
    for e in s.io_serviced:
        op = e.op.lower()
        if op == "read":
            sink.add("container_fs_reads_total", e.value, e.device)
        elif op == "write":
            sink.add("container_fs_writes_total", e.value, e.device)


def container_metrics(f: ContainerFacts, now_ns: int) -> api_pb2.ContainerMetrics:
    sink = MetricSink(container_labels(f))
    sink.add("container_last_seen", now_ns // NS)
    if f.started_at_ns:
        sink.add("container_start_time_seconds", f.started_at_ns // NS)
    s = f.sample
    if s is not None:
        _cpu(sink, s)
        _memory(sink, s)
        _pressure(sink, s)
        _block_io(sink, s)
        sink.add("container_processes", s.pids_current)
        sink.add("container_threads_max", s.pids_limit if s.pids_current is not None else None)
    if f.processes is not None:
        sink.add("container_threads", f.processes.threads)
        sink.add("container_file_descriptors", f.processes.file_descriptors)
        sink.add("container_sockets", f.processes.sockets)
    for name, value in sorted(f.ulimits.items()):
        sink.add("container_ulimits_soft", value, name)
    if f.fs is not None:
        dev = f.fs.device
        sink.add("container_fs_usage_bytes", f.layer_used_bytes, dev, timestamp_ns=f.layer_timestamp_ns)
        sink.add("container_fs_limit_bytes", f.fs.capacity_bytes, dev)
        sink.add("container_fs_inodes_total", f.fs.inodes_total, dev)
        sink.add("container_fs_inodes_free", f.fs.inodes_free, dev)
    sink.add("container_spec_cpu_period", f.cpu_period or None)
    sink.add("container_spec_cpu_quota", f.cpu_quota if f.cpu_quota > 0 else None)
    sink.add("container_spec_cpu_shares", f.cpu_shares or None)
    sink.add("container_spec_memory_limit_bytes", f.memory_limit)
    sink.add("container_spec_memory_swap_limit_bytes", f.memory_swap_limit)
    return api_pb2.ContainerMetrics(container_id=f.container_id, metrics=sink.metrics)


def pod_network_metrics(pod_name: str, pod_namespace: str, sandbox_id: str,
                        counters: dict[str, InterfaceCounters]) -> list[api_pb2.Metric]:
    """Per-interface counters of the pod's netns (container and image labels empty: pod level)."""
    sink = MetricSink([pod_name, pod_namespace, "", sandbox_id, ""])
    for name in sorted(counters):
        if name == "lo":
            continue
        c = counters[name]
        sink.add("container_network_receive_bytes_total", c.rx_bytes, name)
        sink.add("container_network_receive_packets_total", c.rx_packets, name)
        sink.add("container_network_receive_packets_dropped_total", c.rx_dropped, name)
        sink.add("container_network_receive_errors_total", c.rx_errors, name)
        sink.add("container_network_transmit_bytes_total", c.tx_bytes, name)
        sink.add("container_network_transmit_packets_total", c.tx_packets, name)
        sink.add("container_network_transmit_packets_dropped_total", c.tx_dropped, name)
        sink.add("container_network_transmit_errors_total", c.tx_errors, name)
    return sink.metrics
