"""Table tests of the container device and cgroup steps, each applied alone to the default spec."""

from __future__ import annotations

import os
from typing import Any

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.errors import FailedPrecondition, InvalidArgument, NotFound
from cri_runtime.oci.container_input import ContainerSpecInput
from cri_runtime.oci.container_steps import devices, resources
from cri_runtime.oci.defaults import default_spec
from cri_runtime.oci.options import SpecOptions
from tests.unit.oci.step_inputs import POD_SC, SC, applied, container_input, ctr_config, pod_config

D = api_pb2.Device
R = api_pb2.LinuxContainerResources
DENY_ALL = {"allow": False, "access": "rwm"}
ALLOW_ALL = {"allow": True, "access": "rwm"}
KVM = {"path": "/dev/kvm", "type": "c", "major": 10, "minor": 232, "fileMode": 0o660, "uid": 0, "gid": 0}
PRIVILEGED_POD = pod_config(POD_SC(privileged=True))


def _char(path: str) -> tuple[int, int]:
    rdev = os.stat(path).st_rdev
    return os.major(rdev), os.minor(rdev)


NULL, ZERO = _char("/dev/null"), _char("/dev/zero")


@pytest.mark.parametrize(
    ("devs", "expected_devices", "expected_rules"),
    [
        pytest.param([], None, [DENY_ALL], id="none"),
        pytest.param([D(container_path="/dev/mynull", host_path="/dev/null", permissions="rw")],
                     [("/dev/mynull", *NULL)],
                     [DENY_ALL, {"allow": True, "type": "c", "major": NULL[0], "minor": NULL[1], "access": "rw"}],
                     id="renamed-device"),
        pytest.param([D(host_path="/dev/zero", permissions="mr"), D(container_path="/dev/n", host_path="/dev/null",
                                                                    permissions="r")],
                     [("/dev/zero", *ZERO), ("/dev/n", *NULL)],
                     [DENY_ALL, {"allow": True, "type": "c", "major": ZERO[0], "minor": ZERO[1], "access": "mr"},
                      {"allow": True, "type": "c", "major": NULL[0], "minor": NULL[1], "access": "r"}],
                     id="no-container-path-keeps-the-host's"),
    ],
)  # fmt: skip
def test_with_cri_devices(devs: list[api_pb2.Device], expected_devices: list[tuple[str, int, int]] | None,
                          expected_rules: list[dict[str, Any]]) -> None:  # fmt: skip
    linux = applied(devices.with_cri_devices, container_input(ctr_config(devices=devs)))["linux"]
    got = [(d["path"], d["major"], d["minor"]) for d in linux["devices"]] if "devices" in linux else None
    assert got == expected_devices
    assert linux["resources"]["devices"] == expected_rules


