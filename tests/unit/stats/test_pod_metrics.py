"""cAdvisor-style metrics: descriptors, label arity, values and units."""

from __future__ import annotations

from google.protobuf import any_pb2

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.network.ifstats import InterfaceCounters
from cri_runtime.services.list_streams import batches
from cri_runtime.stats import descriptors, pod_metrics
from cri_runtime.stats.procfs import FsInfo, ProcessCounts, parse_limits
from cri_runtime.stats.sample import decode
from tests.unit.stats.test_sample import v1_metrics, v2_metrics

# The names critest (cri-tools, 2026) expects kubelet to get from a runtime, minus hugetlb
# (not collected here) and memory reservation (the CRI has no such resource).
CRITEST_NAMES = {
    "container_blkio_device_usage_total", "container_cpu_cfs_periods_total",
    "container_cpu_cfs_throttled_periods_total", "container_cpu_cfs_throttled_seconds_total",
    "container_cpu_system_seconds_total", "container_cpu_usage_seconds_total", "container_cpu_user_seconds_total",
    "container_file_descriptors", "container_fs_inodes_free", "container_fs_inodes_total",
    "container_fs_limit_bytes", "container_fs_reads_bytes_total", "container_fs_reads_total",
    "container_fs_usage_bytes", "container_fs_writes_bytes_total", "container_fs_writes_total",
    "container_last_seen", "container_memory_cache", "container_memory_failcnt", "container_memory_failures_total",
    "container_memory_kernel_usage", "container_memory_mapped_file", "container_memory_max_usage_bytes",
    "container_memory_rss", "container_memory_swap", "container_memory_usage_bytes",
    "container_memory_working_set_bytes", "container_network_receive_bytes_total",
    "container_network_receive_errors_total", "container_network_receive_packets_dropped_total",
    "container_network_receive_packets_total", "container_network_transmit_bytes_total",
    "container_network_transmit_errors_total", "container_network_transmit_packets_dropped_total",
    "container_network_transmit_packets_total", "container_oom_events_total", "container_processes",
    "container_sockets", "container_spec_cpu_period", "container_spec_cpu_quota", "container_spec_cpu_shares",
    "container_spec_memory_limit_bytes", "container_spec_memory_swap_limit_bytes", "container_start_time_seconds",
    "container_threads", "container_threads_max", "container_ulimits_soft",
    "container_pressure_cpu_stalled_seconds_total", "container_pressure_cpu_waiting_seconds_total",
    "container_pressure_io_stalled_seconds_total", "container_pressure_io_waiting_seconds_total",
    "container_pressure_memory_stalled_seconds_total", "container_pressure_memory_waiting_seconds_total",
}


def test_descriptors_cover_critest_and_are_well_formed() -> None:
    msgs = descriptors.messages()
    names = [d.name for d in msgs]
    assert len(names) == len(set(names))
    assert set(names) >= CRITEST_NAMES
    assert all(d.help and d.label_keys[:5] == ["pod", "namespace", "container", "id", "image"] for d in msgs)


def facts(version: int) -> pod_metrics.ContainerFacts:
    m = v1_metrics() if version == 1 else v2_metrics()
    url = f"io.containerd.cgroups.v{version}.Metrics"
    return pod_metrics.ContainerFacts(
        pod_name="web", pod_namespace="default", container_name="app", container_id="c1", image="busybox",
        started_at_ns=1_700_000_000_500_000_000, sample=decode(any_pb2.Any(type_url=url, value=m.SerializeToString())),
        layer_used_bytes=4096, layer_timestamp_ns=99, fs=FsInfo("/dev/vda1", 10 << 30, 1000, 400),
        processes=ProcessCounts(threads=7, file_descriptors=12, sockets=2), ulimits={"max_open_files": 1024},
        cpu_period=100000, cpu_quota=20000, cpu_shares=1024, memory_limit=64 << 20, memory_swap_limit=64 << 20)


def by_name(metrics: list[api_pb2.Metric]) -> dict[str, list[api_pb2.Metric]]:
    out: dict[str, list[api_pb2.Metric]] = {}
    for m in metrics:
        out.setdefault(m.name, []).append(m)
    return out


