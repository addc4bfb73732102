"""CRI stats messages from normalised samples (pure functions)."""

from __future__ import annotations

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.network.ifstats import InterfaceCounters
from cri_runtime.stats.sample import CgroupSample, Psi

DEFAULT_INTERFACE = "eth0"


def u64(value: int) -> api_pb2.UInt64Value:
    return api_pb2.UInt64Value(value=max(int(value), 0))


def psi_stats(p: Psi | None) -> api_pb2.PsiStats | None:
    """PSI in the CRI's units (totals in ns; the kernel reports µs)."""
    if p is None:
        return None
    return api_pb2.PsiStats(
        Some=api_pb2.PsiData(Total=p.some_total_us * 1000, Avg10=p.some_avg10, Avg60=p.some_avg60,
                             Avg300=p.some_avg300),
        Full=api_pb2.PsiData(Total=p.full_total_us * 1000, Avg10=p.full_avg10, Avg60=p.full_avg60,
                             Avg300=p.full_avg300))


def cpu_usage(s: CgroupSample, timestamp_ns: int, nano_cores: int | None) -> api_pb2.CpuUsage | None:
    if s.cpu_usage_ns is None:
        return None
    out = api_pb2.CpuUsage(timestamp=timestamp_ns, usage_core_nano_seconds=u64(s.cpu_usage_ns))
    if nano_cores is not None:
        out.usage_nano_cores.CopyFrom(u64(nano_cores))
    psi = psi_stats(s.cpu_psi)
    if psi is not None:
        out.psi.CopyFrom(psi)
    return out


def memory_usage(s: CgroupSample, timestamp_ns: int) -> api_pb2.MemoryUsage | None:
    ws = s.working_set
    if s.memory_usage is None or ws is None:
        return None
    out = api_pb2.MemoryUsage(
        timestamp=timestamp_ns, working_set_bytes=u64(ws), usage_bytes=u64(s.memory_usage),
        rss_bytes=u64(s.memory_rss), page_faults=u64(s.page_faults),
        major_page_faults=u64(s.major_page_faults))
    available = s.available
    if available is not None:
        out.available_bytes.CopyFrom(u64(available))
    psi = psi_stats(s.memory_psi)
    if psi is not None:
        out.psi.CopyFrom(psi)
    return out


def swap_usage(s: CgroupSample, timestamp_ns: int) -> api_pb2.SwapUsage | None:
    if s.memory_swap is None:
        return None
    out = api_pb2.SwapUsage(timestamp=timestamp_ns, swap_usage_bytes=u64(s.memory_swap))
    if s.memory_swap_limit is not None:
        out.swap_available_bytes.CopyFrom(u64(s.memory_swap_limit - s.memory_swap))
    return out


def io_usage(s: CgroupSample, timestamp_ns: int) -> api_pb2.IoUsage | None:
    psi = psi_stats(s.io_psi)
    if psi is None:
        return None
    return api_pb2.IoUsage(timestamp=timestamp_ns, psi=psi)


def process_usage(count: int, timestamp_ns: int) -> api_pb2.ProcessUsage:
    return api_pb2.ProcessUsage(timestamp=timestamp_ns, process_count=u64(count))


def interface_usage(c: InterfaceCounters) -> api_pb2.NetworkInterfaceUsage:
    return api_pb2.NetworkInterfaceUsage(name=c.name, rx_bytes=u64(c.rx_bytes), rx_errors=u64(c.rx_errors),
                                         tx_bytes=u64(c.tx_bytes), tx_errors=u64(c.tx_errors))


def network_usage(counters: dict[str, InterfaceCounters], timestamp_ns: int) -> api_pb2.NetworkUsage:
    """eth0 as the default interface (else the first); every interface but lo in `interfaces`."""
    out = api_pb2.NetworkUsage(timestamp=timestamp_ns)
    names = sorted(n for n in counters if n != "lo")
    for name in names:
        out.interfaces.append(interface_usage(counters[name]))
    default = DEFAULT_INTERFACE if DEFAULT_INTERFACE in counters else (names[0] if names else "")
    if default:
        out.default_interface.CopyFrom(interface_usage(counters[default]))
    return out
