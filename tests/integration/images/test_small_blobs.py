"""Blobs small enough to go into containerd in one Content.Write message (`commit_whole`).

Every pull writes its config and manifest this way; a small top layer too. What
the streamed path guarantees must hold here as well: verified content, the GC
labels, nothing left behind on failure, a blob containerd already has reused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from cri_protos.containerd.services.content.v1 import content_pb2
from cri_runtime import errors
from cri_runtime.containerd.connection import Containerd
from cri_runtime.images.content_store import WHOLE_BLOB_LIMIT, ContentStore
from cri_runtime.images.manifest import Descriptor
from tests.integration.images.conftest import MakeManager, has_content, image_names, ingests, our_leases
from tests.integration.images.fake_registry import FakeRegistry
from tests.rig.oci import Image, LayerBuilder, busybox_image

pytestmark = pytest.mark.asyncio(loop_scope="session")

StartFake = Callable[..., Any]
UNCOMPRESSED = "containerd.io/uncompressed"


def small_top_layer_image(text: str) -> Image:
    return busybox_image(extra_layers=[LayerBuilder().file("etc/small", text)])


async def content_labels(ctd: Containerd, digest: str) -> dict[str, str]:
    resp = await ctd.call(ctd.content.Info, content_pb2.InfoRequest(digest=digest), "info")
    return dict(resp.info.labels)


async def test_small_layer_is_committed_with_its_labels(fake_registry: StartFake, make_manager: MakeManager,
                                                        ctd: Containerd) -> None:
    reg: FakeRegistry = await fake_registry()
    image = small_top_layer_image("committed whole\n")
    small = image.layers[1].blob
    assert small.size <= WHOLE_BLOB_LIMIT < image.layers[0].blob.size
    reg.add("small/app", "1", image)
    mgr = make_manager()
    rec = await mgr.pull(f"{reg.host}/small/app:1")
    assert rec.id == image.image_id
    labels = await content_labels(ctd, small.digest)
    assert labels[UNCOMPRESSED] == image.layers[1].diff_id
    assert any(k.startswith("containerd.io/distribution.source.") and v == "small/app" for k, v in labels.items())
    config_labels = await content_labels(ctd, image.config_blob.digest)
    assert any(k.startswith("containerd.io/gc.ref.snapshot.") for k in config_labels)
    assert not await ingests(ctd)
    assert not await our_leases(ctd)
    await mgr.remove(rec.id)
    assert not await has_content(ctd, small.digest)


@pytest.mark.parametrize("fault", ["corrupt", "truncate"])
async def test_bad_small_layer_is_data_loss_and_leaves_nothing(fault: str, fake_registry: StartFake,
                                                               make_manager: MakeManager, ctd: Containerd) -> None:
    reg: FakeRegistry = await fake_registry()
    image = small_top_layer_image(f"{fault}\n")
    small = image.layers[1].blob
    reg.add(f"bad/{fault}", "1", image)
    getattr(reg, fault).add(small.digest)
    before = await image_names(ctd)
    with pytest.raises(errors.DataLoss) as exc:
        await make_manager().pull(f"{reg.host}/bad/{fault}:1")
    assert f"bad/{fault}:1" in str(exc.value)
    assert await image_names(ctd) == before
    assert not await ingests(ctd)
    assert not await our_leases(ctd)
    assert not await has_content(ctd, small.digest)


async def test_small_layer_cut_short_once_is_read_again(fake_registry: StartFake, make_manager: MakeManager) -> None:
    reg: FakeRegistry = await fake_registry(truncate_times=1)
    image = small_top_layer_image("read twice\n")
    small = image.layers[1].blob
    reg.add("flaky/small", "1", image)
    reg.truncate.add(small.digest)
    mgr = make_manager()
    rec = await mgr.pull(f"{reg.host}/flaky/small:1")
    assert rec.id == image.image_id
    assert reg.requests[f"/v2/flaky/small/blobs/{small.digest}"] == 2
    await mgr.remove(rec.id)


async def test_blob_already_there_is_reused_and_gets_missing_labels(fake_registry: StartFake,
                                                                     make_manager: MakeManager,
                                                                     ctd: Containerd) -> None:
    """A config containerd already has (committed without labels): no second copy, labels added."""
    reg: FakeRegistry = await fake_registry()
    image = small_top_layer_image("config first\n")
    config = image.config_blob
    store = ContentStore(ctd)
    async with ctd.lease("test") as lease:
        desc = Descriptor("application/vnd.oci.image.config.v1+json", config.digest, config.size)
        assert await store.commit_whole(f"config-{config.digest}", desc, config.data, {}, lease, "seed")
        assert not await store.commit_whole(f"config-{config.digest}", desc, config.data, {}, lease, "again")
        reg.add("reuse/app", "1", image)
        mgr = make_manager()
        rec = await mgr.pull(f"{reg.host}/reuse/app:1")
    assert rec.id == image.image_id
    assert any(k.startswith("containerd.io/gc.ref.snapshot.") for k in await content_labels(ctd, config.digest))
    assert reg.requests.get(f"/v2/reuse/app/blobs/{config.digest}", 0) <= 1
    await mgr.remove(rec.id)
