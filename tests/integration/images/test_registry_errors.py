"""Auth, mirrors, redirects, and every bad input: right code, clear text, nothing left behind."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cri_runtime import errors
from cri_runtime.containerd.connection import Containerd
from cri_runtime.images.auth import Credentials
from cri_runtime.images.platform import Platform
from tests.integration.images.conftest import MakeManager, has_content, image_names, ingests, our_leases
from tests.integration.images.fake_registry import FakeRegistry
from tests.rig.images import TestImages
from tests.rig.oci import Image, busybox_image, foreign_platform_image, push
from tests.rig.registry import LocalRegistry

pytestmark = pytest.mark.asyncio(loop_scope="session")

StartFake = Callable[..., Any]


async def assert_nothing_left(ctd: Containerd, names_before: set[str], *digests: str) -> None:
    await ctd.settled()  # a lease whose creation the cancelled pull left in flight is deleted once it lands
    assert await image_names(ctd) == names_before
    assert not await ingests(ctd)
    assert not await our_leases(ctd)
    for d in digests:
        # Content may survive only while something else references it; ours must not.
        info_ok = await has_content(ctd, d)
        assert not info_ok or d in names_before, d


def layers_of(image: Image) -> list[str]:
    return [layer.blob.digest for layer in image.layers]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------- auth
async def test_basic_auth_registry(auth_registry: LocalRegistry, make_manager: MakeManager) -> None:
    assert auth_registry.credentials is not None
    user, password = auth_registry.credentials
    res = await asyncio.to_thread(push, busybox_image(), auth_registry, "private/busybox", "v1")
    mgr = make_manager()
    with pytest.raises(errors.Unauthenticated) as exc:
        await mgr.pull(res.ref)
    assert res.ref in str(exc.value)
    with pytest.raises(errors.Unauthenticated) as exc:
        await mgr.pull(res.ref, Credentials(username=user, password="wrong-" + password))
    assert password not in str(exc.value)
    rec = await mgr.pull(res.ref, Credentials(username=user, password=password))
    assert rec.id == res.image_id
    await mgr.remove(res.ref)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    rec = await mgr.pull(res.ref, Credentials.from_auth_config(auth=auth, server_address=auth_registry.url))
    assert rec.id == res.image_id
    # credentials for another server are not sent
    with pytest.raises(errors.Unauthenticated):
        await mgr.pull(res.ref_by_digest, Credentials(username=user, password=password,
                                                      server_address="https://elsewhere.example"))
    await mgr.remove(res.ref)


async def test_bearer_token_flow_and_blob_redirect(fake_registry: StartFake, make_manager: MakeManager) -> None:
    reg: FakeRegistry = await fake_registry(bearer_user=("alice", "pw-123"), redirect_blobs=True)
    image = busybox_image()
    reg.add("team/app", "1", image)
    mgr = make_manager()
    ref = f"{reg.host}/team/app:1"
    with pytest.raises(errors.Unauthenticated) as exc:
        await mgr.pull(ref, Credentials(username="alice", password="nope"))
    assert "bad credentials" in str(exc.value) and "nope" not in str(exc.value)
    rec = await mgr.pull(ref, Credentials(username="alice", password="pw-123"))
    assert rec.id == image.image_id
    assert reg.requests["/token"] >= 2
    # storage (another host name) rejects any Authorization header: reaching it proves we drop it
    assert any(p.startswith("/storage/") for p in reg.requests)
    await mgr.remove(ref)


async def test_registry_token_is_sent_as_bearer(fake_registry: StartFake, make_manager: MakeManager) -> None:
    reg: FakeRegistry = await fake_registry(bearer_user=("bob", "x"))
    reg.tokens.add("pre-issued-token")
    image = busybox_image()
    reg.add("team/app", "2", image)
    mgr = make_manager()
    rec = await mgr.pull(f"{reg.host}/team/app:2", Credentials(registry_token="pre-issued-token"))
    assert rec.id == image.image_id
    assert "/token" not in reg.requests
    await mgr.remove(rec.id)


# ---------------------------------------------------------------------- mirrors
async def test_mirror_in_hosts_toml(tmp_path: Path, test_images: TestImages, make_manager: MakeManager,
                                    fake_registry: StartFake) -> None:
    """An unreachable registry name served by mirrors; a 404 mirror is skipped."""
    empty: FakeRegistry = await fake_registry()
    d = tmp_path / "certs.d" / "registry.k8s.io"
    d.mkdir(parents=True)
    (d / "hosts.toml").write_text(
        'server = "https://registry.k8s.io"\n\n'
        f'[host."http://{empty.host}"]\n  capabilities = ["pull", "resolve"]\n\n'
        f'[host."http://{test_images.registry_host}"]\n  capabilities = ["pull", "resolve"]\n')
    mgr = make_manager(hosts_dir=str(tmp_path / "certs.d"))
    ref = "registry.k8s.io/test/busybox:latest"
    rec = await mgr.pull(ref)
    assert rec.id == test_images.busybox.image_id
    assert ref in rec.repo_tags
    assert f"registry.k8s.io/test/busybox@{test_images.busybox.digest}" in rec.repo_digests
    assert empty.requests["/v2/test/busybox/manifests/latest"] == 1
    await mgr.remove(ref)


# ------------------------------------------------------------------- bad input
async def test_unknown_host_is_unavailable(make_manager: MakeManager, ctd: Containerd) -> None:
    before = await image_names(ctd)
    with pytest.raises(errors.Unavailable) as exc:
        await make_manager().pull("no-such-registry.invalid/x/y:1")
    assert "no-such-registry.invalid/x/y:1" in str(exc.value)
    await assert_nothing_left(ctd, before)


async def test_refused_connection_is_unavailable(make_manager: MakeManager) -> None:
    port = free_port()
    with pytest.raises(errors.Unavailable) as exc:
        await make_manager().pull(f"127.0.0.1:{port}/x/y:1")
    assert f"127.0.0.1:{port}/x/y:1" in str(exc.value)


async def test_missing_manifest_is_not_found(make_manager: MakeManager, test_images: TestImages) -> None:
    ref = f"{test_images.registry_host}/test/busybox:no-such-tag"
    with pytest.raises(errors.NotFound) as exc:
        await make_manager().pull(ref)
    assert ref in str(exc.value) and "manifest unknown" in str(exc.value).lower()


async def test_malformed_reference_is_invalid(make_manager: MakeManager) -> None:
    with pytest.raises(errors.InvalidArgument):
        await make_manager().pull("UPPER/case")


async def test_other_platform_only(make_manager: MakeManager, registry: LocalRegistry,
                                   test_images: TestImages) -> None:
    res = await asyncio.to_thread(push, foreign_platform_image("arm64", "v8"), registry, "test/armonly", "v1")
    with pytest.raises(errors.NotFound) as exc:
        await make_manager().pull(res.ref)
    assert "linux/arm64" in str(exc.value) and res.ref in str(exc.value)
    with pytest.raises(errors.NotFound) as exc:
        await make_manager(platform=Platform("linux", "s390x")).pull(test_images.multi.ref)
    assert "linux/s390x" in str(exc.value) and "linux/arm64/v8" in str(exc.value)


async def test_arm64_member_selected_for_arm64(make_manager: MakeManager, test_images: TestImages,
                                               ctd: Containerd) -> None:
    # Unpacking the arm64 stand-in works anywhere: it is just a file.
    mgr = make_manager(platform=Platform("linux", "arm64"))
    rec = await mgr.pull(test_images.multi.ref)
    arm = test_images.multi.artifact.for_platform("arm64", variant="v8")  # type: ignore[union-attr]
    assert rec.id == arm.image_id
    await mgr.remove(rec.id)


async def test_corrupt_blob_is_data_loss_and_leaves_nothing(fake_registry: StartFake, make_manager: MakeManager,
                                                            ctd: Containerd) -> None:
    reg: FakeRegistry = await fake_registry()
    image = busybox_image()
    reg.add("bad/corrupt", "1", image)
    layer_digests = layers_of(image)
    reg.corrupt.update(layer_digests)
    before = await image_names(ctd)
    ref = f"{reg.host}/bad/corrupt:1"
    with pytest.raises(errors.DataLoss) as exc:
        await make_manager().pull(ref)
    assert ref in str(exc.value) and "does not match" in str(exc.value)
    await assert_nothing_left(ctd, before, *layer_digests)


async def test_truncated_stream_is_resumed(fake_registry: StartFake, make_manager: MakeManager) -> None:
    reg: FakeRegistry = await fake_registry(truncate_times=1)
    image = busybox_image()
    reg.add("flaky/app", "1", image)
    layer = layers_of(image)
    reg.truncate.update(layer)
    mgr = make_manager()
    rec = await mgr.pull(f"{reg.host}/flaky/app:1")
    assert rec.id == image.image_id
    assert reg.requests[f"/v2/flaky/app/blobs/{layer[0]}"] == 2
    await mgr.remove(rec.id)


async def test_truncated_stream_for_good_is_data_loss(fake_registry: StartFake, make_manager: MakeManager,
                                                      ctd: Containerd) -> None:
    reg: FakeRegistry = await fake_registry()
    image = busybox_image()
    reg.add("broken/app", "1", image)
    layer = layers_of(image)
    reg.truncate.update(layer)
    before = await image_names(ctd)
    with pytest.raises(errors.DataLoss) as exc:
        await make_manager().pull(f"{reg.host}/broken/app:1")
    assert "broken/app:1" in str(exc.value)
    await assert_nothing_left(ctd, before, *layer)


# ------------------------------------------------------------ cancel / deadline
async def test_cancelled_pull_leaves_nothing(fake_registry: StartFake, make_manager: MakeManager,
                                             ctd: Containerd) -> None:
    reg: FakeRegistry = await fake_registry()
    image = busybox_image()
    reg.add("slow/app", "1", image)
    layer = layers_of(image)
    reg.slow.update(layer)
    before = await image_names(ctd)
    task = asyncio.ensure_future(make_manager().pull(f"{reg.host}/slow/app:1"))
    for _ in range(100):
        await asyncio.sleep(0.05)
        if await ingests(ctd):
            break
    assert await ingests(ctd), "the download never started"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await assert_nothing_left(ctd, before, *layer)


async def test_pull_cancelled_at_once_leaves_no_lease(fake_registry: StartFake, make_manager: MakeManager,
                                                     ctd: Containerd) -> None:
    """Cancelled while the lease is being created (a 1 ms deadline): the lease still goes."""
    reg: FakeRegistry = await fake_registry()
    reg.add("quick/app", "1", busybox_image())
    manager = make_manager()
    for delay in (0, 0.0005, 0.001, 0.002):
        task = asyncio.ensure_future(manager.pull(f"{reg.host}/quick/app:1"))
        await asyncio.sleep(delay)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    # A creation the cancel left in flight lands a moment later; its lease is then deleted in the
    # background. (Polling until none was listed raced with such a creation still on its way.)
    await ctd.settled()
    assert await our_leases(ctd) == []


async def test_deadline_and_progress_timeout(fake_registry: StartFake, make_manager: MakeManager,
                                             ctd: Containerd) -> None:
    reg: FakeRegistry = await fake_registry()
    image = busybox_image()
    reg.add("slow/app", "2", image)
    layer = layers_of(image)
    reg.slow.update(layer)
    before = await image_names(ctd)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(make_manager().pull(f"{reg.host}/slow/app:2"), 0.5)
    await assert_nothing_left(ctd, before, *layer)


async def test_stalled_download_hits_progress_timeout(fake_registry: StartFake, make_manager: MakeManager,
                                                      ctd: Containerd) -> None:
    reg: FakeRegistry = await fake_registry()
    image = busybox_image()
    reg.add("stuck/app", "1", image)
    layer = layers_of(image)
    reg.stall.update(layer)
    before = await image_names(ctd)
    mgr = make_manager(image_pull_progress_timeout_seconds=0.5)
    with pytest.raises(errors.DeadlineExceeded) as exc:
        await mgr.pull(f"{reg.host}/stuck/app:1")
    assert "no progress" in str(exc.value) and "stuck/app:1" in str(exc.value)
    await assert_nothing_left(ctd, before, *layer)


async def test_existing_partial_ingest_is_resumed(fake_registry: StartFake, make_manager: MakeManager,
                                                  ctd: Containerd) -> None:
    """A partial ingest left by a killed pull (same ref key) continues with a Range request."""
    from cri_protos.containerd.services.content.v1 import content_pb2

    reg: FakeRegistry = await fake_registry()
    image = busybox_image()
    reg.add("resume/app", "1", image)
    blob = image.layers[0].blob
    ref_key = f"layer-{blob.digest}"
    half = blob.size // 2
    call = ctd.content.Write(metadata=ctd.metadata())
    await call.write(content_pb2.WriteContentRequest(action=content_pb2.STAT, ref=ref_key, total=blob.size,
                                                     expected=blob.digest))
    await call.read()
    await call.write(content_pb2.WriteContentRequest(action=content_pb2.WRITE, ref=ref_key, offset=0,
                                                     data=blob.data[:half]))
    await call.read()
    await call.done_writing()
    call.cancel()
    assert ref_key in await ingests(ctd)
    mgr = make_manager()
    rec = await mgr.pull(f"{reg.host}/resume/app:1")
    assert rec.id == image.image_id
    assert reg.ranges == [f"bytes={half}-"]
    assert not await ingests(ctd)
    await mgr.remove(rec.id)
