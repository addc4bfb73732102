"""A container as the runtime knows it: immutable metadata plus mutable status.

Metadata lives in the containerd container's extension (versioned), status
in an atomically rewritten file; both survive a restart of cri-runtime.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cri_protos.runtime.v1 import api_pb2
from cri_runtime.store import atomic

METADATA_VERSION = 1
METADATA_EXTENSION = "io.cri-runtime.container.metadata"
METADATA_TYPE = "container-metadata"

CREATED = "created"
RUNNING = "running"
EXITED = "exited"
UNKNOWN = "unknown"

STATES = {
    CREATED: api_pb2.CONTAINER_CREATED,
    RUNNING: api_pb2.CONTAINER_RUNNING,
    EXITED: api_pb2.CONTAINER_EXITED,
    UNKNOWN: api_pb2.CONTAINER_UNKNOWN,
}

REASON_COMPLETED = "Completed"
REASON_ERROR = "Error"
REASON_OOM = "OOMKilled"
REASON_START_ERROR = "StartError"
START_ERROR_EXIT_CODE = 128


def container_name(md: api_pb2.ContainerMetadata, pod: api_pb2.PodSandboxMetadata) -> str:
    """Unique name of a container attempt within its pod (as kubelet builds it)."""
    return f"{md.name}_{pod.name}_{pod.namespace}_{pod.uid}_{md.attempt}"


@dataclass
class ContainerMetadata:
    """What never changes after CreateContainer returns."""

    id: str
    name: str
    sandbox_id: str
    config: bytes  # serialized ContainerConfig
    image_id: str
    image_name: str  # the image as the user asked for it (resolved to a repo tag when there is one)
    image_ref: str  # repo digest when known, else the image ID
    log_path: str  # absolute; "" when the pod has no log directory or the container no log path
    created_at: int
    io_dir: str
    stop_signal: str
    # The process user the spec was built with: uid, gid, additionalGids.
    user: dict[str, Any] = field(default_factory=dict)
    # Image volumes mounted for it: snapshot key and host mountpoint of each.
    image_volumes: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["config"] = base64.b64encode(self.config).decode()
        return data

    @classmethod
    def from_json(cls, version: int, data: dict[str, Any]) -> ContainerMetadata:
        if version != METADATA_VERSION:
            raise ValueError(f"unsupported container metadata version {version}")
        data = dict(data)
        data["config"] = base64.b64decode(data["config"])
        return cls(**data)


@dataclass
class ContainerStatus(atomic.JsonRecord):
    """What changes over the container's life."""

    state: str = CREATED
    pid: int = 0
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    oom_killed: bool = False


class Container:
    """In-memory container: metadata, status, a lock, and an exit notification."""

    def __init__(self, metadata: ContainerMetadata, status: ContainerStatus, status_path: Path) -> None:
        self.metadata = metadata
        self.status = status
        self.status_path = status_path
        self.lock = asyncio.Lock()
        self.config = api_pb2.ContainerConfig.FromString(metadata.config)
        self.exited = asyncio.Event()
        if status.state == EXITED:
            self.exited.set()
        # ListContainers entry and its encoding, rebuilt when the state changes.
        self.list_entry: tuple[api_pb2.Container, bytes] | None = None
        # Verbose ContainerStatus: the config in Go's JSON shape, encoded once (it never changes).
        self.config_json: str | None = None
        # Spec resources as last applied (UpdateContainerResources changes them).
        self.resources: api_pb2.LinuxContainerResources | None = (
            self.config.linux.resources if self.config.linux.HasField("resources") else None)
        # Linux resources read back from the OCI spec (ContainerStatus.resources); set at
        # creation, recovery and UpdateContainerResources.
        self.effective_resources = api_pb2.LinuxContainerResources()
        # The rootfs snapshot's mounts as Prepare returned them (stable for its life), so
        # StartContainer needs no Mounts round trip; None after a restart of ours.
        self.rootfs_mounts: list[Any] | None = None
        # The task is known to be deleted (its exit was recorded): RemoveContainer skips that call.
        self.task_deleted = False
        # A StartContainer still running whose caller gave up (a retry joins it), and whether
        # such an abandoned start succeeded (the next retry then answers OK once).
        self.starting: asyncio.Future[None] | None = None
        self.start_abandoned = False

    @property
    def id(self) -> str:
        return self.metadata.id

    @property
    def state(self) -> str:
        return self.status.state

    def save_status(self) -> None:
        self.status_path.parent.mkdir(parents=True, exist_ok=True)
        self.status.save(self.status_path)
