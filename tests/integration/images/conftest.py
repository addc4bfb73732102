"""Fixtures for the image tests: an ImageManager on the rig's containerd, cleaned up after."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio

from cri_protos.containerd.services.content.v1 import content_pb2
from cri_protos.containerd.services.images.v1 import images_pb2
from cri_protos.containerd.services.leases.v1 import leases_pb2
from cri_runtime.config import ImageConfig
from cri_runtime.containerd.connection import Containerd
from cri_runtime.images.manager import ImageManager
from cri_runtime.images.platform import Platform
from tests.integration.images.fake_registry import FakeRegistry
from tests.rig.containerd import PrivateContainerd


@pytest.fixture(scope="package")
def containerd() -> Iterator[PrivateContainerd]:
    """A containerd of the image tests' own.

    They assert what a pull downloads, writes and leaves behind; blobs another
    test package already pulled into a shared content store would be reused
    (deduplicated) and hide exactly what these tests look at.
    """
    ctrd = PrivateContainerd(with_cri=False).start()
    yield ctrd
    problems = ctrd.stop()
    if problems:
        pytest.fail("private containerd cleanup: " + "; ".join(problems))


@pytest_asyncio.fixture(loop_scope="session", scope="package")
async def ctd(containerd: PrivateContainerd) -> AsyncIterator[Containerd]:
    client = Containerd(containerd.address, containerd.namespace)
    await client.wait_ready(10)
    yield client
    await client.close()


async def image_names(ctd: Containerd) -> set[str]:
    resp = await ctd.call(ctd.images.List, images_pb2.ListImagesRequest(), "list")
    return {i.name for i in resp.images}


async def ingests(ctd: Containerd) -> list[str]:
    resp = await ctd.call(ctd.content.ListStatuses, content_pb2.ListStatusesRequest(), "statuses")
    return [s.ref for s in resp.statuses]


async def our_leases(ctd: Containerd) -> list[str]:
    resp = await ctd.call(ctd.leases.List, leases_pb2.ListRequest(), "leases")
    return [le.id for le in resp.leases if le.id.startswith("cri-runtime-")]


async def has_content(ctd: Containerd, digest: str) -> bool:
    try:
        await ctd.call(ctd.content.Info, content_pb2.InfoRequest(digest=digest), "info")
    except Exception:
        return False
    return True


MakeManager = Callable[..., ImageManager]


@pytest_asyncio.fixture(loop_scope="session")
async def make_manager(ctd: Containerd, containerd: PrivateContainerd) -> AsyncIterator[MakeManager]:
    """Build ImageManagers; afterwards every image record the test created is deleted."""
    before = await image_names(ctd)
    made: list[ImageManager] = []

    def make(*, hosts_dir: str | None = None, platform: Platform | None = None, **settings: Any) -> ImageManager:
        cfg = ImageConfig(registry_config_path=hosts_dir if hosts_dir is not None else str(containerd.hosts_dir),
                          **settings)
        mgr = ImageManager(ctd, cfg, "overlayfs", platform=platform)
        made.append(mgr)
        return mgr

    yield make
    for mgr in made:
        await mgr.close()
    after = await image_names(ctd)
    for name in sorted(after - before, key=lambda n: n.startswith("sha256:")):
        await ctd.call(ctd.images.Delete, images_pb2.DeleteImageRequest(name=name, sync=True), "cleanup")


@pytest_asyncio.fixture(loop_scope="session")
async def manager(make_manager: MakeManager) -> ImageManager:
    return make_manager()


@pytest_asyncio.fixture(loop_scope="session")
async def fake_registry() -> AsyncIterator[Callable[..., Any]]:
    started: list[FakeRegistry] = []

    async def start(**kwargs: Any) -> FakeRegistry:
        reg = await FakeRegistry(**kwargs).start()
        started.append(reg)
        return reg

    yield start
    for reg in started:
        await reg.stop()
