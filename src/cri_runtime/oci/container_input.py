"""What the container spec steps read: the CRI request, the image, the pod and the node."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cri_protos.runtime.v1 import api_pb2

from .options import SpecOptions
from .process import ImageConfig
from .user import ImageAccounts


@dataclass(frozen=True)
class SandboxContext:
    """What a container's spec needs to know about its pod sandbox."""

    id: str
    config: api_pb2.PodSandboxConfig
    #: PID of the sandbox's pause task (its namespaces are joined via /proc/<pid>/ns/*).
    pid: int
    #: Host files of the pod bound into every container; "" skips /etc/hostname.
    hostname_path: str = ""
    hosts_path: str = ""
    resolv_conf_path: str = ""
    #: The pod's /dev/shm directory on the host (ignored with host IPC: the host's /dev/shm is used).
    shm_path: str = ""


@dataclass(frozen=True)
class ContainerSpecInput:
    """The arguments of ``build_container_spec``, read-only, as every step gets them."""

    container_id: str
    config: api_pb2.ContainerConfig
    image_config: ImageConfig
    image_name: str
    sandbox: SandboxContext
    options: SpecOptions
    #: The snapshot's host path (its /etc/passwd and /etc/group are read), those files read before, or None.
    rootfs: str | ImageAccounts | None = None
    #: PID of the container named by ``namespace_options.target_id`` (PID mode TARGET).
    target_pid: int | None = None
    #: Host-path mounts the caller resolved (image volumes); a config mount with the same destination wins.
    extra_mounts: Sequence[api_pb2.Mount] = ()

    @property
    def security_context(self) -> api_pb2.LinuxContainerSecurityContext:
        return self.config.linux.security_context

    @property
    def privileged(self) -> bool:
        return self.config.linux.security_context.privileged
