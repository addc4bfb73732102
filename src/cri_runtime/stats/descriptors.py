"""The cAdvisor-style metrics ListPodSandboxMetrics reports, and their descriptors.

kubelet (with `PodAndContainerStatsFromCRI`) serves these on /metrics/cadvisor
instead of asking cAdvisor, so names, label keys and meaning follow cAdvisor:
every container metric carries `pod, namespace, container, id, image`, network
metrics add `interface`, filesystem ones `device`. The set is fixed for the
life of the process (the CRI requires it); a described metric may still be
absent where the host cannot provide it (e.g. PSI needs cgroup v2).
"""

from __future__ import annotations

from dataclasses import dataclass

from cri_protos.runtime.v1 import api_pb2

BASE_LABELS = ("pod", "namespace", "container", "id", "image")
NETWORK_LABELS = (*BASE_LABELS, "interface")
DISK_LABELS = (*BASE_LABELS, "device")

COUNTER = api_pb2.COUNTER
GAUGE = api_pb2.GAUGE


@dataclass(frozen=True)
class Descriptor:
    name: str
    help: str
    labels: tuple[str, ...]
    kind: api_pb2.MetricType

    def message(self) -> api_pb2.MetricDescriptor:
        return api_pb2.MetricDescriptor(name=self.name, help=self.help, label_keys=list(self.labels))


def _d(name: str, help_text: str, kind: api_pb2.MetricType, labels: tuple[str, ...] = BASE_LABELS) -> Descriptor:
    return Descriptor(name, help_text, labels, kind)


ALL: tuple[Descriptor, ...] = (
    # cpu
    _d("container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", COUNTER),
    _d("container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.", COUNTER),
    _d("container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.", COUNTER),
    _d("container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", COUNTER),
    _d("container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", COUNTER),
    _d("container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.",
       COUNTER),
    # memory
    _d("container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of "
       "when it was accessed.", GAUGE),
    _d("container_memory_working_set_bytes", "Current working set in bytes (usage minus inactive file cache).",
       GAUGE),
    _d("container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes.", GAUGE),
    _d("container_memory_rss", "Size of RSS in bytes (anonymous memory and swap cache).", GAUGE),
    _d("container_memory_cache", "Number of bytes of page cache memory.", GAUGE),
    _d("container_memory_mapped_file", "Size of memory mapped files in bytes.", GAUGE),
    _d("container_memory_kernel_usage", "Size of kernel memory allocated to the container in bytes.", GAUGE),
    _d("container_memory_swap", "Container swap usage in bytes.", GAUGE),
    _d("container_memory_failcnt", "Number of times memory usage hit the limit (cgroup v1 only).", COUNTER),
    _d("container_memory_failures_total", "Cumulative count of memory allocation failures.", COUNTER,
       (*BASE_LABELS, "failure_type", "scope")),
    _d("container_oom_events_total", "Count of out of memory events observed for the container.", COUNTER),
    # pressure (cgroup v2 only)
    _d("container_pressure_cpu_stalled_seconds_total", "Total time duration no tasks in the container could "
       "make progress due to CPU congestion.", COUNTER),
    _d("container_pressure_cpu_waiting_seconds_total", "Total time duration tasks in the container have "
       "waited due to CPU congestion.", COUNTER),
    _d("container_pressure_memory_stalled_seconds_total", "Total time duration no tasks in the container "
       "could make progress due to memory congestion.", COUNTER),
    _d("container_pressure_memory_waiting_seconds_total", "Total time duration tasks in the container have "
       "waited due to memory congestion.", COUNTER),
    _d("container_pressure_io_stalled_seconds_total", "Total time duration no tasks in the container could "
       "make progress due to IO congestion.", COUNTER),
    _d("container_pressure_io_waiting_seconds_total", "Total time duration tasks in the container have "
       "waited due to IO congestion.", COUNTER),
    # network (pod level)
    _d("container_network_receive_bytes_total", "Cumulative count of bytes received.", COUNTER, NETWORK_LABELS),
    _d("container_network_receive_packets_total", "Cumulative count of packets received.", COUNTER,
       NETWORK_LABELS),
    _d("container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while "
       "receiving.", COUNTER, NETWORK_LABELS),
    _d("container_network_receive_errors_total", "Cumulative count of errors encountered while receiving.",
       COUNTER, NETWORK_LABELS),
    _d("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", COUNTER,
       NETWORK_LABELS),
    _d("container_network_transmit_packets_total", "Cumulative count of packets transmitted.", COUNTER,
       NETWORK_LABELS),
    _d("container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while "
       "transmitting.", COUNTER, NETWORK_LABELS),
    _d("container_network_transmit_errors_total", "Cumulative count of errors encountered while "
       "transmitting.", COUNTER, NETWORK_LABELS),
    # filesystem (writable layer)
    _d("container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.",
       GAUGE, DISK_LABELS),
    _d("container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this "
       "filesystem.", GAUGE, DISK_LABELS),
    _d("container_fs_inodes_total", "Number of inodes of the filesystem.", GAUGE, DISK_LABELS),
    _d("container_fs_inodes_free", "Number of available inodes of the filesystem.", GAUGE, DISK_LABELS),
    # block IO
    _d("container_fs_reads_bytes_total", "Cumulative count of bytes read.", COUNTER, DISK_LABELS),
    _d("container_fs_reads_total", "Cumulative count of reads completed.", COUNTER, DISK_LABELS),
    _d("container_fs_writes_bytes_total", "Cumulative count of bytes written.", COUNTER, DISK_LABELS),
    _d("container_fs_writes_total", "Cumulative count of writes completed.", COUNTER, DISK_LABELS),
    _d("container_blkio_device_usage_total", "Blkio device bytes usage.", COUNTER,
       (*DISK_LABELS, "major", "minor", "operation")),
    # processes
    _d("container_processes", "Number of processes running inside the container.", GAUGE),
    _d("container_threads", "Number of threads running inside the container.", GAUGE),
    _d("container_threads_max", "Maximum number of threads allowed inside the container, infinity if value "
       "is zero.", GAUGE),
    _d("container_file_descriptors", "Number of open file descriptors for the container.", GAUGE),
    _d("container_sockets", "Number of open sockets for the container.", GAUGE),
    _d("container_ulimits_soft", "Soft ulimit values for the container root process. Unlimited if -1, except "
       "priority and nice.", GAUGE, (*BASE_LABELS, "ulimit")),
    # misc
    _d("container_last_seen", "Last time a container was seen by the exporter.", GAUGE),
    _d("container_start_time_seconds", "Start time of the container since unix epoch in seconds.", GAUGE),
    # spec
    _d("container_spec_cpu_period", "CPU period of the container.", GAUGE),
    _d("container_spec_cpu_quota", "CPU quota of the container.", GAUGE),
    _d("container_spec_cpu_shares", "CPU share of the container.", GAUGE),
    _d("container_spec_memory_limit_bytes", "Memory limit for the container (0 = unlimited).", GAUGE),
    _d("container_spec_memory_swap_limit_bytes", "Memory swap limit for the container (0 = unlimited).", GAUGE),
)

BY_NAME: dict[str, Descriptor] = {d.name: d for d in ALL}


def messages() -> list[api_pb2.MetricDescriptor]:
    return [d.message() for d in ALL]