@pytest.mark.parametrize(
    ("dev", "error", "match"),
    [
        pytest.param(D(container_path="/dev/x", host_path="/dev/null", permissions="rwx"), InvalidArgument,
                     "invalid permissions", id="bad-permissions"),
        pytest.param(D(container_path="/dev/x", host_path="/dev/null", permissions=""), InvalidArgument,
                     "invalid permissions", id="no-permissions"),
        pytest.param(D(container_path="/dev/x", host_path="/etc/passwd", permissions="r"), InvalidArgument,
                     "not a device", id="not-a-device"),
        pytest.param(D(container_path="/dev/x", host_path="/dev/nonexistent-device", permissions="r"), NotFound,
                     "does not exist", id="missing"),
    ],
)  # fmt: skip
def test_with_cri_devices_errors(dev: api_pb2.Device, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        applied(devices.with_cri_devices, container_input(ctr_config(devices=[dev])))


@pytest.mark.parametrize(
    ("privileged", "options", "expected_devices", "expected_rules"),
    [
        pytest.param(True, SpecOptions(host_devices=(KVM,)), [KVM], [ALLOW_ALL], id="privileged-gets-host-devices"),
        pytest.param(True, SpecOptions(host_devices=()), None, [ALLOW_ALL], id="privileged-on-a-host-without"),
        pytest.param(True, SpecOptions(host_devices=(KVM,), privileged_without_host_devices=True), None, [DENY_ALL],
                     id="runtime-handler-withholds-them"),
        pytest.param(False, SpecOptions(host_devices=(KVM,)), None, [DENY_ALL], id="unprivileged"),
    ],
)  # fmt: skip
def test_with_host_devices(privileged: bool, options: SpecOptions, expected_devices: list[dict[str, Any]] | None,
                           expected_rules: list[dict[str, Any]]) -> None:  # fmt: skip
    inp = container_input(ctr_config(SC(privileged=privileged)), pod=PRIVILEGED_POD, options=options)
    linux = applied(devices.with_host_devices, inp)["linux"]
    assert linux.get("devices") == expected_devices
    assert linux["resources"]["devices"] == expected_rules


def test_with_host_devices_come_after_the_config_devices() -> None:
    mine = {"path": "/dev/mine", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666, "uid": 0, "gid": 0}
    inp = container_input(ctr_config(SC(privileged=True)), pod=PRIVILEGED_POD, options=SpecOptions(host_devices=(KVM,)))
    spec = default_spec()
    spec["linux"]["devices"] = [mine]
    devices.with_host_devices(inp, spec)
    assert spec["linux"]["devices"] == [mine, KVM]


@pytest.mark.parametrize(
    ("res", "options", "expected"),
    [
        pytest.param(None, SpecOptions(), {"devices": [DENY_ALL]}, id="no-resources"),
        pytest.param(R(cpu_shares=1024, cpu_quota=20000, cpu_period=100000, memory_limit_in_bytes=64 << 20),
                     SpecOptions(), {"devices": [DENY_ALL], "cpu": {"shares": 1024, "quota": 20000, "period": 100000},
                                     "memory": {"limit": 64 << 20}}, id="cpu-and-memory"),
        pytest.param(R(memory_limit_in_bytes=64 << 20), SpecOptions(swap_available=True),
                     {"devices": [DENY_ALL], "memory": {"limit": 64 << 20, "swap": 64 << 20}},
                     id="no-swap-when-possible"),
        pytest.param(R(hugepage_limits=[api_pb2.HugepageLimit(page_size="2MB", limit=1 << 21)]),
                     SpecOptions(hugetlb_available=False, tolerate_missing_hugetlb=True), {"devices": [DENY_ALL]},
                     id="missing-hugetlb-tolerated"),
        pytest.param(R(unified={"memory.high": "1", "cpu.weight": "5"}), SpecOptions(),
                     {"devices": [DENY_ALL], "unified": {"cpu.weight": "5", "memory.high": "1"}}, id="unified"),
    ],
)  # fmt: skip
def test_with_resources(res: api_pb2.LinuxContainerResources | None, options: SpecOptions,
                        expected: dict[str, Any]) -> None:  # fmt: skip
    inp = container_input(ctr_config(resources=res), options=options)
    assert applied(resources.with_resources, inp)["linux"]["resources"] == expected


def test_with_resources_refuses_hugepages_without_hugetlb() -> None:
    res = R(hugepage_limits=[api_pb2.HugepageLimit(page_size="2MB", limit=1 << 21)])
    inp = container_input(ctr_config(resources=res), options=SpecOptions(hugetlb_available=False))
    with pytest.raises(FailedPrecondition, match="hugetlb"):
        applied(resources.with_resources, inp)


@pytest.mark.parametrize(
    ("res", "options", "expected"),
    [
        pytest.param(None, SpecOptions(), None, id="no-resources-no-adjustment"),
        pytest.param(R(oom_score_adj=500), SpecOptions(), 500, id="asked"),
        pytest.param(R(), SpecOptions(current_oom_score_adj=100), 100, id="empty-resources-raised-to-our-own"),
        pytest.param(R(oom_score_adj=-500), SpecOptions(current_oom_score_adj=-100), -100,
                     id="never-below-our-own"),
        pytest.param(R(oom_score_adj=-500), SpecOptions(current_oom_score_adj=-100, restrict_oom_score_adj=False),
                     -500, id="unrestricted"),
    ],
)  # fmt: skip
def test_with_oom_score_adj(res: api_pb2.LinuxContainerResources | None, options: SpecOptions,
                            expected: int | None) -> None:  # fmt: skip
    inp = container_input(ctr_config(resources=res), options=options)
    assert applied(resources.with_oom_score_adj, inp)["process"].get("oomScoreAdj") == expected


@pytest.mark.parametrize(
    ("parent", "options", "expected"),
    [
        pytest.param("/kubepods/pod-uid", SpecOptions(), "/kubepods/pod-uid/ctr-id", id="cgroupfs"),
        pytest.param("", SpecOptions(), "/k8s.io/ctr-id", id="cgroupfs-no-parent"),
        pytest.param("/kubepods.slice/kubepods-pod1.slice", SpecOptions(cgroup_driver="systemd"),
                     "kubepods-pod1.slice:cri-runtime:ctr-id", id="systemd"),
        pytest.param("", SpecOptions(cgroup_driver="systemd", systemd_cgroup_prefix="p"), ":p:ctr-id",
                     id="systemd-no-parent"),
    ],
)  # fmt: skip
def test_with_cgroups_path(parent: str, options: SpecOptions, expected: str) -> None:
    inp = container_input(pod=pod_config(cgroup_parent=parent), options=options)
    assert applied(resources.with_cgroups_path, inp)["linux"]["cgroupsPath"] == expected


def test_with_cgroups_path_rejects_a_non_slice_parent_with_systemd() -> None:
    inp: ContainerSpecInput = container_input(options=SpecOptions(cgroup_driver="systemd"))
    with pytest.raises(InvalidArgument, match=r"\.slice"):
        applied(resources.with_cgroups_path, inp)
