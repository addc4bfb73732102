"""containerd's container records and task states, kept in memory while its events vouch for them.

ContainerStatus and PodSandboxStatus with ``verbose`` (critest's benchmark asks
for it on every call) show what the containerd record holds (its OCI spec and
runtime) and, for a pod, its task's state. containerd's own CRI reads them in
process; we would pay a round trip (for a task, on to the shim and back) and a
JSON parse of the spec on each call. A value read once is kept until

* containerd reports a change of it: ``/containers/update`` and
  ``/containers/delete`` for records, ``/tasks/create``, ``start``, ``exit``,
  ``delete``, ``paused`` and ``resumed`` for task states (followed by the
  event monitor), whoever made the change;
* we change it ourselves (`forget`, called right after the write; a record we
  create is kept from the start, `RecordCache.seed`, as critest and kubelet ask
  for the status of a container right after creating and starting it). A write
  of ours made under `writing` keeps what we wrote: containerd's event for it
  is expected, and taken as ours rather than as news (RunPodSandbox records the
  pod's IPs with an update, and its status is asked for right after);
* the event stream has a gap (`on_event` with no key), or is not live at all:
  then nothing is kept and every read goes to containerd.

A read (or our own write) that raced with a change of the same key is answered
but not kept. Events of concurrent writers may come in either order; an event
taken for ours that was another client's is followed by ours, which then
finds nothing expected and drops the value: the copy is right again once both
events are in.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Generic, TypeVar

from cri_protos.containerd.services.containers.v1 import containers_pb2
from cri_runtime.containerd import objects
from cri_runtime.containerd.connection import Containerd

T = TypeVar("T")


class Watch:
    """Set stale when the watched key changes while a read or a write of it is in flight."""

    __slots__ = ("stale",)

    def __init__(self) -> None:
        self.stale = False


class VouchedCache(Generic[T]):
    """Values by container ID, read with `load` and kept while `live()` and no event says otherwise."""

    def __init__(self, load: Callable[[str, str], Awaitable[T]], live: Callable[[], bool]) -> None:
        self._load = load
        self._live = live
        self._values: dict[str, T] = {}
        # Reads and writes in flight, by key: a change of their key meanwhile makes them stale.
        self._watches: dict[str, list[Watch]] = {}
        # Events our own writes (made under `writing`) will cause, by key.
        self._expected: Counter[str] = Counter()

    async def get(self, key: str, action: str) -> T:
        if self._live():
            if key in self._values:
                return self._values[key]
        else:
            self._values.clear()
        with self.watching(key) as watch:
            value = await self._load(key, action)
            self.keep(key, value, watch)
        return value

    def has(self, key: str) -> bool:
        """`get` would answer without a read."""
        return self._live() and key in self._values

    @contextlib.contextmanager
    def watching(self, key: str) -> Iterator[Watch]:
        """Around a write of `key`: `keep` then stores what was written unless it changed meanwhile."""
        watch = Watch()
        self._watches.setdefault(key, []).append(watch)
        try:
            yield watch
        finally:
            watches = self._watches[key]
            watches.remove(watch)
            if not watches:
                del self._watches[key]

    @contextlib.contextmanager
    def writing(self, key: str) -> Iterator[Watch]:
        """Around a write of ours that containerd announces with one event: `watching`, and that
        event is expected (it keeps the value `keep` stores). A write that fails, or whose fate
        is unknown, expects nothing: its event, if one comes, drops the value."""
        self._expected[key] += 1
        try:
            with self.watching(key) as watch:
                yield watch
        except BaseException:
            self._unexpect(key)
            raise

    def _unexpect(self, key: str) -> None:
        if self._expected[key] > 1:
            self._expected[key] -= 1
        else:
            self._expected.pop(key, None)

    def keep(self, key: str, value: T, watch: Watch) -> None:
        if not watch.stale and self._live():
            self._values[key] = value

    def forget(self, key: str) -> None:
        """We changed or deleted it: read it again next time."""
        self._values.pop(key, None)
        for watch in self._watches.get(key, ()):
            watch.stale = True

    def on_event(self, topic: str, key: str) -> None:
        """An event from containerd about `key`; no key = resubscribed, anything may have changed."""
        if key:
            if key in self._expected:
                self._unexpect(key)  # our own write, whose result we kept
                return
            self.forget(key)
            return
        self._values.clear()
        self._expected.clear()  # an event of ours may be lost in the gap; one that comes drops the value
        for watches in self._watches.values():
            for watch in watches:
                watch.stale = True

    def __len__(self) -> int:
        return len(self._values)


class Record:
    """A container record and its spec as a dict (None if it has none); callers must not modify them."""

    __slots__ = ("_spec", "container")

    def __init__(self, container: containers_pb2.Container) -> None:
        self.container = container
        self._spec: dict[str, Any] | None = None

    @property
    def spec_json(self) -> str:
        """The spec as JSON text, as containerd stores it ("null" when there is none)."""
        return self.container.spec.value.decode() if self.container.spec.value else "null"

    @property
    def spec(self) -> dict[str, Any] | None:
        """Parsed on first use (a record seeded at creation may never be shown)."""
        if self._spec is None and self.container.spec.value:
            self._spec = json.loads(self.container.spec.value)
        return self._spec


class RecordCache(VouchedCache[Record]):
    """containerd's container records (NotFound when there is none)."""

    def __init__(self, ctd: Containerd, live: Callable[[], bool]) -> None:
        async def load(container_id: str, action: str) -> Record:
            resp = await ctd.call(ctd.containers.Get, containers_pb2.GetContainerRequest(id=container_id), action)
            return Record(resp.container)

        super().__init__(load, live)

    def seed(self, container: containers_pb2.Container, watch: Watch) -> None:
        """We just created this record (as containerd stores it): keep a copy, as a read would."""
        copy = containers_pb2.Container()
        copy.CopyFrom(container)
        self.keep(container.id, Record(copy), watch)


class TaskStateCache(VouchedCache["objects.TaskState | None"]):
    """The state of containers' tasks (None: no task)."""

    def __init__(self, ctd: Containerd, live: Callable[[], bool]) -> None:
        async def load(container_id: str, action: str) -> objects.TaskState | None:
            return await objects.task_state(ctd, container_id)

        super().__init__(load, live)
