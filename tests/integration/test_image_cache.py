"""The server's cached image list stays true when other containerd clients change records."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
import pytest

from cri_protos.containerd.services.images.v1 import images_pb2, images_pb2_grpc
from cri_protos.runtime.v1 import api_pb2
from tests.cri_server import CriServer
from tests.rig.containerd import PrivateContainerd
from tests.rig.images import TestImages

NS = (("containerd-namespace", "k8s.io"),)


def _status(server: CriServer, ref: str) -> api_pb2.Image | None:
    resp = server.images().ImageStatus(api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=ref)), timeout=10)
    return resp.image if resp.HasField("image") else None


def _eventually(check: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


@pytest.mark.integration
def test_records_changed_by_another_client_are_seen(
        make_cri_server: Callable[..., CriServer], containerd: PrivateContainerd, test_images: TestImages) -> None:
    server = make_cri_server().start()
    img = test_images.busybox_plain
    server.images().PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=img.ref)), timeout=60)
    alias = "example.test/cache-alias:1"
    with grpc.insecure_channel(f"unix://{containerd.address}") as channel:
        foreign = images_pb2_grpc.ImagesStub(channel)
        record = foreign.Get(images_pb2.GetImageRequest(name=img.ref), metadata=NS, timeout=10).image
        try:
            for _ in range(3):  # warm the cache (once events are live, lists are kept)
                assert _status(server, img.ref) is not None
                server.images().ListImages(api_pb2.ListImagesRequest(), timeout=10)
                time.sleep(0.2)

            # A name added elsewhere is found at once (a cache miss is checked with containerd) ...
            foreign.Create(images_pb2.CreateImageRequest(
                image=images_pb2.Image(name=alias, target=record.target)), metadata=NS, timeout=10)
            found = _status(server, alias)
            assert found is not None and found.id == img.image_id
            # ... and shows up among the image's tags.
            assert _eventually(lambda: alias in _tags(server, img.image_id))

            # A name deleted elsewhere stops resolving once containerd announces it.
            foreign.Delete(images_pb2.DeleteImageRequest(name=alias), metadata=NS, timeout=10)
            assert _eventually(lambda: _status(server, alias) is None)
            assert _eventually(lambda: alias not in _tags(server, img.image_id))
        finally:
            try:
                foreign.Delete(images_pb2.DeleteImageRequest(name=alias), metadata=NS, timeout=10)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND
    server.images().RemoveImage(api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=img.image_id)), timeout=30)
    assert _status(server, img.ref) is None


def _tags(server: CriServer, image_id: str) -> list[str]:
    listed = server.images().ListImages(api_pb2.ListImagesRequest(), timeout=10).images
    return next((list(i.repo_tags) for i in listed if i.id == image_id), [])
