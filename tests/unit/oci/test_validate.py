from __future__ import annotations

from collections.abc import Callable

import pytest

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.errors import InvalidArgument
from cri_runtime.oci.validate import validate_container_config, validate_sandbox_config
from tests.unit.oci.helpers import container_config, sandbox_config

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
    validate_container_config(cfg)


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
    ],
)
def test_invalid_container_configs(mutate: Mutator, match: str) -> None:
    cfg = container_config()
    mutate(cfg)
    with pytest.raises(InvalidArgument, match=match):
        validate_container_config(cfg)


def test_valid_sandbox_config_passes() -> None:
    validate_sandbox_config(sandbox_config())


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda c: c.ClearField("metadata"), "metadata is required"),
        (lambda c: setattr(c.metadata, "uid", ""), "metadata.uid"),
        (lambda c: setattr(c.metadata, "namespace", ""), "metadata.namespace"),
        (lambda c: c.port_mappings.append(api_pb2.PortMapping(protocol=5)), "protocol"),  # type: ignore[arg-type]
        (lambda c: c.port_mappings.append(api_pb2.PortMapping(host_port=70000)), "ports"),
        (lambda c: setattr(c.linux.overhead, "cpu_period", -1), "linux.overhead.cpu_period"),
        (lambda c: setattr(c.linux.security_context.run_as_group, "value", 5), "run_as_group"),
        (lambda c: setattr(c.linux.security_context.namespace_options, "ipc", 8), "namespace_options.ipc"),
        (lambda c: setattr(c.linux.security_context.namespace_options.userns_options, "mode", 9), "userns"),
    ],
)
def test_invalid_sandbox_configs(mutate: Callable[[api_pb2.PodSandboxConfig], None], match: str) -> None:
    cfg = sandbox_config()
    mutate(cfg)
    with pytest.raises(InvalidArgument, match=match):
        validate_sandbox_config(cfg)
