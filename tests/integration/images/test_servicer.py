"""The ImageService servicer over a real gRPC unix socket, backed by real containerd."""

from __future__ import annotations

import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from cri_protos.runtime.v1 import api_pb2, api_pb2_grpc
from cri_runtime.images.manager import ImageManager
from cri_runtime.rpc import RpcServer
from cri_runtime.services.images import ImageServicer
from tests.integration.images.conftest import MakeManager
from tests.rig.images import TestImages

pytestmark = pytest.mark.asyncio(loop_scope="session")


class OpenGate:
    async def wait_recovered(self) -> None:
        return None


@pytest_asyncio.fixture(loop_scope="session")
async def stub(make_manager: MakeManager, test_images: TestImages) -> AsyncIterator[api_pb2_grpc.ImageServiceStub]:
    manager: ImageManager = make_manager(sandbox_image=test_images.busybox_user.ref)
    with tempfile.TemporaryDirectory(prefix="crirt-imgsvc-") as d:
        sock = Path(d) / "cri.sock"
        # The server's own transport: ListImages/ImageStatus answer with pre-encoded bytes.
        server = RpcServer(16 * 1024 * 1024)
        server.add_service(api_pb2.DESCRIPTOR.services_by_name["ImageService"], ImageServicer(manager, OpenGate()))
        await server.start(str(sock))
        channel = grpc.aio.insecure_channel(f"unix://{sock}")
        try:
            yield api_pb2_grpc.ImageServiceStub(channel)
        finally:
            await channel.close()
            await server.stop(None)


def spec(ref: str) -> api_pb2.ImageSpec:
    return api_pb2.ImageSpec(image=ref)


async def test_pull_status_list_remove(stub: api_pb2_grpc.ImageServiceStub, test_images: TestImages) -> None:
    img = test_images.busybox_user
    resp = await stub.PullImage(api_pb2.PullImageRequest(image=spec(img.ref)))
    assert resp.image_ref == img.image_id
    status = await stub.ImageStatus(api_pb2.ImageStatusRequest(image=spec(img.ref), verbose=True))
    image = status.image
    assert image.id == img.image_id
    assert list(image.repo_tags) == [img.ref]
    assert list(image.repo_digests) == [img.ref_by_digest]
    assert image.username == "www" and not image.HasField("uid")
    assert image.pinned  # it is the sandbox image
    assert image.spec.image == img.image_id
    assert image.size > 0
    info = json.loads(status.info["info"])
    assert info["chainID"] and info["imageSpec"]["config"]["User"] == "www"
    for key in (image.id, img.ref_by_digest, image.id[7:19]):
        again = await stub.ImageStatus(api_pb2.ImageStatusRequest(image=spec(key)))
        assert again.image == image, key
    listed = await stub.ListImages(api_pb2.ListImagesRequest())
    assert image in listed.images
    filtered = await stub.ListImages(api_pb2.ListImagesRequest(
        filter=api_pb2.ImageFilter(image=spec(img.ref))))
    assert list(filtered.images) == [image]
    pages = [r async for r in stub.StreamImages(api_pb2.StreamImagesRequest())]
    assert image in [i for p in pages for i in p.images]
    await stub.RemoveImage(api_pb2.RemoveImageRequest(image=spec(img.ref)))
    gone = await stub.ImageStatus(api_pb2.ImageStatusRequest(image=spec(image.id)))
    assert not gone.HasField("image")
    await stub.RemoveImage(api_pb2.RemoveImageRequest(image=spec(img.ref)))  # idempotent
    empty = await stub.ListImages(api_pb2.ListImagesRequest(filter=api_pb2.ImageFilter(image=spec(img.ref))))
    assert not empty.images


async def test_uid_from_numeric_user(stub: api_pb2_grpc.ImageServiceStub, registry: object) -> None:
    import asyncio

    from tests.rig.oci import ImageConfig, busybox_image, push

    res = await asyncio.to_thread(push, busybox_image(ImageConfig(cmd=["sh"], user="1003:users")), registry,
                                  "test/uid", "v1")
    await stub.PullImage(api_pb2.PullImageRequest(image=spec(res.ref)))
    image = (await stub.ImageStatus(api_pb2.ImageStatusRequest(image=spec(res.ref)))).image
    assert image.uid.value == 1003 and image.username == ""
    assert not image.pinned
    await stub.RemoveImage(api_pb2.RemoveImageRequest(image=spec(image.id)))


async def test_error_codes(stub: api_pb2_grpc.ImageServiceStub, test_images: TestImages) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.PullImage(api_pb2.PullImageRequest(image=spec("Bad:Ref:")))
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.PullImage(api_pb2.PullImageRequest())
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    missing = f"{test_images.registry_host}/test/nothing:here"
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.PullImage(api_pb2.PullImageRequest(image=spec(missing)))
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    assert missing in (exc.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.PullImage(api_pb2.PullImageRequest(image=spec(test_images.layers.ref)), timeout=0.001)
    assert exc.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    status = await stub.ImageStatus(api_pb2.ImageStatusRequest(image=spec("Not A Ref")))
    assert not status.HasField("image")


async def test_pull_with_auth_config(stub: api_pb2_grpc.ImageServiceStub, auth_registry: object) -> None:
    import asyncio

    from tests.rig.oci import busybox_image, push
    from tests.rig.registry import LocalRegistry

    assert isinstance(auth_registry, LocalRegistry) and auth_registry.credentials
    user, password = auth_registry.credentials
    res = await asyncio.to_thread(push, busybox_image(), auth_registry, "private/svc", "v1")
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await stub.PullImage(api_pb2.PullImageRequest(image=spec(res.ref)))
    assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
    resp = await stub.PullImage(api_pb2.PullImageRequest(
        image=spec(res.ref), auth=api_pb2.AuthConfig(username=user, password=password)))
    assert resp.image_ref == res.image_id
    await stub.RemoveImage(api_pb2.RemoveImageRequest(image=spec(res.image_id)))


async def test_image_fs_info(stub: api_pb2_grpc.ImageServiceStub, test_images: TestImages) -> None:
    await stub.PullImage(api_pb2.PullImageRequest(image=spec(test_images.busybox.ref)))
    resp = await stub.ImageFsInfo(api_pb2.ImageFsInfoRequest())
    (fs,) = resp.image_filesystems
    assert fs.fs_id.mountpoint.endswith("io.containerd.snapshotter.v1.overlayfs")
    assert fs.used_bytes.value > 0 and fs.inodes_used.value > 0 and fs.timestamp > 0
    assert len(resp.container_filesystems) == 1
