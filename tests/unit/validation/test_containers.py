from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.errors import InvalidArgument
from cri_runtime.validation import check
from cri_runtime.validation.containers import validate_container_config
from cri_runtime.validation.process import MAX_ARG_BYTES, MAX_ARGV_BYTES, MAX_ENV_BYTES
from tests.unit.oci.helpers import container_config

Mutator = Callable[[api_pb2.ContainerConfig], None]


def _set(path: str, value: object) -> Mutator:
    def mutate(cfg: api_pb2.ContainerConfig) -> None:
        obj = cfg
        *parents, last = path.split(".")
        for p in parents:
            obj = getattr(obj, p)
        setattr(obj, last, value)

    return mutate


def _mount(**kw: object) -> Mutator:
    return lambda cfg: cfg.mounts.append(api_pb2.Mount(**kw))  # type: ignore[arg-type]


def _device(**kw: object) -> Mutator:
    return lambda cfg: cfg.devices.append(api_pb2.Device(**kw))  # type: ignore[arg-type]


def test_valid_container_config_passes() -> None:
    cfg = container_config(mounts=[api_pb2.Mount(container_path="/d", host_path="/tmp")])
    cfg.linux.resources.cpu_quota = -1
    cfg.args.append("a" * MAX_ARG_BYTES)
    assert validate_container_config(cfg) is None


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda c: c.ClearField("metadata"), "metadata.name"),
        (_set("metadata.name", ""), "metadata.name"),
        (lambda c: c.ClearField("image"), "image.image"),
        (_set("stop_signal", 99), "stop_signal"),
        (lambda c: c.envs.append(api_pb2.KeyValue(key="", value=b"x")), "envs\\[0\\]"),
        (lambda c: c.envs.append(api_pb2.KeyValue(key="A=B", value=b"x")), "envs\\[0\\]"),
        (lambda c: c.envs.append(api_pb2.KeyValue(key="A", value=b"\xff")), "UTF-8"),
        (_mount(container_path="rel", host_path="/x"), "mounts\\[0\\].container_path"),
        (_mount(container_path="/d", host_path="rel"), "mounts\\[0\\].host_path"),
        (_mount(container_path="/d", host_path="/x", propagation=7), "mounts\\[0\\].propagation"),
        (_mount(container_path="/d", host_path="/x", recursive_read_only=True), "requires readonly"),
        (_mount(container_path="/d", host_path="/x", image=api_pb2.ImageSpec(image="i")), "mutually exclusive"),
        (_mount(container_path="/d", host_path="/x", image_sub_path="s"), "image_sub_path"),
        (_device(container_path="dev", host_path="/dev/null", permissions="r"), "devices\\[0\\].container_path"),
        (_device(container_path="/dev/x", host_path="/dev/null", permissions="q"), "devices\\[0\\].permissions"),
        (_set("working_dir", "rel"), "working_dir"),
        (_set("linux.resources.cpu_shares", -1), "cpu_shares"),
        (_set("linux.resources.memory_limit_in_bytes", -5), "memory_limit_in_bytes"),
        (_set("linux.resources.cpu_quota", -2), "cpu_quota"),
        (_set("linux.resources.oom_score_adj", 1001), "oom_score_adj"),
        (lambda c: c.linux.resources.hugepage_limits.append(api_pb2.HugepageLimit(page_size="2M")), "page_size"),
        (_set("linux.security_context.namespace_options.pid", 9), "namespace_options.pid"),
        (_set("linux.security_context.namespace_options.network", api_pb2.TARGET), "TARGET"),
        (_set("linux.security_context.namespace_options.pid", api_pb2.TARGET), "target_id"),
        (_set("linux.security_context.supplemental_groups_policy", 5), "supplemental_groups_policy"),
        (lambda c: c.linux.security_context.run_as_group.SetInParent(), "run_as_group"),
        (_set("linux.security_context.run_as_user.value", -1), "run_as_user"),
        (lambda c: c.linux.security_context.capabilities.add_capabilities.append("bad-cap"), "capability"),
        (lambda c: c.linux.security_context.masked_paths.append("proc/x"), "masked_paths"),
        (_set("linux.security_context.seccomp.profile_type", 4), "seccomp.profile_type"),
        (_set("linux.security_context.seccomp.profile_type", api_pb2.SecurityProfile.Localhost), "localhost_ref"),
        (_set("linux.security_context.apparmor.localhost_ref", "x"), "apparmor.localhost_ref"),
        (lambda c: c.args.append("a" * (MAX_ARG_BYTES + 1)), f"command\\+args\\[0\\].*limit.*{MAX_ARG_BYTES}"),
        (lambda c: c.args.extend(["a" * 60000] * 9), f"limit for all arguments together is {MAX_ARGV_BYTES}"),
        (lambda c: c.envs.append(api_pb2.KeyValue(key="BIG", value=b"v" * MAX_ARG_BYTES)), "envs\\[0\\] \\(BIG\\)"),
        (lambda c: c.envs.extend(api_pb2.KeyValue(key=f"K{i}", value=b"v" * 60000) for i in range(9)),
         f"whole environment is {MAX_ENV_BYTES}"),
    ],
)
def test_invalid_container_configs(mutate: Mutator, match: str) -> None:
    cfg = container_config()
    mutate(cfg)
    with pytest.raises(InvalidArgument, match=match):
        validate_container_config(cfg)


