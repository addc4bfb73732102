from __future__ import annotations

from typing import Any

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.errors import FailedPrecondition
from cri_runtime.oci.cgroups import cgroups_path
from cri_runtime.oci.resources import clamp_oom_score_adj, linux_resources

R = api_pb2.LinuxContainerResources


@pytest.mark.parametrize(
    ("res", "swap", "expected"),
    [
        (R(), False, {}),
        (R(cpu_shares=512, cpu_quota=50000, cpu_period=100000), False,
         {"cpu": {"shares": 512, "quota": 50000, "period": 100000}}),
        (R(cpuset_cpus="0-1", cpuset_mems="0"), False, {"cpu": {"cpus": "0-1", "mems": "0"}}),
        (R(memory_limit_in_bytes=1 << 20), False, {"memory": {"limit": 1 << 20}}),
        (R(memory_limit_in_bytes=1 << 20), True, {"memory": {"limit": 1 << 20, "swap": 1 << 20}}),
        (R(memory_limit_in_bytes=1 << 20, memory_swap_limit_in_bytes=2 << 20), True,
         {"memory": {"limit": 1 << 20, "swap": 2 << 20}}),
        (R(memory_limit_in_bytes=1 << 20, memory_swap_limit_in_bytes=2 << 20), False,
         {"memory": {"limit": 1 << 20, "swap": 2 << 20}}),
        (R(hugepage_limits=[api_pb2.HugepageLimit(page_size="2MB", limit=4 << 20)]), False,
         {"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]}),
        (R(unified={"memory.high": "1G", "cpu.weight": "10"}), False,
         {"unified": {"cpu.weight": "10", "memory.high": "1G"}}),
    ],
)  # fmt: skip
def test_linux_resources(res: api_pb2.LinuxContainerResources, swap: bool, expected: dict[str, Any]) -> None:
    assert linux_resources(res, swap_available=swap) == expected


def test_missing_hugetlb() -> None:
    res = R(hugepage_limits=[api_pb2.HugepageLimit(page_size="2MB", limit=1)])
    with pytest.raises(FailedPrecondition, match="hugetlb"):
        linux_resources(res, swap_available=False, hugetlb_available=False)
    assert linux_resources(res, swap_available=False, hugetlb_available=False, tolerate_missing_hugetlb=True) == {}


@pytest.mark.parametrize(
    ("requested", "restrict", "current", "expected"),
    [(-998, True, 0, 0), (-998, False, 0, -998), (500, True, 0, 500), (-100, True, -500, -100),
     (-999, True, -500, -500), (1000, True, 1000, 1000)],
)  # fmt: skip
def test_clamp_oom_score_adj(requested: int, restrict: bool, current: int, expected: int) -> None:
    assert clamp_oom_score_adj(requested, restrict=restrict, current=current) == expected


@pytest.mark.parametrize(
    ("parent", "driver", "expected"),
    [
        ("/kubepods/burstable/pod1", "cgroupfs", "/kubepods/burstable/pod1/cid"),
        ("", "cgroupfs", "/k8s.io/cid"),
        ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice", "systemd",
         "kubepods-burstable-pod1.slice:cri-runtime:cid"),
        ("kubepods.slice/", "systemd", "kubepods.slice:cri-runtime:cid"),
        ("", "systemd", ":cri-runtime:cid"),
    ],
)  # fmt: skip
def test_cgroups_path(parent: str, driver: Any, expected: str) -> None:
    assert cgroups_path(parent, "cid", driver) == expected


def test_cgroups_path_errors() -> None:
    from cri_runtime.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="slice"):
        cgroups_path("/kubepods/pod1", "cid", "systemd")
    with pytest.raises(InvalidArgument, match="driver"):
        cgroups_path("/x", "cid", "bogus")  # type: ignore[arg-type]
    assert cgroups_path("/x.slice", "cid", "systemd", "crio") == "x.slice:crio:cid"
