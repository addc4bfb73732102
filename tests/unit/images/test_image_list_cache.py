"""ImageStore keeps its image list only while image events are live, and drops it on change."""

from __future__ import annotations

import asyncio
import types
from typing import Any

from cri_protos.containerd.services.images.v1 import images_pb2
from cri_protos.containerd.types import descriptor_pb2
from cri_runtime.images.manifest import Descriptor
from cri_runtime.images.store import ImageStore, TargetInfo

IMAGE_ID = "sha256:" + "c" * 64


class CountingStore(ImageStore):
    """The real store logic over fixed records; counts containerd List and Get calls."""

    def __init__(self, records: list[Any]) -> None:
        super().__init__(ctd=None, content=None, matcher=None)  # type: ignore[arg-type]
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
    store = CountingStore([record("docker.io/library/a:1")])
    live = False
    store.events_live = lambda: live

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
    store.events_live = lambda: True

    async def run() -> None:
        await store.list()
        store.records.append(record("docker.io/library/b:1"))  # made by someone else, not yet announced
        found = await store.find("docker.io/library/b:1")
        assert found is not None and "docker.io/library/b:1" in found.names
        assert store.gets == 1

    asyncio.run(run())


def test_a_change_during_a_read_is_not_cached() -> None:
    store = CountingStore([record("docker.io/library/a:1")])
    store.events_live = lambda: True

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
    store.events_live = lambda: True

    async def run() -> None:
        found = await asyncio.gather(*(store.find("docker.io/library/a:1") for _ in range(10)))
        assert all(f is not None for f in found)
        assert store.lists == 1

    asyncio.run(run())
