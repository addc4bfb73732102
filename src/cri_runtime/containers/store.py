"""The containers of this runtime: the index, the names, the list cache, lifecycle events.

Every operation module (create, start, stop, remove, status, update, exits, recover) is a mixin
over this store; `manager.ContainerManager` composes them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from cri_protos.runtime.v1 import api_pb2
from cri_runtime import cdi, errors, protowire
from cri_runtime.config import Config
from cri_runtime.containerd.cached_state import RecordCache
from cri_runtime.containerd.connection import Containerd
from cri_runtime.containers.model import STATES, Container
from cri_runtime.containers.relay.launcher import RelayLauncher
from cri_runtime.images.manager import ImageManager
from cri_runtime.node.facts import NodeFacts
from cri_runtime.nri.hooks import NriHooks
from cri_runtime.oci.user import ImageAccounts
from cri_runtime.sandbox.manager import SandboxManager
from cri_runtime.store.index import IdIndex, NameRegistry

log = logging.getLogger(__name__)

ContainerListener = Callable[[str, Container], Awaitable[None]]


class ContainerStore:
    """The shared state of every container operation."""

    def __init__(self, config: Config, ctd: Containerd, sandboxes: SandboxManager,
                 images: ImageManager, node: NodeFacts, nri: NriHooks | None = None,
                 on_event: ContainerListener | None = None, records: RecordCache | None = None) -> None:
        """`on_event` hears ("created"|"started"|"stopped"|"deleted", container) for GetContainerEvents;
        `records` keeps containerd's records for verbose status (default: read them every time)."""
        self.config = config
        self.records = records if records is not None else RecordCache(ctd, live=lambda: False)
        self.nri = nri or NriHooks(None)
        self.ctd = ctd
        self.sandboxes = sandboxes
        self.images = images
        self.node = node
        self.index: IdIndex[Container] = IdIndex("container")
        self.names = NameRegistry("container")
        self.state = Path(config.server.state_dir) / "containers"
        # Persistent per-container data (the volumes an image config declares).
        self.root = Path(config.server.root_dir) / "containers"
        # IO relays are forked from one warm zygote process at StartContainer.
        self.relay_launcher = RelayLauncher(owner=str(self.state), cgroup=config.runtime.relay_cgroup)
        self._background: set[asyncio.Future[None]] = set()
        self.snapshotter = config.containerd.snapshotter
        # ExecSync's wait for output after the exit (containerd's option; 0 = the caller's deadline).
        self.drain_exec_sync_io_timeout = config.runtime.drain_exec_sync_io_timeout or None
        self._sweeper: asyncio.Future[None] | None = None  # kills stale `runc exec`s (see recover)
        self._accounts: dict[str, ImageAccounts] = {}  # image ID -> its /etc/passwd and /etc/group
        self.on_event = on_event
        self.cdi = cdi.CdiRegistry(config.runtime.cdi_spec_dirs) if config.runtime.enable_cdi else None

    def get(self, id_or_prefix: str) -> Container:
        return self.index.get(id_or_prefix)

    def status_path(self, container_id: str) -> Path:
        return self.state / container_id / "status.json"

    async def _emit(self, kind: str, container: Container) -> None:
        if self.on_event is not None:
            try:
                await self.on_event(kind, container)
            except Exception:
                log.exception("container event listener failed")

    def _listed(self, flt: api_pb2.ContainerFilter | None) -> list[Container]:
        """The containers `flt` selects, oldest first."""
        if flt is not None and flt.id:
            found = self._find_quietly(flt.id)
            candidates = [found] if found is not None else []
        else:
            candidates = list(self.index)
        if flt is not None:
            want_state = flt.state.state if flt.HasField("state") else None
            pod, selector = flt.pod_sandbox_id, dict(flt.label_selector)
            candidates = [
                c for c in candidates
                if (want_state is None or STATES[c.state] == want_state)
                and (not pod or c.metadata.sandbox_id.startswith(pod))
                and all(c.config.labels.get(k) == v for k, v in selector.items())]
        candidates.sort(key=lambda c: c.metadata.created_at)
        return candidates

    def list(self, flt: api_pb2.ContainerFilter | None) -> list[api_pb2.Container]:
        return [self._list_entry(c)[0] for c in self._listed(flt)]

    def list_encoded(self, flt: api_pb2.ContainerFilter | None) -> bytes:
        """The ListContainersResponse bytes, joined from each container's cached entry."""
        return b"".join(self._list_entry(c)[1] for c in self._listed(flt))

    @staticmethod
    def _list_entry(c: Container) -> tuple[api_pb2.Container, bytes]:
        """The ListContainers entry and its encoding as ListContainersResponse.containers.

        Everything but the state is immutable, so both are built once per state;
        kubelet lists every second.
        """
        state = STATES[c.state]
        cached = c.list_entry
        if cached is not None and cached[0].state == state:
            return cached
        item = api_pb2.Container(
            id=c.id, pod_sandbox_id=c.metadata.sandbox_id, metadata=c.config.metadata,
            image=api_pb2.ImageSpec(image=c.metadata.image_name), image_ref=c.metadata.image_ref,
            image_id=c.metadata.image_id, state=state, created_at=c.metadata.created_at,
            labels=dict(c.config.labels), annotations=dict(c.config.annotations))
        c.list_entry = (item, protowire.message_field(1, item))
        return c.list_entry

    def _find_quietly(self, id_or_prefix: str) -> Container | None:
        try:
            return self.index.get(id_or_prefix)
        except errors.CriError:
            return None
