"""Finding and reading pod cgroups in cgroupfs, and writing pod resources."""

from __future__ import annotations

import errno

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors
from cri_runtime.stats import cgroupfs, pod_resources

MOUNTINFO = """\
25 31 0:22 / /sys/fs/cgroup rw,nosuid - tmpfs tmpfs rw,mode=755
26 25 0:23 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
27 25 0:24 / /sys/fs/cgroup/cpuacct rw - cgroup cgroup rw,cpuacct
28 25 0:25 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
29 25 0:26 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
30 25 0:27 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd
31 25 0:28 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
"""


def test_parse_hybrid_mountinfo() -> None:
    h = cgroupfs.parse_mountinfo(MOUNTINFO)
    assert h.v1 == {"cpu": "/sys/fs/cgroup/cpu", "cpuacct": "/sys/fs/cgroup/cpuacct",
                    "memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids"}
    assert h.unified == "/sys/fs/cgroup/unified" and not h.is_v2


def test_parse_comounted_and_pure_v2() -> None:
    h = cgroupfs.parse_mountinfo("26 25 0:23 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n")
    assert h.v1 == {"cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct"}
    v2 = cgroupfs.parse_mountinfo("31 25 0:28 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
    assert v2.is_v2 and v2.unified == "/sys/fs/cgroup"


@pytest.mark.parametrize(("parent", "driver", "path"), [
    ("/kubepods/burstable/pod123", "cgroupfs", "/kubepods/burstable/pod123"),
    ("kubepods/pod1/", "cgroupfs", "/kubepods/pod1"),
    ("", "cgroupfs", ""),
    ("kubepods-burstable-pod1.slice", "systemd",
     "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice"),
    ("/kubepods.slice/kubepods-pod2.slice", "systemd", "/kubepods.slice/kubepods-pod2.slice"),
    ("-.slice", "systemd", "/"),
])
def test_pod_cgroup_path(parent: str, driver: str, path: str) -> None:
    assert cgroupfs.pod_cgroup_path(parent, driver) == path


V1_FILES = {
    "/sys/fs/cgroup/cpuacct/pod/cpuacct.usage": "2500000000\n",
    "/sys/fs/cgroup/cpuacct/pod/cpuacct.stat": "user 200\nsystem 50\n",
    "/sys/fs/cgroup/cpu/pod/cpu.stat": "nr_periods 4\nnr_throttled 1\nthrottled_time 1000\n",
    "/sys/fs/cgroup/memory/pod/memory.usage_in_bytes": "104857600\n",
    "/sys/fs/cgroup/memory/pod/memory.limit_in_bytes": "9223372036854771712\n",
    "/sys/fs/cgroup/memory/pod/memory.max_usage_in_bytes": "110000000\n",
    "/sys/fs/cgroup/memory/pod/memory.failcnt": "0\n",
    "/sys/fs/cgroup/memory/pod/memory.stat": "cache 1\nrss 2\ntotal_cache 40\ntotal_rss 1000\n"
                                              "total_inactive_file 4857600\ntotal_pgfault 10\ntotal_pgmajfault 1\n",
    "/sys/fs/cgroup/memory/pod/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
    "/sys/fs/cgroup/pids/pod/pids.current": "5\n",
    "/sys/fs/cgroup/pids/pod/pids.max": "max\n",
}


def test_read_v1() -> None:
    h = cgroupfs.parse_mountinfo(MOUNTINFO)
    s = cgroupfs.read_cgroup(h, "/pod", V1_FILES.get)
    assert s is not None and s.version == 1
    assert s.cpu_usage_ns == 2_500_000_000
    assert s.cpu_user_ns == 200 * 1_000_000_000 // cgroupfs.USER_HZ
    assert s.cpu_throttled_periods == 1
    assert s.working_set == 100_000_000 and s.memory_limit is None
    assert s.memory_rss == 1000 and s.oom_kills == 3 and s.page_faults == 10
    assert s.pids_current == 5 and s.pids_limit == 0
    assert cgroupfs.read_cgroup(h, "/gone", V1_FILES.get) is None


def test_read_v2() -> None:
    files = {
        "/sys/fs/cgroup/pod/cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 0\n",
        "/sys/fs/cgroup/pod/cpu.pressure": "some avg10=0.10 avg60=0.00 avg300=0.00 total=42\n"
                                           "full avg10=0.00 avg60=0.00 avg300=0.00 total=7\n",
        "/sys/fs/cgroup/pod/memory.current": "2000\n",
        "/sys/fs/cgroup/pod/memory.max": "4000\n",
        "/sys/fs/cgroup/pod/memory.stat": "anon 1200\nfile 800\ninactive_file 500\npgfault 3\n",
        "/sys/fs/cgroup/pod/memory.events": "low 0\nhigh 0\nmax 0\noom 1\noom_kill 1\n",
        "/sys/fs/cgroup/pod/pids.current": "2\n",
        "/sys/fs/cgroup/pod/pids.max": "100\n",
        "/sys/fs/cgroup/pod/io.stat": "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n",
    }
    h = cgroupfs.parse_mountinfo("31 25 0:28 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
    s = cgroupfs.read_cgroup(h, "/pod", files.get)
    assert s is not None and s.version == 2
    assert s.cpu_usage_ns == 1_500_000 and s.cpu_system_ns == 500_000
    assert s.cpu_psi is not None and s.cpu_psi.some_total_us == 42 and s.cpu_psi.full_total_us == 7
    assert s.working_set == 1500 and s.available == 2500 and s.memory_rss == 1200
    assert s.oom_kills == 1 and s.pids_limit == 100
    assert [(e.device, e.op, e.value) for e in s.io_service_bytes] == [("8:0", "Read", 10), ("8:0", "Write", 20)]


def test_pod_total_adds_overhead() -> None:
    total = pod_resources.pod_total(
        api_pb2.LinuxContainerResources(memory_limit_in_bytes=10, cpu_shares=2, cpu_quota=100, cpu_period=1000),
        api_pb2.LinuxContainerResources(memory_limit_in_bytes=100, cpu_shares=20, cpu_quota=1000,
                                        cpu_period=100000))
    assert (total.memory_limit_in_bytes, total.cpu_shares, total.cpu_quota, total.cpu_period) == (110, 22, 1100,
                                                                                                 100000)
    unlimited = pod_resources.pod_total(api_pb2.LinuxContainerResources(cpu_quota=100),
                                        api_pb2.LinuxContainerResources(cpu_quota=-1))
    assert unlimited.cpu_quota == -1


def test_writes_per_cgroup_version() -> None:
    r = api_pb2.LinuxContainerResources(cpu_shares=1024, cpu_quota=50000, cpu_period=100000,
                                        memory_limit_in_bytes=1 << 30, cpuset_cpus="0-1",
                                        unified={"memory.high": "900M"})
    assert [(w.controller, w.file, w.value) for w in pod_resources.v1_writes(r)] == [
        ("cpu", "cpu.shares", "1024"), ("cpu", "cpu.cfs_period_us", "100000"), ("cpu", "cpu.cfs_quota_us", "50000"),
        ("memory", "memory.limit_in_bytes", str(1 << 30)), ("cpuset", "cpuset.cpus", "0-1")]
    assert [(w.file, w.value) for w in pod_resources.v2_writes(r)] == [
        ("cpu.weight", "39"), ("cpu.max", "50000 100000"), ("memory.max", str(1 << 30)), ("cpuset.cpus", "0-1"),
        ("memory.high", "900M")]
    assert pod_resources.shares_to_weight(2) == 1 and pod_resources.shares_to_weight(262144) == 10000


def test_apply_writes_and_maps_refusals() -> None:
    h = cgroupfs.parse_mountinfo(MOUNTINFO)
    written: dict[str, str] = {}

    def write(path: str, value: str) -> None:
        written[path] = value

    r = api_pb2.LinuxContainerResources(memory_limit_in_bytes=4096, cpu_shares=512, cpuset_cpus="0")
    paths = pod_resources.apply(h, "/kubepods/pod1", r, write)
    # cpuset is not mounted in this hierarchy set: skipped
    assert written == {"/sys/fs/cgroup/cpu/kubepods/pod1/cpu.shares": "512",
                       "/sys/fs/cgroup/memory/kubepods/pod1/memory.limit_in_bytes": "4096"}
    assert sorted(paths) == sorted(written)

    def busy(path: str, value: str) -> None:
        raise OSError(errno.EBUSY, "Device or resource busy")

    with pytest.raises(errors.FailedPrecondition, match="current usage is above it"):
        pod_resources.apply(h, "/kubepods/pod1", r, busy)

    def missing(path: str, value: str) -> None:
        raise FileNotFoundError(path)

    with pytest.raises(errors.NotFound):
        pod_resources.apply(h, "/kubepods/pod1", r, missing)


def test_pod_without_cgroup_parent_writes_nothing() -> None:
    pr = pod_resources.PodResources("cgroupfs", lambda: cgroupfs.parse_mountinfo(MOUNTINFO))
    assert pr.update("p1", "", None, api_pb2.LinuxContainerResources(memory_limit_in_bytes=5)) == []
