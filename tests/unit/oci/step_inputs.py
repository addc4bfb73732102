"""Inputs for the spec step table tests: one step applied alone to the default spec."""

from __future__ import annotations

from typing import Any, TypeVar

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.oci.container_input import ContainerSpecInput, SandboxContext
from cri_runtime.oci.defaults import default_spec
from cri_runtime.oci.options import SpecOptions
from cri_runtime.oci.process import ImageConfig
from cri_runtime.oci.sandbox_input import SandboxSpecInput
from cri_runtime.oci.spec_steps import Spec, SpecStep

SC = api_pb2.LinuxContainerSecurityContext
POD_SC = api_pb2.LinuxSandboxSecurityContext
NS = api_pb2.NamespaceOption
SP = api_pb2.SecurityProfile
IMAGE = ImageConfig(entrypoint=["/bin/sh"], cmd=["-c", "true"])
PAUSE = ImageConfig(entrypoint=["/pause"])
#: Host devices are never read from /dev in these tests.
OPTIONS = SpecOptions(host_devices=())

InputT = TypeVar("InputT")


def ctr_config(
    sc: api_pb2.LinuxContainerSecurityContext | None = None,
    *,
    resources: api_pb2.LinuxContainerResources | None = None,
    **fields: Any,
) -> api_pb2.ContainerConfig:
    """A container config; without ``sc``, the kubelet's usual one (own PID namespace)."""
    linux = api_pb2.LinuxContainerConfig(security_context=sc or SC(namespace_options=NS(pid=api_pb2.CONTAINER)))
    if resources is not None:
        linux.resources.CopyFrom(resources)
    return api_pb2.ContainerConfig(metadata=api_pb2.ContainerMetadata(name="ctr"), linux=linux, **fields)


def pod_config(
    sc: api_pb2.LinuxSandboxSecurityContext | None = None,
    *,
    hostname: str = "pod-host",
    cgroup_parent: str = "/kubepods/pod-uid",
    resources: api_pb2.LinuxContainerResources | None = None,
    sysctls: dict[str, str] | None = None,
    **fields: Any,
) -> api_pb2.PodSandboxConfig:
    linux = api_pb2.LinuxPodSandboxConfig(cgroup_parent=cgroup_parent, security_context=sc or POD_SC(),
                                          sysctls=sysctls or {})  # fmt: skip
    if resources is not None:
        linux.resources.CopyFrom(resources)
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name="pod", uid="pod-uid", namespace="ns"),
        hostname=hostname,
        log_directory="/var/log/pods/x",
        linux=linux,
        **fields,
    )


def container_input(
    config: api_pb2.ContainerConfig | None = None,
    *,
    pod: api_pb2.PodSandboxConfig | None = None,
    image: ImageConfig = IMAGE,
    options: SpecOptions = OPTIONS,
    pod_files: dict[str, str] | None = None,
    **fields: Any,
) -> ContainerSpecInput:
    """A container of pod "sandbox-id" (pause pid 4242); ``pod_files``: SandboxContext's *_path fields."""
    sandbox = SandboxContext(id="sandbox-id", config=pod or pod_config(), pid=4242, **(pod_files or {}))
    return ContainerSpecInput(
        container_id="ctr-id",
        config=config or ctr_config(),
        image_config=image,
        image_name="docker.io/library/busybox:latest",
        sandbox=sandbox,
        options=options,
        **fields,
    )


def sandbox_input(
    config: api_pb2.PodSandboxConfig | None = None,
    *,
    image: ImageConfig = PAUSE,
    options: SpecOptions = OPTIONS,
    **fields: Any,
) -> SandboxSpecInput:
    return SandboxSpecInput(sandbox_id="sb-id", config=config or pod_config(), image_config=image, options=options,
                            **fields)  # fmt: skip


def applied(step: SpecStep[InputT], inp: InputT) -> Spec:
    """The default spec after ``step`` alone."""
    spec = default_spec()
    step(inp, spec)
    return spec
