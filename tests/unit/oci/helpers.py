"""Builders of CRI test configs shared by the OCI spec tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cri_protos.runtime.v1 import api_pb2


def sandbox_config(**linux: Any) -> api_pb2.PodSandboxConfig:
    cfg = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name="pod", uid="pod-uid", namespace="ns", attempt=0),
        hostname="pod-host",
        log_directory="/var/log/pods/x",
    )
    cfg.linux.cgroup_parent = linux.pop("cgroup_parent", "/kubepods/pod-uid")
    for key, value in linux.items():
        setattr(cfg.linux.security_context, key, value)
    return cfg


def container_config(**kwargs: Any) -> api_pb2.ContainerConfig:
    cfg = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="ctr"), image=api_pb2.ImageSpec(image="busybox:latest"), **kwargs
    )
    # Kubelet's usual namespace options for an ordinary pod.
    cfg.linux.security_context.namespace_options.pid = api_pb2.CONTAINER
    return cfg


BuildFn = Callable[..., dict[str, Any]]
