"""containerd's container records, kept in memory while containerd's events vouch for them.

ContainerStatus and PodSandboxStatus with ``verbose`` (critest's benchmark
asks for it on every call) and every exec show what the containerd record
holds: its OCI spec and runtime. containerd's own CRI reads them from its
in-process store; we would pay a round trip and a JSON parse of the spec on
each call. A record read once is kept, with its parsed spec, until

* containerd reports an update or delete of it (``/containers/update``,
  ``/containers/delete``, followed by the event monitor), whoever made it;
* we write it ourselves (`forget`, called right after the write; a record we
  create is kept from the start, `seed`, as critest and kubelet ask for the
  status of a container right after creating and starting it);
* the event stream has a gap (`on_event` with no ID), or is not live at all:
  then nothing is kept and every read goes to containerd.

A read that raced with an invalidation is answered but not kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from cri_protos.containerd.services.containers.v1 import containers_pb2
from cri_runtime.containerd.connection import Containerd


class Record:
    """A container record and its spec as a dict (None if it has none); callers must not modify them."""

    __slots__ = ("_spec", "container")

    def __init__(self, container: containers_pb2.Container) -> None:
        self.container = container
        self._spec: dict[str, Any] | None = None

    @property
    def spec(self) -> dict[str, Any] | None:
        """Parsed on first use (a record seeded at creation may never be shown)."""
        if self._spec is None and self.container.spec.value:
            self._spec = json.loads(self.container.spec.value)
        return self._spec


class RecordCache:
    def __init__(self, ctd: Containerd, live: Callable[[], bool]) -> None:
        self._ctd = ctd
        self._live = live
        self._records: dict[str, Record] = {}
        # Bumped by every invalidation: a read that started before one is not kept.
        self._generation = 0

    async def get(self, container_id: str, action: str) -> Record:
        """The record of `container_id` (NotFound if containerd has none)."""
        if self._live():
            cached = self._records.get(container_id)
            if cached is not None:
                return cached
        else:
            self._records.clear()
        generation = self._generation
        resp = await self._ctd.call(self._ctd.containers.Get,
                                    containers_pb2.GetContainerRequest(id=container_id), action)
        record = Record(resp.container)
        if generation == self._generation and self._live():
            self._records[container_id] = record
        return record

    def token(self) -> int:
        """Taken before writing a record: `seed` keeps the written record only if nothing changed since."""
        return self._generation

    def seed(self, container: containers_pb2.Container, token: int) -> None:
        """We just created this record (as containerd stores it): keep it, as a read would."""
        if token == self._generation and self._live():
            copy = containers_pb2.Container()
            copy.CopyFrom(container)
            self._records[container.id] = Record(copy)

    def forget(self, container_id: str) -> None:
        """We changed or deleted the record: read it again next time."""
        self._generation += 1
        self._records.pop(container_id, None)

    def on_event(self, topic: str, container_id: str) -> None:
        """A /containers/* event from containerd; no ID = resubscribed, anything may have changed."""
        self._generation += 1
        if container_id:
            self._records.pop(container_id, None)
        else:
            self._records.clear()

    def __len__(self) -> int:
        return len(self._records)