def test_v1_container_metrics() -> None:
    cm = pod_metrics.container_metrics(facts(1), now_ns=1_800_000_000_000_000_000)
    assert cm.container_id == "c1"
    got = by_name(list(cm.metrics))
    for m in cm.metrics:
        assert len(m.label_values) == len(descriptors.BY_NAME[m.name].labels)
        assert m.metric_type == descriptors.BY_NAME[m.name].kind
    base = ["web", "default", "app", "c1", "busybox"]
    assert got["container_cpu_usage_seconds_total"][0].value.value == 5
    assert got["container_cpu_usage_seconds_total"][0].label_values == base
    assert got["container_memory_working_set_bytes"][0].value.value == 60 << 20
    assert got["container_memory_failcnt"][0].value.value == 7
    assert [(m.label_values[5:], m.value.value) for m in got["container_memory_failures_total"]] == [
        (["pgfault", "container"], 1234), (["pgmajfault", "container"], 5)]
    assert got["container_blkio_device_usage_total"][0].label_values == [*base, "/dev/vda", "254", "0", "Read"]
    assert got["container_fs_reads_bytes_total"][0].value.value == 4096
    assert got["container_fs_usage_bytes"][0].label_values == [*base, "/dev/vda1"]
    assert got["container_fs_usage_bytes"][0].timestamp == 99  # cached layer usage carries its sample time
    assert got["container_fs_inodes_free"][0].value.value == 400
    assert got["container_threads"][0].value.value == 7
    assert got["container_processes"][0].value.value == 3
    assert got["container_threads_max"][0].value.value == 100
    assert got["container_ulimits_soft"][0].label_values == [*base, "max_open_files"]
    assert got["container_start_time_seconds"][0].value.value == 1_700_000_000
    assert got["container_last_seen"][0].value.value == 1_800_000_000
    assert got["container_spec_cpu_quota"][0].value.value == 20000
    assert got["container_oom_events_total"][0].value.value == 1
    assert "container_pressure_cpu_waiting_seconds_total" not in got  # no PSI on v1


def test_v2_container_metrics_include_pressure() -> None:
    got = by_name(list(pod_metrics.container_metrics(facts(2), now_ns=0).metrics))
    assert got["container_pressure_cpu_waiting_seconds_total"][0].value.value == 2  # 2e6 µs
    assert got["container_pressure_memory_stalled_seconds_total"][0].value.value == 1
    assert "container_memory_failcnt" not in got
    assert got["container_fs_writes_total"][0].value.value == 2


def test_container_without_task_still_has_spec_and_fs() -> None:
    f = facts(1)
    bare = pod_metrics.ContainerFacts(**{**f.__dict__, "sample": None, "processes": None, "ulimits": {},
                                         "started_at_ns": 0})
    got = by_name(list(pod_metrics.container_metrics(bare, now_ns=0).metrics))
    assert "container_cpu_usage_seconds_total" not in got and "container_start_time_seconds" not in got
    assert got["container_spec_memory_limit_bytes"][0].value.value == 64 << 20


def test_pod_network_metrics() -> None:
    counters = {"lo": InterfaceCounters("lo", 1, 1, 0, 0, 1, 1, 0, 0),
                "eth0": InterfaceCounters("eth0", 100, 2, 1, 3, 200, 4, 0, 5)}
    got = by_name(pod_metrics.pod_network_metrics("web", "default", "sb1", counters))
    rx = got["container_network_receive_bytes_total"]
    assert [(list(m.label_values), m.value.value) for m in rx] == [(["web", "default", "", "sb1", "", "eth0"], 100)]
    assert got["container_network_transmit_packets_dropped_total"][0].value.value == 5
    assert got["container_network_receive_errors_total"][0].value.value == 1


def test_parse_limits() -> None:
    text = ("Limit                     Soft Limit           Hard Limit           Units     \n"
            "Max cpu time              unlimited            unlimited            seconds   \n"
            "Max open files            1024                 4096                 files     \n")
    assert parse_limits(text) == {"max_open_files": 1024}
    assert parse_limits(text.replace("1024", "unlimited")) == {}


def test_batches() -> None:
    assert [list(b) for b in batches([1, 2, 3, 4, 5], 2)] == [[1, 2], [3, 4], [5]]
    assert list(batches([], 3)) == []


async def test_stream_rpcs_page_the_list_result() -> None:
    from cri_runtime.services.list_streams import LIST_BATCH_SIZE, ListStreamRpcs

    class Listing:
        def __init__(self, n: int) -> None:
            self.n = n

        def list(self, flt: object) -> list[api_pb2.Container]:
            return [api_pb2.Container(id=f"{i:064x}") for i in range(self.n)]

    class Servicer(ListStreamRpcs):
        async def wait_recovered(self) -> None:
            return None

    svc = Servicer()
    svc.containers = Listing(2 * LIST_BATCH_SIZE + 1)  # type: ignore[assignment]
    pages = [r async for r in svc.StreamContainers(api_pb2.StreamContainersRequest(), None)]
    assert [len(p.containers) for p in pages] == [LIST_BATCH_SIZE, LIST_BATCH_SIZE, 1]
    assert len({c.id for p in pages for c in p.containers}) == 2 * LIST_BATCH_SIZE + 1
    svc.containers = Listing(0)  # type: ignore[assignment]
    assert [r async for r in svc.StreamContainers(api_pb2.StreamContainersRequest(), None)] == []
