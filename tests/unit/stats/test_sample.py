"""Decoding containerd's cgroup v1 / v2 metrics into samples, and CRI stats from them."""

from __future__ import annotations

import pytest
from google.protobuf import any_pb2

from cri_protos.containerd.cgroups.cgroup1.stats import metrics_pb2 as v1
from cri_protos.containerd.cgroups.cgroup2.stats import metrics_pb2 as v2
from cri_runtime.network.ifstats import InterfaceCounters
from cri_runtime.stats import convert
from cri_runtime.stats.sample import UnknownMetricsType, add, decode

UNLIMITED_V1 = 9223372036854771712  # what memory.limit_in_bytes shows without a limit


def v1_metrics(limit: int = UNLIMITED_V1) -> v1.Metrics:
    return v1.Metrics(
        pids=v1.PidsStat(current=3, limit=100),
        cpu=v1.CPUStat(usage=v1.CPUUsage(total=5_000_000_000, kernel=1_000_000_000, user=4_000_000_000),
                       throttling=v1.Throttle(periods=10, throttled_periods=2, throttled_time=300_000_000)),
        memory=v1.MemoryStat(
            rss=1, total_rss=40 << 20, total_cache=30 << 20, total_inactive_file=20 << 20,
            total_active_file=10 << 20, total_mapped_file=5 << 20, total_pg_fault=1234, total_pg_maj_fault=5,
            inactive_file=999,  # the non-hierarchical counter must not be used
            usage=v1.MemoryEntry(usage=80 << 20, limit=limit, max=90 << 20, failcnt=7),
            swap=v1.MemoryEntry(usage=(80 << 20) + 4096, limit=limit),
            kernel=v1.MemoryEntry(usage=2 << 20)),
        memory_oom_control=v1.MemoryOomControl(oom_kill=1),
        blkio=v1.BlkIOStat(io_service_bytes_recursive=[
            v1.BlkIOEntry(op="Read", device="/dev/vda", major=254, minor=0, value=4096),
            v1.BlkIOEntry(op="Write", major=254, minor=0, value=8192)]))


def v2_metrics() -> v2.Metrics:
    psi = v2.PSIStats(some=v2.PSIData(avg10=1.5, total=2_000_000), full=v2.PSIData(avg10=0.5, total=1_000_000))
    return v2.Metrics(
        pids=v2.PidsStat(current=4, limit=0),
        cpu=v2.CPUStat(usage_usec=3_000_000, user_usec=2_000_000, system_usec=1_000_000, nr_periods=5,
                       nr_throttled=1, throttled_usec=20_000, psi=psi),
        memory=v2.MemoryStat(anon=50 << 20, file=20 << 20, inactive_file=15 << 20, active_file=5 << 20,
                             file_mapped=1 << 20, kernel_stack=1 << 16, slab=1 << 20, sock=0, pgfault=99,
                             pgmajfault=2, usage=75 << 20, usage_limit=100 << 20, swap_usage=0,
                             swap_limit=2**63 - 1, max_usage=76 << 20, psi=psi),
        memory_events=v2.MemoryEvents(oom_kill=2),
        io=v2.IOStat(usage=[v2.IOEntry(major=8, minor=0, rbytes=100, wbytes=200, rios=1, wios=2)], psi=psi))


@pytest.mark.parametrize("url", ["io.containerd.cgroups.v1.Metrics",
                                 "types.containerd.io/io.containerd.cgroups.v1.Metrics"])
def test_v1_type_url_spellings(url: str) -> None:
    s = decode(any_pb2.Any(type_url=url, value=v1_metrics().SerializeToString()))
    assert s.version == 1


def test_v1_sample() -> None:
    s = decode(any_pb2.Any(type_url="io.containerd.cgroups.v1.Metrics", value=v1_metrics().SerializeToString()))
    assert s.cpu_usage_ns == 5_000_000_000 and s.cpu_user_ns == 4_000_000_000 and s.cpu_system_ns == 1_000_000_000
    assert (s.cpu_periods, s.cpu_throttled_periods, s.cpu_throttled_ns) == (10, 2, 300_000_000)
    assert s.memory_usage == 80 << 20
    assert s.working_set == 60 << 20  # usage - total_inactive_file
    assert s.memory_limit is None and s.available is None
    assert s.memory_rss == 40 << 20 and s.page_faults == 1234 and s.major_page_faults == 5
    assert s.memory_swap == 4096  # memsw minus memory
    assert s.oom_kills == 1 and s.pids_current == 3 and s.pids_limit == 100
    assert [(e.device, e.op, e.value) for e in s.io_service_bytes] == [("/dev/vda", "Read", 4096),
                                                                        ("254:0", "Write", 8192)]


