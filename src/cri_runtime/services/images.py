"""The ImageService servicer: request validation and response shaping only.

All behaviour lives in `cri_runtime.images.manager.ImageManager`; failures are
domain errors that `@unary` maps to status codes.

ListImages and ImageStatus are answered with bytes joined from each image's
cached encoding (field 1 of ListImagesResponse and ImageStatusResponse
alike): kubelet lists images every few seconds and the image set rarely changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from cri_protos.runtime.v1 import api_pb2
from cri_runtime import errors, protowire
from cri_runtime.images.auth import ANONYMOUS, Credentials
from cri_runtime.images.manager import ImageManager
from cri_runtime.images.manifest import user_to_uid_username
from cri_runtime.images.store import ImageRecord
from cri_runtime.rpc import Serialized, ServicerContext
from cri_runtime.services.error_mapping import Gate, server_stream, unary

STREAM_PAGE_SIZE = 100


def image_message(image: ImageRecord) -> Any:
    """CRI's Image for one record, as containerd's CRI plugin fills it."""
    uid, username = user_to_uid_username(image.info.config.user)
    msg = api_pb2.Image(
        id=image.id,
        repo_tags=image.repo_tags,
        repo_digests=image.repo_digests,
        size=image.size,
        username=username,
        spec=api_pb2.ImageSpec(image=image.id),
        pinned=image.pinned,
    )
    if uid is not None:
        msg.uid.value = uid
    return msg


def image_wire(image: ImageRecord) -> bytes:
    """`image_message(image)` encoded as field 1 of the enclosing response, built once per image."""
    if image.wire is None:
        image.wire = protowire.message_field(1, image_message(image))
    return image.wire


def credentials_from(auth: Any) -> Credentials:
    if auth is None:
        return ANONYMOUS
    return Credentials.from_auth_config(
        username=auth.username, password=auth.password, auth=auth.auth,
        server_address=auth.server_address, identity_token=auth.identity_token,
        registry_token=auth.registry_token)


def _image_ref(spec: Any, rpc: str) -> str:
    ref = spec.image if spec is not None else ""
    if not ref:
        raise errors.InvalidArgument(f"{rpc}: image reference (image.image) is required")
    return str(ref)


def _filesystem(usage: Any) -> Any:
    return api_pb2.FilesystemUsage(
        timestamp=usage.timestamp_ns,
        fs_id=api_pb2.FilesystemIdentifier(mountpoint=usage.mountpoint),
        used_bytes=api_pb2.UInt64Value(value=usage.used_bytes),
        inodes_used=api_pb2.UInt64Value(value=usage.inodes_used))


class ImageServicer:
    """runtime.v1.ImageService backed by `ImageManager`."""

    def __init__(self, manager: ImageManager, gate: Gate) -> None:
        self.manager = manager
        self.gate = gate

    async def wait_recovered(self) -> None:
        await self.gate.wait_recovered()

    @unary
    async def PullImage(self, request: Any, context: ServicerContext) -> Any:
        ref = _image_ref(request.image, "PullImage")
        creds = credentials_from(request.auth if request.HasField("auth") else None)
        image = await self.manager.pull(ref, creds)
        image_wire(image)  # encoded now: kubelet's ImageStatus/ListImages follow a pull
        return api_pb2.PullImageResponse(image_ref=image.id)

    @unary
    async def ListImages(self, request: Any, context: ServicerContext) -> Serialized:
        ref_filter = request.filter.image.image if request.HasField("filter") else ""
        images = await self.manager.list(ref_filter)
        return Serialized(b"".join(image_wire(i) for i in images))

    @server_stream
    async def StreamImages(self, request: Any, context: ServicerContext) -> AsyncIterator[Any]:
        ref_filter = request.filter.image.image if request.HasField("filter") else ""
        images = await self.manager.list(ref_filter)
        for i in range(0, len(images), STREAM_PAGE_SIZE):
            page = images[i:i + STREAM_PAGE_SIZE]
            yield api_pb2.StreamImagesResponse(images=[image_message(img) for img in page])

    @unary
    async def ImageStatus(self, request: Any, context: ServicerContext) -> Any:
        ref = _image_ref(request.image, "ImageStatus")
        image = await self.manager.status(ref)
        if image is None:
            return api_pb2.ImageStatusResponse()
        if not request.verbose:
            return Serialized(image_wire(image))
        return api_pb2.ImageStatusResponse(image=image_message(image), info=self.manager.verbose_info(image))

    @unary
    async def RemoveImage(self, request: Any, context: ServicerContext) -> Any:
        ref = _image_ref(request.image, "RemoveImage")
        await self.manager.remove(ref)
        return api_pb2.RemoveImageResponse()

    @unary
    async def ImageFsInfo(self, request: Any, context: ServicerContext) -> Any:
        usage = await self.manager.fs_info()
        fs = _filesystem(usage)
        return api_pb2.ImageFsInfoResponse(image_filesystems=[fs], container_filesystems=[_filesystem(usage)])
