"""HTTPS registries configured through hosts.toml, and a content store that runs out of disk."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from cri_runtime import errors
from cri_runtime.config import ImageConfig
from cri_runtime.containerd.connection import Containerd
from cri_runtime.images.manager import ImageManager
from tests.integration.images.conftest import MakeManager, image_names, ingests, our_leases
from tests.rig.containerd import PrivateContainerd
from tests.rig.oci import LayerBuilder, busybox_image, push
from tests.rig.registry import LocalRegistry

pytestmark = pytest.mark.asyncio(loop_scope="session")


def hosts_toml(root: Path, registry: str, body: str) -> str:
    d = root / registry
    d.mkdir(parents=True)
    (d / "hosts.toml").write_text(body)
    return str(root)


async def test_tls_registry_needs_its_ca(tls_registry: LocalRegistry, make_manager: MakeManager,
                                         tmp_path: Path) -> None:
    res = await asyncio.to_thread(push, busybox_image(), tls_registry, "tls/busybox", "v1")
    with pytest.raises(errors.Unavailable) as exc:
        await make_manager(hosts_dir=str(tmp_path / "empty")).pull(res.ref)
    assert res.ref in str(exc.value) and "certificate" in str(exc.value).lower()

    with_ca = hosts_toml(tmp_path / "ca", tls_registry.host,
                         f'server = "https://{tls_registry.host}"\nca = "{tls_registry.ca_file}"\n')
    mgr = make_manager(hosts_dir=with_ca)
    rec = await mgr.pull(res.ref)
    assert rec.id == res.image_id
    await mgr.remove(rec.id)

    skip = hosts_toml(tmp_path / "skip", tls_registry.host,
                      f'server = "https://{tls_registry.host}"\nskip_verify = true\n')
    mgr = make_manager(hosts_dir=skip)
    rec = await mgr.pull(res.ref)
    assert rec.id == res.image_id
    await mgr.remove(rec.id)


@pytest_asyncio.fixture(loop_scope="session")
async def small_containerd() -> AsyncIterator[PrivateContainerd]:
    """A containerd whose root is a 6 MiB tmpfs."""
    ctrd = PrivateContainerd(with_cri=False)
    ctrd.root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "crirt-small", str(ctrd.root)], check=True)
    try:
        await asyncio.to_thread(ctrd.start)
        yield ctrd
    finally:
        problems = await asyncio.to_thread(ctrd.stop)
        if ctrd.root.exists():
            subprocess.run(["umount", str(ctrd.root)], check=False)
        assert not problems, problems


async def test_disk_full_is_resource_exhausted(small_containerd: PrivateContainerd, registry: LocalRegistry) -> None:
    big = LayerBuilder().file("big.bin", bytes(range(256)) * (40 << 12))  # 10 MiB
    res = await asyncio.to_thread(push, busybox_image(extra_layers=[big], compression="none"), registry,
                                  "test/toobig", "v1")
    ctd = Containerd(small_containerd.address, "k8s.io")
    mgr = ImageManager(ctd, ImageConfig(registry_config_path=str(small_containerd.hosts_dir)), "overlayfs")
    try:
        before = await image_names(ctd)
        with pytest.raises(errors.ResourceExhausted) as exc:
            await mgr.pull(res.ref)
        # containerd's own words, read off the write stream it ended.
        assert res.ref in str(exc.value) and "no space left on device" in str(exc.value)
        assert await image_names(ctd) == before
        assert not await ingests(ctd)
        assert not await our_leases(ctd)
    finally:
        await mgr.close()
        await ctd.close()
