"""The pod sandboxes of this runtime: the index, the names, the list cache, lifecycle events."""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

from google.protobuf import any_pb2, field_mask_pb2

from cri_protos.containerd.services.containers.v1 import containers_pb2
from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors, protowire
from cri_runtime.config import Config, RuntimeHandlerConfig
from cri_runtime.containerd import objects
from cri_runtime.containerd.cached_state import RecordCache, TaskStateCache
from cri_runtime.containerd.connection import Containerd
from cri_runtime.images.store import ImageRecord
from cri_runtime.network.manager import PodNetworkManager
from cri_runtime.node.facts import NodeFacts
from cri_runtime.nri.hooks import NriHooks
from cri_runtime.sandbox.model import METADATA_EXTENSION, METADATA_TYPE, METADATA_VERSION, Sandbox, SandboxMetadata
from cri_runtime.store.index import IdIndex, NameRegistry

log = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0
ContainersHook = Callable[[str], Awaitable[None]]
SandboxListener = Callable[[str, Sandbox], Awaitable[None]]


def _list_state(sandbox: Sandbox) -> api_pb2.PodSandboxState:
    return api_pb2.SANDBOX_READY if sandbox.ready else api_pb2.SANDBOX_NOTREADY


def _list_entry(sandbox: Sandbox) -> tuple[api_pb2.PodSandbox, bytes]:
    """The sandbox's list entry and its encoding as ListPodSandboxResponse.items.

    Only the state ever changes, so both are built once per state; kubelet
    lists every second.
    """
    state = _list_state(sandbox)
    cached = sandbox.list_entry
    if cached is not None and cached[0].state == state:
        return cached
    cfg = sandbox.config
    item = api_pb2.PodSandbox(
        id=sandbox.id, metadata=cfg.metadata, state=state, created_at=sandbox.metadata.created_at,
        labels=dict(cfg.labels), annotations=dict(cfg.annotations),
        runtime_handler=sandbox.metadata.reported_runtime_handler)
    sandbox.list_entry = (item, protowire.message_field(1, item))
    return sandbox.list_entry


def _metadata_extension(metadata: SandboxMetadata) -> any_pb2.Any:
    return objects.json_extension(METADATA_TYPE, METADATA_VERSION, metadata.to_json())


