"""cached_state.RecordCache: kept only while containerd's events vouch for a record, dropped on every change."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

import pytest
from google.protobuf import any_pb2

from cri_protos.containerd.services.containers.v1 import containers_pb2
from cri_runtime import errors
from cri_runtime.containerd.cached_state import RecordCache


class FakeContainerd:
    """Answers Containers.Get from a dict; counts the calls; a call can be held until released."""

    def __init__(self) -> None:
        self.records: dict[str, containers_pb2.Container] = {}
        self.gets = 0
        self.hold: asyncio.Event | None = None
        self.containers = SimpleNamespace(Get="containers.Get")

    def put(self, cid: str, image: str, spec: dict[str, Any] | None = None) -> containers_pb2.Container:
        record = containers_pb2.Container(id=cid, image=image)
        if spec is not None:
            record.spec.CopyFrom(any_pb2.Any(type_url="types.containerd.io/opencontainers/runtime-spec/1/Spec",
                                             value=json.dumps(spec).encode()))
        self.records[cid] = record
        return record

    async def call(self, rpc: str, request: Any, action: str) -> Any:
        assert rpc == "containers.Get"
        self.gets += 1
        if self.hold is not None:
            await self.hold.wait()
        if request.id not in self.records:
            raise errors.NotFound(f"{action}: not found")
        return containers_pb2.GetContainerResponse(container=self.records[request.id])


def cache(ctd: FakeContainerd, live: list[bool]) -> RecordCache:
    return RecordCache(ctd, live=lambda: live[0])  # type: ignore[arg-type]


async def test_kept_while_live_and_read_again_after_each_kind_of_change() -> None:
    ctd, live = FakeContainerd(), [True]
    records = cache(ctd, live)
    ctd.put("a", "img:1", {"process": {"args": ["sh"]}})
    first = await records.get("a", "get a")
    assert (await records.get("a", "get a")) is first and ctd.gets == 1
    assert first.spec == {"process": {"args": ["sh"]}}
    changes = [
        lambda: records.on_event("/containers/update", "a"),   # someone updated it
        lambda: records.forget("a"),                           # we wrote it
        lambda: records.on_event("", ""),                       # a gap in the event stream
    ]
    for n, change in enumerate(changes, start=1):
        ctd.put("a", f"img:{n + 1}")
        change()
        assert (await records.get("a", "get a")).container.image == f"img:{n + 1}"
        assert ctd.gets == n + 1
    records.on_event("/containers/update", "other")
    await records.get("a", "get a")
    assert ctd.gets == 4, "another container's change keeps this record"


async def test_nothing_kept_while_events_are_not_live() -> None:
    ctd, live = FakeContainerd(), [True]
    records = cache(ctd, live)
    ctd.put("a", "img")
    await records.get("a", "get a")
    live[0] = False
    await records.get("a", "get a")
    await records.get("a", "get a")
    assert ctd.gets == 3
    assert len(records) == 0
    with records.watching("a") as watch:
        records.seed(ctd.records["a"], watch)
    assert len(records) == 0


async def test_a_read_racing_an_invalidation_is_answered_not_kept() -> None:
    ctd, live = FakeContainerd(), [True]
    records = cache(ctd, live)
    ctd.put("a", "old")
    ctd.hold = asyncio.Event()
    reading = asyncio.ensure_future(records.get("a", "get a"))
    while ctd.gets == 0:
        await asyncio.sleep(0)
    records.on_event("/containers/update", "a")
    ctd.hold.set()
    assert (await reading).container.image == "old"
    ctd.hold = None
    ctd.put("a", "new")
    assert (await records.get("a", "get a")).container.image == "new"


async def test_seeded_record_is_served_without_a_read_unless_it_changed_meanwhile() -> None:
    ctd, live = FakeContainerd(), [True]
    records = cache(ctd, live)
    with records.watching("a") as watch:
        created = ctd.put("a", "img", {"root": {"path": "rootfs"}})
        records.on_event("/containers/update", "b")  # another record's change does not matter
        records.seed(created, watch)
    created.image = "changed after seeding"  # the cache holds its own copy
    got = await records.get("a", "get a")
    assert ctd.gets == 0 and got.container.image == "img" and got.spec == {"root": {"path": "rootfs"}}
    with records.watching("b") as watch:
        written = ctd.put("b", "img")
        records.on_event("/containers/update", "b")  # someone changed it right after our write
        records.seed(written, watch)
    await records.get("b", "get b")
    assert ctd.gets == 1
    with records.watching("c") as watch:
        written = ctd.put("c", "img")
        records.on_event("", "")  # a gap in the event stream
        records.seed(written, watch)
    await records.get("c", "get c")
    assert ctd.gets == 2


async def test_the_event_of_our_own_write_keeps_what_we_wrote_and_the_next_one_drops_it() -> None:
    ctd, live = FakeContainerd(), [True]
    records = cache(ctd, live)
    with records.writing("a") as watch:  # our update's event comes while the call is in flight
        written = ctd.put("a", "img:ours")
        records.on_event("/containers/update", "a")
        records.seed(written, watch)
    assert (await records.get("a", "get a")).container.image == "img:ours" and ctd.gets == 0
    with records.writing("a") as watch:  # ... or after its answer
        written = ctd.put("a", "img:ours-again")
        records.seed(written, watch)
    records.on_event("/containers/update", "a")
    assert (await records.get("a", "get a")).container.image == "img:ours-again" and ctd.gets == 0
    ctd.put("a", "img:theirs")
    records.on_event("/containers/update", "a")  # nothing of ours is expected: another client's change
    assert (await records.get("a", "get a")).container.image == "img:theirs" and ctd.gets == 1


async def test_an_event_taken_for_ours_is_corrected_by_the_one_that_follows() -> None:
    ctd, live = FakeContainerd(), [True]
    records = cache(ctd, live)
    with records.writing("a") as watch:
        written = ctd.put("a", "img:ours")
        records.seed(written, watch)
    ctd.put("a", "img:theirs")  # another client wrote right after us; its event came first
    records.on_event("/containers/update", "a")
    records.on_event("/containers/update", "a")
    assert (await records.get("a", "get a")).container.image == "img:theirs" and ctd.gets == 1


async def test_a_failed_write_or_a_gap_expects_nothing() -> None:
    ctd, live = FakeContainerd(), [True]
    records = cache(ctd, live)
    ctd.put("a", "img:1")
    await records.get("a", "get a")
    with pytest.raises(errors.Unavailable), records.writing("a"):
        raise errors.Unavailable("containerd went away")  # the update may still have been made
    ctd.put("a", "img:2")
    records.on_event("/containers/update", "a")
    assert (await records.get("a", "get a")).container.image == "img:2" and ctd.gets == 2
    with records.writing("a") as watch:
        written = ctd.put("a", "img:3")
        records.seed(written, watch)
    records.on_event("", "")  # a gap: our event may be lost in it, and anything may have changed
    ctd.put("a", "img:4")
    assert (await records.get("a", "get a")).container.image == "img:4" and ctd.gets == 3
    records.on_event("/containers/update", "a")  # the event of our write after all: news now
    ctd.put("a", "img:5")
    assert (await records.get("a", "get a")).container.image == "img:5" and ctd.gets == 4


async def test_not_found_is_raised_and_deleted_records_are_dropped() -> None:
    ctd, live = FakeContainerd(), [True]
    records = cache(ctd, live)
    ctd.put("a", "img")
    await records.get("a", "get a")
    del ctd.records["a"]
    records.on_event("/containers/delete", "a")
    with pytest.raises(errors.NotFound):
        await records.get("a", "get a")
    assert len(records) == 0


def test_every_container_and_task_event_yields_its_container_id() -> None:
    from cri_protos.containerd.events import container_pb2, task_pb2
    from cri_runtime.containerd.events import container_record_id, task_container_id

    for event in (container_pb2.ContainerUpdate(id="c1", image="i", labels={"k": "v"}, snapshot_key="s"),
                  container_pb2.ContainerDelete(id="c1")):
        assert container_record_id(event.SerializeToString()) == "c1"
    for task_event in (task_pb2.TaskExit(container_id="c1", id="exec", pid=3, exit_status=1),
                       task_pb2.TaskDelete(container_id="c1", pid=3), task_pb2.TaskPaused(container_id="c1"),
                       task_pb2.TaskResumed(container_id="c1")):
        assert task_container_id(task_event.SerializeToString()) == "c1"
    assert container_record_id(b"\xff\xff\xff") == "" and task_container_id(b"\xff\xff\xff") == ""


async def test_task_states_are_kept_seeded_and_dropped_like_records() -> None:
    from cri_runtime.containerd import objects
    from cri_runtime.containerd.cached_state import TaskStateCache

    states = {"p": objects.TaskState(pid=7, status=3, exit_status=0, exited_at_ns=0)}
    reads: list[str] = []

    async def load(key: str, action: str) -> objects.TaskState | None:
        reads.append(key)
        return states.get(key)

    cache = TaskStateCache(FakeContainerd(), live=lambda: True)  # type: ignore[arg-type]
    cache._load = load  # the loader is the only part that talks to containerd
    assert await cache.get("none", "get") is None and await cache.get("none", "get") is None
    assert reads == ["none"], "no task is a state too"
    with cache.watching("p") as watch:
        cache.keep("p", objects.TaskState(pid=7, status=2, exit_status=0, exited_at_ns=0), watch)
    assert (await cache.get("p", "get")).status == 2 and reads == ["none"]  # type: ignore[union-attr]
    cache.on_event("/tasks/paused", "p")
    assert (await cache.get("p", "get")).status == 3  # type: ignore[union-attr]
    assert reads == ["none", "p"]
