"""A pod sandbox as the runtime knows it: immutable metadata plus mutable status.

Metadata is written once, into the containerd container's extension, and is
versioned so a later cri-runtime can still read it. Status changes over the
pod's life and is kept in an atomically rewritten file in the state dir.
Both are needed to rebuild the sandbox after a restart.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.oci import host_namespaces
from cri_runtime.store import atomic

METADATA_VERSION = 1
METADATA_EXTENSION = "io.cri-runtime.sandbox.metadata"
METADATA_TYPE = "sandbox-metadata"

READY = "ready"
NOTREADY = "notready"


def sandbox_name(md: api_pb2.PodSandboxMetadata) -> str:
    """The unique name of a pod attempt (as kubelet and containerd build it)."""
    return f"{md.name}_{md.namespace}_{md.uid}_{md.attempt}"


@dataclass
class SandboxMetadata:
    """What never changes after RunPodSandbox returns."""

    id: str
    name: str
    config: bytes  # serialized PodSandboxConfig, kept byte-exact
    runtime_handler: str
    created_at: int  # ns since the epoch
    netns_path: str  # "" with host network
    pod_dir: str
    shm_path: str
    hostname_path: str
    hosts_path: str
    resolv_conf_path: str
    cgroup_parent: str
    image: str  # sandbox (pause) image ID
    ip: str = ""
    additional_ips: list[str] = field(default_factory=list)
    # The handler as RunPodSandbox named it ("" for the default), echoed by status and list
    # as containerd does (kubelet compares it); None in records written before it was kept.
    requested_runtime_handler: str | None = None

    @property
    def reported_runtime_handler(self) -> str:
        """What PodSandboxStatus and ListPodSandbox report: the requested handler."""
        if self.requested_runtime_handler is None:
            return self.runtime_handler
        return self.requested_runtime_handler

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["config"] = base64.b64encode(self.config).decode()
        return data

    @classmethod
    def from_json(cls, version: int, data: dict[str, Any]) -> SandboxMetadata:
        if version != METADATA_VERSION:
            raise ValueError(f"unsupported sandbox metadata version {version}")
        data = dict(data)
        data["config"] = base64.b64decode(data["config"])
        return cls(**data)

    def pod_config(self) -> api_pb2.PodSandboxConfig:
        return api_pb2.PodSandboxConfig.FromString(self.config)


@dataclass
class SandboxStatus(atomic.JsonRecord):
    """What changes: state, the pause pid, network teardown."""

    state: str = NOTREADY
    pid: int = 0
    network_torn_down: bool = False
    exited_at: int = 0


class Sandbox:
    """In-memory sandbox: metadata, status, and a lock serializing its changes."""

    def __init__(self, metadata: SandboxMetadata, status: SandboxStatus, status_path: Path) -> None:
        self.metadata = metadata
        self.status = status
        self.status_path = status_path
        self.lock = asyncio.Lock()
        self.config = metadata.pod_config()
        # The pause task is known to be deleted (it is never re-created): stop/remove skip it.
        self.task_gone = False
        # ListPodSandbox entry and its encoding, rebuilt when the state changes.
        self.list_entry: tuple[api_pb2.PodSandbox, bytes] | None = None
        # Verbose status: the CNI results of the pod's set-up as (raw, go-cni shaped), read from
        # the CNI cache once; they do not change until the network is torn down.
        self.verbose_cni: tuple[dict[str, Any] | None, dict[str, Any] | None] | None = None
        # Verbose status: the config in Go's JSON shape, encoded once (it never changes).
        self.config_json: str | None = None

    @property
    def id(self) -> str:
        return self.metadata.id

    @property
    def ready(self) -> bool:
        return self.status.state == READY

    def save_status(self) -> None:
        self.status_path.parent.mkdir(parents=True, exist_ok=True)
        self.status.save(self.status_path)

    @property
    def host_network(self) -> bool:
        return host_namespaces.host_network(self.config)

    @property
    def host_ipc(self) -> bool:
        return host_namespaces.host_ipc(self.config)

    @property
    def host_pid(self) -> bool:
        return host_namespaces.host_pid(self.config)