_OK_CFG = container_config()

Request = Any


@pytest.mark.parametrize(
    ("request_", "match"),
    [
        (api_pb2.CreateContainerRequest(config=_OK_CFG), "CreateContainer: pod_sandbox_id"),
        (api_pb2.CreateContainerRequest(pod_sandbox_id="p"), "CreateContainer: config is required"),
        (api_pb2.StartContainerRequest(), "StartContainer: container_id"),
        (api_pb2.StopContainerRequest(container_id="c", timeout=-1), "timeout must not be negative"),
        (api_pb2.StopContainerRequest(), "StopContainer: container_id"),
        (api_pb2.RemoveContainerRequest(), "RemoveContainer: container_id"),
        (api_pb2.UpdateContainerResourcesRequest(), "UpdateContainerResources: container_id"),
        (api_pb2.UpdateContainerResourcesRequest(
            container_id="c", linux=api_pb2.LinuxContainerResources(cpu_shares=1)), "cpu_shares"),
        (api_pb2.UpdateContainerResourcesRequest(
            container_id="c", linux=api_pb2.LinuxContainerResources(cpu_period=10)), "cpu_period"),
        (api_pb2.ExecSyncRequest(container_id="c"), "cmd must not be empty"),
        (api_pb2.ExecSyncRequest(container_id="c", cmd=["x"], timeout=-1), "timeout must not be negative"),
        (api_pb2.ExecSyncRequest(cmd=["x"]), "ExecSync: container_id"),
        (api_pb2.ExecSyncRequest(container_id="c", cmd=["echo", "x" * 65536]),
         f"ExecSync: cmd\\[1\\] is 65536 bytes; the limit for one argument is {MAX_ARG_BYTES} bytes"),
        (api_pb2.ExecRequest(container_id="c", cmd=["echo", "x" * 65536], stdout=True), "Exec: cmd\\[1\\]"),
        (api_pb2.ExecRequest(container_id="c", stdout=True), "Exec: cmd must not be empty"),
    ],
)
def test_invalid_container_requests(request_: Request, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        check(request_)


@pytest.mark.parametrize(
    "request_",
    [
        api_pb2.CreateContainerRequest(pod_sandbox_id="p", config=_OK_CFG),
        api_pb2.StartContainerRequest(container_id="c"),
        api_pb2.StopContainerRequest(container_id="c", timeout=0),
        api_pb2.RemoveContainerRequest(container_id="c"),
        api_pb2.UpdateContainerResourcesRequest(container_id="c", linux=api_pb2.LinuxContainerResources(
            cpu_shares=2, cpu_period=100000, cpu_quota=-1, cpuset_cpus="0-1,3", memory_limit_in_bytes=1 << 30)),
        api_pb2.ExecSyncRequest(container_id="c", cmd=["echo", "x" * MAX_ARG_BYTES], timeout=5),
        api_pb2.ExecRequest(container_id="c", cmd=["sh"], stdin=True, tty=True),
        api_pb2.ListContainersRequest(),
    ],
)
def test_valid_container_requests_pass(request_: Request) -> None:
    assert check(request_) is None
