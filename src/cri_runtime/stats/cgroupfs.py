"""Reading (and, for UpdatePodSandboxResources, writing) a pod's own cgroup.

The pause task's metrics describe only the pause container's cgroup, a
sibling of the pod's containers; the pod itself is their parent cgroup
(`cgroup_parent` from the pod config, e.g. `/kubepods/burstable/pod<uid>`,
or `kubepods-burstable-pod<uid>.slice` with the systemd driver). containerd
has no API for an arbitrary cgroup, so it is read from cgroupfs directly:
per-controller hierarchies on cgroup v1, the unified tree on v2.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from cri_runtime.stats.sample import UNLIMITED_MEMORY, BlkioEntry, CgroupSample, Psi

MOUNTINFO = "/proc/self/mountinfo"
USER_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Hierarchies:
    """Where the cgroup controllers are mounted."""

    v1: dict[str, str]  # controller -> mount point
    unified: str  # cgroup2 mount point, "" when none

    @property
    def is_v2(self) -> bool:
        """Pure cgroup v2 (no v1 controller mounted)."""
        return not self.v1 and bool(self.unified)


def parse_mountinfo(text: str) -> Hierarchies:
    """Find cgroup v1 controller mounts and the cgroup2 mount in mountinfo text."""
    v1: dict[str, str] = {}
    unified = ""
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        rest = right.split()
        if len(fields) < 5 or len(rest) < 3:
            continue
        fstype, mount_point = rest[0], fields[4]
        if fstype == "cgroup2":
            if not unified:
                unified = mount_point
        elif fstype == "cgroup":
            for opt in rest[2].split(","):
                if opt in ("cpu", "cpuacct", "memory", "pids", "blkio", "cpuset", "hugetlb"):
                    v1.setdefault(opt, mount_point)
    return Hierarchies(v1=v1, unified=unified)


def host_hierarchies() -> Hierarchies:
    with open(MOUNTINFO, encoding="utf-8") as f:
        return parse_mountinfo(f.read())


def systemd_slice_path(slice_name: str) -> str:
    """`kubepods-burstable-pod1.slice` -> `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice`."""
    if not slice_name.endswith(".slice"):
        return slice_name
    stem = slice_name[: -len(".slice")]
    if stem in ("", "-"):
        return "/"
    parts = stem.split("-")
    path = ""
    prefix = ""
    for part in parts[:-1]:
        prefix = f"{prefix}-{part}" if prefix else part
        path += f"/{prefix}.slice"
    return f"{path}/{slice_name}"


def pod_cgroup_path(cgroup_parent: str, driver: str) -> str:
    """The pod cgroup's path below a hierarchy root ("" when the pod names none)."""
    if not cgroup_parent:
        return ""
    if driver == "systemd":
        return systemd_slice_path(os.path.basename(cgroup_parent.rstrip("/")))
    return "/" + cgroup_parent.strip("/")


Reader = Callable[[str], str | None]


def read_file(path: str) -> str | None:
    """The file's text, or None when it does not exist (controller not enabled)."""
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError, ProcessLookupError):
        return None


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    value = text.strip()
    if value == "max":
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _flat_keyed(text: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out


def _psi(text: str | None) -> Psi | None:
    if not text:
        return None
    lines: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        kind, *pairs = line.split()
        lines[kind] = dict(p.split("=", 1) for p in pairs if "=" in p)
    some, full = lines.get("some", {}), lines.get("full", {})
    return Psi(some_total_us=int(some.get("total", 0)), some_avg10=float(some.get("avg10", 0)),
               some_avg60=float(some.get("avg60", 0)), some_avg300=float(some.get("avg300", 0)),
               full_total_us=int(full.get("total", 0)), full_avg10=float(full.get("avg10", 0)),
               full_avg60=float(full.get("avg60", 0)), full_avg300=float(full.get("avg300", 0)))


def _v1_blkio(text: str | None) -> list[BlkioEntry]:
    out = []
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) != 3 or ":" not in parts[0]:
            continue
        major, minor = parts[0].split(":", 1)
        out.append(BlkioEntry(parts[0], int(major), int(minor), parts[1], int(parts[2])))
    return out


