"""ImageStore keeps its image list only while image events are live, and drops it on change."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable
from typing import Any

from cri_protos.containerd.services.images.v1 import images_pb2
from cri_protos.containerd.types import descriptor_pb2
from cri_runtime import errors
from cri_runtime.images.manifest import Descriptor
from cri_runtime.images.store import ImageStore, TargetInfo

IMAGE_ID = "sha256:" + "c" * 64


class CountingStore(ImageStore):
    """The real store logic over fixed records; counts containerd List and Get calls."""

    def __init__(self, records: list[Any], events_live: Callable[[], bool] = lambda: True) -> None:
        super().__init__(ctd=None, content=None, matcher=None, events_live=events_live)  # type: ignore[arg-type]
        self.records = records
        self.lists = 0
        self.gets = 0

    async def _list_raw(self) -> list[Any]:
        self.lists += 1
        await asyncio.sleep(0)
        return list(self.records)

    async def get_record(self, name: str) -> Any | None:
        self.gets += 1
        return next((r for r in self.records if r.name == name), None)

    async def describe(self, target: Descriptor) -> TargetInfo:
        return types.SimpleNamespace(image_id=IMAGE_ID)  # type: ignore[return-value]


def record(name: str) -> Any:
    return images_pb2.Image(name=name, target=descriptor_pb2.Descriptor(
        media_type="application/vnd.oci.image.manifest.v1+json", digest="sha256:" + "d" * 64, size=1))


def test_list_is_cached_only_while_events_are_live() -> None:
    live = False
    store = CountingStore([record("docker.io/library/a:1")], events_live=lambda: live)

    async def run() -> None:
        nonlocal live
        await store.list()
        await store.list()
        assert store.lists == 2  # no events, no cache
        live = True
        await store.list()
        await store.list()
        assert store.lists == 3
        assert (await store.find(IMAGE_ID)) is not None
        assert (await store.find("docker.io/library/a:1")) is not None
        assert (store.lists, store.gets) == (3, 0)  # hits answered from the cache
        store.invalidate()
        await store.list()
        assert store.lists == 4
        live = False
        await store.list()
        assert store.lists == 5

    asyncio.run(run())


def test_a_miss_is_checked_with_containerd() -> None:
    store = CountingStore([record("docker.io/library/a:1")])

    async def run() -> None:
        await store.list()
        store.records.append(record("docker.io/library/b:1"))  # made by someone else, not yet announced
        found = await store.find("docker.io/library/b:1")
        assert found is not None and "docker.io/library/b:1" in found.names
        assert store.gets == 1

    asyncio.run(run())


def test_a_change_during_a_read_is_not_cached() -> None:
    store = CountingStore([record("docker.io/library/a:1")])

    async def run() -> None:
        reading = asyncio.ensure_future(store.list())
        await asyncio.sleep(0)
        store.invalidate()  # an event arrives while List is in flight
        await reading
        await store.list()
        assert store.lists == 2

    asyncio.run(run())


def test_concurrent_readers_share_one_list_call() -> None:
    store = CountingStore([record("docker.io/library/a:1")])

    async def run() -> None:
        found = await asyncio.gather(*(store.find("docker.io/library/a:1") for _ in range(10)))
        assert all(f is not None for f in found)
        assert store.lists == 1

    asyncio.run(run())


class FakeImages:
    """containerd's Images service over a dict (pure logic: the store's bookkeeping)."""

    def __init__(self, store: FollowingStore) -> None:
        self.store = store
        self.writes = 0

    async def call(self, method: str, request: Any, what: str) -> Any:
        self.writes += 1
        await asyncio.sleep(0)
        records = self.store.records
        if method == "Create":
            records[:] = [r for r in records if r.name != request.image.name] + [request.image]
            return images_pb2.CreateImageResponse(image=request.image)
        if method == "Delete":
            if not any(r.name == request.name for r in records):
                raise errors.NotFound(request.name)
            records[:] = [r for r in records if r.name != request.name]
            return None
        raise AssertionError(method)


class FollowingStore(CountingStore):
    """CountingStore whose image ID follows the target digest, with a fake Images service."""

    def __init__(self, records: list[Any], sandbox_image: str = "") -> None:
        super().__init__(records)
        self.sandbox_ref = sandbox_image
        self.fake = FakeImages(self)
        self.ctd = types.SimpleNamespace(  # type: ignore[assignment]
            call=self.fake.call, images=types.SimpleNamespace(Create="Create", Update="Update", Delete="Delete"))

    async def describe(self, target: Descriptor) -> TargetInfo:
        return types.SimpleNamespace(image_id="sha256:" + target.digest[-64:])  # type: ignore[return-value]


def desc(char: str) -> Descriptor:
    return Descriptor("application/vnd.oci.image.manifest.v1+json", "sha256:" + char * 64, 1)


def test_own_writes_are_applied_and_their_events_skipped() -> None:
    store = FollowingStore([record("docker.io/library/a:1")])

    async def run() -> None:
        await store.list()
        assert await store.put("docker.io/library/b:1", desc("e"), {"k": "v"})
        store.on_event("/images/create", "docker.io/library/b:1")  # the event our Create caused
        await store.delete("docker.io/library/a:1")
        store.on_event("/images/delete", "docker.io/library/a:1")
        await store.settled()
        images = await store.list()
        assert [i.names for i in images] == [["docker.io/library/b:1"]]
        assert (store.lists, store.gets) == (1, 0)  # no re-list, no re-read
        # An identical repeated put writes nothing.
        writes = store.fake.writes
        assert not await store.put("docker.io/library/b:1", desc("e"), {"k": "v"})
        assert store.fake.writes == writes

    asyncio.run(run())


def test_changes_by_other_clients_are_re_read_one_record_at_a_time() -> None:
    store = FollowingStore([record("docker.io/library/a:1")])

    async def run() -> None:
        await store.list()
        # Someone else tags the image and repoints a:1 at another target.
        store.records.append(images_pb2.Image(name="example.test/alias:1", target=record("x").target))
        store.on_event("/images/create", "example.test/alias:1")
        store.records[0] = images_pb2.Image(name="docker.io/library/a:1", target=descriptor_pb2.Descriptor(
            media_type="application/vnd.oci.image.manifest.v1+json", digest="sha256:" + "e" * 64, size=1))
        store.on_event("/images/update", "docker.io/library/a:1")
        await store.settled()
        by_id = {i.id: sorted(i.names) for i in await store.list()}
        assert by_id == {"sha256:" + "d" * 64: ["example.test/alias:1"],
                         "sha256:" + "e" * 64: ["docker.io/library/a:1"]}
        store.records[:] = [r for r in store.records if r.name != "example.test/alias:1"]
        store.on_event("/images/delete", "example.test/alias:1")
        await store.settled()
        assert store.gets == 2  # a delete event is applied as it is: no later change can exist
        assert await store.find("example.test/alias:1") is None  # a miss is checked by name (Get)...
        assert (store.lists, store.gets) == (1, 3)
        assert await store.find("sha256:" + "d" * 64) is None  # ... an ID miss with a full list
        assert store.lists == 2
        store.on_event("", "")  # resubscribed: anything may have changed
        await store.list()
        assert store.lists == 3

    asyncio.run(run())


def test_pinned_by_containerd_label_or_as_sandbox_image() -> None:
    pinned = images_pb2.Image(name="docker.io/library/p:1", target=record("x").target,
                              labels={"io.cri-containerd.pinned": "pinned"})
    sandbox = images_pb2.Image(name="registry.k8s.io/pause:3.6", target=descriptor_pb2.Descriptor(
        media_type="application/vnd.oci.image.manifest.v1+json", digest="sha256:" + "e" * 64, size=1))
    other = images_pb2.Image(name="docker.io/library/o:1", target=descriptor_pb2.Descriptor(
        media_type="application/vnd.oci.image.manifest.v1+json", digest="sha256:" + "f" * 64, size=1))
    store = FollowingStore([pinned, sandbox, other], sandbox_image="registry.k8s.io/pause:3.6")

    async def run() -> None:
        flags = {i.names[0]: i.pinned for i in await store.list()}
        assert flags == {"docker.io/library/p:1": True, "registry.k8s.io/pause:3.6": True,
                         "docker.io/library/o:1": False}

    asyncio.run(run())


def test_a_label_change_elsewhere_keeps_the_grouped_images_and_their_encoding() -> None:
    store = FollowingStore([record("docker.io/library/a:1")])

    async def run() -> None:
        first = (await store.list())[0]
        first.wire = b"encoded"
        # containerd's CRI (on the same containerd) labels the record: an update event.
        store.records[0] = images_pb2.Image(name="docker.io/library/a:1", target=store.records[0].target,
                                            labels={"io.cri-containerd.image": "managed"})
        store.on_event("/images/update", "docker.io/library/a:1")
        await store.settled()
        again = (await store.list())[0]
        assert again is first and again.wire == b"encoded"
        assert again.labels["io.cri-containerd.image"] == "managed"
        # A pin label is no mere label: the image is regrouped and re-encoded.
        store.records[0] = images_pb2.Image(name="docker.io/library/a:1", target=store.records[0].target,
                                            labels={"io.cri-containerd.pinned": "pinned"})
        store.on_event("/images/update", "docker.io/library/a:1")
        await store.settled()
        pinned = (await store.list())[0]
        assert pinned is not first and pinned.pinned and pinned.wire is None

    asyncio.run(run())


def test_a_burst_of_events_on_one_record_is_read_at_most_twice() -> None:
    store = FollowingStore([record("docker.io/library/a:1")])

    async def run() -> None:
        await store.list()
        for _ in range(4):  # e.g. containerd's CRI labelling the record again and again
            store.on_event("/images/update", "docker.io/library/a:1")
        await store.settled()
        assert store.gets == 2  # the one in flight, and one more for what came meanwhile

    asyncio.run(run())
