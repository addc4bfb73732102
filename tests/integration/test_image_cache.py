"""The server's cached image list stays true when other containerd clients change records."""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
import pytest
from google.protobuf import field_mask_pb2

from cri_protos.containerd.services.images.v1 import images_pb2, images_pb2_grpc
from cri_protos.containerd.services.leases.v1 import leases_pb2, leases_pb2_grpc
from cri_protos.runtime.v1 import api_pb2
from tests.cri_server import CriServer
from tests.rig.containerd import PrivateContainerd
from tests.rig.images import TestImages
from tests.waiting import wait_until

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
            # Warm the cache: once events are live, a listing is kept.
            wait_until(lambda: "containerd events: subscribed" in server.log_path.read_text(),
                       "the server's subscription to containerd's events")
            assert _status(server, img.ref) is not None
            server.images().ListImages(api_pb2.ListImagesRequest(), timeout=10)

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


def _list(server: CriServer) -> list[api_pb2.Image]:
    return list(server.images().ListImages(api_pb2.ListImagesRequest(), timeout=10).images)


def _leases(channel: grpc.Channel) -> set[str]:
    stub = leases_pb2_grpc.LeasesStub(channel)
    return {le.id for le in stub.List(leases_pb2.ListRequest(), metadata=NS, timeout=10).leases}


@pytest.mark.integration
def test_cached_answers_follow_pulls_removals_and_other_clients(
        make_cri_server: Callable[..., CriServer], containerd: PrivateContainerd, test_images: TestImages) -> None:
    """Every fast path answers from the record copy, and the copy stays true.

    Pull → status/list see it; a second pull of the present image is named again
    without a lease; another client repoints a tag (update) and pins a name with
    containerd's label; RemoveImage removes every name; nothing is stale after.
    """
    server = make_cri_server().start()
    second, plain = test_images.layers, test_images.busybox_plain  # two distinct image IDs
    pulled = server.images().PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=plain.ref)),
                                       timeout=60)
    assert pulled.image_ref == plain.image_id
    alias = "example.test/cache-repoint:1"
    with grpc.insecure_channel(f"unix://{containerd.address}") as channel:
        foreign = images_pb2_grpc.ImagesStub(channel)
        try:
            # Warm: the copy is kept once events are live.
            assert _eventually(lambda: _status(server, plain.ref) is not None and bool(_list(server)))
            status = _status(server, plain.ref)
            assert status is not None and status.id == plain.image_id and not status.pinned
            assert plain.image_id in {i.id for i in _list(server)}

            # A pull of the present image: same answer, no lease taken (nothing is fetched).
            before = _leases(channel)
            again = server.images().PullImage(
                api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=plain.ref)), timeout=60)
            assert again.image_ref == plain.image_id
            assert _leases(channel) == before

            # Another client names the image, then repoints that name at another image.
            record = foreign.Get(images_pb2.GetImageRequest(name=plain.ref), metadata=NS, timeout=10).image
            foreign.Create(images_pb2.CreateImageRequest(image=images_pb2.Image(name=alias, target=record.target)),
                           metadata=NS, timeout=10)
            assert _eventually(lambda: alias in _tags(server, plain.image_id))
            server.images().PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=second.ref)),
                                      timeout=60)
            other = foreign.Get(images_pb2.GetImageRequest(name=second.ref), metadata=NS, timeout=10).image
            foreign.Update(images_pb2.UpdateImageRequest(
                image=images_pb2.Image(name=alias, target=other.target,
                                       labels={"io.cri-containerd.pinned": "pinned"}),
                update_mask=field_mask_pb2.FieldMask(paths=["target", "labels.io.cri-containerd.pinned"])),
                metadata=NS, timeout=10)
            assert _eventually(lambda: alias in _tags(server, second.image_id)
                               and alias not in _tags(server, plain.image_id))
            # containerd's pin label pins the whole image, in ListImages and ImageStatus alike.
            assert _eventually(lambda: any(i.id == second.image_id and i.pinned for i in _list(server)))
            pinned = _status(server, second.ref)
            assert pinned is not None and pinned.pinned
            assert not any(i.pinned for i in _list(server) if i.id == plain.image_id)

            # RemoveImage removes a pinned image too (as containerd's CRI: kubelet's GC skips
            # pinned images itself), every name of it, and the answers follow at once.
            for img in (second, plain):
                server.images().RemoveImage(api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=img.ref)),
                                            timeout=30)
                assert _status(server, img.ref) is None
                assert img.image_id not in {i.id for i in _list(server)}
            assert _status(server, alias) is None
            with pytest.raises(grpc.RpcError) as gone:
                foreign.Get(images_pb2.GetImageRequest(name=alias), metadata=NS, timeout=10)
            assert gone.value.code() == grpc.StatusCode.NOT_FOUND
        finally:
            try:
                foreign.Delete(images_pb2.DeleteImageRequest(name=alias), metadata=NS, timeout=10)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.integration
def test_an_image_pulled_by_another_client_is_listed_and_pinned_by_label(
        make_cri_server: Callable[..., CriServer], containerd: PrivateContainerd, test_images: TestImages) -> None:
    """`ctr images pull --label io.cri-containerd.pinned=pinned` (the operator's way to pin)."""
    server = make_cri_server().start()
    img = test_images.config
    with grpc.insecure_channel(f"unix://{containerd.address}") as channel:
        foreign = images_pb2_grpc.ImagesStub(channel)
        # The content arrives through our pull; the names by the other client.
        server.images().PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=img.ref)), timeout=60)
        record = foreign.Get(images_pb2.GetImageRequest(name=img.ref), metadata=NS, timeout=10).image
        name = "example.test/operator-pinned:1"
        foreign.Create(images_pb2.CreateImageRequest(image=images_pb2.Image(
            name=name, target=record.target, labels={"io.cri-containerd.pinned": "pinned"})),
            metadata=NS, timeout=10)
        try:
            assert _eventually(lambda: any(i.id == img.image_id and i.pinned and name in i.repo_tags
                                           for i in _list(server)))
            status = _status(server, name)
            assert status is not None and status.pinned and status.id == img.image_id
            # Deleting the pinned name elsewhere unpins the image.
            foreign.Delete(images_pb2.DeleteImageRequest(name=name), metadata=NS, timeout=10)
            assert _eventually(lambda: any(i.id == img.image_id and not i.pinned for i in _list(server)))
        finally:
            try:
                foreign.Delete(images_pb2.DeleteImageRequest(name=name), metadata=NS, timeout=10)
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.NOT_FOUND
    server.images().RemoveImage(api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=img.image_id)), timeout=30)
    assert _status(server, img.ref) is None
