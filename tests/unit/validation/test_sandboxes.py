"""Table tests of the sandbox request validators (validation.sandboxes, validation.resources)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.errors import InvalidArgument
from cri_runtime.validation import check
from cri_runtime.validation.resources import INT64_MAX
from cri_runtime.validation.sandboxes import validate_sandbox_config
from tests.unit.oci.helpers import sandbox_config


def test_valid_sandbox_config_passes() -> None:
    cfg = sandbox_config()
    cfg.linux.sysctls["net.ipv4.ip_forward"] = "1"
    cfg.linux.sysctls["net/ipv4/conf/eth0.100/rp_filter"] = "1"
    cfg.linux.sysctls["kernel.shm_rmid_forced"] = "1"
    assert validate_sandbox_config(cfg) is None


def _sysctl(name: str, value: str = "1") -> Callable[[api_pb2.PodSandboxConfig], None]:
    return lambda c: c.linux.sysctls.__setitem__(name, value)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda c: c.ClearField("metadata"), "metadata is required"),
        (lambda c: setattr(c.metadata, "uid", ""), "uid must not be empty"),
        (lambda c: setattr(c.metadata, "namespace", ""), "namespace must not be empty"),
        (lambda c: c.port_mappings.append(api_pb2.PortMapping(protocol=5, container_port=1)), "protocol"),  # type: ignore[arg-type]
        (lambda c: c.port_mappings.append(api_pb2.PortMapping(container_port=80, host_port=70000)), "host_port"),
        # The one rule the two former validators disagreed on: a mapping needs a container port.
        (lambda c: c.port_mappings.append(api_pb2.PortMapping(container_port=0)), "container_port"),
        (lambda c: setattr(c.linux.overhead, "cpu_period", -1), "linux.overhead.cpu_period"),
        (lambda c: setattr(c.linux.resources, "cpu_shares", 300000), "linux.resources.cpu_shares"),
        (lambda c: setattr(c.linux.security_context.run_as_group, "value", 5), "run_as_group"),
        (lambda c: setattr(c.linux.security_context.namespace_options, "ipc", 8), "namespace_options.ipc"),
        (lambda c: setattr(c.linux.security_context.namespace_options.userns_options, "mode", 9), "userns"),
        (lambda c: setattr(c.linux.security_context.seccomp, "profile_type", 7), "seccomp.profile_type"),
        (lambda c: setattr(c.linux, "cgroup_parent", "/kubepods/../x"), "cgroup_parent"),
        (lambda c: setattr(c, "log_directory", "rel/logs"), "log_directory"),
        (lambda c: setattr(c, "hostname", "bad_host!"), "hostname"),
        # sysctl names: the traversal of issue 12 and its relatives never reach runc.
        (_sysctl("net/../../etc/passwd"), "invalid name"),
        (_sysctl("net.ipv4/../../../etc/passwd"), "invalid name"),
        (_sysctl("net..ipv4.ip_forward"), "invalid name"),
        (_sysctl("net.ipv4.ip_forward."), "invalid name"),
        (_sysctl(".net.ipv4"), "invalid name"),
        (_sysctl(""), "invalid name"),
        (_sysctl("NET.IPV4.IP_FORWARD"), "invalid name"),
        (_sysctl("net." + "a" * 260), "at most 253"),
        (_sysctl("net.ipv4.ip_forward", "1\n2"), "one line"),
        (_sysctl("kernel.panic"), "not namespaced"),
        (_sysctl("vm.overcommit_memory"), "not namespaced"),
    ],
)
def test_invalid_sandbox_configs(mutate: Callable[[api_pb2.PodSandboxConfig], None], match: str) -> None:
    cfg = sandbox_config()
    mutate(cfg)
    with pytest.raises(InvalidArgument, match=match):
        check(api_pb2.RunPodSandboxRequest(config=cfg))


def test_host_network_pod_cannot_set_net_sysctls() -> None:
    cfg = sandbox_config()
    cfg.linux.security_context.namespace_options.network = api_pb2.NODE
    cfg.linux.sysctls["net.ipv4.ip_forward"] = "1"
    with pytest.raises(InvalidArgument, match="host network"):
        check(api_pb2.RunPodSandboxRequest(config=cfg))


def test_run_without_config() -> None:
    with pytest.raises(InvalidArgument, match="RunPodSandbox: config is required"):
        check(api_pb2.RunPodSandboxRequest())


R = api_pb2.LinuxContainerResources


@pytest.mark.parametrize(
    ("overhead", "resources", "match"),
    [
        (None, R(cpu_shares=1), "resources.cpu_shares must be 0 \\(unset\\) or in \\[2, 262144\\]"),
        (None, R(cpu_shares=262145), "cpu_shares"),
        (None, R(cpu_period=999), "cpu_period"),
        (None, R(cpu_period=1_000_001), "cpu_period"),
        (None, R(cpu_quota=-2), "cpu_quota must be -1"),
        (None, R(cpu_quota=10), "cpu_quota must be at least 1000"),
        (None, R(memory_limit_in_bytes=-1), "memory_limit_in_bytes must not be negative"),
        (None, R(memory_limit_in_bytes=100, memory_swap_limit_in_bytes=50), "memory_swap_limit_in_bytes"),
        (None, R(oom_score_adj=-1001), "oom_score_adj"),
        (None, R(cpuset_cpus="0-3;rm"), "cpuset_cpus"),
        (None, R(cpuset_mems="a"), "cpuset_mems"),
        (None, R(unified={"../../cpu.max": "1"}), "unified"),
        (None, R(unified={"memory.high": "1\n2"}), "one line"),
        (None, R(hugepage_limits=[api_pb2.HugepageLimit(page_size="2M")]), "page_size"),
        (R(memory_limit_in_bytes=INT64_MAX), R(memory_limit_in_bytes=1), "out of range"),
        (R(cpu_shares=200000), R(cpu_shares=100000), "above the kernel's maximum 262144"),
        (R(cpu_shares=-5), None, "overhead.cpu_shares"),
    ],
)
def test_invalid_pod_resources(overhead: Any, resources: Any, match: str) -> None:
    req = api_pb2.UpdatePodSandboxResourcesRequest(pod_sandbox_id="p")
    if overhead is not None:
        req.overhead.CopyFrom(overhead)
    if resources is not None:
        req.resources.CopyFrom(resources)
    with pytest.raises(InvalidArgument, match=match):
        check(req)


def test_pod_resources_need_an_id() -> None:
    with pytest.raises(InvalidArgument, match="pod_sandbox_id"):
        check(api_pb2.UpdatePodSandboxResourcesRequest())


def test_valid_pod_resources_pass() -> None:
    req = api_pb2.UpdatePodSandboxResourcesRequest(
        pod_sandbox_id="p", overhead=R(cpu_shares=10, memory_limit_in_bytes=1 << 20),
        resources=R(cpu_shares=1024, cpu_period=100000, cpu_quota=50000, memory_limit_in_bytes=1 << 30,
                    unified={"memory.high": "max"}))
    assert check(req) is None
