"""What the sandbox (pause container) spec steps read: the pod's config, the pause image, the node."""

from __future__ import annotations

from dataclasses import dataclass

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.oci import host_namespaces

from .options import SpecOptions
from .process import ImageConfig


@dataclass(frozen=True)
class SandboxSpecInput:
    """The arguments of ``build_sandbox_spec``, read-only, as every step gets them."""

    sandbox_id: str
    config: api_pb2.PodSandboxConfig
    image_config: ImageConfig
    options: SpecOptions
    #: The pinned network namespace (ignored with host network; "" lets runc create one).
    netns_path: str = ""
    #: Host directory bound on /dev/shm (ignored with host IPC, which uses the host's /dev/shm).
    shm_path: str = ""
    #: The pod's resolv.conf ("" none).
    resolv_conf_path: str = ""
    #: The pause rootfs, for resolving a named image user.
    rootfs: str | None = None

    @property
    def security_context(self) -> api_pb2.LinuxSandboxSecurityContext:
        return self.config.linux.security_context

    @property
    def host_network(self) -> bool:
        return host_namespaces.host_network(self.config)

    @property
    def host_ipc(self) -> bool:
        return host_namespaces.host_ipc(self.config)