class SandboxStore:
    """The shared state of every pod sandbox operation."""

    def __init__(self, config: Config, ctd: Containerd, network: PodNetworkManager,
                 ensure_image: Callable[[str], Awaitable[ImageRecord]], node: NodeFacts,
                 nri: NriHooks | None = None, *, stop_containers: ContainersHook | None = None,
                 remove_containers: ContainersHook | None = None, on_event: SandboxListener | None = None,
                 records: RecordCache | None = None, task_states: TaskStateCache | None = None) -> None:
        """`stop_containers` / `remove_containers` stop / remove every container of a pod (the container
        manager, built after this one); `on_event` hears ("created"|"started"|"stopped"|"deleted", sandbox);
        `records` and `task_states` keep containerd's records and task states for verbose status (default:
        read them every time)."""
        self.config = config
        self.records = records if records is not None else RecordCache(ctd, live=lambda: False)
        self.task_states = task_states if task_states is not None else TaskStateCache(ctd, live=lambda: False)
        self.nri = nri or NriHooks(None)
        self.ctd = ctd
        self.network = network
        self.ensure_image = ensure_image
        self.index: IdIndex[Sandbox] = IdIndex("pod sandbox")
        self.names = NameRegistry("pod sandbox")
        self.root = Path(config.server.root_dir) / "sandboxes"
        self.state = Path(config.server.state_dir) / "sandboxes"
        self.netns_dir = str(Path(config.server.state_dir) / "netns")
        self.stop_containers = stop_containers
        self.remove_containers = remove_containers
        self.on_event = on_event
        self.node = node

    def handler(self, name: str) -> tuple[str, RuntimeHandlerConfig]:
        name = name or self.config.runtime.default_handler
        handler = self.config.runtime.handlers.get(name)
        if handler is None:
            raise errors.InvalidArgument(
                f"unknown runtime handler {name!r} (configured: {', '.join(sorted(self.config.runtime.handlers))})")
        return name, handler

    async def _emit(self, kind: str, sandbox: Sandbox) -> None:
        if self.on_event is not None:
            try:
                await self.on_event(kind, sandbox)
            except Exception:
                log.exception("pod sandbox event listener failed")

    def get(self, id_or_prefix: str) -> Sandbox:
        return self.index.get(id_or_prefix)

    def status_path(self, sandbox_id: str) -> Path:
        return self.state / sandbox_id / "status.json"

    def _listed(self, flt: api_pb2.PodSandboxFilter | None) -> list[Sandbox]:
        """The sandboxes `flt` selects, oldest first."""
        candidates: list[Sandbox]
        if flt is not None and flt.id:
            found = self._find_quietly(flt.id)
            candidates = [found] if found is not None else []
        else:
            candidates = list(self.index)
        if flt is not None:
            want_state = flt.state.state if flt.HasField("state") else None
            selector = dict(flt.label_selector)
            candidates = [
                sb for sb in candidates
                if (want_state is None or _list_state(sb) == want_state)
                and all(sb.config.labels.get(k) == v for k, v in selector.items())]
        candidates.sort(key=lambda sb: sb.metadata.created_at)
        return candidates

    def list(self, flt: api_pb2.PodSandboxFilter | None) -> list[api_pb2.PodSandbox]:
        return [_list_entry(sb)[0] for sb in self._listed(flt)]

    def list_encoded(self, flt: api_pb2.PodSandboxFilter | None) -> bytes:
        """The ListPodSandboxResponse bytes, joined from each sandbox's cached entry."""
        return b"".join(_list_entry(sb)[1] for sb in self._listed(flt))

    def _find_quietly(self, id_or_prefix: str) -> Sandbox | None:
        try:
            return self.index.get(id_or_prefix)
        except errors.CriError:
            return None

    async def _record_metadata(self, metadata: SandboxMetadata,
                               created: containers_pb2.Container | None = None) -> None:
        """Rewrite the metadata extension of the sandbox's containerd record (after CNI gave its IPs).

        `created`, the record as RunPodSandbox created it, is then kept with the new extension for
        verbose status (containerd's event of this very update is expected; without `created` it is dropped now).
        """
        extension = _metadata_extension(metadata)
        record = containers_pb2.Container(id=metadata.id, extensions={METADATA_EXTENSION: extension})
        mask = field_mask_pb2.FieldMask(paths=[f"extensions.{METADATA_EXTENSION}"])
        with self.records.writing(metadata.id) as watch:
            await self.ctd.call(self.ctd.containers.Update,
                                containers_pb2.UpdateContainerRequest(container=record, update_mask=mask),
                                f"record network of pod {metadata.id}")
            if created is None:
                self.records.forget(metadata.id)
                return
            created.extensions[METADATA_EXTENSION].CopyFrom(extension)
            self.records.seed(created, watch)

    async def _kill_and_delete_task(self, sandbox_id: str) -> None:
        """SIGKILL the pause task and delete it; a shim that does not answer is killed instead."""
        try:
            await objects.kill_task(self.ctd, sandbox_id, signal.SIGKILL, all_processes=True)
            await objects.wait_task(self.ctd, sandbox_id, timeout=STOP_TIMEOUT)
            await objects.delete_task(self.ctd, sandbox_id)
        except errors.DeadlineExceeded as exc:
            log.warning("shim of pod sandbox does not answer; killing it with its process tree",
                        extra={"fields": {"id": sandbox_id, "reason": exc.message}})
            await objects.reap_unresponsive_task(self.ctd, sandbox_id, [sandbox_id])
