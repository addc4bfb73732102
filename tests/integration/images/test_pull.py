"""Pulls from the local registry into containerd: records, labels, snapshots, runnable."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from cri_protos.containerd.services.content.v1 import content_pb2
from cri_protos.containerd.services.images.v1 import images_pb2
from cri_protos.containerd.services.snapshots.v1 import snapshots_pb2
from cri_runtime import errors
from cri_runtime.containerd.connection import Containerd
from cri_runtime.images.manager import ImageManager
from cri_runtime.images.manifest import chain_ids
from tests.integration.images.conftest import MakeManager, image_names, ingests, our_leases
from tests.rig.containerd import PrivateContainerd
from tests.rig.images import TestImages

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_pull_every_standard_image(manager: ImageManager, test_images: TestImages, ctd: Containerd) -> None:
    for name, img in test_images.by_name.items():
        rec = await manager.pull(img.ref)
        assert rec.id == img.image_id, name
        assert img.ref in rec.repo_tags
        assert f"{img.ref.rsplit(':', 1)[0]}@{img.digest}" in rec.repo_digests
        assert rec.chain_id == chain_ids(img.image.diff_ids)[-1]
        assert rec.size > 0
    assert not await ingests(ctd)
    assert not await our_leases(ctd)


async def test_records_labels_and_snapshots(manager: ImageManager, test_images: TestImages,
                                            ctd: Containerd) -> None:
    img = test_images.layers
    rec = await manager.pull(img.ref)
    names = await image_names(ctd)
    repo = img.ref.rsplit(":", 1)[0]
    assert {img.ref, f"{repo}@{img.digest}", img.image_id} <= names
    info = (await ctd.call(ctd.content.Info, content_pb2.InfoRequest(digest=img.digest), "i")).info
    assert info.labels["containerd.io/gc.ref.content.config"] == img.image_id
    assert len([k for k in info.labels if k.startswith("containerd.io/gc.ref.content.l.")]) == 3
    config = (await ctd.call(ctd.content.Info, content_pb2.InfoRequest(digest=img.image_id), "i")).info
    assert config.labels["containerd.io/gc.ref.snapshot.overlayfs"] == rec.chain_id
    first_layer = rec.info.layers[0].digest
    layer = (await ctd.call(ctd.content.Info, content_pb2.InfoRequest(digest=first_layer), "i")).info
    assert layer.labels["containerd.io/uncompressed"] == img.image.diff_ids[0]
    for chain in chain_ids(img.image.diff_ids):
        st = await ctd.call(ctd.snapshots.Stat,
                            snapshots_pb2.StatSnapshotRequest(snapshotter="overlayfs", key=chain), "stat")
        assert st.info.kind == snapshots_pb2.COMMITTED


async def test_ctr_lists_and_runs_pulled_image(containerd: PrivateContainerd, test_images: TestImages,
                                               manager: ImageManager) -> None:
    img = test_images.layers
    await manager.pull(img.ref)
    listing = containerd.ctr("images", "ls", "-q").stdout.split()
    assert img.ref in listing
    check = containerd.ctr("images", "check").stdout
    assert any(line.startswith(img.ref) and "complete" in line for line in check.splitlines())
    cid = f"imgtest-{uuid.uuid4().hex[:8]}"
    res = await asyncio.to_thread(
        containerd.ctr, "run", "--rm", *containerd.ctr_run_args(), img.ref, cid, "sh", "-c",
        # one write: ctr can lose the tail of a multi-write output when the task exits
        'echo "$(cat /layer1 /layer2) $(test -e /etc/hostname || echo whiteout-ok)"')
    assert res.stdout.split() == ["one", "two", "whiteout-ok"]


async def test_pull_by_digest_and_tag_plus_digest(manager: ImageManager, test_images: TestImages) -> None:
    img = test_images.busybox_user
    by_digest = img.ref_by_digest
    rec = await manager.pull(by_digest)
    assert rec.id == img.image_id
    assert by_digest in rec.repo_digests
    tagged_digest = f"{img.ref}@{img.digest}"
    rec2 = await manager.pull(tagged_digest)
    assert rec2.id == img.image_id
    status = await manager.status(tagged_digest)
    assert status is not None and status.id == img.image_id


async def test_resolve_by_id_prefix_tag_digest(manager: ImageManager, test_images: TestImages) -> None:
    img = test_images.config
    rec = await manager.pull(img.ref)
    hex_id = rec.id.removeprefix("sha256:")
    for key in (rec.id, hex_id, hex_id[:12], "sha256:" + hex_id[:12], img.ref, img.ref_by_digest):
        found = await manager.resolve(key)
        assert found.id == rec.id, key
    assert await manager.status("sha256:" + "0" * 64) is None
    assert await manager.status("nosuch.invalid/x:1") is None
    assert await manager.status("Not A Ref") is None


async def test_multi_arch_index_picks_amd64(manager: ImageManager, test_images: TestImages) -> None:
    img = test_images.multi
    rec = await manager.pull(img.ref)
    assert rec.id == img.image_id
    assert rec.target.digest == img.digest
    assert rec.target.media_type == "application/vnd.oci.image.index.v1+json"


async def test_same_image_two_registries(manager: ImageManager, test_images: TestImages, tmp_path: object,
                                         make_manager: MakeManager) -> None:
    """The same image via its own host and via a mirrored name: one ID, two tags, two digests."""
    import pathlib

    hosts_dir = pathlib.Path(str(tmp_path)) / "certs.d"
    mirror_dir = hosts_dir / "mirror.example.invalid"
    mirror_dir.mkdir(parents=True)
    (mirror_dir / "hosts.toml").write_text(
        f'[host."http://{test_images.registry_host}"]\n  capabilities = ["pull", "resolve"]\n')
    img = test_images.busybox_user
    mirrored = make_manager(hosts_dir=str(hosts_dir))
    await manager.pull(img.ref)
    other_ref = img.ref.replace(test_images.registry_host, "mirror.example.invalid")
    rec = await mirrored.pull(other_ref)
    assert rec.id == img.image_id
    assert img.ref in rec.repo_tags and other_ref in rec.repo_tags
    assert len(rec.repo_digests) == 2
    await manager.remove(other_ref)
    assert await manager.status(img.ref) is None


async def test_remove_removes_every_name_and_is_idempotent(manager: ImageManager, test_images: TestImages,
                                                           ctd: Containerd) -> None:
    img = test_images.busybox_docker
    rec = await manager.pull(img.ref)
    await manager.pull(img.ref_by_digest)
    await manager.remove(img.ref)
    names = await image_names(ctd)
    assert not {n for n in rec.names} & names
    assert await manager.status(rec.id) is None
    await manager.remove(img.ref)  # not found is success
    await manager.remove(rec.id)


async def test_simultaneous_removes_do_not_fail(manager: ImageManager, test_images: TestImages) -> None:
    img = test_images.busybox_plain
    rec = await manager.pull(img.ref)
    await asyncio.gather(*(manager.remove(k) for k in (img.ref, rec.id, img.ref_by_digest, img.ref)))
    assert await manager.status(rec.id) is None


async def test_concurrent_pulls_share_downloads(make_manager: MakeManager, fake_registry: object,
                                                test_images: TestImages) -> None:
    from tests.integration.images.fake_registry import FakeRegistry
    from tests.rig.images import layered_image

    reg: FakeRegistry = await fake_registry()  # type: ignore[operator]
    image = layered_image()
    reg.add("share/layers", "v1", image)
    mgr = make_manager()
    ref = f"{reg.host}/share/layers:v1"
    recs = await asyncio.gather(*(mgr.pull(ref) for _ in range(4)))
    assert {r.id for r in recs} == {image.image_id}
    blob_gets = {p: n for p, n in reg.requests.items() if "/blobs/" in p}
    # config is read once per pull (it is small and needed to plan); layers exactly once
    layer_gets = [n for p, n in blob_gets.items() if p.rsplit("/", 1)[1] != image.image_id]
    assert layer_gets and all(n == 1 for n in layer_gets), blob_gets
    await mgr.remove(ref)


async def test_ensure_image_pulls_once_and_pins_sandbox(make_manager: MakeManager,
                                                        test_images: TestImages) -> None:
    img = test_images.busybox_user
    mgr = make_manager(sandbox_image=img.ref)
    rec = await mgr.ensure_image(img.ref)
    assert rec.pinned
    again = await mgr.ensure_image(img.ref)
    assert again.id == rec.id
    listed = [i for i in await mgr.list() if i.id == rec.id]
    assert listed and listed[0].pinned
    await mgr.remove(img.ref)


async def test_fs_info(manager: ImageManager, test_images: TestImages) -> None:
    await manager.pull(test_images.busybox.ref)
    usage = await manager.fs_info()
    assert usage.mountpoint.endswith("io.containerd.snapshotter.v1.overlayfs")
    assert usage.used_bytes > 500_000
    assert usage.inodes_used > 10


async def _unique_image_blobs_and_snapshot(make_manager: MakeManager, fake_registry: object,
                                           ) -> tuple[ImageManager, str, list[str], str]:
    """A pulled image whose manifest, config, top layer and top snapshot no other image shares."""
    from tests.integration.images.fake_registry import FakeRegistry
    from tests.rig.oci import ImageConfig, LayerBuilder, busybox_image

    reg: FakeRegistry = await fake_registry()  # type: ignore[operator]
    token = uuid.uuid4().hex
    image = busybox_image(ImageConfig(cmd=["sh", token]), extra_layers=[LayerBuilder().file("unique", token)])
    reg.add("gc/unique", "v1", image)
    mgr = make_manager()
    ref = f"{reg.host}/gc/unique:v1"
    await mgr.pull(ref)
    return mgr, ref, [image.digest, image.image_id, image.layers[-1].blob.digest], image.chain_id()


async def _content_left(ctd: Containerd, digests: list[str]) -> list[str]:
    left = []
    for digest in digests:
        try:
            await ctd.call(ctd.content.Info, content_pb2.InfoRequest(digest=digest), "info")
            left.append(digest)
        except errors.NotFound:
            pass
    return left


async def _snapshot_left(ctd: Containerd, key: str) -> bool:
    try:
        await ctd.call(ctd.snapshots.Stat, snapshots_pb2.StatSnapshotRequest(snapshotter="overlayfs", key=key), "stat")
    except errors.NotFound:
        return False
    return True


@pytest.mark.parametrize("id_record_already_gone", [False, True])
async def test_removal_frees_content_and_snapshots_before_it_returns(
        make_manager: MakeManager, fake_registry: object, ctd: Containerd, id_record_already_gone: bool) -> None:
    mgr, ref, digests, chain_id = await _unique_image_blobs_and_snapshot(make_manager, fake_registry)
    assert await _content_left(ctd, digests) == digests and await _snapshot_left(ctd, chain_id)
    if id_record_already_gone:
        # Another client deleted the ID record (no collection): ours must still collect.
        await ctd.call(ctd.images.Delete, images_pb2.DeleteImageRequest(name=digests[1]), "delete ID record")
    await mgr.remove(ref)
    assert await _content_left(ctd, digests) == []
    assert not await _snapshot_left(ctd, chain_id)
