"""One cgroup's usage at one instant, independent of the cgroup version.

containerd's Tasks.Metrics answers with an `Any` holding either
`io.containerd.cgroups.v1.Metrics` or `io.containerd.cgroups.v2.Metrics`
(containerd 1.6 writes the bare message name as type_url; newer ones may
prefix it with a URL). Both are turned into a `CgroupSample` here, so the
CRI stats and the cAdvisor-style metrics are computed by one code path, and
a pod cgroup read straight from cgroupfs (`cgroupfs.py`) gives the same kind
of value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from google.protobuf import any_pb2

from cri_protos.containerd.cgroups.cgroup1.stats import metrics_pb2 as v1
from cri_protos.containerd.cgroups.cgroup2.stats import metrics_pb2 as v2

V1_TYPE = "io.containerd.cgroups.v1.Metrics"
V2_TYPE = "io.containerd.cgroups.v2.Metrics"

# Above this a memory limit means "unlimited" (the kernel rounds the maximum
# down to a page multiple, so it is not exactly 2^63-1); same bound as cAdvisor.
UNLIMITED_MEMORY = 1 << 62


class UnknownMetricsType(ValueError):
    """The Any holds a metrics message we cannot decode (e.g. Windows stats)."""


@dataclass(frozen=True)
class BlkioEntry:
    """One per-device block IO counter (v1 blkio.* files, v2 io.stat)."""

    device: str  # "major:minor" unless the kernel/containerd named it
    major: int
    minor: int
    op: str  # Read, Write, Sync, Async, Discard, Total
    value: int


@dataclass(frozen=True)
class Psi:
    """Pressure stall information of one resource; totals in microseconds."""

    some_total_us: int
    some_avg10: float
    some_avg60: float
    some_avg300: float
    full_total_us: int
    full_avg10: float
    full_avg60: float
    full_avg300: float


@dataclass
class CgroupSample:
    """Usage counters of one cgroup; None where the cgroup version has no such value."""

    version: int
    cpu_usage_ns: int | None = None
    cpu_user_ns: int | None = None
    cpu_system_ns: int | None = None
    cpu_periods: int | None = None
    cpu_throttled_periods: int | None = None
    cpu_throttled_ns: int | None = None
    memory_usage: int | None = None
    memory_limit: int | None = None  # None when unlimited
    memory_max_usage: int | None = None
    memory_failcnt: int | None = None
    memory_rss: int = 0
    memory_cache: int = 0
    memory_mapped_file: int = 0
    memory_active_file: int = 0
    memory_inactive_file: int = 0
    memory_kernel: int | None = None
    memory_swap: int | None = None
    memory_swap_limit: int | None = None
    page_faults: int = 0
    major_page_faults: int = 0
    oom_kills: int | None = None
    pids_current: int | None = None
    pids_limit: int | None = None
    io_service_bytes: list[BlkioEntry] = field(default_factory=list)
    io_serviced: list[BlkioEntry] = field(default_factory=list)
    cpu_psi: Psi | None = None
    memory_psi: Psi | None = None
    io_psi: Psi | None = None

    @property
    def working_set(self) -> int | None:
        """kubelet's working set: usage minus inactive file cache, floored at 0."""
        if self.memory_usage is None:
            return None
        return max(self.memory_usage - self.memory_inactive_file, 0)

    @property
    def available(self) -> int | None:
        """Limit minus working set, only when a limit is set."""
        ws = self.working_set
        if self.memory_limit is None or ws is None:
            return None
        return max(self.memory_limit - ws, 0)


def _limit(value: int) -> int | None:
    return None if value == 0 or value > UNLIMITED_MEMORY else value


def type_name(type_url: str) -> str:
    """`io.containerd.cgroups.v1.Metrics` from any spelling of the type URL."""
    return type_url.rsplit("/", 1)[-1]


def decode(data: any_pb2.Any) -> CgroupSample:
    """A sample from the Any of a containerd `types.Metric`."""
    name = type_name(data.type_url)
    if name == V1_TYPE:
        return from_v1(v1.Metrics.FromString(data.value))
    if name == V2_TYPE:
        return from_v2(v2.Metrics.FromString(data.value))
    raise UnknownMetricsType(f"unsupported metrics type {data.type_url!r}")


def _v1_blkio(entries: list[v1.BlkIOEntry]) -> list[BlkioEntry]:
    return [BlkioEntry(device=e.device or f"{e.major}:{e.minor}", major=e.major, minor=e.minor, op=e.op,
                       value=e.value) for e in entries]


