"""Everything the tree and the doctor look at, read once: containerd, our state dirs, the kernel.

Our records are the containerd containers labelled `io.cri-runtime.kind`
(metadata in their extension, as the server's recovery reads them) plus the
status files under the state dir. The layout of the dirs (netns pins, CNI
cache, pod and container dirs) is the server's: see sandbox/manager.py,
containers/manager.py and server.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cri_protos.containerd.services.containers.v1 import containers_pb2
from cri_protos.containerd.services.leases.v1 import leases_pb2
from cri_protos.containerd.services.snapshots.v1 import snapshots_pb2
from cri_protos.containerd.types.task import task_pb2
from cri_runtime import errors
from cri_runtime.config import Config
from cri_runtime.containerd import objects
from cri_runtime.containerd.connection import Containerd
from cri_runtime.containers.model import METADATA_EXTENSION as CONTAINER_EXTENSION
from cri_runtime.containers.model import METADATA_TYPE as CONTAINER_TYPE
from cri_runtime.containers.model import ContainerMetadata, ContainerStatus
from cri_runtime.nodetools import ctrviews, owners
from cri_runtime.nodetools.procfs import ProcTable
from cri_runtime.sandbox.model import METADATA_EXTENSION as SANDBOX_EXTENSION
from cri_runtime.sandbox.model import METADATA_TYPE as SANDBOX_TYPE
from cri_runtime.sandbox.model import SandboxMetadata, SandboxStatus


@dataclass(frozen=True)
class Layout:
    """Where the server keeps its files (same paths as the server builds them)."""

    state_dir: Path
    root_dir: Path

    @classmethod
    def of(cls, config: Config) -> Layout:
        return cls(Path(config.server.state_dir), Path(config.server.root_dir))

    @property
    def netns_dir(self) -> Path:
        return self.state_dir / "netns"

    @property
    def cni_cache(self) -> Path:
        return self.root_dir / "cni-cache"

    @property
    def sandbox_state(self) -> Path:
        return self.state_dir / "sandboxes"

    @property
    def sandbox_root(self) -> Path:
        return self.root_dir / "sandboxes"

    @property
    def container_state(self) -> Path:
        return self.state_dir / "containers"


@dataclass
class PodRecord:
    id: str
    record: containers_pb2.Container
    metadata: SandboxMetadata | None
    status: SandboxStatus | None
    error: str = ""

    @property
    def name(self) -> str:
        return owners.of_container(self.record.labels).name


@dataclass
class ContainerRecord:
    id: str
    record: containers_pb2.Container
    metadata: ContainerMetadata | None
    status: ContainerStatus | None
    error: str = ""

    @property
    def name(self) -> str:
        return owners.of_container(self.record.labels).name

    @property
    def sandbox_id(self) -> str:
        return self.record.labels.get(objects.SANDBOX_ID_LABEL, "")


@dataclass
class Inventory:
    config: Config
    layout: Layout
    containers: dict[str, containers_pb2.Container]
    tasks: dict[str, task_pb2.Process]
    snapshots: list[snapshots_pb2.Info]
    leases: list[leases_pb2.Lease]
    procs: ProcTable
    pods: dict[str, PodRecord] = field(default_factory=dict)
    ctrs: dict[str, ContainerRecord] = field(default_factory=dict)

    @classmethod
    async def gather(cls, ctd: Containerd, config: Config) -> Inventory:
        layout = Layout.of(config)
        all_containers = {c.id: c for c in await ctrviews.list_containers(ctd)}
        tasks = {t.id: t for t in await ctrviews.list_tasks(ctd)}
        snaps = await ctrviews.list_snapshots(ctd, config.containerd.snapshotter)
        leases = await ctrviews.list_leases(ctd)
        inv = cls(config, layout, all_containers, tasks, snaps, leases, ProcTable.read())
        for c in all_containers.values():
            kind = c.labels.get(objects.KIND_LABEL)
            if kind == objects.KIND_SANDBOX:
                inv.pods[c.id] = _pod_record(c, layout)
            elif kind == objects.KIND_CONTAINER:
                inv.ctrs[c.id] = _container_record(c, layout)
        return inv

    def owner(self, container_id: str) -> owners.CriOwner:
        c = self.containers.get(container_id)
        return owners.of_record(c) if c is not None else owners.NONE

    def task_running(self, container_id: str) -> bool:
        t = self.tasks.get(container_id)
        return t is not None and t.status in (task_pb2.RUNNING, task_pb2.PAUSED, task_pb2.PAUSING, task_pb2.CREATED)

    def pod_of(self, container_id: str) -> str:
        """The sandbox ID of a containerd container of either CRI (itself for a pod)."""
        c = self.containers.get(container_id)
        if c is None:
            return ""
        owner = owners.of_record(c)
        return c.id if owner.kind == "pod" else owner.sandbox_id


def _pod_record(c: containers_pb2.Container, layout: Layout) -> PodRecord:
    try:
        version, data = objects.read_json_extension(c, SANDBOX_EXTENSION, SANDBOX_TYPE)
        md = SandboxMetadata.from_json(version, data)
    except (errors.CriError, ValueError, KeyError, TypeError) as exc:
        return PodRecord(c.id, c, None, None, error=str(exc))
    return PodRecord(c.id, c, md, SandboxStatus.load(layout.sandbox_state / c.id / "status.json"))


def _container_record(c: containers_pb2.Container, layout: Layout) -> ContainerRecord:
    try:
        version, data = objects.read_json_extension(c, CONTAINER_EXTENSION, CONTAINER_TYPE)
        md = ContainerMetadata.from_json(version, data)
    except (errors.CriError, ValueError, KeyError, TypeError) as exc:
        return ContainerRecord(c.id, c, None, None, error=str(exc))
    return ContainerRecord(c.id, c, md, ContainerStatus.load(layout.container_state / c.id / "status.json"))


def dir_entries(path: Path) -> list[Path]:
    try:
        return sorted(path.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def age_seconds(path: str | Path, now: float) -> float:
    try:
        return now - os.lstat(path).st_mtime
    except OSError:
        return 0.0