def read_v1(h: Hierarchies, path: str, read: Reader = read_file) -> CgroupSample | None:
    """A sample of cgroup v1 `path`, or None when the cgroup does not exist."""
    def f(controller: str, name: str) -> str | None:
        root = h.v1.get(controller)
        return read(os.path.join(root, path.lstrip("/"), name)) if root else None

    usage = _int(f("cpuacct", "cpuacct.usage"))
    mem_usage = _int(f("memory", "memory.usage_in_bytes"))
    if usage is None and mem_usage is None:
        return None
    s = CgroupSample(version=1, cpu_usage_ns=usage)
    ticks = _flat_keyed(f("cpuacct", "cpuacct.stat"))
    if ticks:
        s.cpu_user_ns = ticks.get("user", 0) * 1_000_000_000 // USER_HZ
        s.cpu_system_ns = ticks.get("system", 0) * 1_000_000_000 // USER_HZ
    cpu_stat = _flat_keyed(f("cpu", "cpu.stat"))
    if cpu_stat:
        s.cpu_periods = cpu_stat.get("nr_periods", 0)
        s.cpu_throttled_periods = cpu_stat.get("nr_throttled", 0)
        s.cpu_throttled_ns = cpu_stat.get("throttled_time", 0)
    if mem_usage is not None:
        stat = _flat_keyed(f("memory", "memory.stat"))
        s.memory_usage = mem_usage
        limit = _int(f("memory", "memory.limit_in_bytes"))
        s.memory_limit = limit if limit is not None and limit < UNLIMITED_MEMORY else None
        s.memory_max_usage = _int(f("memory", "memory.max_usage_in_bytes"))
        s.memory_failcnt = _int(f("memory", "memory.failcnt"))
        s.memory_rss = stat.get("total_rss", 0)
        s.memory_cache = stat.get("total_cache", 0)
        s.memory_mapped_file = stat.get("total_mapped_file", 0)
        s.memory_active_file = stat.get("total_active_file", 0)
        s.memory_inactive_file = stat.get("total_inactive_file", 0)
        s.page_faults = stat.get("total_pgfault", 0)
        s.major_page_faults = stat.get("total_pgmajfault", 0)
        s.memory_kernel = _int(f("memory", "memory.kmem.usage_in_bytes"))
        memsw = _int(f("memory", "memory.memsw.usage_in_bytes"))
        if memsw is not None:
            s.memory_swap = max(memsw - mem_usage, 0)
        s.oom_kills = _flat_keyed(f("memory", "memory.oom_control")).get("oom_kill")
    s.pids_current = _int(f("pids", "pids.current"))
    if s.pids_current is not None:
        s.pids_limit = _int(f("pids", "pids.max")) or 0
    s.io_service_bytes = _v1_blkio(f("blkio", "blkio.throttle.io_service_bytes_recursive"))
    s.io_serviced = _v1_blkio(f("blkio", "blkio.throttle.io_serviced_recursive"))
    return s


def read_v2(h: Hierarchies, path: str, read: Reader = read_file) -> CgroupSample | None:
    """A sample of cgroup v2 `path`, or None when the cgroup does not exist."""
    def f(name: str) -> str | None:
        return read(os.path.join(h.unified, path.lstrip("/"), name))

    cpu = _flat_keyed(f("cpu.stat"))
    if not cpu:
        return None
    s = CgroupSample(version=2)
    s.cpu_usage_ns = cpu.get("usage_usec", 0) * 1000
    s.cpu_user_ns = cpu.get("user_usec", 0) * 1000
    s.cpu_system_ns = cpu.get("system_usec", 0) * 1000
    s.cpu_periods = cpu.get("nr_periods", 0)
    s.cpu_throttled_periods = cpu.get("nr_throttled", 0)
    s.cpu_throttled_ns = cpu.get("throttled_usec", 0) * 1000
    s.cpu_psi = _psi(f("cpu.pressure"))
    usage = _int(f("memory.current"))
    if usage is not None:
        stat = _flat_keyed(f("memory.stat"))
        s.memory_usage = usage
        limit = _int(f("memory.max"))
        s.memory_limit = limit if limit is not None and limit < UNLIMITED_MEMORY else None
        s.memory_max_usage = _int(f("memory.peak"))
        s.memory_rss = stat.get("anon", 0)
        s.memory_cache = stat.get("file", 0)
        s.memory_mapped_file = stat.get("file_mapped", 0)
        s.memory_active_file = stat.get("active_file", 0)
        s.memory_inactive_file = stat.get("inactive_file", 0)
        s.memory_kernel = stat.get("kernel_stack", 0) + stat.get("slab", 0) + stat.get("sock", 0)
        s.memory_swap = _int(f("memory.swap.current"))
        s.page_faults = stat.get("pgfault", 0)
        s.major_page_faults = stat.get("pgmajfault", 0)
        s.oom_kills = _flat_keyed(f("memory.events")).get("oom_kill")
        s.memory_psi = _psi(f("memory.pressure"))
    s.pids_current = _int(f("pids.current"))
    if s.pids_current is not None:
        s.pids_limit = _int(f("pids.max")) or 0
    for line in (f("io.stat") or "").splitlines():
        dev, *pairs = line.split()
        if ":" not in dev:
            continue
        major, minor = (int(x) for x in dev.split(":", 1))
        kv = {k: int(v) for k, v in (p.split("=", 1) for p in pairs if "=" in p)}
        s.io_service_bytes += [BlkioEntry(dev, major, minor, "Read", kv.get("rbytes", 0)),
                               BlkioEntry(dev, major, minor, "Write", kv.get("wbytes", 0))]
        s.io_serviced += [BlkioEntry(dev, major, minor, "Read", kv.get("rios", 0)),
                          BlkioEntry(dev, major, minor, "Write", kv.get("wios", 0))]
    s.io_psi = _psi(f("io.pressure"))
    return s


def read_cgroup(h: Hierarchies, path: str, read: Reader = read_file) -> CgroupSample | None:
    """Sample `path` in whichever cgroup version the host runs (v1 controllers win in hybrid mode)."""
    if h.v1:
        return read_v1(h, path, read)
    if h.unified:
        return read_v2(h, path, read)
    return None