def from_v1(m: v1.Metrics) -> CgroupSample:
    """Normalise cgroup v1 metrics (hierarchical `total_*` memory counters, like kubelet)."""
    s = CgroupSample(version=1)
    if m.HasField("cpu"):
        if m.cpu.HasField("usage"):
            s.cpu_usage_ns = m.cpu.usage.total
            s.cpu_user_ns = m.cpu.usage.user
            s.cpu_system_ns = m.cpu.usage.kernel
        if m.cpu.HasField("throttling"):
            s.cpu_periods = m.cpu.throttling.periods
            s.cpu_throttled_periods = m.cpu.throttling.throttled_periods
            s.cpu_throttled_ns = m.cpu.throttling.throttled_time
    if m.HasField("memory"):
        mem = m.memory
        s.memory_rss = mem.total_rss
        s.memory_cache = mem.total_cache
        s.memory_mapped_file = mem.total_mapped_file
        s.memory_active_file = mem.total_active_file
        s.memory_inactive_file = mem.total_inactive_file
        s.page_faults = mem.total_pg_fault
        s.major_page_faults = mem.total_pg_maj_fault
        if mem.HasField("usage"):
            s.memory_usage = mem.usage.usage
            s.memory_limit = _limit(mem.usage.limit)
            s.memory_max_usage = mem.usage.max
            s.memory_failcnt = mem.usage.failcnt
        if mem.HasField("kernel"):
            s.memory_kernel = mem.kernel.usage
        if mem.HasField("swap"):
            # v1 memsw counts memory plus swap; swap alone is the difference.
            s.memory_swap = max(mem.swap.usage - mem.usage.usage, 0) if mem.HasField("usage") else mem.swap.usage
            s.memory_swap_limit = _limit(mem.swap.limit)
    if m.HasField("memory_oom_control"):
        s.oom_kills = m.memory_oom_control.oom_kill
    if m.HasField("pids"):
        s.pids_current = m.pids.current
        s.pids_limit = m.pids.limit
    if m.HasField("blkio"):
        s.io_service_bytes = _v1_blkio(list(m.blkio.io_service_bytes_recursive))
        s.io_serviced = _v1_blkio(list(m.blkio.io_serviced_recursive))
    return s


def _v2_psi(p: v2.PSIStats) -> Psi:
    return Psi(some_total_us=p.some.total, some_avg10=p.some.avg10, some_avg60=p.some.avg60,
               some_avg300=p.some.avg300, full_total_us=p.full.total, full_avg10=p.full.avg10,
               full_avg60=p.full.avg60, full_avg300=p.full.avg300)


def from_v2(m: v2.Metrics) -> CgroupSample:
    """Normalise cgroup v2 metrics (µs CPU counters become ns; RSS is anon, as cAdvisor does)."""
    s = CgroupSample(version=2)
    if m.HasField("cpu"):
        c = m.cpu
        s.cpu_usage_ns = c.usage_usec * 1000
        s.cpu_user_ns = c.user_usec * 1000
        s.cpu_system_ns = c.system_usec * 1000
        s.cpu_periods = c.nr_periods
        s.cpu_throttled_periods = c.nr_throttled
        s.cpu_throttled_ns = c.throttled_usec * 1000
        if c.HasField("psi"):
            s.cpu_psi = _v2_psi(c.psi)
    if m.HasField("memory"):
        mem = m.memory
        s.memory_usage = mem.usage
        s.memory_limit = _limit(mem.usage_limit)
        s.memory_max_usage = mem.max_usage or None
        s.memory_rss = mem.anon
        s.memory_cache = mem.file
        s.memory_mapped_file = mem.file_mapped
        s.memory_active_file = mem.active_file
        s.memory_inactive_file = mem.inactive_file
        s.memory_kernel = mem.kernel_stack + mem.slab + mem.sock
        s.memory_swap = mem.swap_usage
        s.memory_swap_limit = _limit(mem.swap_limit)
        s.page_faults = mem.pgfault
        s.major_page_faults = mem.pgmajfault
        if mem.HasField("psi"):
            s.memory_psi = _v2_psi(mem.psi)
    if m.HasField("memory_events"):
        s.oom_kills = m.memory_events.oom_kill
    if m.HasField("pids"):
        s.pids_current = m.pids.current
        s.pids_limit = m.pids.limit
    if m.HasField("io"):
        for e in m.io.usage:
            dev = f"{e.major}:{e.minor}"
            s.io_service_bytes += [BlkioEntry(dev, e.major, e.minor, "Read", e.rbytes),
                                   BlkioEntry(dev, e.major, e.minor, "Write", e.wbytes)]
            s.io_serviced += [BlkioEntry(dev, e.major, e.minor, "Read", e.rios),
                              BlkioEntry(dev, e.major, e.minor, "Write", e.wios)]
        if m.io.HasField("psi"):
            s.io_psi = _v2_psi(m.io.psi)
    return s


def add(samples: list[CgroupSample]) -> CgroupSample | None:
    """Sum of several cgroups (a pod without its own cgroup = its containers)."""
    if not samples:
        return None
    total = CgroupSample(version=samples[0].version)

    def plus(name: str) -> None:
        values = [getattr(s, name) for s in samples if getattr(s, name) is not None]
        if values:
            setattr(total, name, sum(values))

    for name in ("cpu_usage_ns", "cpu_user_ns", "cpu_system_ns", "cpu_periods", "cpu_throttled_periods",
                 "cpu_throttled_ns", "memory_usage", "memory_kernel", "memory_swap", "oom_kills",
                 "pids_current", "memory_max_usage", "memory_failcnt"):
        plus(name)
    for name in ("memory_rss", "memory_cache", "memory_mapped_file", "memory_active_file",
                 "memory_inactive_file", "page_faults", "major_page_faults"):
        setattr(total, name, sum(getattr(s, name) for s in samples))
    return total