def test_v1_limited_memory_has_available_bytes() -> None:
    s = decode(any_pb2.Any(type_url="io.containerd.cgroups.v1.Metrics",
                           value=v1_metrics(limit=100 << 20).SerializeToString()))
    assert s.memory_limit == 100 << 20
    assert s.available == 40 << 20


def test_v2_sample() -> None:
    s = decode(any_pb2.Any(type_url="io.containerd.cgroups.v2.Metrics", value=v2_metrics().SerializeToString()))
    assert s.version == 2
    assert s.cpu_usage_ns == 3_000_000_000 and s.cpu_throttled_ns == 20_000_000
    assert s.working_set == 60 << 20 and s.available == 40 << 20
    assert s.memory_rss == 50 << 20  # anon, as cAdvisor on v2
    assert s.memory_swap == 0 and s.memory_swap_limit is None
    assert s.oom_kills == 2 and s.pids_current == 4 and s.pids_limit == 0
    assert s.cpu_psi is not None and s.cpu_psi.some_total_us == 2_000_000
    assert [(e.op, e.value) for e in s.io_serviced] == [("Read", 1), ("Write", 2)]


def test_working_set_never_negative() -> None:
    m = v2.Metrics(memory=v2.MemoryStat(usage=10, inactive_file=20))
    assert decode(any_pb2.Any(type_url="io.containerd.cgroups.v2.Metrics", value=m.SerializeToString())
                  ).working_set == 0


def test_unknown_type() -> None:
    with pytest.raises(UnknownMetricsType):
        decode(any_pb2.Any(type_url="containerd.windows.Statistics", value=b""))


def test_cri_cpu_and_memory_messages() -> None:
    s = decode(any_pb2.Any(type_url="io.containerd.cgroups.v2.Metrics", value=v2_metrics().SerializeToString()))
    cpu = convert.cpu_usage(s, 123, None)
    assert cpu is not None and cpu.timestamp == 123 and cpu.usage_core_nano_seconds.value == 3_000_000_000
    assert not cpu.HasField("usage_nano_cores")
    assert cpu.psi.Some.Total == 2_000_000_000  # µs -> ns
    assert convert.cpu_usage(s, 123, 5).usage_nano_cores.value == 5  # type: ignore[union-attr]
    mem = convert.memory_usage(s, 123)
    assert mem is not None
    assert mem.working_set_bytes.value == 60 << 20 and mem.available_bytes.value == 40 << 20
    assert mem.usage_bytes.value == 75 << 20 and mem.rss_bytes.value == 50 << 20
    assert mem.page_faults.value == 99 and mem.major_page_faults.value == 2
    unlimited = decode(any_pb2.Any(type_url="io.containerd.cgroups.v1.Metrics",
                                   value=v1_metrics().SerializeToString()))
    assert not convert.memory_usage(unlimited, 1).HasField("available_bytes")  # type: ignore[union-attr]
    io = convert.io_usage(s, 5)
    assert io is not None and io.psi.Full.Total == 1_000_000_000
    assert convert.io_usage(unlimited, 5) is None


def test_sum_of_samples() -> None:
    a = decode(any_pb2.Any(type_url="io.containerd.cgroups.v1.Metrics", value=v1_metrics().SerializeToString()))
    b = decode(any_pb2.Any(type_url="io.containerd.cgroups.v1.Metrics", value=v1_metrics().SerializeToString()))
    total = add([a, b])
    assert total is not None
    assert total.cpu_usage_ns == 10_000_000_000 and total.pids_current == 6
    assert total.working_set == 120 << 20
    assert add([]) is None


def counters(name: str, rx: int) -> InterfaceCounters:
    return InterfaceCounters(name, rx, 1, 0, 0, rx * 2, 1, 3, 0)


def test_network_usage_default_and_all_interfaces() -> None:
    usage = convert.network_usage({"lo": counters("lo", 5), "eth0": counters("eth0", 10),
                                   "net1": counters("net1", 20)}, 7)
    assert usage.timestamp == 7
    assert usage.default_interface.name == "eth0" and usage.default_interface.rx_bytes.value == 10
    assert usage.default_interface.tx_errors.value == 3
    assert [i.name for i in usage.interfaces] == ["eth0", "net1"]
    only = convert.network_usage({"lo": counters("lo", 5), "net1": counters("net1", 20)}, 7)
    assert only.default_interface.name == "net1"
